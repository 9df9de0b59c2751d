"""Read a spec file, map every problem to its line, and build the model.

Parsing goes through PyYAML's composer so each value keeps its line; duplicate keys (which
PyYAML would silently overwrite) are reported. Model errors and cross-field rule problems are
merged, so a file's problems are all reported at once. Loading never imports or runs anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cutover._spec_rules import Loc, check_rules
from cutover.errors import SpecError, SpecProblem
from cutover.spec import SECRET_VALUE_REFUSED, Spec

_FRIENDLY = {
    "extra_forbidden": "unknown key (a typo?); see cutover_specs/schema.json for the allowed keys",
    "missing": "is required",
}


def load(path: Path) -> Spec:
    """Validate ``path`` and return its :class:`Spec`, or raise SpecError with every problem."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecProblem(name, None, "", f"cannot read the file: {exc}")]) from exc
    node, problems = _compose(name, text)
    if node is None:
        raise SpecError(problems or [SpecProblem(name, None, "", "the file is empty; a spec starts with system:")])
    data = yaml.SafeLoader(text).construct_document(node)
    problems += _model_problems(name, node, data) + _rule_problems(name, node, data)
    if problems:
        raise SpecError(_dedupe(problems))
    return Spec.model_validate(data)


def load_spec(path: Path | str) -> Spec:
    """Read and validate one spec file (``path`` as a string or a path)."""
    return load(Path(path))


def load_many(paths: list[Path]) -> tuple[list[Spec], list[SpecError]]:
    """Load several files; return the valid specs and the errors of the others."""
    specs: list[Spec] = []
    errors: list[SpecError] = []
    for path in paths:
        try:
            specs.append(load(path))
        except SpecError as exc:
            errors.append(exc)
    return specs, errors


def spec_files(paths: list[Path]) -> list[Path]:
    """Expand directories into their ``*.yaml``/``*.yml`` files, sorted."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        else:
            files.append(path)
    return files


def _compose(name: str, text: str) -> tuple[yaml.Node | None, list[SpecProblem]]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        return None, [SpecProblem(name, line, "", f"YAML does not parse: {exc.problem or exc.context}")]
    except yaml.YAMLError as exc:
        return None, [SpecProblem(name, None, "", f"YAML does not parse: {exc}")]
    finally:
        loader.dispose()
    return node, list(_duplicate_keys(name, node, ())) if node is not None else []


def _duplicate_keys(name: str, node: yaml.Node, loc: Loc) -> Any:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                yield SpecProblem(
                    name, key.start_mark.line + 1, _field((*loc, key.value)), "duplicate key; each key may appear once"
                )
            seen.add(key.value)
            yield from _duplicate_keys(name, value, (*loc, key.value))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(name, item, (*loc, index))


def _model_problems(name: str, node: yaml.Node, data: Any) -> list[SpecProblem]:
    try:
        Spec.model_validate(data)
    except ValidationError as exc:
        return [
            _problem(
                name, node, tuple(err["loc"]), _FRIENDLY.get(err["type"], err["msg"].removeprefix("Value error, "))
            )
            for err in exc.errors(include_url=False)
            if err["loc"]  # the cross-field rules (location ()) are reported by _rule_problems
        ]
    return []


def _rule_problems(name: str, node: yaml.Node, data: Any) -> list[SpecProblem]:
    return [_problem(name, node, loc, message) for loc, message in check_rules(data)]


def _problem(name: str, root: yaml.Node, loc: Loc, message: str) -> SpecProblem:
    line, path = _locate(root, loc)
    return SpecProblem(name, line, _field(path), message)


def _locate(root: yaml.Node, loc: Loc) -> tuple[int, Loc]:
    """The line of the deepest node on ``loc``, and ``loc`` without union tags."""
    node, path = root, []
    skipped = False
    for part in loc:
        child = _child(node, part)
        if child is None and isinstance(part, str) and _is_tag(part) and not skipped:
            skipped = True  # a tagged-union tag that pydantic puts in the location (once: `secret` is also a field)
            continue
        skipped = False
        node = child if child is not None else node
        path.append(part)
    return node.start_mark.line + 1, tuple(path)


_TAGS = frozenset({"ssh", "http_check", "data_verify", "arg", "secret"})


def _is_tag(part: str) -> bool:
    return part in _TAGS


def _child(node: yaml.Node, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        return next((v for k, v in node.value if k.value == str(part)), None)
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]  # type: ignore[no-any-return]
    return None


def _field(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _dedupe(problems: list[SpecProblem]) -> list[SpecProblem]:
    """Drop repeats, and a generic message where a rule already says more about the same field."""
    explained = {p.field for p in problems if not _generic(p)}
    unique = [p for p in dict.fromkeys(problems) if not (_generic(p) and p.field in explained)]
    return sorted(unique, key=lambda p: (p.line or 0, p.field))


def _generic(problem: SpecProblem) -> bool:
    """An unknown key, or a secret written inline: a rule may say more about the same field."""
    return problem.message in (_FRIENDLY["extra_forbidden"], SECRET_VALUE_REFUSED)
