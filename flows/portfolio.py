"""The ``portfolio`` flow: every day, the office's view of the programme as Prefect artifacts.

Deployed as ``portfolio/portfolio`` on a daily schedule (flows/deployments.py); it reads the
ledger, computes the portfolio (:mod:`cutover.portfolio`) for today (or ``today``) against the
programme deadline (``CUTOVER_PROGRAMME_DEADLINE`` unless ``deadline`` is given) and publishes
the Markdown artifacts of :mod:`tasks.portfolio`.
"""

from __future__ import annotations

from datetime import date

from prefect import flow
from prefect.logging import get_run_logger

from cutover import portfolio as portfolio_
from cutover.runtime import open_ledger
from cutover.settings import get_settings
from tasks.portfolio import publish_portfolio

__all__ = ["portfolio"]


@flow(name="portfolio", persist_result=False)
def portfolio(department: str | None = None, today: date | None = None, deadline: date | None = None) -> dict[str, int]:
    """Publish the portfolio (one department's, or all) as artifacts; returns the counts of the summary."""
    settings = get_settings()
    built = portfolio_.build(
        open_ledger(settings),
        today=today or date.today(),
        deadline=deadline or settings.programme_deadline,
        soon_days=settings.portfolio_soon_days,
        department=department,
    )
    publish_portfolio(built)
    counts = {
        "systems": built.overall.total,
        "settled": built.overall.settled,
        "overdue": len(built.overdue),
        "stop_payment": len(built.stop_payment),
    }
    get_run_logger().info(
        "portfolio of %s: %d systems, %d settled, %d overdue, %d for maintenance payments to stop",
        department or "all departments",
        *counts.values(),
    )
    return counts
