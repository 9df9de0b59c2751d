"""An operator trying to forge the joint sign-off, run as its own process with the worker's environment.

It holds what whoever runs a worker holds: the environment (``CUTOVER_DATABASE_URL``,
``CUTOVER_HOME``, ``CUTOVER_TOTP_KEY``, ``PREFECT_API_URL``), the files under ``CUTOVER_HOME``,
the ledger, and signatures captured from the Prefect API (answers to other forms). It tries the
obvious routes against one waiting run, one answer per form, and prints one JSON line per try:
``{"route": ..., "server": "ACCEPT"|"REJECT"}``. Whether the flow accepted a try is for the test to
read from the ledger.

Usage: python -m tests.tasks._forger RUN_ID SYSTEM_ID APPROVER_ID CAPTURED_JSON
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import get_client
from prefect.exceptions import PrefectHTTPStatusError

from cutover import sm2
from cutover.approvers import code_for
from cutover.runtime import open_ledger
from cutover.signoff_store import latest_request
from tasks.signoff import fields_shown, sign_answer


def main(run_id: str, system_id: str, approver_id: str, captured_file: str) -> int:
    ledger = open_ledger()
    request = latest_request(ledger, system_id)
    assert request is not None
    fields = fields_shown(system_id, request.detail)
    code = code_for(ledger, approver_id, at=datetime.now(UTC))  # the TOTP route: computable from the worker's key
    own_key = sm2.generate_key()  # a key of the forger's own, never enrolled
    _, own = sign_answer(fields, approver_id, "approve", "", own_key, datetime.now(UTC))
    tries: list[tuple[str, dict[str, Any]]] = [
        (
            "totp code recomputed from the worker's key",
            {"approver_id": approver_id, "decision": "approve", "comment": "", "code": code},
        ),
        ("totp code pasted as the signature", {**own, "signature": code}),
        ("statement signed with the forger's own key", own),
        *((f"replayed: {name}", answer) for name, answer in json.loads(Path(captured_file).read_text()).items()),
    ]
    found = sorted(str(p) for p in Path(os.environ["CUTOVER_HOME"]).rglob("*") if p.suffix in {".key", ".pem"})
    print(json.dumps({"route": "private keys found under CUTOVER_HOME", "found": found}), flush=True)
    for route, answer in tries:
        print(json.dumps({"route": route, "server": _submit(UUID(run_id), answer)}), flush=True)
    return 0


def _submit(run_id: UUID, answer: dict[str, Any]) -> str:
    key = _wait_for_a_form(run_id)
    with get_client(sync_client=True) as client:
        result = client.resume_flow_run(run_id, run_input=answer)
    if result.status.value == "ACCEPT":
        _wait_until_key_changes(run_id, key)
    return str(result.status.value)


def _wait_for_a_form(run_id: UUID) -> str:
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            state = client.read_flow_run(run_id).state
            key = state.state_details.pause_key if state is not None and state.is_paused() else None
            if key and _schema_saved(client, run_id, state.name or "", key):
                return str(key)
            time.sleep(0.2)
    raise SystemExit(f"run {run_id} showed no form within 60 s")


def _schema_saved(client: Any, run_id: UUID, state_name: str, key: str) -> bool:
    try:
        client.read_flow_run_input(run_id, f"{state_name.lower()}-{key}-schema")
    except PrefectHTTPStatusError as exc:
        if exc.response.status_code == 404:  # not saved yet
            return False
        raise
    return True


def _wait_until_key_changes(run_id: UUID, key: str) -> None:
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            state = client.read_flow_run(run_id).state
            if state is not None and (state.is_final() or (state.is_paused() and state.state_details.pause_key != key)):
                return
            time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
