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
- ``replication-catch-up``, right before the first step that needs the data on the cloud copy,
  i.e. after the spec's freeze: waits until the cloud copy has every write the original
  acknowledged, then marks the switch (the reverse slot on the cloud copy holds every change from
  now on) and moves the cloud copy's sequences past the replicated keys. The final sync is this
  step; no copy runs in the window. Its undo drops the reverse slot and publication (traffic never
  moved; when it had, the turn-around's undo carried the cloud copy's writes back first).

  With ``data.verify: on-snapshots`` (the default) that step is the traffic switch, and the catch-up
  also takes consistent snapshots of both sides (:mod:`tasks._pg_snapshot`; the reverse slot is
  created with the cloud copy's): the spec's ``data_verify`` steps placed before the switch run right
  after it, reading both sides in these snapshots while traffic already flows, so the write-freeze
  window is freeze -> catch-up -> switch, whatever the data's size. A mismatch, or snapshots lost
  (a crash or re-run since the catch-up), fails the step and the saga rolls back: traffic back, then
  the turn-around's undo carries every write the cloud copy acknowledged to the original. With
  ``in-window`` they run where the spec puts them: the catch-up goes before the first of them.
- ``replication-turn-around``, right after the traffic switch and the verification on snapshots:
  the original subscribes to the cloud copy (no copy: the slot made before the switch holds
  everything since). Its undo — run right after the switch's undo, when the cloud copy no longer
  gets traffic and the original is still frozen, also when the cutover fails after the switch but
  before the turn-around ran — finishes the turn if it was not done, waits until the original has
  every write of the cloud copy, drops the subscription, slot and publication, and moves the
  original's sequences on.
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
from cutover.spec import DataReplication, DataVerify, DataVerifyStep, Spec, Step
from tasks import replication

__all__ = [
    "ReplicationAction",
    "ReplicationStep",
    "act",
    "back_step",
    "replication_step",
    "undo",
    "verified_on_snapshots",
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
    take: int = 0  # a catch-up on snapshots: how many times they were taken again (a new definition each time)


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
    """The cutover's steps with the replication steps where they belong; ``steps`` unchanged without ``data:``.

    On snapshots, the ``data_verify`` steps before the switch move to right after it (in their order)."""
    if spec.data is None:
        return list(steps)
    later = verified_on_snapshots(spec, steps, switch)
    kept = [s for s in steps if s.id not in later]
    planned: list[Step | ReplicationStep] = [replication_step(ReplicationAction.FORWARD)]
    needs_data = [i for i, s in enumerate(kept) if isinstance(s, DataVerifyStep) or s.id == switch]
    catch_up = needs_data[0] if needs_data else len(kept)
    for index, step in enumerate(kept):
        if index == catch_up:
            planned.append(replication_step(ReplicationAction.CATCH_UP))
        planned.append(step)
        if step.id == switch:
            planned += [s for s in steps if s.id in later]
            planned.append(replication_step(ReplicationAction.TURN))
    if catch_up == len(kept):
        planned += [replication_step(ReplicationAction.CATCH_UP), replication_step(ReplicationAction.TURN)]
    return planned


def on_snapshots(spec: Spec) -> bool:
    """Whether the spec replicates its data and verifies it on snapshots after the switch."""
    return spec.data is not None and spec.data.verify is DataVerify.ON_SNAPSHOTS


def verified_on_snapshots(spec: Spec, steps: Sequence[Step] | None = None, switch: str | None = None) -> set[str]:
    """The ids of the cutover's ``data_verify`` steps that run after the switch on the snapshots (those the
    spec puts before the switch, with ``data.verify: on-snapshots``); empty otherwise."""
    if not on_snapshots(spec) or spec.cutover is None:
        return set()
    steps = spec.cutover.steps if steps is None else steps
    switch = spec.cutover.traffic_switch() if switch is None else switch
    ids = [s.id for s in steps]
    if switch not in ids:
        return set()
    return {s.id for s in steps[: ids.index(switch)] if isinstance(s, DataVerifyStep)}


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


def act(spec: Spec, step: ReplicationStep, run_id: str) -> dict[str, Any]:
    """Do ``step`` in run ``run_id``; returns the JSON-ready detail recorded in the ledger (no URL, no password)."""
    urls, timeout_s = _Urls(spec), step.timeout.total_seconds()
    tables = urls.data.tables
    if step.action is ReplicationAction.FORWARD:
        replication.start_forward(urls.system_id, urls.original, urls.cloud, tables)
        copied = replication.wait_caught_up(urls.system_id, urls.original, urls.cloud, timeout_s=timeout_s)
        return {"subscription": copied.subscription, "waited_s": copied.waited_s}
    if step.action is ReplicationAction.CATCH_UP:
        return _catch_up(spec, urls, run_id, timeout_s) | ({"take": step.take} if on_snapshots(spec) else {})
    if step.action is ReplicationAction.TURN:
        replication.release_snapshots(run_id)  # the verification on them is over
        turned = replication.turn_around(urls.system_id, urls.original, urls.cloud, tables)
        return {"subscription": replication.names_for(urls.system_id).reverse, "sequences": turned.sequences}
    return _settle(urls, timeout_s)


def _catch_up(spec: Spec, urls: _Urls, run_id: str, timeout_s: float) -> dict[str, Any]:
    caught = replication.wait_caught_up(urls.system_id, urls.original, urls.cloud, timeout_s=timeout_s)
    detail: dict[str, Any] = {
        "subscription": caught.subscription,
        "lag_bytes": caught.lag_bytes,
        "waited_s": caught.waited_s,
    }
    if not on_snapshots(spec):
        return {**detail, "sequences": replication.prepare_switch(urls.system_id, urls.cloud, urls.data.tables)}
    prepared = replication.prepare_switch_on_snapshots(
        urls.system_id, run_id, urls.original, urls.cloud, urls.data.tables
    )
    return {**detail, "sequences": prepared.sequences, "snapshots": prepared.snapshots.as_detail()}


def undo(spec: Spec, step: ReplicationStep, run_id: str) -> dict[str, Any]:
    """Undo ``step`` of run ``run_id`` in a compensated cutover (see the module docstring); returns the detail."""
    if step.action is ReplicationAction.FORWARD:
        return {
            "kept": "nothing to undo: where the forward subscription still runs, it keeps the cloud copy "
            "following the original for the next attempt"
        }
    urls = _Urls(spec)
    replication.release_snapshots(run_id)
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
