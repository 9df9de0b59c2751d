"""A probe flow named like the rollback flow ("rollback"): the worker keeps a warm process for it."""

from __future__ import annotations

from prefect import flow

from tests.fixtures.probe_flow import probe


@flow(name="rollback", persist_result=False)
def rollback_probe(out: str, sleep_s: float = 0.0) -> None:
    """What :func:`tests.fixtures.probe_flow.probe` records, from a run of a flow named ``rollback``."""
    probe.fn(out, sleep_s)
