"""Fixtures of the sign-off tests that run on a real Prefect server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.prefect_server import PrefectServer
from tests.tasks._signoff_estate import Estate, make_estate, served_deployment, sqlite_copy


@pytest.fixture(scope="module")
def deployment_id(
    prefect_server_session: PrefectServer, totp_key: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The served signoff-demo deployment shared by a module's Prefect tests."""
    yield from served_deployment(prefect_server_session, totp_key, tmp_path_factory.mktemp("runner"))


@pytest.fixture
def served(
    prefect_server: PrefectServer, deployment_id: str, tmp_path: Path, sqlite_template: Path, totp_key: str
) -> Iterator[tuple[str, Estate]]:
    """The deployment id and a fresh SQLite estate the deployed flow can reach."""
    built = make_estate(tmp_path, sqlite_copy(tmp_path, sqlite_template), totp_key)
    yield deployment_id, built
    built.ledger.dispose()
