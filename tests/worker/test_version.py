"""The cutover worker starts only on the Prefect minor versions it is tested on (worker/_version.py)."""

from __future__ import annotations

import prefect
import pytest

from worker._version import TESTED_MINOR_VERSIONS, UnsupportedPrefect, check_prefect_version


def test_the_installed_prefect_is_one_the_worker_is_tested_on() -> None:
    check_prefect_version(prefect.__version__)
    major, minor = (int(part) for part in prefect.__version__.split(".")[:2])
    assert (major, minor) in TESTED_MINOR_VERSIONS


@pytest.mark.parametrize("version", ["3.10.0", "3.8.8", "4.0.0", "nightly"])
def test_another_prefect_is_refused_in_one_line_naming_the_plain_process_worker(version: str) -> None:
    with pytest.raises(UnsupportedPrefect) as refused:
        check_prefect_version(version)
    message = str(refused.value)
    assert "\n" not in message and version in message
    assert "--type process" in message


def test_the_pin_in_pyproject_admits_only_the_tested_minor_versions() -> None:
    from pathlib import Path

    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    assert '"prefect>=3.9.1,<3.10"' in pyproject
