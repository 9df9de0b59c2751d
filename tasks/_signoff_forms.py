"""The sign-off forms (Prefect RunInput), one per proof mode, and the statement an answer claims.

``sm2`` (the default): the approver signs the canonical statement (:mod:`cutover.statement`) with
their SM2 private key on their own machine and pastes the signature; the flow verifies it with the
public key the administrator enrolled. Nothing a worker, the Prefect server or the ledger holds
can make such a signature.

``totp`` (a light mode for pilots, ``CUTOVER_SIGNOFF_PROOF=totp``): a 6-digit code from an
authenticator app. Whoever holds the worker's key (``CUTOVER_TOTP_KEY``) can compute every
approver's code: it proves nothing against an operator.

Every field is required and has no default (see PREFECT_NOTES.md: defaults lose their titles).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from prefect.input import RunInput
from pydantic import Field

from cutover.errors import SignatureInvalid
from cutover.statement import Statement

__all__ = ["AnyAnswer", "SignOffInput", "StatementFields", "TotpSignOffInput", "form_for", "statement_of"]

Proof = Literal["sm2", "totp"]
_DECISION = "approve 同意 / reject 不同意 the report; withdraw 撤回 your earlier signature (before cutover starts)."


class _Answer(RunInput):
    """What every sign-off form asks first: who answers, and their decision."""

    approver_id: str = Field(
        title="Approver id 审批人账号",
        description="Your approver id as listed in the spec, e.g. wang.li.",
        min_length=1,
        max_length=64,
    )
    decision: Literal["approve", "reject", "withdraw"] = Field(title="Decision 决定", description=_DECISION)


class SignOffInput(_Answer):
    """The SM2 sign-off form: the statement's variable lines, and the signature over it."""

    comment: str = Field(
        title="Comment 意见",
        description="Exactly the comment line of the statement you signed (may be empty).",
        max_length=2000,
    )
    signed_at: str = Field(
        title="Signed at 签署时间",
        description="Exactly the signed-at line of the statement you signed, e.g. 2026-12-02T11:50:00Z (UTC).",
        min_length=1,
        max_length=40,
    )
    signature: str = Field(
        title="Signature 签名 (SM2, base64)",
        description="The base64 SM2 signature of the statement shown above (SM3, user ID 1234567812345678).",
        min_length=1,
        max_length=512,
        repr=False,
    )


class TotpSignOffInput(_Answer):
    """The TOTP sign-off form (pilot mode: forgeable by whoever holds the worker's key)."""

    comment: str = Field(
        title="Comment 意见",
        description="Your opinion; for a rejection, what must change.",
        max_length=2000,
    )
    code: str = Field(
        title="Code 动态验证码",
        description="The 6-digit code your authenticator app shows now (issuer govcloud-cutover).",
        min_length=1,
        max_length=16,
        repr=False,
    )


AnyAnswer = SignOffInput | TotpSignOffInput


def form_for(proof: Proof) -> type[SignOffInput] | type[TotpSignOffInput]:
    """The form class of a proof mode."""
    return TotpSignOffInput if proof == "totp" else SignOffInput


def statement_of(answer: SignOffInput, *, shown: StatementFields) -> Statement:
    """The statement an SM2 answer claims to have signed, for the form it answers."""
    try:
        signed_at = datetime.fromisoformat(answer.signed_at.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise SignatureInvalid(
            f"signed-at {answer.signed_at!r} is not a time; copy the signed-at line of the statement you signed "
            "(e.g. 2026-12-02T11:50:00Z)"
        ) from exc
    if signed_at.tzinfo is None:
        raise SignatureInvalid(f"signed-at {answer.signed_at!r} has no time zone; write it in UTC with a Z")
    return Statement(
        system_id=shown.system_id,
        report_kind=shown.report_kind,
        report_digest=shown.report_digest,
        spec_digest=shown.spec_digest,
        decision=answer.decision,
        comment=answer.comment,
        signed_at=signed_at,
        run_id=shown.run_id,
        approver_id=answer.approver_id.strip(),
    )


@dataclass(frozen=True)
class StatementFields:
    """The fixed lines of a form's statement: what the form showed (the rest is the approver's)."""

    system_id: str
    report_kind: str
    report_digest: str
    spec_digest: str
    run_id: str
