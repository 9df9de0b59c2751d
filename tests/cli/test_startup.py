"""The commands that do not talk to Prefect start without importing it (issue 17: a fast `cutover`).

Each test runs the commands in a fresh Python process over an empty ledger in ``tmp_path`` and
then looks at ``sys.modules`` there: Prefect, the flows and the worker must not have been imported,
nor, by the commands that need none of them, the HTTP client, the workbook writer, the PostgreSQL
driver or the Markdown renderer (each a tenth of a second or more at every start).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cutover.plan import TITLE

SPECS = Path(__file__).resolve().parents[2] / "cutover_specs"
HEAVY = ("prefect", "flows", "worker")
NOT_AT_START = ("httpx", "openpyxl", "psycopg", "rich.markdown")

# Runs each command line in this process, as `cutover` would, then prints which heavy modules were imported.
_PROBE = """
import json, sys
import cli
app = cli.register_commands()
codes = []
for args in json.loads(sys.argv[1]):
    try:
        app(args, prog_name="cutover")
    except SystemExit as exit_:
        codes.append(exit_.code)
wanted = set(json.loads(sys.argv[2]))
heavy = sorted(name for name in sys.modules if name in wanted or name.split(".")[0] in wanted)
print(json.dumps({"codes": codes, "heavy": heavy}))
"""


def run_in_one_process(tmp_path: Path, *commands: list[str], heavy: tuple[str, ...] = HEAVY) -> dict[str, list[object]]:
    env = os.environ | {"CUTOVER_HOME": str(tmp_path / "home"), "CUTOVER_SPECS_DIR": str(SPECS)}
    env.pop("CUTOVER_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(commands), json.dumps(heavy)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result: dict[str, list[object]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_help_and_the_ledger_commands_never_import_prefect_the_flows_or_the_worker(tmp_path: Path) -> None:
    result = run_in_one_process(
        tmp_path,
        ["--help"],
        ["portfolio", "--help"],
        ["status"],
        ["portfolio", "--today", "2020-01-02"],
        ["portfolio", "--xlsx", str(tmp_path / "portfolio.xlsx")],
        ["approver", "list"],
        ["exemption", "list"],
        ["audit", "verify"],
        ["audit", "export", "--out", str(tmp_path / "audit.csv")],
    )
    assert result["heavy"] == []
    assert len(result["codes"]) == 9


def test_the_spec_and_plan_commands_never_import_prefect_the_flows_or_the_worker(tmp_path: Path) -> None:
    result = run_in_one_process(
        tmp_path,
        ["validate", str(SPECS)],
        ["schema"],
        ["plan", str(SPECS), "--out", str(tmp_path / "plan")],
        ["plan", "import", str(tmp_path / "plan" / f"{TITLE}.xlsx")],
        ["status"],
    )
    assert result["heavy"] == []
    assert result["codes"] == [0, 0, 0, 0, 0]


def test_status_and_the_portfolio_in_the_terminal_import_no_http_client_workbook_driver_or_markdown(
    tmp_path: Path,
) -> None:
    result = run_in_one_process(
        tmp_path,
        ["status"],
        ["portfolio", "--today", "2020-01-02"],
        ["approver", "list"],
        heavy=NOT_AT_START,
    )
    assert result["heavy"] == []
    assert result["codes"] == [0, 0, 0]
