"""Both approvers sign a suspended run's form in the Prefect v2 UI, driven by Chromium.

PyPI ``playwright`` drives Debian's ``/usr/bin/chromium`` (never ``playwright install``). The
filled form is saved to ``docs/img/signoff-form.png`` for the README.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.schemas.objects import StateType

from cutover.ledger import Party
from tasks.report import record_published, render_report, summarize
from tests.fixtures.prefect_server import REPO_ROOT, PrefectServer
from tests.tasks._signoff_estate import (
    Estate,
    make_estate,
    served_deployment,
    sqlite_copy,
    start_run,
    wait_final,
    wait_for_form,
)
from tests.tasks.test_report import evidence

CHROMIUM = Path("/usr/bin/chromium")
# The README's screenshot is refreshed only on request (CUTOVER_SCREENSHOTS=1); otherwise a tmp file.
SCREENSHOT = (
    REPO_ROOT / "docs" / "img" / "signoff-form.png"
    if os.environ.get("CUTOVER_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "cutover-signoff-form.png"
)

pytestmark = [
    pytest.mark.timeout(400),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium"),
]

if CHROMIUM.exists():
    from playwright.sync_api import Browser, Page, expect, sync_playwright


@pytest.fixture(scope="module")
def ui_deployment(
    prefect_server_session: PrefectServer, totp_key: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    yield from served_deployment(prefect_server_session, totp_key, tmp_path_factory.mktemp("ui-runner"))


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield instance
        instance.close()


def _open_form(page: Page, server: PrefectServer, flow_run_id: UUID) -> None:
    page.goto(server.ui_url(f"/v2/runs/flow-run/{flow_run_id}"))
    page.get_by_role("button", name="Open menu").first.click()
    page.get_by_role("menuitem", name="Resume").click()
    expect(page.get_by_role("dialog", name="Resume Flow Run")).to_be_visible()


def _fill(page: Page, estate: Estate, approver_id: str, run: UUID) -> None:
    """Fill the form as an approver does: the statement's lines, and the signature made on their machine."""
    answer = estate.signature_input(approver_id, run=run, comment=f"同意 — {approver_id}")
    dialog = page.get_by_role("dialog", name="Resume Flow Run")
    dialog.get_by_role("textbox", name="Approver id 审批人账号").fill(approver_id, timeout=15_000)
    dialog.get_by_role("button", name="Select Decision 决定").click()
    page.get_by_role("option", name="approve", exact=True).click()
    dialog.get_by_role("textbox", name="Comment 意见").fill(answer["comment"])
    dialog.get_by_role("textbox", name="Signed at 签署时间").fill(answer["signed_at"])
    dialog.get_by_role("textbox", name="Signature 签名 (SM2, base64)").fill(answer["signature"])


def _shows_the_numbers_and_no_broken_image(page: Page) -> None:
    dialog = page.get_by_role("dialog", name="Resume Flow Run")
    for text in ("p95", "failure ratio", "Trial run", "openssl pkeyutl -sign", "distid:1234567812345678"):
        expect(dialog.get_by_text(text, exact=False).first).to_be_visible(timeout=15_000)
    broken = page.evaluate("[...document.images].filter(i => i.complete && i.naturalWidth === 0).map(i => i.src)")
    assert broken == [], f"broken images on the form: {broken}"


def _with_a_real_report(estate: Estate, tmp_path: Path) -> None:
    """Replace the estate's one-line report with a rendered one whose key numbers the form shows."""
    facts = evidence(tmp_path)
    digest = estate.new_report(render_report(facts).markdown)
    summary = summarize(facts, digest, trial_run_minimum=timedelta(days=7))
    record_published(estate.ledger, estate.system_id, summary, artifact_id=None)


def _submit(page: Page, flow_run_id: UUID) -> None:
    dialog = page.get_by_role("dialog", name="Resume Flow Run")
    with page.expect_response(lambda r: r.url.endswith(f"/flow_runs/{flow_run_id}/resume")) as answer:
        dialog.get_by_role("button", name="Resume").click()
    response = answer.value
    assert response.status == 201, f"resume refused: {response.status} {response.text()}"


def test_both_parties_sign_in_the_v2_ui_and_the_run_resumes(
    prefect_server: PrefectServer,
    ui_deployment: str,
    browser: Browser,
    tmp_path: Path,
    sqlite_template: Path,
    totp_key: str,
) -> None:
    estate = make_estate(tmp_path, sqlite_copy(tmp_path, sqlite_template), totp_key)
    _with_a_real_report(estate, tmp_path)
    run = start_run(ui_deployment, estate.parameters())
    page = browser.new_page(viewport={"width": 1280, "height": 1400})

    wait_for_form(run, 1)
    _open_form(page, prefect_server, run)
    _shows_the_numbers_and_no_broken_image(page)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.evaluate("document.querySelectorAll('[role=dialog] *').forEach(e => { e.scrollTop = 0; e.scrollLeft = 0; })")
    page.screenshot(path=str(SCREENSHOT))  # the top of the form: the report's numbers, as an approver first sees them
    _fill(page, estate, estate.department, run)
    _submit(page, run)

    wait_for_form(run, 2)
    _open_form(page, prefect_server, run)
    _fill(page, estate, estate.cloud, run)
    _submit(page, run)

    final = wait_final(run)
    assert final.state is not None and final.state.type == StateType.COMPLETED, final.state
    rows = estate.ledger.signatures_for(estate.system_id)
    assert [(r.party, r.approver_id) for r in rows] == [
        (Party.DEPARTMENT, estate.department),
        (Party.CLOUD_PROVIDER, estate.cloud),
    ]
    estate.ledger.dispose()
