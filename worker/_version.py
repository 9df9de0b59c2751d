"""The Prefect versions the cutover worker is tested on, and the refusal to start on another one.

The worker builds on Prefect's private runner modules (``prefect.runner._flow_run_executor``,
``_process_manager``, ``_control_channel``), which change between minor versions without notice.
``pyproject.toml`` bounds Prefect to the minor versions listed here; if another one is installed
anyway, the worker refuses to start with one line that names the fallback: Prefect's own process
worker runs the same pool, only with slower starts.
"""

from __future__ import annotations

__all__ = ["TESTED_MINOR_VERSIONS", "UnsupportedPrefect", "check_prefect_version"]

#: (major, minor) versions of Prefect the cutover worker is tested on (tests/worker/).
TESTED_MINOR_VERSIONS: tuple[tuple[int, int], ...] = ((3, 9),)


class UnsupportedPrefect(SystemExit):
    """The installed Prefect is not one the cutover worker is tested on (exits with the message)."""


def check_prefect_version(version: str) -> None:
    """Raise :class:`UnsupportedPrefect` (a one-line exit) unless ``version`` is a tested minor version."""
    parts = version.split(".")
    try:
        minor = (int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        minor = (-1, -1)
    if minor in TESTED_MINOR_VERSIONS:
        return
    tested = ", ".join(f"{major}.{minor_}.x" for major, minor_ in TESTED_MINOR_VERSIONS)
    raise UnsupportedPrefect(
        f"the cutover worker is tested on Prefect {tested}, not {version}: install a tested version "
        "(pip install 'prefect>=3.9.1,<3.10'), or run the pool with Prefect's own process worker: "
        "prefect worker start --pool cutover-process --type process (same runs, slower starts)"
    )
