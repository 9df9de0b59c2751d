"""`cutover preflight SYSTEM` against the real estate: the table, exit 0 when all pass, exit 1 naming a failure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import cli
from cutover.settings import get_settings
from cutover.spec import Spec
from demo.estate import Estate
from demo.specs import demo_spec, secret_env
from tests.specbuilder import unique_id, write_spec

runner = CliRunner()


@pytest.fixture
def specs_dir(estate: Estate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty specs directory, the demo secrets in the environment, and a home of the test's own."""
    for name, value in secret_env(estate).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CUTOVER_SPECS_DIR", str(tmp_path / "specs"))
    monkeypatch.setenv("CUTOVER_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield tmp_path / "specs"
    get_settings.cache_clear()


def a_system(estate: Estate, specs_dir: Path, **host_changes: dict[str, Any]) -> str:
    data = demo_spec(estate, system_id=unique_id("pf"))
    for host, changes in host_changes.items():
        data["hosts"][host].update(changes)
    spec = Spec.model_validate(data)
    write_spec(spec, specs_dir)
    return spec.system.id


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli.register_commands(), list(args))
    return result.exit_code, result.output


def test_preflight_prints_every_check_and_exits_zero_when_all_pass(estate: Estate, specs_dir: Path) -> None:
    system = a_system(estate, specs_dir)

    code, output = invoke("preflight", system)

    assert code == 0, output
    assert f"preflight of {system}" in output
    for kind in ("host", "program", "secret", "database", "url", "readiness"):
        assert f"│ {kind} " in output
    assert "failed" not in output and "all " in output and "checks passed" in output


def test_preflight_exits_one_naming_the_failed_check(estate: Estate, specs_dir: Path) -> None:
    system = a_system(estate, specs_dir, cloud={"host_key": "SHA256:" + "C" * 43})

    code, output = invoke("preflight", system)

    assert code == 1, output
    assert "failed" in output and "not checked" in output  # the host, then the programs on it
    error = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "checks failed: host cloud" in error[0] and "nothing was changed" in error[0]


def test_preflight_of_an_unknown_system_is_one_line_without_a_traceback(specs_dir: Path) -> None:
    specs_dir.mkdir(parents=True)

    code, output = invoke("preflight", "no-such-system")

    assert code == 1, output
    assert output.startswith("error: no spec for system 'no-such-system'") and "Traceback" not in output
