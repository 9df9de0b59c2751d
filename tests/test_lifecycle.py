"""Tests of cutover/lifecycle.py: one state machine, compare-and-set moves, audited atomically."""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from cutover import audit
from cutover.errors import ConfigurationError, IllegalTransition, LedgerError, UnknownSystem
from cutover.ledger import Decision, Ledger, Party, ReportKind, RunKind
from cutover.lifecycle import (
    TRANSITIONS,
    LifecycleState,
    allowed_next,
    current_state,
    register_system,
    transition,
)

S = LifecycleState
NewSystem = Callable[[Ledger], str]


def path_to(target: LifecycleState) -> list[LifecycleState]:
    """The shortest sequence of legal moves from planned to ``target``."""
    paths: dict[LifecycleState, list[LifecycleState]] = {S.PLANNED: []}
    queue = deque([S.PLANNED])
    while queue:
        state = queue.popleft()
        for nxt in sorted(TRANSITIONS[state]):
            if nxt not in paths:
                paths[nxt] = [*paths[state], nxt]
                queue.append(nxt)
    return paths[target]


def walk(ledger: Ledger, system_id: str, target: LifecycleState) -> None:
    for state in path_to(target):
        transition(ledger, system_id, state, actor="test", reason=f"walk to {target.value}")


def audit_seqs(ledger: Ledger, system_id: str) -> list[int]:
    return [event.seq for event in audit.events(ledger, object=f"system:{system_id}")]


def test_the_table_covers_every_state_and_only_decommissioned_is_terminal() -> None:
    assert set(TRANSITIONS) == set(LifecycleState)
    assert [state for state in S if not allowed_next(state)] == [S.DECOMMISSIONED]
    assert all(state not in TRANSITIONS[state] for state in S)


def test_a_registered_system_starts_planned_and_is_audited(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)

    assert current_state(ledger, system_id) is S.PLANNED
    (event,) = audit.events(ledger, object=f"system:{system_id}")
    assert (event.action, event.actor) == ("system.registered", "test")


def test_registering_again_updates_fields_but_never_resets_state(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)
    walk(ledger, system_id, S.SIGNED)

    state = register_system(
        ledger, system_id=system_id, name="新名称", department="省医保局", disposition="consolidate", actor="ops"
    )

    system = ledger.require_system(system_id)
    assert (state, system.state, system.name, system.disposition) == (S.SIGNED, S.SIGNED, "新名称", "consolidate")
    assert audit.events(ledger, object=f"system:{system_id}")[0].detail["changed"] == [
        "name",
        "department",
        "disposition",
    ]


def test_registering_unchanged_fields_writes_no_audit_event(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)
    before = audit_seqs(ledger, system_id)

    register_system(
        ledger,
        system_id=system_id,
        name="社会保险信息系统",
        department="省人力资源和社会保障厅",
        disposition="migrate",
        actor="test",
    )

    assert audit_seqs(ledger, system_id) == before


def test_an_unknown_disposition_is_refused_listing_the_allowed_ones(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="disposition 'move' is not one of: migrate, consolidate, retire, exempt"):
        register_system(ledger, system_id="x", name="n", department="d", disposition="move", actor="a")


@pytest.mark.parametrize("target", list(S), ids=str)
def test_every_state_is_reached_by_legal_moves_each_audited(
    ledger: Ledger, new_system: NewSystem, target: LifecycleState
) -> None:
    system_id = new_system(ledger)

    walk(ledger, system_id, target)

    assert current_state(ledger, system_id) is target
    moves = [e.detail for e in reversed(audit.events(ledger, object=f"system:{system_id}"))][1:]
    assert [(m["from"], m["to"]) for m in moves] == list(
        zip([S.PLANNED, *path_to(target)][:-1], path_to(target), strict=True)
    )


@pytest.mark.parametrize("source", list(S), ids=str)
def test_every_move_not_in_the_table_is_refused_and_changes_nothing(
    ledger: Ledger, new_system: NewSystem, source: LifecycleState
) -> None:
    system_id = new_system(ledger)
    walk(ledger, system_id, source)
    before = audit_seqs(ledger, system_id)

    for target in set(S) - TRANSITIONS[source]:
        with pytest.raises(IllegalTransition, match=f"cannot go from '{source}' to '{target}'"):
            transition(ledger, system_id, target, actor="test", reason="illegal")

    assert current_state(ledger, system_id) is source
    assert audit_seqs(ledger, system_id) == before


