"""The safe order of a rollback without replication, made by the tool from the spec's own steps.

The spec's rollback steps carry the data back (the author's reverse copy, e.g. ``pull-from cloud``
on the original's host). Their order is not left to the author: :func:`safe_order` puts them in
the order that loses nothing, adding what is missing and saying why:

1. **freeze the cloud copy**: the cutover's freeze command on the cloud copy's host (the host the
   cutover's copy ran on), so no write is acknowledged there while the data moves back;
2. **make the original writable**: the undo of the cutover's freeze, on the original's host,
   before anything is copied into it (a frozen original refuses the copy, or stays frozen);
3. **copy back**: the rollback steps that cover the cutover's irreversible copies (``covered_by``);
4. **verify**: every ``data_verify`` rollback step; when the cutover verified data and the
   rollback does not, the cutover's verification with source and target reversed;
5. **traffic back**: the undo of the cutover's traffic switch, last, once the data is back.

The spec's other steps keep their place: before the copy back if the author put them before it,
after it (before the traffic) otherwise. Freezing and verification are added only when data moves
back. A spec whose rollback freezes the original again cannot be made safe and is refused when it
is loaded (:mod:`cutover._spec_rules`). Pure: the spec in, the steps and the changes out.

With replication (spec ``data.replication``) the data comes back by PostgreSQL's logical replication:
the tool adds its step ``replication-back`` (:mod:`tasks.replication_steps`: the original catches up
with the cloud copy, its subscription is dropped, its sequences moved on, the cloud copy's data left
as it is) after the spec's steps that freeze the cloud copy and make the original writable, before
the first data verification and the traffic back.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from cutover.spec import DataVerifyStep, SecretRef, Spec, SshStep, Step
from tasks.replication_steps import back_step
from tasks.steps import AnyStep


class Role(IntEnum):
    """Where a step belongs in a safe rollback (the order of the values)."""

    FREEZE_CLOUD = 0
    BEFORE_COPY = 1  # the original made writable, and the author's steps before the copy back
    COPY_BACK = 2
    AFTER_COPY = 3  # verification, and the author's steps after the copy back
    TRAFFIC_BACK = 4


class Change(StrEnum):
    """What the tool did to one step of the spec's rollback."""

    ADDED = "added"
    MOVED = "moved"


@dataclass(frozen=True)
class PlanChange:
    """One step the tool added to the rollback or moved in it, and why."""

    step_id: str
    change: Change
    why: str

    def describe(self) -> str:
        """One sentence for the log and the report."""
        return f"{self.change.value} step {self.step_id!r}: {self.why}"


@dataclass(frozen=True)
class _Facts:
    """What the cutover tells about the rollback: the freezes, the copies, the switch."""

    freezes: tuple[SshStep, ...]  # cutover steps on the original's hosts, before the first copy, with an undo
    cloud_host: str | None  # the host the cutover's copy ran on, when it is not the original's
    covers: frozenset[str]  # rollback steps covering an irreversible cutover copy: data moves into the original
    verifies: tuple[DataVerifyStep, ...]  # the cutover's data verification
    switch: SshStep | None  # the cutover's traffic switch, when it has an undo


def safe_order(spec: Spec) -> tuple[tuple[AnyStep, ...], tuple[PlanChange, ...]]:
    """The spec's rollback steps in a safe order, with the steps added, and every change made."""
    declared = list(spec.rollback.steps) if spec.rollback else []
    facts = _facts(spec)
    roles = {step.id: _role(step, index, declared, facts) for index, step in enumerate(declared)}
    added = _missing(declared, roles, facts)
    for step, role, _ in added:
        roles[step.id] = role
    steps = _placed(declared, added, roles)
    ordered = sorted(steps, key=lambda step: roles[step.id])  # stable: equal roles keep the author's order
    changes = [PlanChange(step.id, Change.ADDED, why) for step, _, why in added]
    changes += _moves(declared, ordered, roles, facts)
    with_back, added_back = _replication_back(spec, ordered, roles, facts)
    return tuple(with_back), tuple(changes + added_back)


def _replication_back(
    spec: Spec, ordered: list[Step], roles: dict[str, Role], facts: _Facts
) -> tuple[list[AnyStep], list[PlanChange]]:
    """With replication: the tool's ``replication-back`` before the first verification or the traffic back,
    and the cutover's verification reversed after it when the rollback declares none."""
    back = back_step(spec)
    steps: list[AnyStep] = list(ordered)
    if back is None:
        return steps, []
    later = [i for i, s in enumerate(ordered) if isinstance(s, DataVerifyStep) or roles[s.id] >= Role.AFTER_COPY]
    at = later[0] if later else len(steps)
    verifies = _verification(ordered, facts, {s.id for s in ordered})
    steps[at:at] = [back, *(step for step, _, _ in verifies)]
    why = (
        "the data comes back by logical replication: the original catches up with the cloud copy (writes there "
        "frozen by the steps before it), its subscription is dropped and its sequences moved on, before the "
        "verification and the traffic back; the cloud copy's data is left as it is"
    )
    return steps, [PlanChange(back.id, Change.ADDED, why), *(PlanChange(s.id, Change.ADDED, w) for s, _, w in verifies)]


