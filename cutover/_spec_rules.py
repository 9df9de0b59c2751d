"""Cross-field rules of the cutover spec, checked on the raw mapping.

They run on the plain data (not the model) so that a file with type errors still gets every
rule checked and every problem reported at once. Each rule yields ``(location, message)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from cutover.retention import MIN_RETENTION_MONTHS

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]

REFERENCE_FIX = "declare it under secrets: and refer to it as {secret: name}"
"""The fix every refusal of a secret written inline ends with."""

_DSN_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)
_SECRET_KEY_NAMES = re.compile(r"^(password|passwd|pwd|token|api[_-]?key|secret[_-]?key|private[_-]?key)$", re.I)
_PASSWORD_FLAG = re.compile(r"^--?(password|passwd|pwd|token)(=.+)?$", re.IGNORECASE)
_HOST_KEY = re.compile(r"^(SHA256:[A-Za-z0-9+/]{43}|(ssh|ecdsa)-[a-z0-9-]+ [A-Za-z0-9+/=]+( .*)?|known_hosts)$")


def check_rules(data: Any) -> list[Problem]:
    """Every cross-field problem of a spec mapping, in document order of the rules."""
    if not isinstance(data, dict):
        return [((), "a spec is a mapping with the keys system, parties, hosts, ...")]
    problems: list[Problem] = []
    for rule in _RULES:
        problems.extend(rule(data))
    return problems


def _get(data: Any, *path: str | int) -> Any:
    for part in path:
        if isinstance(part, int):
            data = data[part] if isinstance(data, list) and part < len(data) else None
        else:
            data = data.get(part) if isinstance(data, dict) else None
    return data


def _items(data: Any, *path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    seq = _get(data, *path)
    if isinstance(seq, list):
        for index, item in enumerate(seq):
            if isinstance(item, dict):
                yield index, item


# ------------------------------------------------------------------------------ the notice
def _scope(data: dict[str, Any]) -> Iterator[Problem]:
    if _get(data, "system", "classification") == "classified":
        yield (
            ("system", "classification"),
            "the system is classified (涉密); classified systems are outside the notice's scope and are "
            "refused. Handle them through the confidentiality procedure, not this tool.",
        )


def _disposition(data: dict[str, Any]) -> Iterator[Problem]:
    system = _get(data, "system")
    disposition = _get(system, "disposition")
    if disposition in ("consolidate", "retire", "exempt") and not _get(system, "reason"):
        yield (
            ("system", "reason"),
            f"disposition {disposition} needs a reason (for the leading-group office and the expert panel)",
        )
    if disposition == "consolidate" and not _get(system, "consolidate_into"):
        yield (
            ("system", "consolidate_into"),
            "disposition consolidate needs consolidate_into: the id of the receiving system",
        )
    if disposition == "migrate":
        for section in ("test_platform", "cutover", "rollback"):
            if _get(data, section) is None:
                yield ((section,), f"a system to migrate needs a {section} section (the mandated sequence runs on it)")
    if _get(system, "hosting", "current") == "telecom-operator" and not _get(system, "hosting", "operator"):
        yield (
            ("system", "hosting", "operator"),
            "hosting by a telecom operator needs the operator's name, e.g. 中国电信",
        )


def _retention(data: dict[str, Any]) -> Iterator[Problem]:
    months = _get(data, "retention", "months")
    if isinstance(months, int) and not isinstance(months, bool) and months < MIN_RETENTION_MONTHS:
        yield (
            ("retention", "months"),
            f"is {months}; the notice requires at least {MIN_RETENTION_MONTHS} (原系统至少保留3个月以上)",
        )


# -------------------------------------------------------------------------------- parties
def _parties(data: dict[str, Any]) -> Iterator[Problem]:
    seen: dict[str, str] = {}
    for party in ("department", "cloud_provider"):
        approvers = _get(data, "parties", party, "approvers")
        if isinstance(approvers, list) and not approvers:
            yield (
                ("parties", party, "approvers"),
                f"the {party} party has no approvers; list at least one person who may sign",
            )
        for index, approver in _items(data, "parties", party, "approvers"):
            approver_id = approver.get("id")
            if not isinstance(approver_id, str):
                continue
            loc: Loc = ("parties", party, "approvers", index, "id")
            if seen.get(approver_id) == party:
                yield (loc, f"duplicate id {approver_id!r}: the approver is listed twice for the {party}")
            elif approver_id in seen:
                yield (
                    loc,
                    f"{approver_id!r} is also an approver for the {seen[approver_id]}; one person cannot sign for both parties",
                )
            seen.setdefault(approver_id, party)


# ---------------------------------------------------------------------------------- hosts
def _hosts(data: dict[str, Any]) -> Iterator[Problem]:
    hosts = _get(data, "hosts")
    if not isinstance(hosts, dict):
        return
    for name, host in hosts.items():
        key = _get(host, "host_key")
        if isinstance(host, dict) and not key:
            yield (
                ("hosts", name, "host_key"),
                f"host {name!r} has no pinned host key; add host_key: 'SHA256:...' (ssh-keygen -lf on the host's key) "
                "or 'known_hosts' to use the file named in settings. Unknown keys are refused.",
            )
        elif isinstance(key, str) and not _HOST_KEY.match(key):
            yield (
                ("hosts", name, "host_key"),
                "is not a host key: write 'SHA256:<43 characters>', a public key line, or 'known_hosts'",
            )


# ---------------------------------------------------------------------------------- steps
_STEP_LISTS: tuple[tuple[str, ...], ...] = (
    ("test_platform", "prepare"),
    ("test_platform", "internal_tests"),
    ("test_platform", "health"),
    ("cutover", "steps"),
    ("cutover", "health"),
    ("rollback", "steps"),
    ("rollback", "health"),
    ("retention", "watch", "readiness"),
)


def _all_steps(data: dict[str, Any]) -> Iterator[tuple[Loc, dict[str, Any]]]:
    for path in _STEP_LISTS:
        for index, step in _items(data, *path):
            yield (*path, index), step


def _duplicate_step_ids(data: dict[str, Any]) -> Iterator[Problem]:
    seen: dict[str, Loc] = {}
    for loc, step in _all_steps(data):
        step_id = step.get("id")
        if not isinstance(step_id, str):
            continue
        if step_id in seen:
            first = ".".join(map(str, seen[step_id]))
            yield ((*loc, "id"), f"duplicate id {step_id!r} (first used at {first}); step ids must be unique in a spec")
        else:
            seen[step_id] = loc


def _host_references(data: dict[str, Any]) -> Iterator[Problem]:
    hosts = _get(data, "hosts")
    known = set(hosts) if isinstance(hosts, dict) else set()
    for loc, step in _all_steps(data):
        if step.get("kind") != "ssh":
            continue
        if step.get("host") is None and not step.get("hosts"):
            yield ((*loc, "host"), "an ssh step needs host (or hosts for a fan-out)")
        if step.get("host") is not None and step.get("hosts"):
            yield ((*loc, "hosts"), "give host or hosts, not both")
        names = [(("host",), step.get("host"))] + [(("hosts", i), h) for i, h in enumerate(step.get("hosts") or [])]
        for sub, name in names:
            if isinstance(name, str) and name not in known:
                yield ((*loc, *sub), f"unknown host {name!r}; known hosts: {', '.join(sorted(known)) or 'none'}")


def _undo_coverage(data: dict[str, Any]) -> Iterator[Problem]:
    rollback_ids = {s.get("id") for _, s in _items(data, "rollback", "steps")}
    for index, step in _items(data, "cutover", "steps"):
        loc: Loc = ("cutover", "steps", index)
        if step.get("kind") != "ssh" or step.get("changes_state") is False:
            continue
        covered = step.get("covered_by")
        if step.get("undo") and step.get("irreversible"):
            yield ((*loc, "irreversible"), "a step with an undo is not irreversible; drop one of the two")
        elif not step.get("undo") and not (step.get("irreversible") and covered):
            yield (
                (*loc, "undo"),
                f"step {step.get('id')!r} changes state but has no undo; add undo: [...], or mark it "
                "irreversible: true with covered_by: <rollback step id>",
            )
        if covered is not None and covered not in rollback_ids:
            yield (
                (*loc, "covered_by"),
                f"unknown rollback step {covered!r}; rollback steps: {', '.join(sorted(map(str, rollback_ids)))}",
            )


def _traffic_switch(data: dict[str, Any]) -> Iterator[Problem]:
    marked = [(i, s) for i, s in _items(data, "cutover", "steps") if s.get("switches_traffic")]
    for index, step in marked[1:]:
        yield (
            ("cutover", "steps", index, "switches_traffic"),
            f"step {step.get('id')!r} is a second traffic switch (the first is {marked[0][1].get('id')!r}); "
            "mark only the step that sends the users to the cloud copy",
        )
    for section, key in (("rollback", "steps"), ("test_platform", "prepare"), ("test_platform", "internal_tests")):
        for index, step in _items(data, section, key):
            if step.get("switches_traffic"):
                yield (
                    (section, key, index, "switches_traffic"),
                    "only a cutover step can be the traffic switch; remove switches_traffic here",
                )


def _rollback_order(data: dict[str, Any]) -> Iterator[Problem]:
    """No rollback step freezes the original again.

    The rollback plan orders the safe part itself (:mod:`rollback._order`): it freezes the cloud
    copy first, makes the original writable (the undo of the cutover's freeze) before data is copied
    into it, verifies, and sends the traffic back last. What it cannot order is a rollback step that
    runs the cutover's freeze again on the original: wherever it stands, the original ends frozen
    (or the copy meets a read-only database).
    """
    steps = list(_items(data, "cutover", "steps"))
    first_copy = next((i for i, s in steps if s.get("irreversible") and s.get("covered_by")), None)
    if first_copy is None:
        return
    freezes = [s for i, s in steps[:first_copy] if s.get("kind") == "ssh" and s.get("undo") and s.get("host")]
    for index, step in _items(data, "rollback", "steps"):
        for freeze in freezes:
            if step.get("kind") == "ssh" and step.get("host") == freeze.get("host") and _same(step, freeze, "run"):
                yield (
                    ("rollback", "steps", index, "run"),
                    f"step {step.get('id')!r} freezes the original again: it runs cutover step {freeze.get('id')!r}'s "
                    f"command on host {freeze.get('host')!r}, so the original would end the rollback frozen. Remove "
                    f"it; the rollback makes the original writable itself (by the undo of {freeze.get('id')!r})",
                )


def _same(step: dict[str, Any], other: dict[str, Any], field: str) -> bool:
    return list(map(str, step.get("run") or [])) == list(map(str, other.get(field) or []))


# -------------------------------------------------------------------- commands and secrets
def _walk(value: Any, loc: Loc = ()) -> Iterator[tuple[Loc, Any]]:
    yield loc, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, (*loc, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, (*loc, index))


def _database_url_fields(data: dict[str, Any]) -> Iterator[tuple[Loc, Any]]:
    for loc, step in _all_steps(data):
        if step.get("kind") == "data_verify":
            yield from (((*loc, side), step.get(side)) for side in ("source", "target"))
    for side in ("original", "cloud"):
        yield ("data", side), _get(data, "data", side)


def _database_urls(data: dict[str, Any]) -> Iterator[Problem]:
    for loc, value in _database_url_fields(data):
        if isinstance(value, str) and _url_has_password(value):
            yield (
                loc,
                f"the database URL carries a password, which may not be written in a spec; put the whole URL in an "
                f"environment variable or a Prefect Secret block, {REFERENCE_FIX} ({loc[-1]}: {{secret: name}}). Only a "
                "URL without a password, such as sqlite:////srv/app/app.db, may be written inline",
            )


def _url_has_password(value: str) -> bool:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
    except ArgumentError:
        return bool(_DSN_WITH_PASSWORD.match(value))
    return url.password is not None or any(_SECRET_KEY_NAMES.match(key) for key in url.query)


def _inline_secrets(data: dict[str, Any]) -> Iterator[Problem]:
    hint = f"put it in an environment variable or a Prefect Secret block, {REFERENCE_FIX}"
    urls = {loc for loc, _ in _database_url_fields(data)}
    for loc, value in _walk(data):
        if loc in urls:
            continue  # said by _database_urls, naming the field
        if loc and isinstance(loc[-1], str) and _SECRET_KEY_NAMES.match(loc[-1]):
            yield (loc, f"a secret is written inline; {hint}")
        elif isinstance(value, str) and _DSN_WITH_PASSWORD.match(value):
            yield (loc, f"a URL with a password is written inline; {hint}")
        elif isinstance(value, list):
            yield from _password_arguments(loc, value, hint)


def _password_arguments(loc: Loc, argv: list[Any], hint: str) -> Iterator[Problem]:
    for index, arg in enumerate(argv):
        if not isinstance(arg, str):
            continue
        match = _PASSWORD_FLAG.match(arg)
        if match and match.group(2):
            yield ((*loc, index), f"a password is written inline in an argument; {hint}")
        elif match and index + 1 < len(argv) and isinstance(argv[index + 1], str):
            yield ((*loc, index + 1), f"a password is written inline after {arg}; {hint}")


def _commands(data: dict[str, Any]) -> Iterator[Problem]:
    for loc, step in _all_steps(data):
        for field in ("run", "undo", "check"):
            argv = step.get(field)
            if isinstance(argv, list):
                yield from _operands((*loc, field), argv)


def _operands(loc: Loc, argv: list[Any]) -> Iterator[Problem]:
    if argv and isinstance(argv[0], str) and argv[0].startswith("-"):
        yield ((*loc, 0), f"the program {argv[0]!r} starts with '-'; the first element must be the program to run")
    if "--" in argv:
        for index in range(argv.index("--") + 1, len(argv)):
            arg = argv[index]
            if isinstance(arg, str) and arg.startswith("-"):
                yield ((*loc, index), f"operand {arg!r} starts with '-' after '--'; operands may not look like options")


def _secret_references(data: dict[str, Any]) -> Iterator[Problem]:
    declared = _get(data, "secrets")
    known = set(declared) if isinstance(declared, dict) else set()
    for loc, value in _walk(data):
        if loc[:1] == ("secrets",) or not isinstance(value, dict) or set(value) != {"secret"}:
            continue
        name = value["secret"]
        if isinstance(name, str) and name not in known:
            yield (
                (*loc, "secret"),
                f"unknown secret {name!r}; declare it under secrets: (known: {', '.join(sorted(known)) or 'none'})",
            )


# ------------------------------------------------------------------------------------ data
def _data(data: dict[str, Any]) -> Iterator[Problem]:
    original, cloud = _get(data, "data", "original", "secret"), _get(data, "data", "cloud", "secret")
    if isinstance(original, str) and original == cloud:
        yield (
            ("data", "cloud", "secret"),
            f"the cloud copy and the original both name secret {original!r}; a database cannot replicate into "
            "itself: name the cloud copy's own secret",
        )
    original, cloud = _get(data, "data", "original"), _get(data, "data", "cloud")
    if isinstance(original, str) and original == cloud:
        yield (
            ("data", "cloud"),
            "the cloud copy and the original are the same database URL; a database cannot replicate into itself: "
            "write the cloud copy's own URL",
        )
    tables = _get(data, "data", "tables")
    seen: set[str] = set()
    for index, table in enumerate(tables if isinstance(tables, list) else []):
        name = table if not isinstance(table, str) or "." in table else f"public.{table}"
        if name in seen:
            yield (("data", "tables", index), f"{table!r} is listed twice (as {name}); list each table once")
        seen.add(name)


def _replicated_freeze(data: dict[str, Any]) -> Iterator[Problem]:
    """With ``data.replication`` the final sync waits for the cloud copy right before the first step that
    needs the data there: the traffic switch with ``data.verify: on-snapshots`` (the data_verify steps run
    after it, on the snapshots taken at the catch-up), else the first data_verify step or the switch. Writes
    must be frozen before it, by a state-changing ssh step with an undo, or the direction turns with writes
    in flight."""
    if _get(data, "data") is None:
        return
    steps = list(_items(data, "cutover", "steps"))
    _, first, freezes = _replicated_cutover(steps, on_snapshots=_on_snapshots(data))
    if first is None:
        return
    if not freezes:
        order = (
            "freeze -> catch-up (snapshots taken) -> switch -> verification on the snapshots -> turn-around"
            if _on_snapshots(data)
            else "freeze -> catch-up -> verification -> switch -> turn-around"
        )
        yield (
            ("cutover", "steps", first),
            f"with data.replication the final sync (the cloud copy catching up) runs right before step "
            f"{dict(steps)[first].get('id')!r} (order: {order}); put the step that freezes writes on the original "
            "(an ssh step with an undo, e.g. appctl freeze / appctl unfreeze) before it",
        )


def _on_snapshots(data: dict[str, Any]) -> bool:
    return _get(data, "data", "verify") in (None, "on-snapshots")


def _replicated_cutover(
    steps: list[tuple[int, dict[str, Any]]], *, on_snapshots: bool = False
) -> tuple[int | None, int | None, list[dict[str, Any]]]:
    """The switch's index, the final sync's (the switch on snapshots, else the first data_verify step or the
    switch), the freezes before it."""
    changing = [(i, s) for i, s in steps if s.get("kind") == "ssh" and s.get("changes_state", True)]
    marked = [i for i, s in changing if s.get("switches_traffic")]
    switch = marked[0] if marked else (changing[-1][0] if changing else None)
    needs = [i for i, s in steps if (s.get("kind") == "data_verify" and not on_snapshots) or i == switch]
    first = needs[0] if needs else None
    freezes = [s for i, s in changing if first is not None and i < first and i != switch and s.get("undo")]
    return switch, first, freezes


def _verified_on_snapshots(data: dict[str, Any]) -> Iterator[Problem]:
    """With ``data.verify: on-snapshots`` a data_verify step before the switch runs after it, on the snapshots
    of the original and the cloud copy: it must compare exactly those two databases."""
    if _get(data, "data") is None or not _on_snapshots(data):
        return
    steps = list(_items(data, "cutover", "steps"))
    switch, _, _ = _replicated_cutover(steps, on_snapshots=True)
    sides = (_get(data, "data", "original"), _get(data, "data", "cloud"))
    for index, step in steps:
        if step.get("kind") != "data_verify" or switch is None or index > switch:
            continue
        if (step.get("source"), step.get("target")) != sides:
            yield (
                ("cutover", "steps", index),
                f"step {step.get('id')!r} runs after the switch on the snapshots of the original and the cloud "
                "copy (data.verify: on-snapshots): its source must be data.original and its target data.cloud; "
                "compare those, or write data.verify: in-window to verify before the switch with writes frozen",
            )


def _replicated_rollback(data: dict[str, Any]) -> Iterator[Problem]:
    """With ``data.replication`` the rollback waits for the original to catch up with the cloud copy right
    before its first data_verify step or the traffic back: writes on the cloud copy must be frozen before,
    by a step running the cutover's freeze command on another host (the cloud copy's)."""
    rollback = list(_items(data, "rollback", "steps"))
    if _get(data, "data") is None or not rollback:
        return
    steps = list(_items(data, "cutover", "steps"))
    switch, _, freezes = _replicated_cutover(steps)
    back = dict(steps).get(switch) if switch is not None else None
    later = [i for i, s in rollback if s.get("kind") == "data_verify" or (back and _runs_undo(s, back))]
    boundary = later[0] if later else len(rollback)
    frozen = [
        i for i, s in rollback for f in freezes if _same(s, f, "run") and s.get("host") not in (None, f.get("host"))
    ]
    if freezes and not any(i < boundary for i in frozen):
        freeze = freezes[0]
        yield (
            ("rollback", "steps"),
            f"with data.replication the rollback waits for the original to catch up with the cloud copy before "
            f"{'step ' + repr(dict(rollback)[boundary].get('id')) if later else 'its end'}; freeze writes on the cloud "
            f"copy before that: a step running cutover step {freeze.get('id')!r}'s command on the cloud copy's host",
        )


def _runs_undo(step: dict[str, Any], switch: dict[str, Any]) -> bool:
    return step.get("host") == switch.get("host") and step.get("run") == switch.get("undo")


_RULES = (
    _scope,
    _disposition,
    _retention,
    _parties,
    _hosts,
    _duplicate_step_ids,
    _host_references,
    _undo_coverage,
    _traffic_switch,
    _rollback_order,
    _commands,
    _database_urls,
    _inline_secrets,
    _secret_references,
    _data,
    _replicated_freeze,
    _verified_on_snapshots,
    _replicated_rollback,
)