def test_a_refusal_names_the_system_both_states_and_the_allowed_next_ones(
    ledger: Ledger, new_system: NewSystem
) -> None:
    system_id = new_system(ledger)
    walk(ledger, system_id, S.REPORT_READY)

    with pytest.raises(IllegalTransition) as refused:
        transition(ledger, system_id, S.CUTTING_OVER, actor="ops", reason="impatient")

    assert str(refused.value) == (
        f"system {system_id!r} cannot go from 'report_ready' to 'cutting_over'; "
        "from 'report_ready' it may go to: rejected, signed, tested"
    )


def test_planned_to_planned_is_refused(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)

    with pytest.raises(IllegalTransition, match="it may go to: tested"):
        transition(ledger, system_id, S.PLANNED, actor="ops", reason="again")


def test_decommissioned_is_refused_as_terminal(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)
    walk(ledger, system_id, S.DECOMMISSIONED)

    with pytest.raises(IllegalTransition, match=r"it may go to: nothing \(it is terminal\)"):
        transition(ledger, system_id, S.PLANNED, actor="ops", reason="revive")


def test_a_stale_expected_state_is_refused_and_changes_nothing(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)
    walk(ledger, system_id, S.TESTED)

    with pytest.raises(IllegalTransition, match="is in state 'tested', not 'planned' as expected"):
        transition(ledger, system_id, S.TESTED, actor="ops", reason="x", expected=S.PLANNED)

    assert current_state(ledger, system_id) is S.TESTED


def test_an_unregistered_system_is_refused_as_unknown(ledger: Ledger) -> None:
    with pytest.raises(UnknownSystem, match="'nobody' is not in the ledger; check the id; `cutover plan` registers"):
        transition(ledger, "nobody", S.TESTED, actor="ops", reason="x")


