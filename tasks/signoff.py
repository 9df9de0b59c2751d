"""Joint sign-off (共同认可) of a report by the owning department and the cloud service provider.

Public surface::

    SignOffInput, TotpSignOffInput       the forms (Prefect RunInput; every field required)
    form_for(proof) -> form class        "sm2" (default) or "totp" (pilots; forgeable by operators)
    SignatureRecord, SignOffOutcome      what was signed
    ShownForm, SignatureCheck            what a form showed; one answer to check against it
    check_signature(ledger, SignatureCheck, *, settings=None) -> SignatureRecord
    check_withdrawal(ledger, SignatureCheck, *, settings=None) -> SignatureRecord
    SignOffRequest                       which report, where to read it, until when, the window
    collect_signoff(ledger, SignOffRequest, *, now=None, settings=None,
                    schedule_wakeup=None) -> SignOffOutcome                    (in a flow body)
    WakeupRequest, wakeup_input()        the wake-up (scheduled by flows.signoff_deadline)
    fields_shown(system_id, detail), sign_answer(...)   the approver's side: sign a form's statement
    signoff_description(FormContext) -> str

Prefect records no identity for who resumed a run, so the flow checks every answer itself: the
approver is on the party's roster, the proof holds (an SM2 signature over the canonical statement,
verified with the approver's enrolled public key), the report and spec are still the ones shown,
and the two parties are two different people.
"""

from tasks._signoff_checks import (
    ShownForm,
    SignatureCheck,
    SignatureRecord,
    SignOffOutcome,
    check_signature,
    check_withdrawal,
)
from tasks._signoff_deadline import GRACE, WakeupRequest, wakeup_input
from tasks._signoff_forms import SignOffInput, StatementFields, TotpSignOffInput, form_for
from tasks._signoff_howto import fields_shown, sign_answer
from tasks._signoff_round import ScheduleWakeup, SignOffRequest, collect_signoff
from tasks._signoff_text import FormContext, signoff_description

__all__ = [
    "GRACE",
    "FormContext",
    "ScheduleWakeup",
    "ShownForm",
    "SignOffInput",
    "SignOffOutcome",
    "SignOffRequest",
    "SignatureCheck",
    "SignatureRecord",
    "StatementFields",
    "TotpSignOffInput",
    "WakeupRequest",
    "check_signature",
    "check_withdrawal",
    "collect_signoff",
    "fields_shown",
    "form_for",
    "sign_answer",
    "signoff_description",
    "wakeup_input",
]
