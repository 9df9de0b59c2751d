"""``cutover audit export`` (cli/_audit_export.py): the trail in a file an auditor checks without our code."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import cli
from cutover import audit, lifecycle
from cutover.errors import AuditChainBroken
from cutover.ledger import Ledger, LifecycleState
from cutover.settings import get_settings
from tests.fixtures.ledger import as_dba


@pytest.fixture
def ledger_env(tmp_path: Path, isolated_ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    """The CLI reads the test's own ledger (no Prefect server)."""
    monkeypatch.setenv("CUTOVER_DATABASE_URL", isolated_ledger.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CUTOVER_SPECS_DIR", str(tmp_path / "specs"))
    monkeypatch.setenv("CUTOVER_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield isolated_ledger
    get_settings.cache_clear()


def cutover(*args: str) -> Result:
    return CliRunner().invoke(cli.register_commands(), list(args))


def offline_digest(event: dict[str, Any]) -> str:
    """What an auditor computes with the standard library alone (the recipe in the command's help)."""
    fields = {k: event[k] for k in ("seq", "at", "actor", "action", "object", "outcome", "detail", "prev_digest")}
    algorithm = event["digest"].split(":", 1)[0]
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return f"{algorithm}:{hashlib.new(algorithm, canonical).hexdigest()}"


def some_history(ledger: Ledger, new_system: Callable[[Ledger], str]) -> tuple[str, str]:
    first, second = new_system(ledger), new_system(ledger)
    lifecycle.transition(ledger, first, LifecycleState.TESTED, actor="cli:王工", reason="测试通过")
    lifecycle.transition(ledger, second, LifecycleState.TESTED, actor="watch", reason="tested")
    return first, second


def test_the_jsonl_export_holds_every_event_and_each_digest_and_link_verifies_with_hashlib_alone(
    ledger_env: Ledger, new_system: Callable[[Ledger], str], tmp_path: Path
) -> None:
    some_history(ledger_env, new_system)
    out = tmp_path / "audit.jsonl"

    result = cutover("audit", "export", "--out", str(out))

    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert any(e["actor"] == "cli:王工" and e["detail"]["reason"] == "测试通过" for e in events)
    for before, event in zip([None, *events], events, strict=False):
        assert event["digest"] == offline_digest(event)
        if before is not None:
            assert event["prev_digest"] == before["digest"]
    assert f"wrote {len(events)} audit events" in result.stdout
    assert f"chain head seq {events[-1]['seq']}, digest {events[-1]['digest']}" in result.stdout


def test_the_csv_export_of_one_system_has_only_its_events_with_the_detail_as_json(
    ledger_env: Ledger, new_system: Callable[[Ledger], str], tmp_path: Path
) -> None:
    first, other = some_history(ledger_env, new_system)
    out = tmp_path / "first.csv"

    result = cutover("audit", "export", "--system", first, "--format", "csv", "--out", str(out))

    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    assert rows and {row["object"] for row in rows} == {f"system:{first}"}, f"nothing about {other}"
    assert list(rows[0]) == ["seq", "at", "actor", "action", "object", "outcome", "detail", "prev_digest", "digest"]
    for row in rows:
        event = {**row, "seq": int(row["seq"]), "detail": json.loads(row["detail"])}
        assert event["digest"] == offline_digest(event)


def test_a_broken_chain_points_to_the_export_command() -> None:
    broken = audit.VerifyResult(ok=False, checked=3, broken_seq=4, reason="digest mismatch")

    with pytest.raises(AuditChainBroken, match="last exported audit log \\(`cutover audit export --out FILE`"):
        broken.raise_if_broken()


def truncate_and_rewind_the_head(ledger: Ledger, keep: int) -> None:
    """Delete every event after seq ``keep`` and make the head row say the chain ends there."""
    kept = audit.events(ledger, limit=1_000_000)
    digest = next(event.digest for event in kept if event.seq == keep)
    as_dba(
        ledger,
        f"DELETE FROM audit_events WHERE seq > {keep}",
        f"UPDATE audit_chain_head SET seq = {keep}, digest = '{digest}'",
    )


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_verify_against_an_export_passes_while_the_trail_only_grew_since(
    ledger_env: Ledger, new_system: Callable[[Ledger], str], tmp_path: Path, fmt: str
) -> None:
    some_history(ledger_env, new_system)
    out = tmp_path / f"audit.{fmt}"
    assert cutover("audit", "export", "--format", fmt, "--out", str(out)).exit_code == 0
    new_system(ledger_env)

    result = cutover("audit", "verify", "--against", str(out))

    assert result.exit_code == 0, result.output
    assert f"of {out}" in result.stdout and "in the ledger unchanged; 1 since" in result.stdout
    assert "audit chain intact" in result.stdout


def test_verify_against_an_export_names_a_trail_truncated_after_it_even_with_its_head_rewound(
    ledger_env: Ledger, new_system: Callable[[Ledger], str], tmp_path: Path
) -> None:
    some_history(ledger_env, new_system)
    out = tmp_path / "audit.jsonl"
    assert cutover("audit", "export", "--out", str(out)).exit_code == 0
    exported = len(out.read_text(encoding="utf-8").splitlines())
    truncate_and_rewind_the_head(ledger_env, keep=exported - 2)
    assert cutover("audit", "verify").exit_code == 0, "the chain alone no longer shows the truncation"

    result = cutover("audit", "verify", "--against", str(out))

    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: the audit trail was truncated after the export")
    assert f"no event seq {exported - 1}..{exported} (2 exported events gone; its newest is seq {exported - 2})" in (
        result.stderr
    )


def test_verify_against_the_export_of_another_chain_names_the_first_seq_that_differs(
    ledger_env: Ledger, new_system: Callable[[Ledger], str], tmp_path: Path
) -> None:
    some_history(ledger_env, new_system)
    out = tmp_path / "audit.jsonl"
    assert cutover("audit", "export", "--out", str(out)).exit_code == 0
    events = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    events[1]["digest"] = "sm3:" + "0" * 64  # the export of a chain that went another way at seq 2
    out.write_text("".join(json.dumps(event) + "\n" for event in events), encoding="utf-8")

    result = cutover("audit", "verify", "--against", str(out))

    assert result.exit_code == 1, result.output
    assert "the ledger's trail is not the chain exported to" in result.stderr and "at seq 2" in result.stderr


def test_verify_against_a_file_that_is_not_an_export_exits_1_naming_the_line(
    ledger_env: Ledger, tmp_path: Path
) -> None:
    out = tmp_path / "notes.jsonl"
    out.write_text('{"seq": 1, "digest": "sm3:00"}\n{oops\n', encoding="utf-8")

    result = cutover("audit", "verify", "--against", str(out))

    assert result.exit_code == 1 and f"{out}:2: not a JSON object" in result.stderr, result.output
