"""The tool's own steps for a system whose data is replicated (spec ``data.replication``).

The cutover and the rollback run these among the spec's steps, recorded in the ledger like every
step (before and after, keyed by run and step id, see :func:`tasks.steps.execute_step`), so a
re-run after a crash replays a finished one and repeats no side effect; each action is idempotent
besides, so one left ``started`` by a killed worker simply runs again.

Where they go (:func:`with_replication` for the cutover, :func:`back_step` for the rollback):

- ``replication-forward``, before the first cutover step (at cutover start, after the preflight):
  the cloud copy subscribes to the original and copies every table, while the original still
  takes writes. Chosen over the sign-off stage so a rejected or expired sign-off leaves nothing
  running. Its undo does nothing: the cloud copy keeps following the original for the next attempt.
- ``replication-catch-up``, right before the first step that needs the data on the cloud copy
  (the first ``data_verify`` step, else the traffic switch), i.e. after the spec's freeze: waits
  until the cloud copy has every write the original acknowledged, then marks the switch (the
  reverse slot on the cloud copy holds every change from now on) and moves the cloud copy's
  sequences past the replicated keys. The final sync is this step; no copy runs in the window.
  Its undo drops the reverse slot and publication (traffic never moved).
- ``replication-turn-around``, right after the traffic switch: the original subscribes to the
  cloud copy (no copy: the slot marked before the switch holds everything since). Its undo — run
  right after the switch's undo, when the cloud copy no longer gets traffic and the original is
  still frozen — finishes the turn if it was cut short, waits until the original has every write of
  the cloud copy, drops the subscription, slot and publication, and moves the original's sequences on.
- ``replication-back``, in a rollback, after the spec's steps that freeze the cloud copy and before
  the data verification and the traffic back: the same as the turn-around's undo
  (:func:`tasks.replication.settle_on_original`); the cloud copy's data stays as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from cutover.errors import ConfigurationError
from cutover.secrets import resolve
from cutover.spec import DataReplication, DataVerifyStep, Spec, Step
from tasks import replication

__all__ = [
    "ReplicationAction",
    "ReplicationStep",
    "act",
    "back_step",
    "replication_step",
    "undo",
    "with_replication",
]


class ReplicationAction(StrEnum):
    """What a replication step does."""

    FORWARD = "forward"
    CATCH_UP = "catch-up"
    TURN = "turn-around"
    BACK = "back"


class ReplicationStep(BaseModel):
    """A step the tool adds for ``data.replication`` (never written in a spec)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["replication"] = "replication"
    id: str
    name: str
    action: ReplicationAction
    timeout: timedelta


_STEPS: dict[ReplicationAction, tuple[str, timedelta]] = {
    ReplicationAction.FORWARD: ("the cloud copy subscribes to the original and copies every table", timedelta(hours=2)),
    ReplicationAction.CATCH_UP: ("final sync: the cloud copy has every write of the original", timedelta(minutes=2)),
    ReplicationAction.TURN: ("the original subscribes to the cloud copy", timedelta(minutes=2)),
    ReplicationAction.BACK: (
        "the original has every write of the cloud copy; its subscription dropped",
        timedelta(minutes=2),
    ),
}


def replication_step(action: ReplicationAction) -> ReplicationStep:
    """The step doing ``action``, with its id (``replication-<action>``), name and timeout."""
    name, timeout = _STEPS[action]
    return ReplicationStep(id=f"replication-{action.value}", name=name, action=action, timeout=timeout)


def with_replication(spec: Spec, steps: Sequence[Step], switch: str | None) -> list[Step | ReplicationStep]:
    """The cutover's steps with the replication steps where they belong; ``steps`` unchanged without ``data:``."""
    if spec.data is None:
        return list(steps)
    planned: list[Step | ReplicationStep] = [replication_step(ReplicationAction.FORWARD)]
    needs_data = [i for i, s in enumerate(steps) if isinstance(s, DataVerifyStep) or s.id == switch]
    catch_up = needs_data[0] if needs_data else len(steps)
    for index, step in enumerate(steps):
        if index == catch_up:
            planned.append(replication_step(ReplicationAction.CATCH_UP))
        planned.append(step)
        if step.id == switch:
            planned.append(replication_step(ReplicationAction.TURN))
    if catch_up == len(steps):
        planned += [replication_step(ReplicationAction.CATCH_UP), replication_step(ReplicationAction.TURN)]
    return planned


def back_step(spec: Spec) -> ReplicationStep | None:
    """The rollback's replication step, or None when the spec replicates nothing."""
    return replication_step(ReplicationAction.BACK) if spec.data is not None else None


# ------------------------------------------------------------------------------- acting
class _Urls:
    def __init__(self, spec: Spec) -> None:
        if spec.data is None:
            raise ConfigurationError(f"system {spec.system.id} declares no data.replication; no replication step runs")
        self.data: DataReplication = spec.data
        self.system_id = spec.system.id
        self.original = resolve(spec, spec.data.original)
        self.cloud = resolve(spec, spec.data.cloud)


def act(spec: Spec, step: ReplicationStep) -> dict[str, Any]:
    """Do ``step``; returns the JSON-ready detail recorded in the ledger (no URL, no password)."""
    urls, timeout_s = _Urls(spec), step.timeout.total_seconds()
    tables = urls.data.tables
    if step.action is ReplicationAction.FORWARD:
        replication.start_forward(urls.system_id, urls.original, urls.cloud, tables)
        copied = replication.wait_caught_up(urls.system_id, urls.original, urls.cloud, timeout_s=timeout_s)
        return {"subscription": copied.subscription, "waited_s": copied.waited_s}
    if step.action is ReplicationAction.CATCH_UP:
        caught = replication.wait_caught_up(urls.system_id, urls.original, urls.cloud, timeout_s=timeout_s)
        sequences = replication.prepare_switch(urls.system_id, urls.cloud, tables)
        return {
            "subscription": caught.subscription,
            "lag_bytes": caught.lag_bytes,
            "waited_s": caught.waited_s,
            "sequences": sequences,
        }
    if step.action is ReplicationAction.TURN:
        turned = replication.turn_around(urls.system_id, urls.original, urls.cloud, tables)
        return {"subscription": replication.names_for(urls.system_id).reverse, "sequences": turned.sequences}
    return _settle(urls, timeout_s)


def undo(spec: Spec, step: ReplicationStep) -> dict[str, Any]:
    """Undo ``step`` in a compensated cutover (see the module docstring); returns the detail recorded."""
    if step.action is ReplicationAction.FORWARD:
        return {
            "kept": "nothing to undo: where the forward subscription still runs, it keeps the cloud copy "
            "following the original for the next attempt"
        }
    urls = _Urls(spec)
    if step.action is ReplicationAction.CATCH_UP:
        return {"dropped": replication.unmark_switch(urls.system_id, urls.cloud)}
    if step.action is ReplicationAction.TURN:
        replication.turn_around(urls.system_id, urls.original, urls.cloud, urls.data.tables)
    return _settle(urls, step.timeout.total_seconds())


def _settle(urls: _Urls, timeout_s: float) -> dict[str, Any]:
    settled = replication.settle_on_original(
        urls.system_id, urls.original, urls.cloud, urls.data.tables, timeout_s=timeout_s
    )
    caught = settled.catch_up
    return {
        "caught_up": caught is not None,
        "lag_bytes": caught.lag_bytes if caught else 0,
        "waited_s": caught.waited_s if caught else 0.0,
        "sequences": settled.sequences,
    }
