"""Is the retained original still ready to take the traffic back? The watch's sweep of one system.

The checks themselves (which ones, how each runs) live in :mod:`tasks.readiness`, shared with the
preflight before a cutover; the watch runs a system's checks one after the other (they are few
and cheap). Nothing here changes a host.
"""

from __future__ import annotations

from cutover.settings import Settings
from cutover.spec import Spec
from tasks.readiness import READY_PREFIX, Readiness, check_one, readiness_checks, replication_readiness

__all__ = ["READY_PREFIX", "Readiness", "check_readiness", "readiness_checks"]


def check_readiness(spec: Spec, settings: Settings) -> list[Readiness]:
    """Run every readiness check of ``spec`` (sequentially; they are few and cheap), and with
    ``data.replication`` the reverse replication's (lag, inactive slot, a broken subscription)."""
    seen = [check_one(spec, check, settings) for check in readiness_checks(spec)]
    replicated = replication_readiness(spec)
    return seen if replicated is None else [*seen, replicated]