# ----------------------------------------------------------------------------------- facts
def _facts(spec: Spec) -> _Facts:
    steps = list(spec.cutover.steps) if spec.cutover else []
    copies = [s for s in steps if isinstance(s, SshStep) and s.irreversible and s.covered_by]
    first_copy = steps.index(copies[0]) if copies else 0
    switch_id = spec.cutover.traffic_switch() if spec.cutover else None
    freezes = tuple(
        s for s in steps[:first_copy] if isinstance(s, SshStep) and s.undo and s.host is not None and s.id != switch_id
    )
    frozen_hosts = {s.host for s in freezes}
    copy_hosts = [s.host for s in copies if s.host is not None and s.host not in frozen_hosts]
    switch = next((s for s in steps if s.id == switch_id and isinstance(s, SshStep)), None)
    return _Facts(
        freezes=freezes,
        cloud_host=copy_hosts[0] if copy_hosts else None,
        covers=frozenset(s.covered_by for s in copies if s.covered_by),
        verifies=tuple(s for s in steps if isinstance(s, DataVerifyStep)),
        switch=switch if switch is not None and switch.undo and switch.host is not None else None,
    )


def _runs(step: Step, host: str | None, argv: list[str | SecretRef] | None) -> bool:
    return isinstance(step, SshStep) and host is not None and step.host == host and list(step.run) == list(argv or [])


def _freezes_cloud(step: Step, facts: _Facts) -> bool:
    return any(_runs(step, facts.cloud_host, freeze.run) for freeze in facts.freezes)


def _unfreezes(step: Step, facts: _Facts) -> bool:
    return any(_runs(step, freeze.host, freeze.undo) for freeze in facts.freezes)


def _sends_traffic_back(step: Step, facts: _Facts) -> bool:
    return facts.switch is not None and _runs(step, facts.switch.host, facts.switch.undo)


def _role(step: Step, index: int, declared: list[Step], facts: _Facts) -> Role:
    if step.id in facts.covers:
        return Role.COPY_BACK
    if _sends_traffic_back(step, facts):
        return Role.TRAFFIC_BACK
    copies_back = [i for i, s in enumerate(declared) if s.id in facts.covers]
    if not copies_back:
        return Role.BEFORE_COPY  # nothing moves back: only the traffic is ordered
    if _freezes_cloud(step, facts):
        return Role.FREEZE_CLOUD
    if _unfreezes(step, facts):
        return Role.BEFORE_COPY
    if isinstance(step, DataVerifyStep):
        return Role.AFTER_COPY
    return Role.BEFORE_COPY if index < copies_back[0] else Role.AFTER_COPY


# ---------------------------------------------------------------------------- added steps
def _missing(declared: list[Step], roles: dict[str, Role], facts: _Facts) -> list[tuple[Step, Role, str]]:
    """The steps a safe rollback needs and the spec does not declare: (step, role, why)."""
    added: list[tuple[Step, Role, str]] = []
    taken = {step.id for step in declared}
    if any(role is Role.COPY_BACK for role in roles.values()):
        added += _cloud_freeze(declared, facts, taken)
        added += _unfreezes_missing(declared, facts, taken)
        added += _verification(declared, facts, taken)
    if facts.switch is not None and not any(role is Role.TRAFFIC_BACK for role in roles.values()):
        switch = facts.switch
        step = SshStep(
            kind="ssh",
            id=_free_id(f"auto-{switch.id}-back", taken),
            name=f"{switch.name} (back to the original)",
            host=switch.host,
            run=list(switch.undo or []),
        )
        why = (
            f"the rollback declares no step sending the traffic back; it runs the undo of cutover step "
            f"{switch.id!r} on host {switch.host!r}, last, so the original is serving at the end"
        )
        added.append((step, Role.TRAFFIC_BACK, why))
    return added


def _cloud_freeze(declared: list[Step], facts: _Facts, taken: set[str]) -> list[tuple[Step, Role, str]]:
    if facts.cloud_host is None or not facts.freezes or any(_freezes_cloud(s, facts) for s in declared):
        return []
    freeze = facts.freezes[0]
    step = SshStep(
        kind="ssh",
        id=_free_id(f"auto-{freeze.id}-cloud", taken),
        name=f"{freeze.name} (the cloud copy)",
        host=facts.cloud_host,
        run=list(freeze.run),
    )
    why = (
        f"writes on the cloud copy are frozen first (cutover step {freeze.id!r}'s command on host "
        f"{facts.cloud_host!r}, where the cutover copied the data to), so no write acknowledged during the rollback "
        "is lost; the cloud copy stays frozen afterwards, its data kept for inspection"
    )
    return [(step, Role.FREEZE_CLOUD, why)]


