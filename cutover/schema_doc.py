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
    return _HEADER + "\n" + "\n".join(sections)


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
