"""CLI commands for approvers on their own machine: ``cutover sign`` and ``cutover withdraw``.

Registered by :mod:`cli` (``app.command("sign")(sign)``, ``app.command()(withdraw)``).

``sign`` is the terminal twin of the form in the Prefect UI: it finds the system's waiting sign-off
form, shows the report summary it carries (rendered, not escaped), prompts for the decision and
comment, shows the exact statement, asks for confirmation, signs it with the approver's SM2
private key **on this machine**, and resumes the run through the Prefect API. The flow then checks
the signature exactly as it checks one pasted into the UI, and ``sign`` reports the verdict.
``withdraw`` does the same with the decision ``withdraw`` while the run still waits (for the other
party, or for the cutover window); once cutover has started it is refused with the reason.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer

from cli._console import ExitCode, console, fail
from cutover import signoff_store as store
from cutover import sm2
from cutover.errors import UnknownSystem
from cutover.ledger import AuditEvent, AuditOutcome, Ledger, LifecycleState
from cutover.runtime import open_ledger
from cutover.settings import get_settings

__all__ = ["sign", "withdraw"]

_WAITING = frozenset({LifecycleState.REPORT_READY, LifecycleState.SIGNED})

SystemArg = Annotated[str, typer.Argument(help="The system whose report to sign, e.g. hrss-social-insurance.")]
AsOption = Annotated[str, typer.Option("--as", help="Your approver id, e.g. wang.li.")]
KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key", help="Your SM2 private key file (from `cutover approver keygen`); never leaves this machine."
    ),
]
PassphraseOption = Annotated[
    Path | None, typer.Option("--passphrase-file", help="A file holding the key's passphrase (else asked if needed).")
]
WaitOption = Annotated[float, typer.Option(help="Seconds to wait for the flow's verdict on the signature.")]


def sign(
    system: SystemArg,
    as_: AsOption,
    key: KeyOption = None,
    passphrase_file: PassphraseOption = None,
    wait: WaitOption = 45.0,
) -> None:
    """Sign the system's waiting report (joint sign-off 共同认可) from the terminal."""
    _answer_form(system, as_, key, passphrase_file, wait, withdrawing=False)


def withdraw(
    system: SystemArg,
    as_: AsOption,
    key: KeyOption = None,
    passphrase_file: PassphraseOption = None,
    wait: WaitOption = 45.0,
) -> None:
    """Withdraw your signature (撤回签署) before cutover starts; the run then waits for your party again."""
    _answer_form(system, as_, key, passphrase_file, wait, withdrawing=True)


def _answer_form(
    system: str,
    approver_id: str,
    key_file: Path | None,
    passphrase_file: Path | None,
    wait: float,
    *,
    withdrawing: bool,
) -> None:
    ledger = open_ledger()
    try:
        request = _waiting_request(ledger, system, withdrawing=withdrawing)
        flow_run_id, n = str(request.detail["flow_run_id"]), int(request.detail["n"])
        description = _require_waiting(
            flow_run_id, str(request.detail["key"]), withdrawing=withdrawing, ledger=ledger, system=system
        )
        console.print(f"[bold]{system}[/]: report digest [bold]{request.detail['report_digest']}[/]")
        from rich.markdown import Markdown  # a quarter second to import: only where a summary is shown

        console.print(Markdown(_summary_part(description)))
        answer = _prompted_answer(system, approver_id, request, key_file, passphrase_file, withdrawing=withdrawing)
        _submit(flow_run_id, answer)
        _report_verdict(ledger, system, flow_run_id, n, wait)
    finally:
        ledger.dispose()


def _waiting_request(ledger: Ledger, system: str, *, withdrawing: bool) -> AuditEvent:
    row = ledger.get_system(system)
    if row is None:
        raise UnknownSystem(
            f"system {system!r} is not in the ledger at {ledger.safe_url}; check the id "
            "(`cutover status` lists the systems) and CUTOVER_DATABASE_URL"
        )
    if withdrawing and row.state not in _WAITING:
        fail(
            f"withdrawal refused: {system} is {row.state.value} — cutover has started (or the sign-off ended), so a "
            "signature can no longer be withdrawn; to go back to the original system use `cutover rollback "
            f"{system}`",
            ExitCode.REFUSED,
        )
    request = store.latest_request(ledger, system)
    if request is None:
        fail(f"no sign-off form was ever shown for system {system!r}; start its cutover run first", ExitCode.REFUSED)
    return request


