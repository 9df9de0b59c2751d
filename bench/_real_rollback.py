"""The real set-up of the rollback benchmarks (bench/rollback_click.py, bench/auto_rollback.py --real).

A PostgreSQL-backed Prefect server, a PostgreSQL ledger, the demo estate on loopback (sshd hosts,
nginx gateway, the sample app), a cutover worker (``--type cutover``, warm processes, one kept for
rollbacks) on its pool, and the scheduled watch deployment running on that pool (a run every
``WATCH_EVERY_S``, each watching ``WATCH_HANDOVER_S`` longer), so the watch holds a warm process
while a rollback is measured, as in production. ``loaded()`` runs ``stress-ng --cpu 2`` during the
measurement only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from prefect import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter, FlowRunFilterState
from prefect.client.schemas.filters import FlowRunFilterStateType as StateTypes
from prefect.client.schemas.objects import StateType
from sqlalchemy.pool import NullPool

import tests.fixtures.prefect_server as _servers
from cutover.ledger import Ledger
from cutover.settings import Settings
from cutover.spec import Spec
from demo.estate import Estate
from demo.specs import secret_env
from flows.deployments import ensure_rollback_deployment, ensure_watch_deployment, ensure_work_pool
from tests._polling import wait_until
from tests.fixtures.estate import make_estate_root, start_test_estate
from tests.fixtures.ledger import POSTGRES_SERVER, create_database, drop_database
from tests.fixtures.prefect_server import kill_group, postgres_backed_server, start_cutover_worker, using_server
from tests.rollback._retained import cut_over_for_real, estate_spec, whoami
from tests.specbuilder import write_spec

_servers.START_TIMEOUT_S = 300.0  # a benchmark on a busy machine: the server may take minutes to start

POOL = "bench-rollback"
WATCH_EVERY_S, WATCH_HANDOVER_S = 300.0, 60.0  # as deployed (flows/deployments.py)
#: Seconds between rounds (``CUTOVER_BENCH_SETTLE_S``): the warm process a rollback took is replaced
#: in the background, and on a busy machine its imports take up to a minute; rollbacks back to back
#: within that minute would measure a cold start no single rollback meets.
SETTLE_S = float(os.environ.get("CUTOVER_BENCH_SETTLE_S", "60"))


@contextmanager
def pg_ledger(prefix: str) -> Iterator[Ledger]:
    """A migrated ledger on a fresh database of the local PostgreSQL (dropped on exit)."""
    admin = sa.create_engine(f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = create_database(admin, prefix=prefix)
    ledger = Ledger(f"{POSTGRES_SERVER}/{name}", digest="sm3")
    try:
        ledger.migrate()
        yield ledger
    finally:
        ledger.dispose()
        drop_database(admin, name)
        admin.dispose()


@dataclass
class RealSetup:
    work: Path
    estate: Estate
    ledger: Ledger
    settings: Settings
    watch_deployment: object

    def retained_system(self) -> tuple[Spec, object]:
        """A fresh system cut over for real (gateway → cloud), with its one-click rollback deployment."""
        spec = estate_spec(self.estate)
        write_spec(spec, self.work / "specs")
        cut_over_for_real(self.estate, self.ledger, spec, self.settings)
        return spec, ensure_rollback_deployment(spec.system.id, work_pool=POOL, link=False)

    def wait_watched(self, spec: Spec, timeout_s: float = 180.0) -> None:
        """Until the watch has probed the system (a watch run holds it)."""
        wait_until(
            lambda: self.ledger.health_history(spec.system.id),
            what=f"the watch to probe {spec.system.id}",
            timeout_s=timeout_s,
            interval_s=0.2,
        )

    def wait_rolled_back(self, spec: Spec, timeout_s: float = 300.0) -> None:
        """Until the system's rollback has finished (the ledger says rolled back, or incomplete)."""
        from cutover.ledger import LifecycleState
        from cutover.lifecycle import current_state

        done = {LifecycleState.ROLLED_BACK, LifecycleState.ROLLBACK_INCOMPLETE}
        wait_until(
            lambda: current_state(self.ledger, spec.system.id) in done,
            what=f"the rollback of {spec.system.id} to finish",
            timeout_s=timeout_s,
            interval_s=0.2,
        )

    def watch_runs_running(self) -> int:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[self.watch_deployment])),  # type: ignore[list-item]
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=StateTypes(any_=[StateType.RUNNING]))),
            )
        return len(runs)

    def wait_gateway(self, instance: str, timeout_s: float = 300.0) -> float:
        """Seconds (perf_counter) at which the gateway first answers from ``instance``."""
        wait_until(
            lambda: whoami(self.estate),
            ready=lambda who: who == instance,
            what=f"gateway → {instance}",
            timeout_s=timeout_s,
            interval_s=0.05,
        )
        return time.perf_counter()


@contextmanager
def real_setup(prefix: str) -> Iterator[RealSetup]:
    work = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    estate = start_test_estate(make_estate_root(f"{prefix}-estate-"))
    os.environ.update(secret_env(estate))
    try:
        with (
            pg_ledger(prefix.replace("-", "_")) as ledger,
            postgres_backed_server(work / "prefect") as server,
            using_server(server),
        ):
            env = {
                **os.environ,
                **server.client_env(),
                "CUTOVER_DATABASE_URL": ledger.safe_url,
                "CUTOVER_SPECS_DIR": str(work / "specs"),
                "CUTOVER_HOME": str(work / "home"),
            }
            ensure_work_pool(POOL)
            watch = ensure_watch_deployment(
                every=timedelta(seconds=WATCH_EVERY_S), handover=timedelta(seconds=WATCH_HANDOVER_S), work_pool=POOL
            )
            worker = start_cutover_worker(POOL, env, work / "worker.log")
            try:
                yield RealSetup(work, estate, ledger, Settings(home=work / "home"), watch)
            finally:
                kill_group(worker)
    finally:
        estate.stop()


@contextmanager
def loaded(on: bool) -> Iterator[None]:
    """``stress-ng --cpu 2`` (bounded by ``timeout 1800``) while the block runs, if ``on``."""
    if not on or shutil.which("stress-ng") is None:
        yield
        return
    hog = subprocess.Popen(
        ["timeout", "1800", "stress-ng", "--cpu", "2", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        time.sleep(5)  # the hogs are running before anything is measured
        yield
    finally:
        kill_group(hog, grace_s=5)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min {five:.1f})"
