"""CLI commands for approvers: ``cutover approver enroll`` and ``cutover sign``.

Registered by :mod:`cli.app`::

    app.add_typer(approver_app, name="approver")
    app.command("sign")(sign)

``sign`` is the terminal twin of the form in the Prefect UI: it finds the system's suspended
sign-off (from the ledger's audit trail), shows what is to be signed, prompts for the decision,
a comment and the TOTP code (hidden), and resumes the run through the Prefect API. The flow then
checks the submission exactly as it checks one from the UI, and ``sign`` reports the verdict.
"""

from __future__ import annotations

import time
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.markdown import Markdown

from cli._console import ExitCode, console, fail
from cutover import signoff_store as store
from cutover.approvers import enroll
from cutover.errors import UnknownSystem
from cutover.ledger import AuditEvent, AuditOutcome, Ledger
from cutover.runtime import open_ledger
from cutover.settings import get_settings

__all__ = ["approver_app", "sign"]

approver_app = typer.Typer(
    help="Enroll the approvers who sign reports for their party (TOTP codes from an authenticator app).",
    no_args_is_help=True,
    add_completion=False,
)


@approver_app.command("enroll")
def enroll_command(
    approver_id: Annotated[str, typer.Argument(help="The approver's id as listed in specs, e.g. wang.li.")],
    name: Annotated[str, typer.Option("--name", help="The person's full name, e.g. 王丽.")],
) -> None:
    """Create the approver's TOTP secret and show the QR code to scan (once) with an authenticator app."""
    settings = get_settings()
    ledger = open_ledger(settings)
    try:
        enrollment = enroll(ledger, approver_id, name, settings=settings)
    finally:
        ledger.dispose()
    if enrollment.key_file_created:
        console.print(
            f"[yellow]note:[/] generated the TOTP encryption key {enrollment.key_file_created} (mode 0600); "
            "back it up, or set CUTOVER_TOTP_KEY to manage the key yourself"
        )
    console.print(f"{enrollment}. Scan this QR code with an authenticator app (it is shown only now):")
    typer.echo(enrollment.qr)
    typer.echo(f"or enter this URI: {enrollment.uri}")
    console.print("Re-enrolling replaces the secret: codes from the old entry stop working.")


def sign(
    system: Annotated[str, typer.Argument(help="The system whose report to sign, e.g. hrss-social-insurance.")],
    as_: Annotated[str, typer.Option("--as", help="Your approver id, e.g. wang.li.")],
    wait: Annotated[float, typer.Option(help="Seconds to wait for the flow's verdict on the signature.")] = 45.0,
) -> None:
    """Sign the system's waiting report (joint sign-off) from the terminal, as in the Prefect UI form."""
    ledger = open_ledger()
    try:
        if ledger.get_system(system) is None:
            raise UnknownSystem(
                f"system {system!r} is not in the ledger at {ledger.safe_url}; check the id "
                "(`cutover status` lists the systems) and CUTOVER_DATABASE_URL"
            )
        request = store.latest_request(ledger, system)
        if request is None:
            fail(
                f"no sign-off form was ever shown for system {system!r}; start its cutover run first", ExitCode.REFUSED
            )
        flow_run_id, n = str(request.detail["flow_run_id"]), int(request.detail["n"])
        _show_request(system, request, _require_waiting(flow_run_id, str(request.detail["key"])))
        _submit(flow_run_id, _prompt(as_))
        _report_verdict(ledger, system, flow_run_id, n, wait)
    finally:
        ledger.dispose()


def _require_waiting(flow_run_id: str, key: str) -> str:
    """The form's description, if the run is suspended on form ``key``; else exit."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
        state = run.state
        if state is None or not state.is_paused() or state.state_details.pause_key != key:
            where = f"{state.type.value} ({state.name})" if state else "no state"
            fail(
                f"flow run {flow_run_id} is not waiting for sign-off form {key}: it is {where}. "
                "If it was just resumed, wait a few seconds for the next form; check `cutover status`",
                ExitCode.REFUSED,
            )
        description: Any = client.read_flow_run_input(
            UUID(flow_run_id), f"{(state.name or '').lower()}-{key}-description"
        )
    return str(description)


def _show_request(system: str, request: AuditEvent, description: str) -> None:
    console.print(f"[bold]{system}[/]: report digest [bold]{request.detail['report_digest']}[/]")
    console.print(Markdown(description))


def _prompt(approver_id: str) -> dict[str, str]:
    decision = ""
    while decision not in ("approve", "reject"):
        decision = str(typer.prompt("Decision 决定 (approve 同意 / reject 不同意)")).strip().lower()
    comment = typer.prompt("Comment 意见", default="", show_default=False)
    code = typer.prompt("Code 动态验证码 (6 digits from your authenticator app)", hide_input=True)
    return {"approver_id": approver_id, "decision": decision, "comment": comment, "code": code}


def _submit(flow_run_id: str, run_input: dict[str, str]) -> None:
    from prefect.exceptions import FlowPauseTimeout, NotPausedError
    from prefect.flow_runs import resume_flow_run

    try:
        resume_flow_run(UUID(flow_run_id), run_input=run_input)
    except FlowPauseTimeout:
        fail(f"flow run {flow_run_id}: the sign-off deadline passed; a new report must be issued", ExitCode.REFUSED)
    except (NotPausedError, RuntimeError) as error:
        fail(f"flow run {flow_run_id} refused the submission: {error}; run `cutover sign` again", ExitCode.REFUSED)
    console.print("submitted; the flow is checking the signature ...")


def _report_verdict(ledger: Ledger, system: str, flow_run_id: str, n: int, wait: float) -> None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        answer = store.answer_for(ledger, system, flow_run_id, n)
        if answer is not None:
            if answer.outcome == AuditOutcome.REFUSED:
                fail(f"the signature was refused: {answer.detail.get('reason')}", ExitCode.REFUSED)
            console.print(f"[green]signed[/]: {answer.detail.get('decision')} for the {answer.detail.get('party')}")
            return
        time.sleep(0.5)
    console.print(
        f"the flow has not checked the signature within {wait:.0f} s (is its worker or `serve` process running?); "
        f"`cutover sign {system} --as ...` shows the next form once it has"
    )
