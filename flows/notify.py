"""Approvers are told when a form waits for them: a webhook block and the automation that uses it.

Public surface::

    ensure_notifications(webhook_url, *, name="cutover-approvers", json_template=None) -> NotificationSetup
    remove_notifications(name="cutover-approvers") -> NotificationRemoval
    mask_url(url) -> str                 a webhook URL fit to print (its key masked)
    DEFAULT_JSON_TEMPLATE, SUBJECT_TEMPLATE, BODY_TEMPLATE

:func:`tasks.notify.announce_waiting` emits ``cutover.signoff.waiting`` when a sign-off form, a
decommission sign-off or a withdrawal window starts waiting. :func:`ensure_notifications` makes,
once and idempotently by ``name``, what turns that event into a message:

- a ``CustomWebhookNotificationBlock`` document ``name`` that POSTs JSON to the robot. The block
  substitutes ``{{subject}}``, ``{{body}}`` and ``{{name}}`` (and its own secret values) into the
  JSON; the default body suits WeCom (企业微信) and DingTalk (钉钉) text robots. The query string of
  the URL (where both keep the robot's key) is stored among the block's secret values, so the
  Prefect UI and API show it masked;
- an Automation ``govcloud-cutover: notify approvers when a sign-off form waits [name]``: an
  ``EventTrigger`` on ``cutover.signoff.waiting`` for any ``cutover.system.*`` resource (Reactive,
  threshold 1) whose ``SendNotification`` action renders :data:`SUBJECT_TEMPLATE` and
  :data:`BODY_TEMPLATE` (Jinja, over the event's payload) and sends them through the block.

The Prefect server sends the message (its actions service), so the robot must be reachable from
the server, not from the workers. Running it again with the same arguments changes nothing; with
another URL or template it updates the block and automation in place (same ids).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, urlsplit, urlunsplit
from uuid import UUID

from prefect import get_client
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from prefect.exceptions import ObjectNotFound
from prefect.utilities.templating import find_placeholders

from cutover.errors import ConfigurationError
from cutover.secrets import MASK, REDACTOR
from cutover.settings import DEFAULT_NOTIFY_NAME
from flows._automation_shape import automation_shape
from tasks.notify import WAITING_EVENT

__all__ = [
    "BODY_TEMPLATE",
    "DEFAULT_JSON_TEMPLATE",
    "DEFAULT_NAME",
    "SUBJECT_TEMPLATE",
    "NotificationRemoval",
    "NotificationSetup",
    "automation_name",
    "ensure_notifications",
    "mask_url",
    "remove_notifications",
]

DEFAULT_NAME = DEFAULT_NOTIFY_NAME
BLOCK_TYPE_SLUG = "custom-webhook"
#: The JSON a WeCom or DingTalk text robot expects; the block fills in ``{{body}}``.
DEFAULT_JSON_TEMPLATE: Mapping[str, Any] = {"msgtype": "text", "text": {"content": "{{body}}"}}

_P = "event.payload"
SUBJECT_TEMPLATE = f"等待签署 waiting for signature: {{{{ {_P}.system_name }}}} ({{{{ {_P}.system_id }}}})"
BODY_TEMPLATE = (
    f"{SUBJECT_TEMPLATE}"
    f" — {{{{ {_P}.kind_label }}}}"
    f" — 等待 awaiting: {{{{ {_P}.parties_text }}}}"
    f" — deadline 截止 {{{{ {_P}.deadline_beijing or '无 none' }}}}"
    f" — open 打开: {{{{ {_P}.link }}}}"
)

Status = Literal["created", "updated", "already there"]


@dataclass(frozen=True)
class NotificationSetup:
    """What :func:`ensure_notifications` left on the Prefect server (the webhook masked)."""

    name: str
    webhook: str
    block_document_id: UUID
    block: Status
    automation_name: str
    automation_id: UUID
    automation: Status

    def lines(self) -> list[str]:
        """One line each for the block and the automation, fit to print."""
        return [
            f"notification block {self.name!r} (Custom Webhook, POST to {self.webhook}): {self.block}",
            f"automation {self.automation_name!r} (on {WAITING_EVENT}): {self.automation}",
        ]


@dataclass(frozen=True)
class NotificationRemoval:
    """What :func:`remove_notifications` deleted."""

    name: str
    block_removed: bool
    automations_removed: int


def automation_name(name: str = DEFAULT_NAME) -> str:
    """The automation's name for the block ``name``."""
    return f"govcloud-cutover: notify approvers when a sign-off form waits [{name}]"


def ensure_notifications(
    webhook_url: str, *, name: str = DEFAULT_NAME, json_template: Mapping[str, Any] | None = None
) -> NotificationSetup:
    """Create or update the webhook block ``name`` and the automation that notifies through it."""
    block = _block(webhook_url, name, json_template if json_template is not None else DEFAULT_JSON_TEMPLATE)
    block_id, block_status = _ensure_block(block, name)
    automation_id, automation_status = _ensure_automation(_automation(name, block_id))
    return NotificationSetup(
        name=name,
        webhook=mask_url(webhook_url),
        block_document_id=block_id,
        block=block_status,
        automation_name=automation_name(name),
        automation_id=automation_id,
        automation=automation_status,
    )


