"""The spec reference in Markdown, generated from the JSON Schema (``docs/spec-reference.md``)."""

from __future__ import annotations

from typing import Any

from cutover.spec import Spec

_HEADER = """# Cutover spec reference

Generated from the JSON Schema of `cutover/spec.py` (`make schema` rewrites this file and
`cutover_specs/schema.json`). Every object refuses unknown keys. Durations are written `30s`,
`5m`, `2h`, `14d`. Secrets appear only as `{secret: <id>}`, declared under `secrets:`.
"""


def spec_reference() -> str:
    """One section per object of the schema: field, type, required, default, description."""
    schema = Spec.model_json_schema(by_alias=True)
    defs: dict[str, Any] = schema.get("$defs", {})
    sections = [_section("Spec (the file)", schema)]
    sections += [_section(name, defs[name]) for name in sorted(defs)]
    return _HEADER + "\n" + "\n".join(sections) + "\n" + NORMAL_FORM


#: How data_verify and the divergence compare values across engines (tasks/engines/normal_form.py).
NORMAL_FORM = """## Normal form of values

How a `data_verify` step (and the divergence's chunk checksums) decide that two databases hold the
same data, whichever engines they run on (PostgreSQL, SQLite, MariaDB/MySQL). Each value is written
as one canonical text; rows are compared by those texts, never by an engine's own comparison.

Columns are matched by name (case-insensitive). A table pair whose columns do not match column by
column — a column on one side only, types of different kinds, DECIMAL scales that differ — is refused
before any row is read, naming each column; nothing is compared.

| kind | columns | normal form |
|---|---|---|
| NULL | any | `N`, distinct from every value, the empty string included |
| boolean | `boolean`; MySQL/MariaDB `tinyint(1)` when the other side's column is a boolean | `1` or `0` (any non-zero tinyint is `1`) |
| integer | every width: `tinyint` to `bigint`, `mediumint`, `year`, `smallint`, `integer`; `DECIMAL(p,0)` facing an integer | decimal digits, `-` for negatives |
| decimal | `DECIMAL(p,s)`, `NUMERIC(p,s)` | fixed point at the declared scale `s`, rounded half away from zero (`12.50`); no negative zero. Both sides must declare the same scale; an unconstrained `numeric` takes the other side's, or, with none, its trailing zeros are trimmed |
| float | `real`, `double precision`, `FLOAT`, `DOUBLE` | rounded half away from zero to the step's `float_decimals` places (default 6): the tolerance is half a unit of the last place. A value that lies on a rounding boundary within the engines' float-to-decimal error may still compare unequal; choose `float_decimals` below the precision the data carries |
| text | `varchar`, `text`, `enum`, ... | the Unicode code points, trailing spaces kept; never a collation's idea of equal (`'a'` and `'a '`, `'a'` and `'A'` differ) |
| char | `CHAR(n)`, and text facing a `CHAR(n)` | the code points without trailing spaces (CHAR padding is not data) |
| binary | `bytea`, `BINARY`, `VARBINARY`, `BLOB` | lower-case hex |
| date | `date` | `YYYY-MM-DD` |
| time | `time` | `HH:MM:SS.ffffff` |
| timestamp | `timestamp`, `timestamptz`, `DATETIME`, MySQL `TIMESTAMP` | wall-clock time in the step's `time_zone` (default `Asia/Shanghai`), `YYYY-MM-DD HH:MM:SS.ffffff`: a value with a time zone (`timestamptz`, MySQL `TIMESTAMP`) is converted to that zone; a naive one (`DATETIME`, `timestamp`) is taken as already in it |
| other | `json`, `uuid`, `interval`, ... | the engine's text form (across engines it may differ: compare such columns between engines of one kind) |

A row's text is its columns' texts in column-name order, each written `N` (NULL) or
`<length in code points>:<text>`. A row's digest is the first 8 bytes of the MD5 of that text's
UTF-8, big-endian; a table's checksum is the sum of its rows' digests modulo 2^64, so row order does
not matter. PostgreSQL and MariaDB/MySQL compute it on the server (one pass, no rows sent); SQLite,
and a table with a MySQL `TIMESTAMP` column when the server has no time zone tables (load them with
`mariadb-tzinfo-to-sql /usr/share/zoneinfo | mariadb mysql` to compute it on the server), stream the
rows in chunks of `chunk_rows` and compute it in the tool, with the same result; memory stays bounded
by one chunk either way. Two databases of the same engine whose columns declare the same types are first
compared by the engine's own text of their values (PostgreSQL, MariaDB: faster); only a table that
differs that way is compared again in normal form.

When two tables differ, the first differing keys (up to 10 per table) are named in key order — keys
sorted by code point (UTF-8 bytes), whatever collation a column declares — with each differing
column's values in normal form. Values of columns named like a secret (`password`, `token`, `secret`,
`api_key`, `salt`, ...) are shown as `***`, and every secret the tool resolved is masked.
"""


def _section(name: str, obj: dict[str, Any]) -> str:
    if "enum" in obj:
        return f"## {name}\n\n{obj.get('description', '')}\n\nOne of: {', '.join(f'`{v}`' for v in obj['enum'])}.\n"
    required = set(obj.get("required", []))
    rows = [
        f"| `{field}` | {_type(spec)} | {'yes' if field in required else ''} | {_default(spec)} | {_text(spec)} |"
        for field, spec in obj.get("properties", {}).items()
    ]
    head = f"## {name}\n\n{_text(obj)}\n\n| field | type | required | default | description |\n|---|---|---|---|---|"
    return head + "\n" + "\n".join(rows) + "\n"


def _type(spec: dict[str, Any] | bool) -> str:
    if isinstance(spec, bool):
        return "any"
    if "$ref" in spec:
        target = spec["$ref"].rsplit("/", 1)[-1]
        return f"[{target}](#{target.lower()})"
    for key in ("anyOf", "oneOf"):
        if key in spec:
            return " or ".join(_type(s) for s in spec[key] if s.get("type") != "null")
    if spec.get("type") == "array":
        return f"list of {_type(spec.get('items', {}))}"
    if spec.get("type") == "object" and "additionalProperties" in spec:
        return f"map of {_type(spec['additionalProperties'])}"
    if "const" in spec:
        return f"`{spec['const']}`"
    if "enum" in spec:
        return " \\| ".join(f"`{v}`" for v in spec["enum"])
    return str(spec.get("type", "any"))


def _default(spec: dict[str, Any]) -> str:
    return f"`{spec['default']}`" if "default" in spec and spec["default"] not in (None, [], {}) else ""


def _text(spec: dict[str, Any]) -> str:
    return " ".join(str(spec.get("description", "")).split()).replace("|", "\\|")