def test_a_transition_whose_audit_event_cannot_be_written_changes_nothing(
    ledger: Ledger, new_system: NewSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    system_id = new_system(ledger)
    real_new = hashlib.new

    def without_sm3(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "sm3":
            raise ValueError("unsupported hash type sm3")
        return real_new(name, *args, **kwargs)

    monkeypatch.setattr(hashlib, "new", without_sm3)
    with pytest.raises(ConfigurationError):
        transition(ledger, system_id, S.TESTED, actor="ops", reason="x")
    monkeypatch.undo()

    assert current_state(ledger, system_id) is S.PLANNED


def _sign(ledger: Ledger, system_id: str) -> None:
    run = ledger.create_run(system_id, RunKind.CUTOVER)
    report = ledger.create_report(run.id, system_id, ReportKind.TRIAL_RUN, "试运行报告")
    ledger.enroll_approver("wang.li", "王丽", b"encrypted")
    ledger.add_signature(
        run_id=run.id,
        system_id=system_id,
        party=Party.DEPARTMENT,
        approver_id="wang.li",
        decision=Decision.APPROVE,
        report_digest=report.digest,
        spec_digest="sm3:00",
    )


@pytest.mark.parametrize("source", [S.REPORT_READY, S.SIGNED])
def test_moving_back_to_tested_voids_the_report_and_signatures(
    ledger: Ledger, new_system: NewSystem, source: LifecycleState
) -> None:
    system_id = new_system(ledger)
    walk(ledger, system_id, source)
    _sign(ledger, system_id)

    transition(ledger, system_id, S.TESTED, actor="ops", reason="spec changed")

    assert ledger.latest_report(system_id, ReportKind.TRIAL_RUN) is None
    assert ledger.signatures_for(system_id) == []
    assert len(ledger.signatures_for(system_id, valid_only=False)) == 1
    detail = audit.events(ledger, object=f"system:{system_id}")[0].detail
    assert (detail["voided_reports"], detail["voided_signatures"]) == (1, 1)


def _race(ledgers: list[Ledger], system_id: str) -> list[str | IllegalTransition]:
    results: list[str | IllegalTransition] = []

    def attempt(ledger: Ledger) -> None:
        try:
            results.append(transition(ledger, system_id, S.TESTED, actor="racer", reason="race", expected=S.PLANNED))
        except IllegalTransition as exc:
            results.append(exc)

    threads = [threading.Thread(target=attempt, args=(ledger,)) for ledger in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return results


def test_two_connections_racing_for_a_transition_on_postgres_have_exactly_one_winner(
    postgres_url: str, new_system: NewSystem
) -> None:
    ledgers = [Ledger(postgres_url) for _ in range(2)]
    system_id = new_system(ledgers[0])
    both_read = threading.Barrier(2, timeout=5)

    def wait_for_the_other(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("UPDATE systems"):
            both_read.wait()  # both have read 'planned' before either writes

    for ledger in ledgers:
        sa.event.listen(ledger.engine, "before_cursor_execute", wait_for_the_other)
    try:
        results = _race(ledgers, system_id)
        assert current_state(ledgers[0], system_id) is S.TESTED
        moves = [e for e in audit.events(ledgers[0], object=f"system:{system_id}") if e.action != "system.registered"]
    finally:
        for ledger in ledgers:
            ledger.dispose()

    assert S.TESTED in results and len(results) == 2
    (lost,) = [result for result in results if isinstance(result, IllegalTransition)]
    assert "another process moved it first" in str(lost)
    assert len(moves) == 1


def test_two_connections_racing_for_a_transition_have_exactly_one_winner(db_url: str, new_system: NewSystem) -> None:
    ledgers = [Ledger(db_url) for _ in range(2)]
    try:
        system_id = new_system(ledgers[0])
        results = _race(ledgers, system_id)
        assert current_state(ledgers[0], system_id) is S.TESTED
    finally:
        for ledger in ledgers:
            ledger.dispose()

    assert sorted(type(result).__name__ for result in results) == ["IllegalTransition", "LifecycleState"]


def _register(ledger: Ledger, system_id: str, spec_digest: str | None) -> LifecycleState:
    return register_system(
        ledger,
        system_id=system_id,
        name="社会保险信息系统",
        department="省人力资源和社会保障厅",
        disposition="migrate",
        spec_digest=spec_digest,
        actor="cli:ops",
    )


@pytest.mark.parametrize("source", [S.TESTED, S.REPORT_READY, S.SIGNED])
def test_registering_a_changed_spec_sends_a_tested_or_signed_system_back_to_planned_voiding_its_evidence(
    ledger: Ledger, new_system: NewSystem, source: LifecycleState
) -> None:
    system_id = new_system(ledger)
    _register(ledger, system_id, "sm3:v1")
    walk(ledger, system_id, source)
    _sign(ledger, system_id)

    state = _register(ledger, system_id, "sm3:v2")

    assert state is S.PLANNED and current_state(ledger, system_id) is S.PLANNED
    assert ledger.require_system(system_id).spec_digest == "sm3:v2"
    assert ledger.latest_report(system_id, ReportKind.TRIAL_RUN) is None and ledger.signatures_for(system_id) == []
    moves = [e for e in audit.events(ledger, object=f"system:{system_id}") if e.action == "lifecycle.transition"]
    assert moves[0].detail["to"] == "planned" and moves[0].actor == "cli:ops"
    assert moves[0].detail["reason"].startswith("the spec changed (sm3:v1 -> sm3:v2)")
    assert sum(e.detail.get("voided_signatures", 0) for e in moves) == 1


def test_registering_the_same_spec_again_keeps_the_report_and_signatures(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)
    _register(ledger, system_id, "sm3:v1")
    walk(ledger, system_id, S.SIGNED)
    _sign(ledger, system_id)

    assert _register(ledger, system_id, "sm3:v1") is S.SIGNED
    assert len(ledger.signatures_for(system_id)) == 1


def test_a_changed_spec_of_a_system_already_cut_over_is_recorded_and_the_state_kept(
    ledger: Ledger, new_system: NewSystem
) -> None:
    system_id = new_system(ledger)
    _register(ledger, system_id, "sm3:v1")
    walk(ledger, system_id, S.RETAINED)

    assert _register(ledger, system_id, "sm3:v2") is S.RETAINED
    assert ledger.require_system(system_id).spec_digest == "sm3:v2"


def test_registering_without_a_spec_digest_keeps_the_recorded_one(ledger: Ledger, new_system: NewSystem) -> None:
    system_id = new_system(ledger)
    _register(ledger, system_id, "sm3:v1")
    walk(ledger, system_id, S.SIGNED)

    assert _register(ledger, system_id, None) is S.SIGNED
    assert ledger.require_system(system_id).spec_digest == "sm3:v1"