def _require_waiting(flow_run_id: str, key: str, *, withdrawing: bool, ledger: Ledger, system: str) -> str:
    """The form's description, if the run is suspended on form ``key``; else exit saying why."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
        state = run.state
        if state is None or not state.is_paused() or state.state_details.pause_key != key:
            where = f"{state.type.value} ({state.name})" if state else "no state"
            started = withdrawing and _cutover_started(ledger, system)
            reason = (
                "cutover has started, so a signature can no longer be withdrawn; use `cutover rollback` to go back"
                if started
                else "if it was just resumed, wait a few seconds for the next form; check `cutover status`"
            )
            fail(
                f"flow run {flow_run_id} is not waiting for sign-off form {key}: it is {where}; {reason}",
                ExitCode.REFUSED,
            )
        description: Any = client.read_flow_run_input(
            UUID(flow_run_id), f"{(state.name or '').lower()}-{key}-description"
        )
    return str(description)


def _cutover_started(ledger: Ledger, system: str) -> bool:
    row = ledger.get_system(system)
    return row is not None and row.state not in _WAITING


def _summary_part(description: str) -> str:
    """The form's description without its how-to-sign part (this command does the signing)."""
    head, _, _ = description.partition("### How to sign")
    return head.rstrip() or description


def _prompted_answer(
    system: str,
    approver_id: str,
    request: AuditEvent,
    key_file: Path | None,
    passphrase_file: Path | None,
    *,
    withdrawing: bool,
) -> dict[str, str]:
    proof = get_settings().signoff_proof
    decision = "withdraw" if withdrawing else _ask_decision()
    comment = str(typer.prompt("Comment 意见", default="", show_default=False))
    if proof == "totp":
        code = typer.prompt("Code 动态验证码 (6 digits from your authenticator app)", hide_input=True)
        return {"approver_id": approver_id, "decision": decision, "comment": comment, "code": code}
    if key_file is None:
        fail(
            f"sign with your SM2 private key: `cutover {'withdraw' if withdrawing else 'sign'} {system} --as "
            f"{approver_id} --key <your key file>` (made by `cutover approver keygen`)",
            ExitCode.USAGE,
        )
    from tasks.signoff import fields_shown, sign_answer  # Prefect tasks: imported only when signing

    key = sm2.load_private_key(key_file, _passphrase(key_file, passphrase_file))
    fields = fields_shown(system, request.detail)
    statement, answer = sign_answer(fields, approver_id, decision, comment, key, datetime.now(UTC))
    console.print("The statement you sign 签署声明:")
    console.print(statement.text(), markup=False, highlight=False)
    if not typer.confirm(f"Sign ({decision}) and submit? 确认签署并提交", default=False):
        fail("nothing was signed or submitted", ExitCode.REFUSED)
    return answer


def _ask_decision() -> str:
    decision = ""
    while decision not in ("approve", "reject"):
        decision = str(typer.prompt("Decision 决定 (approve 同意 / reject 不同意)")).strip().lower()
    return decision


def _passphrase(key_file: Path, passphrase_file: Path | None) -> str | None:
    if passphrase_file is not None:
        return passphrase_file.read_text(encoding="utf-8").rstrip("\n")
    if b"ENCRYPTED" in key_file.read_bytes():
        return str(typer.prompt(f"Passphrase of {key_file}", hide_input=True))
    return None


def _submit(flow_run_id: str, run_input: dict[str, str]) -> None:
    from prefect.exceptions import FlowPauseTimeout, NotPausedError
    from prefect.flow_runs import resume_flow_run

    try:
        resume_flow_run(UUID(flow_run_id), run_input=run_input)
    except FlowPauseTimeout:
        fail(f"flow run {flow_run_id}: the sign-off deadline passed; a new report must be issued", ExitCode.REFUSED)
    except (NotPausedError, RuntimeError) as error:
        fail(f"flow run {flow_run_id} refused the submission: {error}; run the command again", ExitCode.REFUSED)
    console.print("submitted; the flow is checking the signature ...")


def _report_verdict(ledger: Ledger, system: str, flow_run_id: str, n: int, wait: float) -> None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        answer = store.answer_for(ledger, system, flow_run_id, n)
        if answer is not None:
            if answer.outcome == AuditOutcome.REFUSED:
                fail(f"the signature was refused: {answer.detail.get('reason')}", ExitCode.REFUSED)
            verb = "withdrawn" if answer.action == store.WITHDRAWN else "signed"
            console.print(f"[green]{verb}[/]: {answer.detail.get('decision')} for the {answer.detail.get('party')}")
            return
        time.sleep(0.5)
    console.print(
        f"the flow has not checked the signature within {wait:.0f} s (is its worker running?); "
        f"`cutover status {system}` shows whether it was recorded"
    )
