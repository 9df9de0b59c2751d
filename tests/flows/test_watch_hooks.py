"""What the watch does in Prefect (flows/_watch_hooks.py): the retention artifact shows the divergence."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cutover.ledger import Ledger, RunKind
from cutover.spec import Spec
from flows._watch_hooks import publish_divergence
from tasks.divergence import Divergence, Method, TableChange
from tasks.report import artifact_key
from tests.specbuilder import base_spec


def test_the_retention_artifact_shows_the_divergence_per_table_and_the_originals_lag(
    prefect_server: Any, ledger: Ledger, new_system: Callable[[Ledger], str]
) -> None:
    from prefect import flow
    from prefect.artifacts import Artifact

    system_id = new_system(ledger)
    spec = Spec.model_validate(base_spec(system_id))
    run = ledger.create_run(system_id, RunKind.CUTOVER)
    found = Divergence([TableChange("payments", Method.CHUNKS, 5, 3, 2)], behind_s=86_400.0)
    row = ledger.record_divergence(found.record(system_id, run.id))

    @flow(name="publish-divergence-test")
    def publish() -> None:
        publish_divergence(spec, row)

    publish()

    artifact = Artifact.get(artifact_key("retention", system_id))
    assert artifact is not None
    text = str(artifact.data)
    assert "approximately 10 changed rows; the original is 86400 seconds behind" in text
    assert "| payments | ≈5 | ≈3 | ≈2 | chunk-checksums |" in text
    assert f"cutover rollback {system_id}" in text
