"""A warm flow-run process: imports the heavy libraries, then waits for one flow run to execute.

The cutover worker (:mod:`worker`) keeps one of these started ahead of time. A new Python
process spends 4-6 s importing Prefect, SQLAlchemy, paramiko and cryptography before a flow run's
first line; this one has done that while idle. When a run arrives the worker writes one JSON line
to its stdin — ``{"cwd": ..., "env": {...}, "quiet": false}`` — and the process becomes exactly what
``python -m prefect.engine`` would have been: same environment, same working directory, same
engine entry point, a normal interpreter exit (so Prefect's log and event workers drain).

Only third-party libraries are preloaded: this project's own modules are imported by the run
itself, so a changed flow or task is picked up by the next run as with a new process. An empty
line or end of input (the worker stopping or recycling it) ends the process with status 0.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import warnings

__all__ = ["PRELOAD", "main"]

# Third-party modules the flows of this project import, directly or at run time. Kept complete by
# tests/cutover/test_worker.py (importing the flows after these loads no further third-party package).
PRELOAD: tuple[str, ...] = (
    "prefect.engine",
    "prefect.flow_engine",
    "prefect.artifacts",
    "prefect.cache_policies",
    "prefect.deployments",
    "prefect.deployments.steps",
    "prefect.deployments.runner",
    "prefect.deployments.flow_runs",
    "prefect.input",
    "prefect.runtime",
    "prefect.utilities.annotations",
    "sqlalchemy",
    "sqlalchemy.orm",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.postgresql",
    "alembic.command",  # the ledger's schema check (cutover.runtime.open_ledger) at every run's start
    "alembic.config",
    "alembic.runtime.migration",
    "alembic.script",
    "psycopg",
    "openpyxl",  # the attachment-2 table and the portfolio workbook (cutover.plan, cutover.portfolio_views)
    "paramiko",
    "cryptography.fernet",
    "tongsuopy.crypto.asymciphers.ec",
    "tongsuopy.crypto.hashes",
    "tongsuopy.crypto.serialization",
    "asn1crypto.keys",
    "asn1crypto.pem",
    "asn1crypto.x509",
    "pyotp",
    "httpx",
    "yaml",
    "pydantic",
    "pydantic.v1",
    "docker",
)


def preload(names: tuple[str, ...] = PRELOAD) -> None:
    """Import ``names``; a missing optional library is skipped (the run imports what it needs)."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            continue


def _become_the_run(job: dict[str, object]) -> None:
    cwd = str(job["cwd"])
    env = job["env"]
    if not isinstance(env, dict):
        raise TypeError("job env must be a mapping")
    if job.get("quiet"):  # the job's stream_output is off: the run's output goes nowhere
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    os.chdir(cwd)
    sys.path[0] = cwd  # as for ``python -m prefect.engine`` started in ``cwd``
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in env.items()})
    sys.argv = [sys.argv[0]]


def _run_engine() -> None:
    import runpy

    from prefect.context import SettingsContext, get_settings_context
    from prefect.settings import Settings

    # Settings were read at import time from the worker's environment; the run's own (flow run id,
    # API URL, control channel) apply from here, as in Prefect's own ``run_flow_in_subprocess``.
    with SettingsContext(profile=get_settings_context().profile, settings=Settings()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*found in sys.modules.*", category=RuntimeWarning)
        runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)


def main() -> int:
    """Preload, wait for one job on stdin, run it; the engine's exit status."""
    preload()
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    _become_the_run(json.loads(line))
    _run_engine()
    return 0


if __name__ == "__main__":
    sys.exit(main())
