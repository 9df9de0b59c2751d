"""Where the tool's replication steps go among a spec's cutover steps, and in which order they are undone."""

from __future__ import annotations

from pathlib import Path

from cutover.spec import Spec
from cutover.spec_loader import load_spec
from flows._saga import _undo_order
from tasks.replication_steps import verified_on_snapshots, with_replication

EXAMPLE = Path(__file__).resolve().parents[2] / "cutover_specs" / "hrss-social-insurance.yaml"
DATA = (
    "\ndata:\n  replication: postgresql-logical\n  original: {secret: legacy-db}\n  cloud: {secret: cloud-db}\n"
    "  tables: [public.insured, public.payments]\n{verify}\nretention:\n"
)


def replicated(tmp_path: Path, verify: str = "") -> Spec:
    text = EXAMPLE.read_text(encoding="utf-8")
    text = "\n".join(line for line in text.splitlines() if "id: final-sync" not in line) + "\n"
    path = tmp_path / "spec.yaml"
    path.write_text(text.replace("\nretention:\n", DATA.replace("{verify}", verify), 1), encoding="utf-8")
    return load_spec(path)


def planned(spec: Spec) -> list[str]:
    assert spec.cutover is not None
    return [s.id for s in with_replication(spec, spec.cutover.steps, spec.cutover.traffic_switch())]


def test_on_snapshots_the_verification_runs_after_the_switch_and_before_the_turn_around(tmp_path: Path) -> None:
    spec = replicated(tmp_path)

    assert planned(spec) == [
        "replication-forward",
        "freeze",
        "replication-catch-up",
        "switch-traffic",
        "verify-rows",
        "replication-turn-around",
    ]
    assert verified_on_snapshots(spec) == {"verify-rows"}


def test_in_window_the_verification_runs_before_the_switch_with_writes_frozen(tmp_path: Path) -> None:
    spec = replicated(tmp_path, "  verify: in-window")

    assert planned(spec) == [
        "replication-forward",
        "freeze",
        "replication-catch-up",
        "verify-rows",
        "switch-traffic",
        "replication-turn-around",
    ]
    assert verified_on_snapshots(spec) == set()


def test_the_turn_around_is_undone_right_after_the_switch_whatever_ran_between(tmp_path: Path) -> None:
    spec = replicated(tmp_path)
    assert spec.cutover is not None
    steps = with_replication(spec, spec.cutover.steps, "switch-traffic")

    undone = _undo_order(list(reversed(steps)), "switch-traffic")

    assert [s.id for s in undone] == [
        "verify-rows",
        "switch-traffic",
        "replication-turn-around",
        "replication-catch-up",
        "freeze",
        "replication-forward",
    ]
