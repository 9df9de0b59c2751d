"""The normal form of values: what "the same data" means across database engines.

Every column is given a :class:`Kind`; a table pair's columns are matched by name and their kinds
unified (:func:`plan_pair`), or the pair is refused naming the columns. Each value is then written
as one canonical text (documented in docs/spec-reference.md, "Normal form of values"):

* NULL is ``N``; any other value is ``<length in code points>:<text>``, so NULL and '' differ;
* BOOLEAN ``1``/``0`` (MySQL's tinyint(1) is a boolean when the other side's column is one);
* INTEGER of any width in decimal; DECIMAL at the declared scale (``12.50``), trailing zeros trimmed
  when no scale is declared; FLOAT rounded half away from zero to ``float_decimals`` places;
* TEXT as its Unicode code points (no collation, trailing spaces kept); CHAR without trailing spaces;
* BINARY in lower-case hex; DATE ``YYYY-MM-DD``; TIME ``HH:MM:SS.ffffff``;
* TIMESTAMP as the wall-clock time in the declared ``time_zone`` (``YYYY-MM-DD HH:MM:SS.ffffff``):
  a value with a time zone is converted to it, a naive one is taken as already in it.

A row is the concatenation of its columns' texts in column-name order; its digest is the first
8 bytes of the MD5 of that text's UTF-8, big-endian; a table's checksum is the sum of its rows'
digests modulo 2**64. Engines that can write the same text in SQL compute this on the server.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

MOD = 2**64
NULL = "N"
#: Kinds whose normal-form text always has this many code points (the SQL need not measure it).
FIXED_LENGTH = {"boolean": 1, "date": 10, "timestamp": 26}


class Kind(StrEnum):
    """What a column holds, as the normal form sees it."""

    BOOLEAN = "boolean"
    INTEGER = "integer"
    DECIMAL = "decimal"
    FLOAT = "float"
    TEXT = "text"
    CHAR = "char"
    BINARY = "binary"
    DATE = "date"
    TIME = "time"
    TIMESTAMP = "timestamp"
    OTHER = "other"  # compared by its text form; across engines that form may differ


@dataclass(frozen=True)
class NormalForm:
    """The settings of the normal form a data_verify step declares."""

    float_decimals: int = 6
    time_zone: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        ZoneInfo(self.time_zone)  # an unknown zone fails here, not half-way through a table


@dataclass(frozen=True)
class Column:
    """One column as its database declares it."""

    name: str
    kind: Kind
    declared: str
    scale: int | None = None
    aware: bool = False  # a timestamp with a time zone (PostgreSQL timestamptz, MySQL TIMESTAMP)
    maybe_boolean: bool = False  # MySQL's tinyint(1)

    @property
    def key(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Shape:
    """A table as one database declares it: columns in name order and the primary key."""

    table: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.key == name.lower())


@dataclass(frozen=True)
class Field:
    """One column of a table pair on one side: this side's column, and the kind both sides compare."""

    column: Column
    kind: Kind
    scale: int | None = None


@dataclass(frozen=True)
class Plan:
    """How one side of a table pair is read: its fields in name order and the key columns' positions."""

    table: str
    fields: tuple[Field, ...]
    key: tuple[int, ...]
    form: NormalForm = field(default_factory=NormalForm)

    @property
    def key_fields(self) -> tuple[Field, ...]:
        return tuple(self.fields[i] for i in self.key)


