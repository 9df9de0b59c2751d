"""``cutover setup``: configure once what the Prefect server needs to tell approvers a form waits.

Registered by :func:`cli.register_commands`. ``--notify-webhook URL`` creates or updates (by name,
idempotently) the Custom Webhook notification block and the automation of :mod:`flows.notify`;
``--no-notify`` removes both. The robot's key (the URL's query string) is never printed. Exit 0 on
success, 2 for a bad command line, 1 for a template file that is not a JSON object, 5 when the
Prefect API does not answer or the URL or template cannot work.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cli._console import ExitCode, console, fail
from flows.notify import DEFAULT_NAME, ensure_notifications, remove_notifications

__all__ = ["setup"]


def setup(
    notify_webhook: Annotated[
        str | None,
        typer.Option(
            "--notify-webhook",
            metavar="URL",
            envvar="CUTOVER_NOTIFY_WEBHOOK",
            show_envvar=True,
            help="The messaging robot's webhook (WeCom 企业微信, DingTalk 钉钉, ...) that approvers are told "
            "through when a form waits for them. Prefer the environment variable: a command line is visible "
            "to other users of the machine.",
        ),
    ] = None,
    template_file: Annotated[
        Path | None,
        typer.Option(
            "--template-file",
            exists=True,
            dir_okay=False,
            help='A JSON object to POST instead of {"msgtype": "text", "text": {"content": "{{body}}"}}; '
            "{{subject}}, {{body}} and {{name}} are filled in.",
        ),
    ] = None,
    no_notify: Annotated[
        bool, typer.Option("--no-notify", help="Remove the notification block and its automation.")
    ] = False,
    name: Annotated[
        str, typer.Option(help="The notification block's name (lowercase, digits, dashes).")
    ] = DEFAULT_NAME,
) -> None:
    """Configure the Prefect server once: tell approvers through a messaging robot when a form waits."""
    if no_notify == (notify_webhook is not None):
        fail("give either --notify-webhook URL or --no-notify (see `cutover setup --help`)", ExitCode.USAGE)
    if no_notify:
        removal = remove_notifications(name)
        if removal.block_removed or removal.automations_removed:
            block = "notification block" if removal.block_removed else "no notification block (already gone)"
            console.print(f"removed {block} {name!r} and {removal.automations_removed} automation(s)", markup=False)
        else:
            console.print(f"nothing to remove: no notification block {name!r} and no automation", markup=False)
        return
    assert notify_webhook is not None
    setup = ensure_notifications(notify_webhook, name=name, json_template=_template(template_file))
    for line in setup.lines():
        console.print(line, soft_wrap=True, markup=False)
    console.print("approvers are told when a sign-off form, a decommission sign-off or a withdrawal window waits")


def _template(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        template = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"{path}: cannot read a JSON template ({exc})", ExitCode.INVALID)
    if not isinstance(template, dict):
        fail(f'{path}: the template must be a JSON object, e.g. {{"msgtype": "text", ...}}', ExitCode.INVALID)
    return template
