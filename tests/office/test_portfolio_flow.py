"""The daily `portfolio` deployment: its flow publishes the portfolio as Markdown artifacts (real Prefect server)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cutover.plan_import import import_plan
from cutover.portfolio import build
from cutover.runtime import open_ledger
from cutover.settings import get_settings
from demo.portfolio import STAGE_WEIGHTS, generate, place, write_table
from flows.deployments import DEPLOYMENTS
from tasks.portfolio import ARTIFACT_KEYS, portfolio_markdown, progress_bar
from tests.office.conftest import DEADLINE, TODAY


def test_the_portfolio_deployment_runs_daily() -> None:
    deployment = DEPLOYMENTS["portfolio"]
    assert deployment.interval == timedelta(days=1) and deployment.flow().name == "portfolio"


def test_the_summary_has_a_progress_bar_per_department(one_of_each: Any) -> None:
    portfolio = build(one_of_each, today=TODAY, deadline=DEADLINE)

    texts = portfolio_markdown(portfolio)

    assert set(texts) == set(ARTIFACT_KEYS)
    summary = texts["portfolio-summary"]
    for tally in portfolio.departments:
        assert f"| {tally.department} | {progress_bar(tally)} | {tally.settled}/{tally.total} |" in summary
    assert progress_bar(portfolio.overall) == "`" + "█" * 11 + "░" * 9 + "` 55%"  # 6 of 11 settled
    assert "the programme deadline 2019-12-31 has not passed" in texts["portfolio-finance"]


@pytest.fixture
def configured_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("CUTOVER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CUTOVER_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    made = generate(len(STAGE_WEIGHTS), 2, today=TODAY, prefix="flow")
    ledger = open_ledger()
    import_plan(ledger, write_table(made, tmp_path / "plan.xlsx"), actor="test")
    place(ledger, made, today=TODAY)
    yield tmp_path
    get_settings.cache_clear()


def test_the_flow_publishes_each_artifact(prefect_server: Any, configured_ledger: Path) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.portfolio import portfolio

    counts = portfolio(today=DEADLINE + timedelta(days=1))

    expected = build(open_ledger(), today=DEADLINE + timedelta(days=1), deadline=DEADLINE)
    assert counts == {"systems": 11, "settled": 6, "overdue": len(expected.overdue), "stop_payment": 4}
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=list(ARTIFACT_KEYS))))
    newest = {a.key: a for a in sorted(found, key=lambda a: a.created or 0)}
    assert set(newest) == set(ARTIFACT_KEYS)
    summary = str(newest["portfolio-summary"].data)
    assert "迁移进度总览 Portfolio summary" in summary and "█" in summary and "2020-01-01" in summary
    finance = str(newest["portfolio-finance"].data)
    assert "flow-0001" in finance and "maintenance payments to stop (4)" in finance
