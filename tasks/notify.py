"""Telling approvers that a form waits for them: the event ``cutover.signoff.waiting``.

Public surface::

    WaitingForm                          which form waits, for whom, until when, where it is
    announce_waiting(WaitingForm) -> None
    beijing_text(datetime) -> str        ``2026-12-03 18:00 北京时间``
    WAITING_EVENT, BEIJING

:func:`announce_waiting` only emits a Prefect event (``prefect.events.emit_event``) whose resource
is ``cutover.system.<system_id>`` and whose payload carries every field of the form, the deadline
both as ISO 8601 text and as Beijing time. What turns the event into a message for a messaging robot
(WeCom 企业微信, DingTalk 钉钉, ...) is a Prefect Automation with a ``SendNotification`` action,
configured once by ``cutover setup`` (:mod:`flows.notify`). The event carries a fixed id per flow
run and form key, so announcing the same form twice notifies once (Prefect's triggers drop an event
id they have already seen).

Announcing never raises: a sign-off must not fail because a robot, or the event bus, is down. A
failure is logged as a warning (the run logger inside a run, else the ``cutover`` logger). Where no
Prefect API is configured (``PREFECT_API_URL`` unset) nothing is emitted, since the event would only
reach a throw-away embedded server, and a warning says so.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from prefect.exceptions import PrefectException

__all__ = ["BEIJING", "WAITING_EVENT", "WaitingForm", "announce_waiting", "beijing_text"]

WAITING_EVENT = "cutover.signoff.waiting"
#: China Standard Time: UTC+8 all year (no daylight saving), so a fixed offset is exact.
BEIJING = timezone(timedelta(hours=8), "北京时间")

_KIND_LABELS = {
    "trial_run": "试运行报告签署 trial-run report sign-off",
    "decommission": "下线签署 decommission sign-off",
    "withdrawal": "撤回窗口 withdrawal window",
}


@dataclass(frozen=True)
class WaitingForm:
    """A form that has started waiting for approvers.

    ``parties`` are human labels of the awaited parties (Chinese is fine, e.g. ``"云服务商 cloud
    service provider"``). ``deadline`` should be timezone-aware; a naive one is taken as UTC (the
    ledger's clock). ``link`` is the form's page in the Prefect UI, ``form_key`` its pause key.
    """

    system_id: str
    system_name: str
    kind: str
    parties: Sequence[str]
    deadline: datetime | None
    link: str
    flow_run_id: str
    form_key: str

    def payload(self) -> dict[str, Any]:
        """The event's payload: every field, plus the texts a notification shows."""
        deadline = _aware(self.deadline) if self.deadline else None
        return {
            "system_id": self.system_id,
            "system_name": self.system_name,
            "kind": self.kind,
            "kind_label": _KIND_LABELS.get(self.kind, self.kind),
            "parties": list(self.parties),
            "parties_text": ", ".join(self.parties) or "-",
            "deadline": deadline.isoformat() if deadline else None,
            "deadline_beijing": beijing_text(deadline) if deadline else None,
            "link": self.link,
            "flow_run_id": self.flow_run_id,
            "form_key": self.form_key,
        }

    def event_id(self) -> uuid.UUID:
        """The same id for the same form of the same run: a repeated announcement notifies once."""
        return uuid.uuid5(uuid.NAMESPACE_URL, f"{WAITING_EVENT}/{self.flow_run_id}/{self.form_key}")


def beijing_text(moment: datetime) -> str:
    """``2026-12-03 18:00 北京时间`` for any aware ``moment`` (a naive one is taken as UTC)."""
    return f"{_aware(moment).astimezone(BEIJING):%Y-%m-%d %H:%M} 北京时间"


def announce_waiting(form: WaitingForm) -> None:
    """Emit ``cutover.signoff.waiting`` for ``form``; never raises (a failure is a warning)."""
    try:
        _emit(form)
    except (
        PrefectException,
        OSError,
        RuntimeError,
        ValueError,
    ) as exc:  # the event bus away or a bad payload: the sign-off goes on
        _logger().warning(
            "approvers were not told that form %s of %s waits (%s: %s); send them the link: %s",
            form.form_key,
            form.system_id,
            type(exc).__name__,
            exc,
            form.link,
        )


def _emit(form: WaitingForm) -> None:
    from prefect.events import emit_event
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        _logger().warning(
            "PREFECT_API_URL is not set: approvers are not told that form %s of %s waits; send them the link: %s",
            form.form_key,
            form.system_id,
            form.link,
        )
        return
    emitted = emit_event(
        event=WAITING_EVENT,
        resource={
            "prefect.resource.id": f"cutover.system.{form.system_id}",
            "prefect.resource.name": form.system_name,
        },
        related=[{"prefect.resource.id": f"prefect.flow-run.{form.flow_run_id}", "prefect.resource.role": "flow-run"}],
        payload=form.payload(),
        id=form.event_id(),
    )
    if emitted is None:
        raise RuntimeError("Prefect did not accept the event (events are off for this client)")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("cutover")
