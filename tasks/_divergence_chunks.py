"""Chunked checksums by key: what a table held at cutover, and which chunks of it have changed since.

At cutover the table's key range is cut into at most ``MAX_CHUNKS`` chunks (every n-th key, n at
least ``MIN_CHUNK_ROWS``); each chunk keeps its row count and the sum of its rows' digests
(:func:`tasks.engines.normal_form.row_digest`, over the row's normal form, so any engine adapter in
:mod:`tasks.engines` serves: SQLite, MariaDB/MySQL, ...). Measuring again reads the table once,
puts each row in its chunk by key, and compares. A chunk whose count changed by d has at least |d| rows inserted
(or deleted); a chunk with the same count and another checksum has at least one row updated. These
are lower bounds, so every non-zero figure is "approximately"; zero changed chunks is exact.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from tasks.engines import NormalForm, open_engine
from tasks.engines.normal_form import key_value, plan_alone, row_digest

MAX_CHUNKS = 2000
MIN_CHUNK_ROWS = 100
_MOD = 2**64
_FETCH_ROWS = 10_000

Key = list[list[Any]]  # per key column [type rank, JSON value]: comparable, and stored as JSON


@dataclass(frozen=True)
class ChunkChange:
    """What the changed chunks of one table say, as lower bounds."""

    inserted: int
    updated: int
    deleted: int
    changed_chunks: int


def chunk_baseline(url: str, table: str, keys: Sequence[str] | None = None) -> dict[str, Any]:
    """The table's chunks now: key boundaries, row counts and checksums (JSON-ready)."""
    boundaries = _boundaries(url, table, keys)
    counts, sums = _chunk_sums(url, table, keys, boundaries)
    return {"boundaries": boundaries, "counts": counts, "checksums": [f"{s:016x}" for s in sums]}


def chunk_change(url: str, table: str, keys: Sequence[str] | None, baseline: dict[str, Any]) -> ChunkChange:
    """How the table differs from ``baseline`` (from :func:`chunk_baseline`), chunk by chunk."""
    counts, sums = _chunk_sums(url, table, keys, baseline["boundaries"])
    inserted = updated = deleted = changed = 0
    for now, then, total, was in zip(counts, baseline["counts"], sums, baseline["checksums"], strict=True):
        if now == then and f"{total:016x}" == was:
            continue
        changed += 1
        inserted += max(0, now - then)
        deleted += max(0, then - now)
        updated += 1 if now == then else 0
    return ChunkChange(inserted, updated, deleted, changed)


def _boundaries(url: str, name: str, keys: Sequence[str] | None) -> list[Key]:
    """Every n-th key (the first key of each chunk), in the order Python compares them."""
    step = max(MIN_CHUNK_ROWS, math.ceil(_count(url, name) / MAX_CHUNKS))
    found: list[Key] = []
    for index, key in enumerate(_keys(url, name, keys)):
        if index % step == 0:
            found.append(key)
    unique: list[Key] = []
    for key in sorted(found):
        if not unique or unique[-1] != key:
            unique.append(key)
    return unique


def _chunk_sums(url: str, name: str, keys: Sequence[str] | None, boundaries: list[Key]) -> tuple[list[int], list[int]]:
    size = max(1, len(boundaries))
    counts, sums = [0] * size, [0] * size
    for key, digest in _rows(url, name, keys):
        index = max(0, bisect_right(boundaries, key) - 1)
        counts[index] += 1
        sums[index] = (sums[index] + digest) % _MOD
    return counts, sums


def _keys(url: str, name: str, keys: Sequence[str] | None) -> Iterator[Key]:
    for key, _ in _rows(url, name, keys, ordered=True):
        yield key


def _rows(url: str, name: str, keys: Sequence[str] | None, *, ordered: bool = False) -> Iterator[tuple[Key, int]]:
    """Every row's key (comparable) and digest, in key order when ``ordered``."""
    engine = open_engine(url)
    try:
        plan = plan_alone(engine.shape(name), keys, NormalForm())
        key = [(i, plan.fields[i]) for i in plan.key]
        for texts in engine.texts(plan, _FETCH_ROWS, ordered=ordered):
            yield comparable(tuple(key_value(f, texts[i]) for i, f in key)), row_digest(texts)
    finally:
        engine.dispose()


def _count(url: str, name: str) -> int:
    engine = open_engine(url)
    try:
        return engine.count(name)
    finally:
        engine.dispose()


def comparable(values: tuple[Any, ...]) -> Key:
    """A key as JSON values that compare in Python the same before and after a trip through JSON."""
    return [_rank(v) for v in values]


def _rank(value: Any) -> list[Any]:
    if value is None:
        return [0, 0]
    if isinstance(value, bool):
        return [1, int(value)]
    if isinstance(value, int):
        return [1, value]
    if isinstance(value, float | Decimal):
        return [1, float(value)]
    if isinstance(value, str):
        return [2, value]
    if isinstance(value, bytes | memoryview):
        return [3, bytes(value).hex()]
    if isinstance(value, datetime | date):
        return [4, value.isoformat()]
    return [5, str(value)]
