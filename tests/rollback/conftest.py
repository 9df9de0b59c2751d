"""Fixtures of the rollback tests: a fast SQLite ledger, the demo secrets, test settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cutover.ledger import Ledger
from cutover.settings import Settings
from demo.estate import Estate
from demo.specs import secret_env
from tests.rollback._retained import sqlite_ledger


@pytest.fixture
def rb_ledger(tmp_path: Path, sqlite_template: Path) -> Iterator[Ledger]:
    """A fresh SQLite ledger for one test."""
    ledger = sqlite_ledger(tmp_path, sqlite_template)
    yield ledger
    ledger.dispose()


@pytest.fixture
def demo_secrets(estate: Estate, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo spec's database URLs, in the environment the steps resolve secrets from."""
    for name, value in secret_env(estate).items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a home of the test's own."""
    return Settings(home=tmp_path / "home")
