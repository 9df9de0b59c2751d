"""The README's production set-up, run as written (the block after its ``production-setup`` marker)
against a fresh Prefect server it starts itself: README and test cannot drift apart."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from prefect import get_client

from cutover.plan import TITLE
from cutover.spec import Spec
from flows.deployments import DEPLOYMENTS
from flows.recovery import CRASH_ZOMBIES, RESUME_CRASHED
from tests._polling import wait_until
from tests.fixtures.prefect_server import FAST_SETTINGS, REPO_ROOT, free_port, fresh_postgres_database, kill_group
from tests.specbuilder import base_spec, write_spec

pytestmark = pytest.mark.timeout(900)  # a backstop on a busy machine; the script ends when its steps do

MARKER = "<!-- production-setup:"
EXPORT = re.compile(r"^export (\w+)=")


def production_block() -> str:
    """The shell block that follows the marker in README.md."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    after = readme[readme.index(MARKER) :]
    match = re.search(r"```sh\n(.*?)```", after, re.DOTALL)
    assert match is not None, "README.md: no ```sh block after the production-setup marker"
    return match.group(1)


def with_our_values(block: str, values: dict[str, str]) -> str:
    """The block with each ``export NAME=example`` given this test's value (every name must be known)."""
    lines = []
    for line in block.splitlines():
        found = EXPORT.match(line)
        if found is not None:
            name = found.group(1)
            assert name in values, f"README exports {name}: give this test a value for it"
            line = f"export {name}={values[name]!r}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_the_readmes_production_set_up_runs_as_written_on_a_fresh_server(tmp_path: Path) -> None:
    write_spec(Spec.model_validate(base_spec()), tmp_path / "specs")
    port = free_port()
    with fresh_postgres_database() as prefect_db:
        values = {
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": prefect_db,
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "CUTOVER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
            "CUTOVER_SPECS_DIR": str(tmp_path / "specs"),
        }
        script = with_our_values(production_block(), values)
        env = {
            **os.environ,
            **FAST_SETTINGS,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PREFECT_HOME": str(tmp_path / "prefect-home"),
            "PREFECT_SERVER_API_PORT": str(port),
            "CUTOVER_HOME": str(tmp_path / "home"),
        }
        env.pop("PREFECT_API_URL", None)
        log = tmp_path / "production.log"
        with log.open("wb") as output:
            shell = subprocess.Popen(
                ["bash", "-euo", "pipefail", "-c", script],
                env=env,
                cwd=tmp_path,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            code = shell.wait(timeout=600)
            assert code == 0, log.read_text(errors="replace")[-4000:]
            assert_set_up(values["PREFECT_API_URL"], log.read_text(errors="replace"))
            assert (tmp_path / "plan" / f"{TITLE}.csv").exists()
        finally:
            kill_group(shell)  # the server and the worker the block left running in the background


def assert_set_up(api_url: str, output: str) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    assert "work pool 'cutover-process' (type cutover): created" in output, output
    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        for deployment in DEPLOYMENTS.values():
            full_name = f"{deployment.flow().name}/{deployment.name}"
            assert client.read_deployment_by_name(full_name).work_pool_name == "cutover-process"
        for automation in (CRASH_ZOMBIES, RESUME_CRASHED):
            assert len(client.read_automations_by_name(automation)) == 1
        wait_until(
            lambda: client.read_workers_for_work_pool("cutover-process"),
            what="the README's worker to come online",
            timeout_s=90,
        )