def _unfreezes_missing(declared: list[Step], facts: _Facts, taken: set[str]) -> list[tuple[Step, Role, str]]:
    added: list[tuple[Step, Role, str]] = []
    for freeze in facts.freezes:
        if any(_runs(s, freeze.host, freeze.undo) for s in declared):
            continue
        step = SshStep(
            kind="ssh",
            id=_free_id(f"auto-{freeze.id}-undo", taken),
            name=f"{freeze.name} (undone on the original)",
            host=freeze.host,
            run=list(freeze.undo or []),
        )
        why = (
            f"the original (host {freeze.host!r}) was frozen by cutover step {freeze.id!r}; its undo makes it "
            "writable before data is copied into it, and leaves it unfrozen at the end"
        )
        added.append((step, Role.BEFORE_COPY, why))
    return added


def _verification(declared: list[Step], facts: _Facts, taken: set[str]) -> list[tuple[Step, Role, str]]:
    if any(isinstance(s, DataVerifyStep) for s in declared):
        return []
    added: list[tuple[Step, Role, str]] = []
    for verify in facts.verifies:
        step = verify.model_copy(
            update={
                "id": _free_id(f"auto-{verify.id}-back", taken),
                "name": f"{verify.name} (cloud copy -> original)",
                "source": verify.target,
                "target": verify.source,
            }
        )
        why = (
            f"the cutover verified the data (step {verify.id!r}); the data copied back is verified the same way, "
            "source and target reversed, before the traffic returns"
        )
        added.append((step, Role.AFTER_COPY, why))
    return added


def _free_id(wanted: str, taken: set[str]) -> str:
    candidate, number = wanted[:60], 2
    while candidate in taken:
        candidate, number = f"{wanted[:58]}-{number}", number + 1
    taken.add(candidate)
    return candidate


def _placed(declared: list[Step], added: list[tuple[Step, Role, str]], roles: dict[str, Role]) -> list[Step]:
    """The declared steps with the added ones where they belong among equals (before or after the author's)."""
    steps = list(declared)
    for step, role, _ in added:
        if role in (Role.FREEZE_CLOUD, Role.BEFORE_COPY):
            later = [i for i, s in enumerate(steps) if roles[s.id] > role]
            steps.insert(later[0] if later else len(steps), step)
        else:
            steps.insert(_after_last(steps, roles, role), step)
    return steps


def _after_last(steps: list[Step], roles: dict[str, Role], role: Role) -> int:
    earlier = [i for i, s in enumerate(steps) if roles[s.id] < role]
    return earlier[-1] + 1 if earlier else 0


# ----------------------------------------------------------------------------------- moves
def _moves(declared: list[Step], ordered: list[Step], roles: dict[str, Role], facts: _Facts) -> list[PlanChange]:
    """The fewest declared steps that moved: those outside the heaviest run kept in the author's order.

    Among equally few, the safety steps (freeze, unfreeze, verify, traffic back) are the ones named
    as moved, the author's copy and other steps as kept."""
    position = {step.id: index for index, step in enumerate(declared)}
    kept = [s for s in ordered if s.id in position]
    weight = [1.0 if _is_safety(s, roles[s.id], facts) else 1.01 for s in kept]
    best: list[tuple[float, int]] = []  # (weight of the heaviest in-order run ending here, previous index)
    for i, step in enumerate(kept):
        earlier = [(best[j][0], j) for j in range(i) if position[kept[j].id] < position[step.id]]
        total, previous = max(earlier, default=(0.0, -1))
        best.append((total + weight[i], previous))
    in_place: set[str] = set()
    index = max(range(len(kept)), key=lambda i: best[i][0], default=-1)
    while index >= 0:
        in_place.add(kept[index].id)
        index = best[index][1]
    return [PlanChange(s.id, Change.MOVED, _why_moved(s, roles[s.id], facts)) for s in kept if s.id not in in_place]


def _is_safety(step: Step, role: Role, facts: _Facts) -> bool:
    return role in (Role.FREEZE_CLOUD, Role.TRAFFIC_BACK) or _unfreezes(step, facts) or isinstance(step, DataVerifyStep)


def _why_moved(step: Step, role: Role, facts: _Facts) -> str:
    if role is Role.FREEZE_CLOUD:
        return "writes on the cloud copy are frozen before any data moves back"
    if _unfreezes(step, facts):
        return "the original is made writable before data is copied into it"
    if role is Role.COPY_BACK:
        return "data moves back after the cloud copy is frozen and the original is writable, before verification"
    if role is Role.TRAFFIC_BACK:
        return "the traffic goes back last, once the data is back and verified"
    if isinstance(step, DataVerifyStep):
        return "the data is verified after it is copied back"
    return "it stays on its side of the copy back"
