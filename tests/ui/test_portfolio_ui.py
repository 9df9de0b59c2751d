"""The office reads the portfolio in the Prefect UI: the summary artifact, rendered, in Chromium.

PyPI ``playwright`` drives Debian's ``/usr/bin/chromium``. The page is saved to
``docs/img/portfolio-artifact.png`` for the README when ``CUTOVER_SCREENSHOTS=1``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from cutover.runtime import open_ledger, register
from cutover.settings import get_settings
from cutover.spec import Spec
from demo.portfolio import register_demo_portfolio
from tests.fixtures.prefect_server import REPO_ROOT, PrefectServer
from tests.specbuilder import base_spec

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = (
    REPO_ROOT / "docs" / "img" / "portfolio-artifact.png"
    if os.environ.get("CUTOVER_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / f"cutover-portfolio-artifact-{os.getpid()}.png"
)
TODAY = date(2026, 12, 7)

pytestmark = [
    pytest.mark.timeout(400),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium"),
]


@pytest.fixture
def demo_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The demo's portfolio: its system and a dozen more in four departments."""
    monkeypatch.setenv("CUTOVER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CUTOVER_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    ledger = open_ledger()
    demo = base_spec("hrss-social-insurance")
    demo["system"] |= {"name": "社会保险信息系统", "department": "省人力资源和社会保障厅", "planned_date": "2027-03-15"}
    register(ledger, Spec.model_validate(demo), actor="demo")
    register_demo_portfolio(ledger, tmp_path / "plan", today=TODAY)
    yield
    get_settings.cache_clear()


def test_the_summary_artifact_shows_each_department_s_progress(
    prefect_server: PrefectServer, demo_ledger: None
) -> None:
    from playwright.sync_api import expect, sync_playwright
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.portfolio import portfolio

    portfolio(today=TODAY)
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["portfolio-summary"])))
    artifact = max(found, key=lambda a: a.created or 0)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(prefect_server.ui_url(f"/v2/artifacts/artifact/{artifact.id}"))
        expect(page.get_by_text("各部门进度 Progress per department").first).to_be_visible(timeout=60_000)
        for department in ("省人力资源和社会保障厅", "省发展和改革委员会", "省教育厅"):
            expect(page.get_by_text(department).first).to_be_visible()
        page.screenshot(path=str(SCREENSHOT), full_page=False)
        browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