def remove_notifications(name: str = DEFAULT_NAME) -> NotificationRemoval:
    """Delete the automation and the block of ``name`` (what is already gone is not an error)."""
    with get_client(sync_client=True) as client:
        automations = client.read_automations_by_name(automation_name(name))
        for automation in automations:
            client.delete_automation(automation.id)
        try:
            document = client.read_block_document_by_name(name, BLOCK_TYPE_SLUG, include_secrets=False)
        except ObjectNotFound:
            return NotificationRemoval(name, block_removed=False, automations_removed=len(automations))
        client.delete_block_document(document.id)
    return NotificationRemoval(name, block_removed=True, automations_removed=len(automations))


def mask_url(url: str) -> str:
    """``url`` with its query values, password and token-like path segments replaced by ``***``."""
    parts = urlsplit(url)
    query = "&".join(f"{key}={MASK}" for key, _ in parse_qsl(parts.query, keep_blank_values=True))
    host = parts.hostname or ""
    netloc = f"{parts.username}:{MASK}@{host}" if parts.password else host
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    path = "/".join(MASK if _looks_like_token(segment) else segment for segment in parts.path.split("/"))
    return urlunsplit((parts.scheme, netloc, path, query, ""))


# ------------------------------------------------------------------------------------ block
def _block(webhook_url: str, name: str, json_template: Mapping[str, Any]) -> CustomWebhookNotificationBlock:
    parts = urlsplit(webhook_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"the notification webhook {mask_url(webhook_url)!r} is not an http(s) URL; pass the robot's "
            "webhook address, e.g. https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=..."
        )
    _check_template(json_template)
    query = parse_qsl(parts.query, keep_blank_values=True)
    secrets = {f"query_{index}": value for index, (_, value) in enumerate(query)}
    for value in secrets.values():
        if len(value) >= 4:
            REDACTOR.register(value)  # the robot's key never reaches a log line
    try:
        return CustomWebhookNotificationBlock(
            name=name,
            url=urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
            method="POST",
            params={key: f"{{{{query_{index}}}}}" for index, (key, _) in enumerate(query)} or None,
            json_data=dict(json_template),
            secrets=secrets,
        )
    except (KeyError, ValueError) as exc:
        raise ConfigurationError(f"the notification template cannot be used: {exc}") from exc


def _check_template(json_template: Mapping[str, Any]) -> None:
    names = {placeholder.name for placeholder in find_placeholders(dict(json_template))}
    unknown = names - {"subject", "body", "name"}
    if unknown:
        raise ConfigurationError(
            f"the notification template uses {', '.join(sorted(f'{{{{{n}}}}}' for n in unknown))}; the webhook "
            "block fills in only {{subject}}, {{body}} and {{name}}"
        )
    if not names & {"subject", "body"}:
        raise ConfigurationError(
            "the notification template names neither {{body}} nor {{subject}}: the robot would receive no "
            'message; e.g. {"msgtype": "text", "text": {"content": "{{body}}"}}'
        )


def _ensure_block(block: CustomWebhookNotificationBlock, name: str) -> tuple[UUID, Status]:
    try:
        existing = cast("CustomWebhookNotificationBlock | None", CustomWebhookNotificationBlock.load(name))
    except ValueError:  # Prefect's "Unable to find block document named ..."
        existing = None
    if existing is not None and _content(existing) == _content(block):
        assert existing._block_document_id is not None
        return existing._block_document_id, "already there"
    try:
        block_id = cast("UUID", block.save(name, overwrite=True))
    except ValueError as exc:
        raise ConfigurationError(f"cannot save notification block {name!r}: {exc}") from exc
    return block_id, "created" if existing is None else "updated"


def _content(block: CustomWebhookNotificationBlock) -> dict[str, Any]:
    fields = block.model_dump(include={"name", "url", "method", "params", "json_data", "headers", "cookies"})
    return {**fields, "secrets": block.secrets.get_secret_value()}


def _looks_like_token(segment: str) -> bool:
    return len(segment) >= 16 and any(c.isdigit() for c in segment)


# ------------------------------------------------------------------------------- automation
def _automation(name: str, block_id: UUID) -> AutomationCore:
    return AutomationCore(
        name=automation_name(name),
        description="A sign-off form, decommission sign-off or withdrawal window started waiting: tell the approvers.",
        trigger=EventTrigger(
            expect={WAITING_EVENT},
            match=ResourceSpecification({"prefect.resource.id": "cutover.system.*"}),
            for_each={"prefect.resource.id"},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[SendNotification(block_document_id=block_id, subject=SUBJECT_TEMPLATE, body=BODY_TEMPLATE)],
    )


def _ensure_automation(wanted: AutomationCore) -> tuple[UUID, Status]:
    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(wanted.name)
        same = next((found for found in existing if automation_shape(found) == automation_shape(wanted)), None)
        keep = same or (existing[0] if existing else None)
        for extra in existing:
            if extra is not keep:
                client.delete_automation(extra.id)
        if keep is None:
            return client.create_automation(wanted), "created"
        if same is None:
            client.update_automation(keep.id, wanted)
            return keep.id, "updated"
        return keep.id, "already there"
