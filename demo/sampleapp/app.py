"""社会保险查询服务 — the social-insurance lookup service the demo migrates.

A small Starlette app over one SQLAlchemy engine. Besides its business endpoints it has
knobs for tests and the demo: injected latency, errors and ill health (``/admin/faults``) and a
read-only freeze. The freeze is a file (``<state dir>/frozen``) checked on every write, so an
SSH step can freeze writes with a plain command (``appctl freeze``).

The handlers call the database synchronously on the event loop: for the local SQLite files of the
demo that is faster than a thread hop, and one query is well under a millisecond.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from demo.sampleapp.db import insured, make_engine, payments, row_counts

TITLE = "社会保险查询服务"
MAX_LIMIT = 500


@dataclass
class Faults:
    """Injected misbehaviour: added latency, a share of 500 answers, and a failing health check."""

    latency_ms: int = 0
    error_ratio: float = 0.0
    healthy: bool = True

    def update(self, changes: dict[str, Any]) -> None:
        """Apply the known keys of ``changes``; raise ValueError on anything else."""
        unknown = set(changes) - {"latency_ms", "error_ratio", "healthy"}
        if unknown:
            raise ValueError(f"unknown fault keys: {', '.join(sorted(unknown))}")
        latency = int(changes.get("latency_ms", self.latency_ms))
        ratio = float(changes.get("error_ratio", self.error_ratio))
        if latency < 0 or not 0.0 <= ratio <= 1.0:
            raise ValueError("latency_ms must be >= 0 and error_ratio within 0..1")
        self.latency_ms, self.error_ratio = latency, ratio
        self.healthy = bool(changes.get("healthy", self.healthy))


class FaultMiddleware:
    """Adds the injected latency to every request and the injected errors to ``/api/*``."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Delay or fail the request as the faults say, else pass it on unchanged."""
        path = scope.get("path", "")
        if scope["type"] == "http" and not path.startswith("/admin"):
            if self.faults.latency_ms:
                await asyncio.sleep(self.faults.latency_ms / 1000)
            if path.startswith("/api") and random.random() < self.faults.error_ratio:
                response = JSONResponse({"error": "injected fault"}, status_code=500)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class SampleApp:
    """One instance of the service: its name, database, fault knobs and freeze flag."""

    def __init__(self, name: str, engine: Engine, state_dir: Path | None) -> None:
        self.name = name
        self.engine = engine
        self.state_dir = state_dir
        self.faults = Faults()
        self._frozen_in_memory = False
        self._one = sa.select(insured).where(insured.c.id == sa.bindparam("id"))

    # -- freeze -----------------------------------------------------------------------------

    @property
    def frozen(self) -> bool:
        """True while writes are refused (the ``frozen`` file exists)."""
        if self.state_dir is None:
            return self._frozen_in_memory
        return (self.state_dir / "frozen").exists()

    def set_frozen(self, frozen: bool) -> None:
        """Create or remove the freeze flag."""
        if self.state_dir is None:
            self._frozen_in_memory = frozen
        elif frozen:
            (self.state_dir / "frozen").write_text("writes refused: frozen for cutover\n")
        else:
            (self.state_dir / "frozen").unlink(missing_ok=True)

    # -- endpoints --------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        """200 ``ok`` when the database answers and no ill health is injected, else 503."""
        if not self.faults.healthy:
            return PlainTextResponse("unhealthy: fault injected", status_code=503)
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            return PlainTextResponse(f"unhealthy: database unreachable: {exc}", status_code=503)
        return PlainTextResponse("ok")

    async def insured_one(self, request: Request) -> Response:
        """One insured person by id, or 404."""
        with self.engine.connect() as conn:
            row = conn.execute(self._one, {"id": request.path_params["id"]}).first()
        if row is None:
            return _error(404, f"no insured person with id {request.path_params['id']}")
        return JSONResponse(dict(row._mapping))

    async def insured_list(self, request: Request) -> Response:
        """Insured persons, optionally of one ``city``, at most ``limit`` (default 20)."""
        try:
            limit = int(request.query_params.get("limit", "20"))
        except ValueError:
            return _error(400, "limit must be an integer")
        query = sa.select(insured).order_by(insured.c.id).limit(max(0, min(limit, MAX_LIMIT)))
        if city := request.query_params.get("city"):
            query = query.where(insured.c.city == city)
        with self.engine.connect() as conn:
            items = [dict(row._mapping) for row in conn.execute(query)]
        return JSONResponse({"items": items, "count": len(items)})

    async def create_payment(self, request: Request) -> Response:
        """Record a payment ``{"insured_id", "amount"}`` (fen) and add it to the balance."""
        if self.frozen:
            return _error(503, f"{self.name} is frozen read-only for cutover; writes refused")
        try:
            body = json.loads(await request.body())
            insured_id, amount = int(body["insured_id"]), int(body["amount"])
        except (ValueError, KeyError, TypeError):
            return _error(400, 'body must be JSON {"insured_id": int, "amount": int}')
        if amount <= 0:
            return _error(400, "amount must be a positive number of fen")
        return self._insert_payment(insured_id, amount)

    def _insert_payment(self, insured_id: int, amount: int) -> Response:
        """Insert the payment and update the balance in one transaction."""
        paid_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        with self.engine.begin() as conn:
            changed = conn.execute(
                insured.update().where(insured.c.id == insured_id).values(balance=insured.c.balance + amount)
            ).rowcount
            if not changed:
                return _error(404, f"no insured person with id {insured_id}")
            new_id = conn.execute(
                payments.insert().values(insured_id=insured_id, amount=amount, paid_at=paid_at)
            ).inserted_primary_key
        payment = {
            "id": new_id[0] if new_id else None,
            "insured_id": insured_id,
            "amount": amount,
            "paid_at": paid_at.isoformat(),
        }
        return JSONResponse(payment, status_code=201)

    async def stats(self, request: Request) -> Response:
        """Row counts of every table."""
        return JSONResponse({"name": self.name, **row_counts(self.engine)})

    async def whoami(self, request: Request) -> Response:
        """The instance's name (``legacy``, ``cloud`` ...): who answered through the gateway."""
        return JSONResponse({"name": self.name, "service": TITLE, "frozen": self.frozen})

    async def set_faults(self, request: Request) -> Response:
        """``POST /admin/faults`` with any of latency_ms, error_ratio, healthy; GET reads them."""
        if request.method == "POST":
            try:
                self.faults.update(json.loads(await request.body() or b"{}"))
            except (ValueError, TypeError) as exc:
                return _error(400, str(exc))
        return JSONResponse(asdict(self.faults))

    async def freeze(self, request: Request) -> Response:
        """Refuse writes from now on."""
        self.set_frozen(True)
        return JSONResponse({"name": self.name, "frozen": True})

    async def unfreeze(self, request: Request) -> Response:
        """Accept writes again."""
        self.set_frozen(False)
        return JSONResponse({"name": self.name, "frozen": False})

    def routes(self) -> list[Route]:
        """The URL map."""
        return [
            Route("/healthz", self.healthz),
            Route("/api/insured/{id:int}", self.insured_one),
            Route("/api/insured", self.insured_list),
            Route("/api/payments", self.create_payment, methods=["POST"]),
            Route("/api/stats", self.stats),
            Route("/api/whoami", self.whoami),
            Route("/admin/faults", self.set_faults, methods=["GET", "POST"]),
            Route("/admin/freeze", self.freeze, methods=["POST"]),
            Route("/admin/unfreeze", self.unfreeze, methods=["POST"]),
        ]


def _error(status: int, message: str) -> JSONResponse:
    """A JSON error answer."""
    return JSONResponse({"error": message}, status_code=status)


def create_app(name: str, db_url: str, *, state_dir: Path | None = None) -> ASGIApp:
    """Build the ASGI app of instance ``name`` over ``db_url``."""
    service = SampleApp(name, make_engine(db_url), state_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        service.engine.dispose()

    app = Starlette(routes=service.routes(), lifespan=lifespan)
    return FaultMiddleware(app, service.faults)
