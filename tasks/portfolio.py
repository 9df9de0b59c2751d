"""The portfolio in the Prefect UI: Markdown artifacts the office reads next to the runs.

:func:`publish_portfolio` creates (a new version of) each artifact: ``portfolio-summary`` (the
counts and a progress bar per department), ``portfolio-overdue``, ``portfolio-exemptions``,
``portfolio-finance`` (the two lists for the finance department) and ``portfolio-retention``
(windows ending soon, decommissions due). Long lists are cut at :data:`MAX_ROWS` rows (the
workbook, ``cutover portfolio --xlsx``, has them all).
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import replace
from typing import Any
from uuid import UUID

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from cutover.portfolio import Portfolio, Tally
from cutover.portfolio_views import View, departments, scope, views

__all__ = ["ARTIFACT_KEYS", "MAX_ROWS", "portfolio_markdown", "progress_bar", "publish_portfolio"]

MAX_ROWS = 300
_BAR = 20
#: Each artifact: its key, its title, and the views it shows.
ARTIFACT_KEYS = {
    "portfolio-summary": ("迁移进度总览 Portfolio summary", ("summary",)),
    "portfolio-overdue": ("逾期 Overdue", ("overdue",)),
    "portfolio-exemptions": ("不迁移认定 Exemptions", ("exemptions",)),
    "portfolio-finance": ("经费依据 Evidence for the finance department", ("finance-on-cloud", "finance-stop-payment")),
    "portfolio-retention": ("保留期与服务退出 Retention and decommissions", ("retention", "decommission")),
}


def progress_bar(tally: Tally) -> str:
    """``████████░░░░░░░░░░░░ 40%``: the settled share of the department's systems."""
    filled = round(tally.progress * _BAR)
    return f"`{'█' * filled}{'░' * (_BAR - filled)}` {tally.progress:.0%}"


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(view: View, limit: int = MAX_ROWS) -> list[str]:
    lines = [f"### {view.title} ({len(view.rows)})", ""]
    if view.note:
        lines += [f"_{view.note}_", ""]
    if not view.rows:
        return [*lines, "无 none", ""]
    lines += ["| " + " | ".join(view.headers) + " |", "|" + "---|" * len(view.headers)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in view.rows[:limit]]
    if len(view.rows) > limit:
        lines += ["", f"… {len(view.rows) - limit} more: `cutover portfolio --xlsx FILE` writes them all"]
    return [*lines, ""]


def _progress(portfolio: Portfolio) -> list[str]:
    """The departments with their progress bars, then the full counts by stage."""
    lines = [
        "### 各部门进度 Progress per department",
        "",
        "| 部门 department | 进度 progress | 已完成 settled | 逾期 overdue |",
    ]
    lines.append("|---|---|---|---|")
    for tally in [*portfolio.departments, portfolio.overall]:
        lines.append(
            f"| {_cell(tally.department)} | {progress_bar(tally)} | {tally.settled}/{tally.total} | {tally.overdue} |"
        )
    return [*lines, ""]


def portfolio_markdown(portfolio: Portfolio) -> dict[str, str]:
    """The Markdown of each artifact, by key."""
    by_key = {view.key: view for view in views(portfolio)}
    texts = {}
    for key, (title, shown) in ARTIFACT_KEYS.items():
        lines = [f"# {title}", "", f"{scope(portfolio)}", ""]
        if key == "portfolio-summary":
            counts = replace(by_key["summary"], title="各阶段数量 Systems by stage, and what needs attention")
            lines += [*_progress(portfolio), *_table(counts), *_table(departments(portfolio))]
        else:
            for name in shown:
                lines += _table(by_key[name])
        texts[key] = "\n".join(lines)
    return texts


@task(name="publish-portfolio", cache_policy=NO_CACHE)
def publish_portfolio(portfolio: Portfolio) -> dict[str, UUID]:
    """Create a new version of each portfolio artifact; their ids by key."""
    ids = {}
    for key, markdown in portfolio_markdown(portfolio).items():
        title = ARTIFACT_KEYS[key][0]
        created = create_markdown_artifact(  # type: ignore[call-arg]
            markdown=markdown, key=key, description=f"{title} — {scope(portfolio)}", _sync=True
        )
        ids[key] = _created(created)
    return ids


def _created(result: UUID | Coroutine[Any, Any, UUID]) -> UUID:
    if isinstance(result, UUID):
        return result
    result.close()
    raise TypeError("Prefect returned a coroutine although _sync=True was passed; this Prefect version is unsupported")
