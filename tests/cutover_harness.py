"""Put a system where a test needs it (signed, ready to cut over) without the human sign-off.

Also runnable as a script so a test can kill the cutover stage with SIGKILL mid-way:
``python -m tests.cutover_harness SPEC_PATH RUN_ID LEDGER_URL HOME``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from prefect import flow

from cutover import lifecycle
from cutover.claims import claim
from cutover.ledger import Ledger, LifecycleState, RunKind
from cutover.runtime import register
from cutover.settings import Settings
from cutover.spec import Spec
from cutover.spec_loader import load_spec
from flows._context import RunContext
from flows._cut import cut_over

T = TypeVar("T")
SIGNED_PATH = (LifecycleState.TESTED, LifecycleState.REPORT_READY, LifecycleState.SIGNED)


def signed_context(ledger: Ledger, spec: Spec, spec_path: Path, home: Path) -> RunContext:
    """Register the system, walk it to ``signed`` (audited as the test's doing) and claim a cutover run."""
    register(ledger, spec, actor="test")
    for state in SIGNED_PATH:
        lifecycle.transition(ledger, spec.system.id, state, actor="test", reason="test set-up")
    run = claim(ledger, spec.system.id, RunKind.CUTOVER, flow_run_id=None, resume=False, actor="test").run
    return RunContext(
        spec=spec, spec_path=spec_path, ledger=ledger, run=run, actor="test", settings=Settings(home=home)
    )


def resumed_context(ledger: Ledger, spec: Spec, spec_path: Path, home: Path, run_id: str) -> RunContext:
    """The context of an existing run (as a flow started with resume=True would have it)."""
    run = ledger.get_run(run_id)
    assert run is not None
    return RunContext(
        spec=spec, spec_path=spec_path, ledger=ledger, run=run, actor="test", settings=Settings(home=home)
    )


def in_flow(fn: Callable[[], T]) -> T:
    """Run ``fn`` inside a Prefect flow run (artifacts and run logs need one)."""

    @flow(name="test-stage", persist_result=False)
    def stage() -> T:
        return fn()

    return stage()


def main() -> None:
    spec_path, run_id, url, home = sys.argv[1:5]
    ledger = Ledger(url)
    spec = load_spec(spec_path)
    in_flow(lambda: cut_over(resumed_context(ledger, spec, Path(spec_path), Path(home), run_id)))


if __name__ == "__main__":
    main()
