"""Shared test configuration: fixtures that start real servers live in tests/fixtures/.

The suite runs split across processes (pytest-xdist, ``-n 4 --dist loadscope``: a module's tests
stay in one process, so a module-scoped server is started once). Nothing the processes could
share is fixed: estate addresses and ports are free ones, PostgreSQL databases are uuid-named,
and each process gets its own ``CUTOVER_HOME`` and ``PREFECT_HOME`` below, so a test that leaves
them unset never writes into another process's ledger or Prefect profile (or the user's own).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Set before the fixtures below import Prefect, which reads PREFECT_HOME once, at import.
_HOME = Path(tempfile.mkdtemp(prefix="cutover-tests-"))
os.environ.setdefault("CUTOVER_HOME", str(_HOME / "cutover"))
os.environ.setdefault("PREFECT_HOME", str(_HOME / "prefect"))

pytest_plugins = [
    "tests.fixtures.databases",
    "tests.fixtures.pg_cluster",
    "tests.fixtures.ledger",
    "tests.fixtures.estate",
    "tests.fixtures.prefect_server",
    "tests.fixtures.httpapp",
    "tests.fixtures.totp",
]


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the process's home again."""
    shutil.rmtree(_HOME, ignore_errors=True)


#: The modules that take longest, longest first. They are handed out first, so no process is left
#: running one of them alone at the end (a module's tests stay in one process; the order of the
#: tests inside a module is kept).
LONGEST_FIRST = (
    "tests/worker/test_worker.py",
    "tests/tasks/test_signoff_deadline.py",
    "tests/tasks/test_signoff_terminal.py",
    "tests/cli/test_terminal_path.py",
    "tests/tasks/test_signoff_flow.py",
    "tests/flows/test_deployments.py",
    "tests/test_readme_production.py",
    "tests/flows/test_replication_way_back.py",
    "tests/ui/test_signoff_ui.py",
    "tests/flows/test_saga.py",
    "tests/flows/test_process_worker.py",
    "tests/flows/test_rollback.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the longest modules first (see LONGEST_FIRST), everything else after them in its order."""
    rank = {path: n for n, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))
