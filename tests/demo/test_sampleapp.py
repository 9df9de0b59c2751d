"""The sample application (社会保险查询服务): endpoints, fault knobs, freeze, seeding, data sync."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from starlette.types import ASGIApp

from demo.datasync import _copy_rows, copy_database
from demo.sampleapp.app import create_app
from demo.sampleapp.db import TABLES, make_engine
from demo.sampleapp.seed import seed

pytestmark = pytest.mark.timeout(120)  # a backstop on a busy machine


class Client:
    """Calls the ASGI app in-process through httpx, one short event loop per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def request(self, method: str, url: str, **options: object) -> httpx.Response:
        """Send one request and return the complete response."""

        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(method, url, **options)  # type: ignore[arg-type]

        return asyncio.run(call())

    def get(self, url: str, **options: object) -> httpx.Response:
        """GET ``url``."""
        return self.request("GET", url, **options)

    def post(self, url: str, **options: object) -> httpx.Response:
        """POST to ``url``."""
        return self.request("POST", url, **options)


def _rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, in primary-key order."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key))] for t in TABLES}
    finally:
        engine.dispose()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A seeded SQLite database with 50 insured persons."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    seed(url, 50)
    return url


@pytest.fixture
def client(db_url: str, tmp_path: Path) -> Client:
    """The app named ``legacy`` over the seeded database, freeze flag in ``tmp_path``."""
    return Client(create_app("legacy", db_url, state_dir=tmp_path))


def test_seeding_twice_with_the_same_seed_gives_identical_rows(tmp_path: Path) -> None:
    first, second, other = (f"sqlite:///{tmp_path / name}" for name in ("a.db", "b.db", "c.db"))
    assert seed(first, 200) == {"insured": 200, "payments": 200}
    seed(second, 200)
    seed(other, 200, seed=7)
    assert _rows(first) == _rows(second)
    assert _rows(first) != _rows(other)


def test_seed_command_line_creates_and_fills_the_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "demo.sampleapp.seed", "--db", url, "--rows", "30"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["insured=30", "payments=30"]


def test_insured_by_id_is_json_and_a_missing_id_is_404(client: Client) -> None:
    person = client.get("/api/insured/7").json()
    assert set(person) == {"id", "name", "city", "balance"} and person["id"] == 7
    assert client.get("/api/insured/999").status_code == 404


def test_insured_list_filters_by_city_and_honours_limit(client: Client) -> None:
    city = client.get("/api/insured/1").json()["city"]
    listed = client.get("/api/insured", params={"city": city, "limit": 3}).json()
    assert 1 <= listed["count"] <= 3
    assert {p["city"] for p in listed["items"]} == {city}
    assert client.get("/api/insured", params={"limit": "many"}).status_code == 400


def test_payment_is_recorded_and_added_to_the_balance(client: Client) -> None:
    before = client.get("/api/insured/5").json()["balance"]
    created = client.post("/api/payments", json={"insured_id": 5, "amount": 250})
    assert created.status_code == 201 and created.json()["amount"] == 250
    assert client.get("/api/insured/5").json()["balance"] == before + 250
    assert client.get("/api/stats").json() == {"name": "legacy", "insured": 50, "payments": 51}


@pytest.mark.parametrize("body", [{"insured_id": 5}, {"insured_id": 5, "amount": -1}, "not json"])
def test_a_malformed_payment_is_refused_with_400(client: Client, body: object) -> None:
    assert client.post("/api/payments", json=body).status_code == 400


def test_payment_for_an_unknown_person_is_404(client: Client) -> None:
    assert client.post("/api/payments", json={"insured_id": 999, "amount": 1}).status_code == 404


def test_whoami_names_the_instance(client: Client) -> None:
    assert client.get("/api/whoami").json() == {"name": "legacy", "service": "社会保险查询服务", "frozen": False}


def test_freeze_refuses_writes_with_503_and_reads_still_work(client: Client, tmp_path: Path) -> None:
    assert client.post("/admin/freeze").json()["frozen"] is True
    assert (tmp_path / "frozen").exists()
    assert client.post("/api/payments", json={"insured_id": 1, "amount": 1}).status_code == 503
    assert client.get("/api/insured/1").status_code == 200
    client.post("/admin/unfreeze")
    assert client.post("/api/payments", json={"insured_id": 1, "amount": 1}).status_code == 201


def test_a_freeze_flag_file_written_by_a_plain_command_freezes_writes(client: Client, tmp_path: Path) -> None:
    (tmp_path / "frozen").touch()
    assert client.post("/api/payments", json={"insured_id": 1, "amount": 1}).status_code == 503
    assert client.get("/api/whoami").json()["frozen"] is True


def test_healthz_is_ok_until_ill_health_is_injected(client: Client) -> None:
    assert (client.get("/healthz").status_code, client.get("/healthz").text) == (200, "ok")
    assert client.post("/admin/faults", json={"healthy": False}).json()["healthy"] is False
    assert client.get("/healthz").status_code == 503
    client.post("/admin/faults", json={"healthy": True})
    assert client.get("/healthz").status_code == 200


def test_injected_errors_and_latency_hit_the_api(client: Client) -> None:
    client.post("/admin/faults", json={"error_ratio": 1.0, "latency_ms": 100})
    started = time.monotonic()
    assert client.get("/api/insured/1").status_code == 500
    assert time.monotonic() - started >= 0.1
    assert client.get("/admin/faults").json() == {"latency_ms": 100, "error_ratio": 1.0, "healthy": True}


@pytest.mark.parametrize("body", [{"error_ratio": 2}, {"latency_ms": -5}, {"typo": 1}])
def test_invalid_fault_settings_are_refused(client: Client, body: dict[str, object]) -> None:
    assert client.post("/admin/faults", json=body).status_code == 400


def test_healthz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'app.db'}"
    answer = Client(create_app("cloud", url)).get("/healthz")
    assert answer.status_code == 503 and "database unreachable" in answer.text


def test_copy_database_makes_an_equal_copy_via_backup_and_via_rows(db_url: str, tmp_path: Path) -> None:
    backup, rows = f"sqlite:///{tmp_path / 'backup.db'}", f"sqlite:///{tmp_path / 'rows.db'}"
    seed(rows, 5, seed=1)  # the row copy must replace what was there
    assert copy_database(db_url, backup) == {"insured": 50, "payments": 50}
    _copy_rows(db_url, rows)
    assert _rows(backup) == _rows(db_url) == _rows(rows)


@pytest.mark.postgres
def test_seed_copy_and_payments_work_on_postgresql(make_pg_database: Callable[[], str], db_url: str) -> None:
    pg = make_pg_database()
    seed(pg, 50)
    assert _rows(pg) == _rows(db_url)
    copy_database(db_url, pg)
    app = Client(create_app("cloud", pg))
    created = app.post("/api/payments", json={"insured_id": 2, "amount": 10})
    assert created.status_code == 201 and created.json()["id"] == 51
    assert app.get("/api/stats").json()["payments"] == 51
