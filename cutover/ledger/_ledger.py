"""The :class:`Ledger`: one object holding every repository of the ledger."""

from __future__ import annotations

from cutover.ledger._divergence import DivergenceRepository
from cutover.ledger._locks import LockRepository
from cutover.ledger._roadmap import RoadmapRepository
from cutover.ledger._runs import RunsRepository
from cutover.ledger._signoff import SignOffRepository
from cutover.ledger._systems import SystemsRepository
from cutover.ledger._watch import WatchRepository


class Ledger(
    SystemsRepository,
    RunsRepository,
    LockRepository,
    SignOffRepository,
    WatchRepository,
    DivergenceRepository,
    RoadmapRepository,
):
    """The source of truth: systems, runs, steps, locks, sign-off, retention, health, divergence,
    roadmaps and exemption rulings, audit.

    ``Ledger(url, digest="sm3", clock=None)`` connects to a SQLite file or PostgreSQL database;
    :meth:`migrate` creates or upgrades the schema; :meth:`session` opens one transaction.
    Constructing a ledger with an unavailable digest algorithm raises ConfigurationError.
    """
