"""``cutover setup``: the one production step on a Prefect server, idempotent.

Registered by :func:`cli.register_commands`. Plain ``cutover setup`` creates what the flows need on
the server ``PREFECT_API_URL`` names, or finds it there as it should be: the work pool (type
``cutover``), every deployment of :data:`flows.deployments.DEPLOYMENTS` on it, and the recovery
automations of :mod:`flows.recovery`. It prints one line per thing: ``created``, ``already there``
or ``updated``; running it again changes nothing. ``--notify-webhook URL`` also creates or updates
(by name) the Custom Webhook notification block and the automation of :mod:`flows.notify`;
``--no-notify`` removes both. The robot's key (the URL's query string) is never printed.

Exit 0 on success, 2 for a bad command line, 1 for a template file that is not a JSON object, 5 when
the Prefect API does not answer or the URL or template cannot work.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from cli._console import ExitCode, console, fail, require_prefect_api
from cutover.settings import DEFAULT_NOTIFY_NAME, DEFAULT_POOL, get_settings

__all__ = ["setup"]


def setup(
    notify_webhook: Annotated[
        str | None,
        typer.Option(
            "--notify-webhook",
            metavar="URL",
            envvar="CUTOVER_NOTIFY_WEBHOOK",
            show_envvar=True,
            help="Also tell approvers through this messaging robot's webhook (WeCom 企业微信, DingTalk 钉钉, ...) "
            "when a form waits for them. Prefer the environment variable: a command line is visible to other "
            "users of the machine.",
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
    ] = DEFAULT_NOTIFY_NAME,
    pool: Annotated[str, typer.Option(help="The work pool the deployments go to.")] = DEFAULT_POOL,
) -> None:
    """Create (or find as they should be) the work pool, the deployments and the recovery automations."""
    if no_notify and notify_webhook is not None:
        fail("give --notify-webhook URL or --no-notify, not both (see `cutover setup --help`)", ExitCode.USAGE)
    template = _template(template_file)
    require_prefect_api("set up")
    _deployments_and_recovery(pool)
    if no_notify:
        _remove_notifications(name)
    elif notify_webhook is not None:
        _notifications(notify_webhook, name, template)
    console.print(
        f"next: start a worker on each machine that runs cutovers: prefect worker start --pool {pool} --type cutover",
        markup=False,
        soft_wrap=True,
    )


def _deployments_and_recovery(pool: str) -> None:
    from flows.deployments import DEPLOYMENTS, ensure_work_pool, register_deployment
    from flows.recovery import ensure_recovery

    _show(ensure_work_pool(pool).line())
    for deployment in DEPLOYMENTS:
        if deployment != "recover":  # ensure_recovery registers it with the automations that start it
            _show(register_deployment(deployment, work_pool=pool).line())
    silence = timedelta(seconds=get_settings().recovery_silence_s)  # as the workers have it: no tug of war
    for applied in ensure_recovery(pool, silence=silence):
        _show(applied.line())


def _notifications(webhook: str, name: str, template: dict[str, Any] | None) -> None:
    from flows.notify import ensure_notifications

    for line in ensure_notifications(webhook, name=name, json_template=template).lines():
        _show(line)
    console.print("approvers are told when a sign-off form, a decommission sign-off or a withdrawal window waits")


def _remove_notifications(name: str) -> None:
    from flows.notify import remove_notifications

    removal = remove_notifications(name)
    if removal.block_removed or removal.automations_removed:
        block = "notification block" if removal.block_removed else "no notification block (already gone)"
        _show(f"removed {block} {name!r} and {removal.automations_removed} automation(s)")
    else:
        _show(f"nothing to remove: no notification block {name!r} and no automation")


def _show(line: str) -> None:
    console.print(line, markup=False, soft_wrap=True)


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
