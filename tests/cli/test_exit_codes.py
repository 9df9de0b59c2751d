"""Every error of the `cutover` command is one line `error: ...` with the exit code of the README's table."""

from __future__ import annotations

import inspect
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from typer.testing import CliRunner

import cli
from cli._console import EXIT_CODES, ExitCode
from cutover import errors, signoff_store
from cutover.ledger import Ledger
from cutover.lifecycle import register_system
from cutover.runtime import find_spec, open_ledger, register
from cutover.settings import get_settings
from cutover.spec import Spec
from tests.rollback._retained import retained_on_paper
from tests.specbuilder import base_spec, unique_id, write_spec

ROOT = Path(__file__).resolve().parents[2]
UNKNOWN = unique_id("no-such-system")
KNOWN = "hrss-social-insurance"  # one of the example specs
UNREACHABLE = "http://127.0.0.1:9/api"  # the discard port: no Prefect server answers there


def _nothing(_ledger: Ledger, _specs: Path) -> None:
    pass


def _planned(ledger: Ledger, specs: Path) -> None:
    register(ledger, find_spec(KNOWN)[1], actor="test")


def _broken_spec_first(_ledger: Ledger, specs: Path) -> None:
    text = (specs / f"{KNOWN}.yaml").read_text(encoding="utf-8")
    (specs / "aaa-broken.yaml").write_text(text.replace("months: 3", "months: 1"), encoding="utf-8")


def _retained_whose_rollback_fails(ledger: Ledger, specs: Path) -> None:
    spec = Spec.model_validate(base_spec("retained"))  # its rollback step checks http://127.0.0.1:9/
    write_spec(spec, specs)
    retained_on_paper(ledger, spec)


def _waiting_for_a_signature(ledger: Ledger, _specs: Path) -> None:
    register_system(ledger, system_id=KNOWN, name="社保", department="省人社厅", disposition="migrate", actor="test")
    detail = {"flow_run_id": str(uuid4()), "n": 1, "key": "form-1", "report_digest": "d1"}
    signoff_store.record(ledger, KNOWN, signoff_store.REQUESTED, detail)


@dataclass(frozen=True)
class Case:
    """A command line, what the ledger and specs hold first, and the exit code it must end with."""

    args: list[str]
    code: ExitCode
    given: Callable[[Ledger, Path], None] = _nothing
    env: dict[str, str] = field(default_factory=dict)
    prefect_api: str | None = UNREACHABLE  # an unknown id is refused before the server is asked


CASES = {
    "status-done": Case(["status"], ExitCode.OK),
    "rollback-unknown-system": Case(["rollback", UNKNOWN], ExitCode.INVALID),
    "decommission-unknown-system": Case(["decommission", UNKNOWN], ExitCode.INVALID),
    "sign-unknown-system": Case(["sign", UNKNOWN, "--as", "wang.li"], ExitCode.INVALID),
    "rollback-invalid-spec": Case(["rollback", KNOWN], ExitCode.INVALID, given=_broken_spec_first),
    "sign-missing-option": Case(["sign", KNOWN], ExitCode.USAGE),
    "no-such-command": Case(["no-such-command"], ExitCode.USAGE),
    "decommission-not-retained": Case(["decommission", KNOWN], ExitCode.REFUSED, given=_planned),
    "rollback-incomplete": Case(
        ["rollback", "retained"], ExitCode.FAILED, given=_retained_whose_rollback_fails, prefect_api=None
    ),
    "ledger-unreachable": Case(
        ["status"], ExitCode.CONFIG, env={"CUTOVER_DATABASE_URL": "sqlite:////nonexistent-dir/ledger.db"}
    ),
    "ledger-url-unparsable": Case(["status"], ExitCode.CONFIG, env={"CUTOVER_DATABASE_URL": "not-a-url"}),
    "setting-invalid": Case(["status"], ExitCode.CONFIG, env={"CUTOVER_DIGEST": "md5"}),
    "prefect-api-unreachable": Case(
        ["sign", KNOWN, "--as", "wang.li"], ExitCode.CONFIG, given=_waiting_for_a_signature
    ),
}


@pytest.fixture
def specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private SQLite ledger under CUTOVER_HOME and a copy of the example specs."""
    directory = tmp_path / "specs"
    shutil.copytree(ROOT / "cutover_specs", directory, ignore=shutil.ignore_patterns("*.json"))
    monkeypatch.setenv("CUTOVER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CUTOVER_SPECS_DIR", str(directory))
    for name in ("CUTOVER_DATABASE_URL", "CUTOVER_DIGEST"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield directory
    get_settings.cache_clear()


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_outcome_exits_with_its_code_and_an_error_is_one_line(
    case: Case, specs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = open_ledger()
    try:
        case.given(ledger, specs)
    finally:
        ledger.dispose()
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()

    with temporary_settings(updates={PREFECT_API_URL: case.prefect_api}):
        result = CliRunner().invoke(cli.register_commands(), case.args)

    assert result.exit_code == case.code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    if case.code is ExitCode.OK:
        assert result.stderr == ""
    else:
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr


def test_every_error_in_the_exception_tree_has_an_exit_code() -> None:
    defined = [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.CutoverError) and cls.__module__ == errors.__name__
    ]
    assert errors.UnknownSystem in defined
    assert [cls.__name__ for cls in defined if cls not in EXIT_CODES] == []


README_MEANINGS = {  # the first words of each row of the README's table, by code
    ExitCode.OK: "done",
    ExitCode.INVALID: "invalid:",
    ExitCode.USAGE: "bad command line",
    ExitCode.REFUSED: "refused:",
    ExitCode.FAILED: "failed:",
    ExitCode.CONFIG: "configuration:",
}


def _readme_exit_codes() -> dict[int, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("| code | meaning |") :].split("\n\n", 1)[0]
    rows = (line.strip("|").split("|", 1) for line in table.splitlines()[2:])
    return {int(code): meaning.strip() for code, meaning in rows}


def test_the_readmes_exit_code_table_lists_each_code_of_the_command_with_its_meaning() -> None:
    readme = _readme_exit_codes()
    assert sorted(readme) == [int(code) for code in ExitCode]
    for code, words in README_MEANINGS.items():
        assert readme[int(code)].startswith(words), (code, readme[int(code)])


def test_each_exit_code_of_the_readme_is_shown_by_a_real_command_above() -> None:
    shown = {case.code for case in CASES.values()}
    assert shown == set(ExitCode)


def test_cutover_rollback_says_what_it_carries_back_before_it_starts(specs: Path) -> None:
    ledger = open_ledger()
    try:
        _retained_whose_rollback_fails(ledger, specs)
    finally:
        ledger.dispose()

    with temporary_settings(updates={PREFECT_API_URL: None}):
        result = CliRunner().invoke(cli.register_commands(), ["rollback", "retained"])

    first = result.stdout.splitlines()[0]
    assert first.startswith("this rollback carries back no database the spec declares"), result.stdout
