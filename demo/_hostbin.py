"""Write the host programs into a host's ``bin/``.

``echo-argv`` and ``count-calls`` are tiny and called often (they prove arguments arrive literally
and count how often a step ran), so they are plain ``sh``/one-line Python. The others are
two-line Python scripts that call :func:`demo.hostprograms.run` with the venv's interpreter.
"""

from __future__ import annotations

import shlex
from pathlib import Path

PYTHON_PROGRAMS = {
    "app": ("appctl", "selftest", "pull-from"),
    "gateway": ("route", "selftest"),
}
"""Which Python host programs a host gets, by role."""

_PYTHON_SCRIPT = """#!{python} -I
# {program}: host program of estate host {host!r}; see demo/hostprograms.py for usage.
import sys; sys.path.insert(0, {repo!r})
from demo.hostprograms import run; sys.exit(run({program!r}, {root!r}, {host!r}, sys.argv[1:]))
"""

_ECHO_ARGV = """#!/bin/sh
# echo-argv ARG...: prints the arguments as one JSON list, to prove they arrive literally.
exec {python} -I -S -c 'import json, sys; print(json.dumps(sys.argv[1:], ensure_ascii=False))' "$@"
"""

_COUNT_CALLS = """#!/bin/sh
# count-calls NAME: appends "NAME<TAB>UTC time" to data/calls.log (counts how often a step ran).
if [ "$#" -ne 1 ]; then echo "usage: count-calls NAME" >&2; exit 2; fi
printf '%s\\t%s\\n' "$1" "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" >> {calls_log}
"""


def write_host_programs(*, bin_dir: Path, host: str, roles: tuple[str, ...], python: str, repo: str, root: str) -> None:
    """Write every program for a host with ``roles`` (``app``, ``gateway``) into ``bin_dir``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    calls_log = bin_dir.parent / "data" / "calls.log"
    _write(bin_dir / "echo-argv", _ECHO_ARGV.format(python=shlex.quote(python)))
    _write(bin_dir / "count-calls", _COUNT_CALLS.format(calls_log=shlex.quote(str(calls_log))))
    for role in roles:
        for program in PYTHON_PROGRAMS[role]:
            text = _PYTHON_SCRIPT.format(python=python, program=program, host=host, repo=repo, root=root)
            _write(bin_dir / program, text)


def _write(path: Path, text: str) -> None:
    """Write an executable script."""
    path.write_text(text)
    path.chmod(0o755)
