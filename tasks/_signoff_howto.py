"""The "how to sign" part of a sign-off form: the exact statement to sign and the commands that sign it.

For SM2 (the default) the form shows, for each approver who may answer now, the exact statement for
the decision they would most often give (approve with no comment; withdraw while waiting for the
cutover window), signed at the time the form was shown; and the one-line commands that sign it:
ours (``cutover sign``, which also shows the report and asks for the decision) and OpenSSL 3's.
An approver who changes the decision, comment or signed-at fields signs the statement with those
lines changed to match, exactly.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from cutover import sm2
from cutover.ledger import Party
from cutover.spec import Spec
from cutover.statement import Statement
from cutover.window import SHANGHAI, CutoverWindow, describe
from tasks._signoff_forms import Proof, StatementFields

__all__ = ["fields_shown", "how_to_sign", "openssl_command", "sign_answer", "statement_for", "window_notice"]


def statement_for(
    fields: StatementFields, approver_id: str, decision: str, at: datetime, comment: str = ""
) -> Statement:
    """The statement of ``approver_id`` deciding ``decision`` on the form with ``fields``."""
    return Statement(
        system_id=fields.system_id,
        report_kind=fields.report_kind,
        report_digest=fields.report_digest,
        spec_digest=fields.spec_digest,
        decision=decision,
        comment=comment,
        signed_at=at,
        run_id=fields.run_id,
        approver_id=approver_id,
    )


def fields_shown(system_id: str, requested: Mapping[str, Any]) -> StatementFields:
    """The statement's fixed lines of the form a ``signoff.requested`` audit event (its detail) records."""
    return StatementFields(
        system_id,
        str(requested["kind"]),
        str(requested["report_digest"]),
        str(requested["spec_digest"]),
        str(requested["flow_run_id"]),
    )


def sign_answer(
    fields: StatementFields, approver_id: str, decision: str, comment: str, key: Any, at: datetime
) -> tuple[Statement, dict[str, str]]:
    """Sign on the approver's machine: the statement, and the form answer carrying its signature."""
    statement = statement_for(fields, approver_id, decision, at, comment)
    answer = {
        "approver_id": approver_id,
        "decision": decision,
        "comment": comment,
        "signed_at": statement.signed_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "signature": sm2.sign(key, statement.message()),
    }
    return statement, answer


def openssl_command(statement: Statement, key_file: str = "my-sm2.key") -> str:
    """One shell command that prints the base64 SM2 signature of ``statement`` with OpenSSL 3.

    One statement line per shell line (continued with a backslash), so the form stays narrow.
    """
    lines = statement.text().split("\n")
    printf = ["printf " + shlex.quote("\\n".join(["%s"] * len(lines))), *(shlex.quote(x) for x in lines)]
    sign = sm2.OPENSSL_SIGN.format(key=shlex.quote(key_file))
    return " \\\n  ".join(printf) + f" \\\n  | {sign} \\\n  | base64 -w0"


def how_to_sign(
    proof: Proof,
    fields: StatementFields,
    at: datetime,
    *,
    spec: Spec,
    awaited: Sequence[Party],
    withdrawers: Sequence[str] = (),
) -> str:
    """Markdown: how the approvers who may answer now sign (or withdraw)."""
    if proof == "totp":
        return _totp(fields.system_id)
    if withdrawers:
        people = [(a, "withdraw") for a in withdrawers]
    else:
        people = [(a.id, "approve") for p in awaited for a in getattr(spec.parties, p.value).approvers]
    parts = [
        "### How to sign 如何签署 (SM2 signature 国密签名)",
        f"**From a terminal (recommended):** `cutover sign {fields.system_id} --as <your id> --key <your key file>` "
        "shows this report, asks for your decision and comment, signs on your own computer and submits.",
        "**In this form:** sign exactly the statement below (UTF-8, no newline at the end) with your SM2 key, paste "
        "the base64 signature, and fill in the decision, comment and signed-at fields with the values of the "
        "statement's lines. To decide otherwise or add a comment, change those lines, and only those, before signing.",
    ]
    for approver_id, decision in people:
        statement = statement_for(fields, approver_id, decision, at)
        parts += [
            f"#### `{approver_id}` — {decision}",
            "```text\n" + statement.text() + "\n```",
            "With OpenSSL 3 (the `-pkeyopt distid:1234567812345678` is the standard user ID; without it the "
            "signature is refused):",
            "```sh\n" + openssl_command(statement) + "\n```",
        ]
    return "\n\n".join(parts)


def _totp(system_id: str) -> str:
    return "\n".join(
        [
            "### How to sign 如何签署 (TOTP pilot mode 试点模式)",
            "Fill in your approver id, your decision (approve 同意 / reject 不同意), a comment and the 6-digit code "
            "shown now by your authenticator app (issuer *govcloud-cutover*). Each code works once.",
            "",
            "*Pilot mode: whoever holds the worker's key can compute these codes; the production proof is an SM2 "
            "signature (`CUTOVER_SIGNOFF_PROOF=sm2`).*",
            "",
            f"From a terminal instead: `cutover sign {system_id} --as <your id>`.",
        ]
    )


def window_notice(window: CutoverWindow | None, opens: datetime) -> str:
    """The line saying both parties signed and when the cutover window opens."""
    beijing = opens.astimezone(SHANGHAI)
    when = f"{beijing:%Y-%m-%d %H:%M} 北京时间 ({opens:%Y-%m-%d %H:%M} UTC)"
    rule = f" — window 窗口: {describe(window)}" if window is not None else ""
    return (
        f"Both parties have signed 双方已签署. Cutover waits, suspended and holding no worker, until the cutover "
        f"window opens at {when}{rule}. Until then an approver may withdraw their signature 可撤回签署."
    )