class SchemasDiffer(Exception):
    """The two sides of a table do not match column by column; ``problems`` names each column."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


# ---------------------------------------------------------------------------------- planning
def plan_alone(shape: Shape, keys: Sequence[str] | None, form: NormalForm) -> Plan:
    """One table read on its own (the divergence's chunks): each column's own kind."""
    fields = tuple(Field(c, c.kind, c.scale) for c in shape.columns)
    return Plan(shape.table, fields, _key_positions(shape, keys), form)


def plan_pair(source: Shape, target: Shape, keys: Sequence[str] | None, form: NormalForm) -> tuple[Plan, Plan]:
    """Both sides of a table pair, with their kinds unified; raises SchemasDiffer naming the columns."""
    names = {c.key for c in source.columns}
    others = {c.key for c in target.columns}
    problems = [f"column {n} is only in the source" for n in sorted(names - others)]
    problems += [f"column {n} is only in the target" for n in sorted(others - names)]
    pairs: list[tuple[Field, Field]] = []
    for name in sorted(names & others):
        a, b = source.column(name), target.column(name)
        unified = _unify(a, b)
        if unified is None:
            problems.append(f"column {name} is {a.declared} in the source and {b.declared} in the target")
            continue
        kind, scale = unified
        pairs.append((Field(a, kind, scale), Field(b, kind, scale)))
    key = _key_positions(source, keys)
    missing = [k for k in _key_names(source, keys) if k not in others]
    problems += [f"key column {k} is not in the target" for k in missing]
    if problems:
        raise SchemasDiffer(problems)
    return (
        Plan(source.table, tuple(p[0] for p in pairs), key, form),
        Plan(target.table, tuple(p[1] for p in pairs), key, form),
    )


def _key_names(shape: Shape, keys: Sequence[str] | None) -> list[str]:
    if keys:
        return [k.lower() for k in keys]
    return [k.lower() for k in shape.primary_key] or [c.key for c in shape.columns]


def _key_positions(shape: Shape, keys: Sequence[str] | None) -> tuple[int, ...]:
    names = [c.key for c in shape.columns]  # in name order, as the plan's fields
    wanted = _key_names(shape, keys)
    unknown = [k for k in wanted if k not in names]
    if unknown:
        raise SchemasDiffer([f"key column {k} is not in table {shape.table}" for k in unknown])
    return tuple(names.index(k) for k in wanted)


_INTEGRAL = {Kind.INTEGER, Kind.DECIMAL}


def _unify(a: Column, b: Column) -> tuple[Kind, int | None] | None:
    kinds = {a.kind, b.kind}
    if a.kind is b.kind:
        if a.kind is Kind.DECIMAL:
            return _unify_scale(a.scale, b.scale)
        return a.kind, None
    if kinds == {Kind.BOOLEAN, Kind.INTEGER} and (a.maybe_boolean or b.maybe_boolean):
        return Kind.BOOLEAN, None
    if kinds == {Kind.CHAR, Kind.TEXT}:
        return Kind.CHAR, None
    if kinds == {Kind.TEXT, Kind.OTHER}:
        return Kind.TEXT, None
    if kinds == _INTEGRAL and (a.scale or 0) == 0 and (b.scale or 0) == 0:
        return Kind.INTEGER, None
    return None


def _unify_scale(a: int | None, b: int | None) -> tuple[Kind, int | None] | None:
    if a is not None and b is not None and a != b:
        return None
    return Kind.DECIMAL, a if a is not None else b


# ------------------------------------------------------------------------- values in Python
def normalisers(plan: Plan) -> list[Callable[[Any], str | None]]:
    """One function per field: a fetched value to its normal-form text (None for NULL)."""
    zone = ZoneInfo(plan.form.time_zone)
    return [_normaliser(f, plan.form, zone) for f in plan.fields]


def _normaliser(f: Field, form: NormalForm, zone: ZoneInfo) -> Callable[[Any], str | None]:
    def text(value: Any) -> str | None:
        return None if value is None else convert(value)

    convert: Callable[[Any], str]
    if f.kind is Kind.DECIMAL:
        convert = lambda v: _fixed(v, f.scale)  # noqa: E731
    elif f.kind is Kind.FLOAT:
        convert = lambda v: _fixed(v, form.float_decimals)  # noqa: E731
    elif f.kind is Kind.TIMESTAMP:
        convert = lambda v: _moment(v, zone, aware=f.column.aware)  # noqa: E731
    else:
        convert = _SIMPLE[f.kind]
    return text


def _fixed(value: Any, scale: int | None) -> str:
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    number = number.normalize() if scale is None else number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
    if number.is_zero():
        number = abs(number)
    return format(number, "f")


def _moment(value: datetime | str, zone: ZoneInfo, *, aware: bool) -> str:
    if isinstance(value, str):  # SQLite keeps dates and times as ISO text
        value = datetime.fromisoformat(value)
    if value.tzinfo is None and aware:
        value = value.replace(tzinfo=UTC)  # MySQL TIMESTAMP read in a +00:00 session
    if value.tzinfo is not None:
        value = value.astimezone(zone).replace(tzinfo=None)
    return f"{value.date().isoformat()} {_clock(value.hour, value.minute, value.second, value.microsecond)}"


def _clock(hour: int, minute: int, second: int, micro: int) -> str:
    return f"{hour:02d}:{minute:02d}:{second:02d}.{micro:06d}"


def _time(value: time | timedelta | str) -> str:
    if isinstance(value, str):
        value = time.fromisoformat(value)
    if isinstance(value, timedelta):  # MySQL drivers return TIME as a duration
        micro = value // timedelta(microseconds=1)
        seconds, micro = divmod(micro, 1_000_000)
        return _clock(seconds // 3600, seconds // 60 % 60, seconds % 60, micro)
    return _clock(value.hour, value.minute, value.second, value.microsecond)


def _date(value: date | str) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return (value.date() if isinstance(value, datetime) else value).isoformat()


def _binary(value: Any) -> str:
    return bytes(value).hex()


def _other(value: Any) -> str:
    return bytes(value).hex() if isinstance(value, bytes | memoryview) else str(value)


_SIMPLE: dict[Kind, Callable[[Any], str]] = {
    Kind.BOOLEAN: lambda v: "1" if v else "0",
    Kind.INTEGER: lambda v: str(int(v)),
    Kind.TEXT: str,
    Kind.CHAR: lambda v: str(v).rstrip(" "),
    Kind.BINARY: _binary,
    Kind.DATE: _date,
    Kind.TIME: _time,
    Kind.OTHER: _other,
}


# --------------------------------------------------------------------------------- the digest
def row_text(texts: Sequence[str | None]) -> str:
    """A row's canonical text: each field ``N`` (NULL) or ``<length>:<text>``, concatenated."""
    return "".join(NULL if t is None else f"{len(t)}:{t}" for t in texts)


def row_digest(texts: Sequence[str | None]) -> int:
    """A row's 64-bit digest: the first 8 bytes of MD5(row text as UTF-8), big-endian."""
    digest = hashlib.md5(row_text(texts).encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big")


def key_value(f: Field, text: str | None) -> Any:
    """A key field's text as a value that sorts in Python as the engines are told to sort it."""
    if text is None:
        return ""
    if f.kind in (Kind.INTEGER, Kind.BOOLEAN):
        return int(text)
    if f.kind in (Kind.DECIMAL, Kind.FLOAT):
        return Decimal(text)
    return text  # code-point order: the engines sort text keys by their UTF-8 bytes
