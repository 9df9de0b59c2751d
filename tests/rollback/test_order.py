"""The safe order the tool makes of a spec's rollback steps (rollback/_order.py): pure, no hosts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cutover.spec import DataVerifyStep, SecretRef, Spec, SshStep
from rollback import PlanChange, safe_order
from rollback._order import Change

EXAMPLE = Path(__file__).parents[2] / "cutover_specs" / "hrss-social-insurance.yaml"
SAFE = ["freeze-cloud", "unfreeze-legacy", "reverse-sync", "verify-reverse", "route-back"]


def example() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    return data


def with_rollback(*ids: str, extra: list[dict[str, Any]] | None = None) -> Spec:
    """The example spec with its rollback steps ``ids`` in this order (plus ``extra`` steps)."""
    data = example()
    declared = {step["id"]: step for step in data["rollback"]["steps"]}
    data["rollback"]["steps"] = [declared[i] for i in ids] + (extra or [])
    return Spec.model_validate(data)


def ids(spec: Spec) -> list[str]:
    return [step.id for step in safe_order(spec)[0]]


def changes(spec: Spec) -> dict[str, PlanChange]:
    return {change.step_id: change for change in safe_order(spec)[1]}


def test_a_safely_ordered_rollback_runs_as_written_and_nothing_is_reported() -> None:
    spec = with_rollback(*SAFE)
    assert ids(spec) == SAFE
    assert changes(spec) == {}


def test_a_rollback_written_backwards_becomes_freeze_unfreeze_copy_verify_traffic_back() -> None:
    spec = with_rollback(*reversed(SAFE))

    assert ids(spec) == SAFE
    moved = changes(spec)
    assert {c.change for c in moved.values()} == {Change.MOVED}
    assert "frozen before any data moves back" in moved["freeze-cloud"].why
    assert "made writable before data is copied into it" in moved["unfreeze-legacy"].why
    assert "verified after it is copied back" in moved["verify-reverse"].why
    assert "traffic goes back last" in moved["route-back"].why
    assert "reverse-sync" not in moved  # the copy back stayed; the steps around it moved


def test_traffic_sent_back_before_the_copy_moves_to_the_end_and_only_it_is_reported() -> None:
    spec = with_rollback("freeze-cloud", "unfreeze-legacy", "route-back", "reverse-sync", "verify-reverse")
    assert ids(spec) == SAFE
    assert list(changes(spec)) == ["route-back"]
    assert changes(spec)["route-back"].describe().startswith("moved step 'route-back': the traffic goes back last")


def test_a_rollback_of_only_the_reverse_copy_gets_every_safety_step_added_with_the_reason() -> None:
    spec = with_rollback("reverse-sync")

    steps, _ = safe_order(spec)
    freeze, unfreeze, copy, verify, back = steps
    added = changes(spec)
    assert isinstance(freeze, SshStep) and (freeze.host, freeze.run) == ("cloud", ["/srv/app/bin/appctl", "freeze"])
    assert isinstance(unfreeze, SshStep) and (unfreeze.host, unfreeze.run) == (
        "legacy",
        ["/srv/app/bin/appctl", "unfreeze"],
    )
    assert copy.id == "reverse-sync"
    assert isinstance(verify, DataVerifyStep)
    assert (verify.source, verify.target) == (SecretRef(secret="cloud-db"), SecretRef(secret="legacy-db"))
    assert verify.tables == ["insured", "payments"]
    assert isinstance(back, SshStep) and (back.host, back.run) == ("gateway", ["/srv/app/bin/route", "legacy"])
    assert list(added) == [freeze.id, unfreeze.id, verify.id, back.id]
    assert {c.change for c in added.values()} == {Change.ADDED}
    assert "no write acknowledged during the rollback is lost" in added[freeze.id].why
    assert "frozen by cutover step 'freeze'" in added[unfreeze.id].why
    assert "the cutover verified the data (step 'verify-rows')" in added[verify.id].why
    assert "so the original is serving at the end" in added[back.id].why


def test_added_steps_take_ids_of_their_own_and_validate_as_spec_steps() -> None:
    spec = with_rollback("reverse-sync")
    steps, _ = safe_order(spec)
    taken = {step.id for step in spec.all_steps()}
    assert len({step.id for step in steps}) == len(steps)
    assert not {step.id for step in steps if step.id != "reverse-sync"} & taken
    for step in steps:
        assert type(step).model_validate(step.model_dump(mode="json", by_alias=True)) == step


def test_the_authors_other_steps_stay_on_their_side_of_the_copy_back() -> None:
    notify = {"kind": "ssh", "id": "notify", "name": "notify", "host": "legacy", "run": ["/usr/bin/logger", "back"]}
    check = {"kind": "http_check", "id": "legacy-up", "name": "legacy up", "url": "http://127.0.0.11:8000/healthz"}
    spec = with_rollback("route-back", "reverse-sync", "freeze-cloud", "unfreeze-legacy", "verify-reverse")
    data = spec.model_dump(mode="json", by_alias=True)
    steps = data["rollback"]["steps"]
    data["rollback"]["steps"] = [notify, *steps[:2], check, *steps[2:]]
    assert ids(Spec.model_validate(data)) == [
        "freeze-cloud",
        "notify",
        "unfreeze-legacy",
        "reverse-sync",
        "legacy-up",
        "verify-reverse",
        "route-back",
    ]


def test_a_cutover_without_a_copy_only_has_its_traffic_sent_back_last() -> None:
    data = example()
    data["cutover"]["steps"] = [s for s in data["cutover"]["steps"] if s["id"] == "switch-traffic"]
    data["rollback"]["steps"] = [s for s in data["rollback"]["steps"] if s["id"] in ("route-back", "freeze-cloud")]
    spec = Spec.model_validate(data)
    assert ids(spec) == ["freeze-cloud", "route-back"]
    assert changes(spec) == {}


def replicated(*rollback_ids: str) -> Spec:
    """The example with ``data.replication``: no copy in the cutover, the rollback's steps ``rollback_ids``."""
    data = example()
    data["cutover"]["steps"] = [s for s in data["cutover"]["steps"] if s["id"] != "final-sync"]
    declared = {step["id"]: step for step in data["rollback"]["steps"]}
    data["rollback"]["steps"] = [declared[i] for i in rollback_ids]
    data["data"] = {
        "replication": "postgresql-logical",
        "original": {"secret": "legacy-db"},
        "cloud": {"secret": "cloud-db"},
        "tables": ["public.insured", "public.payments"],
    }
    return Spec.model_validate(data)


def test_with_replication_the_original_catches_up_after_the_freezes_and_before_verification_and_traffic() -> None:
    spec = replicated("freeze-cloud", "unfreeze-legacy", "verify-reverse", "route-back")

    assert ids(spec) == ["freeze-cloud", "unfreeze-legacy", "replication-back", "verify-reverse", "route-back"]
    added = changes(spec)
    assert set(added) == {"replication-back"} and added["replication-back"].change is Change.ADDED
    assert "logical replication" in added["replication-back"].why


def test_with_replication_and_no_verification_declared_the_cutovers_verification_runs_reversed() -> None:
    spec = replicated("freeze-cloud", "unfreeze-legacy", "route-back")

    assert ids(spec) == ["freeze-cloud", "unfreeze-legacy", "replication-back", "auto-verify-rows-back", "route-back"]
    verify = safe_order(spec)[0][3]
    assert isinstance(verify, DataVerifyStep) and verify.source == SecretRef(secret="cloud-db")
