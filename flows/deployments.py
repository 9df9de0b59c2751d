"""The Prefect deployments of govcloud-cutover, defined once: the table :data:`DEPLOYMENTS`.

Everything about a deployment (flow, entrypoint, description, tags, parameters, concurrency,
schedule) lives in that table. ``prefect.yaml`` is generated from it (``cutover deployments
--write``; a test fails when the file is stale), and the functions below apply the same entries
from code: the per-system one-click rollback deployment, the decommission and sign-off-deadline
deployments the flows need at run time, the scheduled watch.

    cutover             系统割接   test, report, joint sign-off, cutover, retention (one system)
    watch               保留期监控 every retained system; automatic rollback after K failed checks
    decommission        服务退出   after the window, signed by both parties
    recover             自动恢复   continues a crashed run's work (flows.recovery)
    signoff-deadline    签认截止   wakes a sign-off left waiting past its deadline
    portfolio           迁移进度   daily: the office's portfolio as artifacts (flows.portfolio)
    rollback-<system>   一键回退   one click in the UI; created when the system enters retention

When a system enters retention the cutover flow calls :func:`ensure_rollback_deployment`: the
deployment ``rollback/rollback-<system id>`` runs :func:`flows.rollback.rollback_flow` with the
system id as its fixed parameter and a concurrency limit of 1, so rolling back in the UI is one
click ("Run" → "Quick run") and a double click queues a second run that the ledger lock refuses.
:func:`remove_rollback_deployment` removes it at decommission.

Runs execute on a work pool of type ``cutover`` (default ``cutover-process``), whose workers start
each run in a warm process (:mod:`worker`)::

    prefect worker start --pool cutover-process --type cutover

Why a worker and not ``serve()``: a served runner executes only the deployments it registered when
it started, while rollback deployments appear at run time. Each worker needs the ledger URL,
specs directory and secrets in its environment (flow runs inherit it). The flows are deployed by
module path, so a worker needs this package installed, nothing else.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Literal, cast
from uuid import UUID

import yaml
from prefect import get_client
from prefect.artifacts import create_link_artifact
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.responses import DeploymentResponse
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.flows import Flow
from prefect.types.entrypoint import EntrypointType

from cutover.settings import DEFAULT_POOL, WORKER_TYPE
from tasks.report import artifact_key

__all__ = [
    "DEFAULT_POOL",
    "DEPLOYMENTS",
    "HEARTBEAT_S",
    "VIA_PREFECT",
    "Applied",
    "Deployment",
    "Status",
    "artifact_url",
    "artifact_version_url",
    "deployment_url",
    "ensure_decommission_deployment",
    "ensure_deployment",
    "ensure_recover_deployment",
    "ensure_rollback_deployment",
    "ensure_signoff_deadline_deployment",
    "ensure_watch_deployment",
    "ensure_work_pool",
    "find_rollback_deployment",
    "flow_run_url",
    "prefect_yaml",
    "register_deployment",
    "remove_rollback_deployment",
    "rollback_deployment",
    "rollback_deployment_name",
]


#: What applying something to the Prefect server did: made it, found it as wanted, or changed it.
Status = Literal["created", "already there", "updated"]


@dataclass(frozen=True)
class Applied:
    """One thing on the Prefect server (a work pool, a deployment, an automation) and what applying it did."""

    what: str
    status: Status
    id: UUID | None = None

    def line(self) -> str:
        """One line fit to print, e.g. ``deployment 'cutover/cutover': already there``."""
        return f"{self.what}: {self.status}"


@dataclass(frozen=True)
class Deployment:
    """One deployment: what runs, with which fixed parameters, how many at once, how often."""

    name: str
    entrypoint: str  # module path of the flow function, e.g. "flows.cutover.cutover"
    description: str
    tags: tuple[str, ...]
    parameters: Mapping[str, Any] = field(default_factory=dict)
    concurrency_limit: int | None = 1
    interval: timedelta | None = None
    job_variables: Mapping[str, Any] = field(default_factory=lambda: dict(_JOB_VARIABLES))

    def flow(self) -> Flow[Any, Any]:
        """The flow object behind :attr:`entrypoint` (imported on demand: no import cycle)."""
        module, _, attribute = self.entrypoint.rpartition(".")
        return cast(Flow[Any, Any], getattr(importlib.import_module(module), attribute))

    def as_yaml(self, work_pool: str) -> dict[str, Any]:
        """This deployment as an entry of ``prefect.yaml``'s ``deployments`` list."""
        entry: dict[str, Any] = {
            "name": self.name,
            "entrypoint": self.entrypoint,
            "description": self.description,
            "tags": list(self.tags),
            "parameters": dict(self.parameters),
        }
        if self.concurrency_limit is not None:
            entry["concurrency_limit"] = self.concurrency_limit
        if self.interval is not None:
            entry["schedules"] = [{"interval": int(self.interval.total_seconds())}]
        entry["work_pool"] = {"name": work_pool, "job_variables": _plain(self.job_variables)}
        return entry


_WATCH_EVERY = timedelta(minutes=5)
#: How long a watch run goes on after the next one was scheduled: longer than a run takes to start
#: (a cold start on a loaded machine ~16 s, plus the worker's polling), so one run always watches.
_WATCH_HANDOVER = timedelta(minutes=1)


def _watch_parameters(every: timedelta, handover: timedelta = _WATCH_HANDOVER) -> dict[str, float]:
    return {"duration_s": (every + handover).total_seconds(), "handover_s": handover.total_seconds()}


#: Seconds between two heartbeats of every flow run of these deployments (Prefect's zombie detection,
#: see flows.recovery); set in the runs' environment through the deployments' job variables.
HEARTBEAT_S = 30
_JOB_VARIABLES: Mapping[str, Any] = {"env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_S)}}


def _plain(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) if isinstance(v, Mapping) else v for k, v in value.items()}


#: Every static deployment, by name. The one source of prefect.yaml and of the code that applies them.
DEPLOYMENTS: Mapping[str, Deployment] = {
    d.name: d
    for d in (
        Deployment(
            name="cutover",
            entrypoint="flows.cutover.cutover",
            description="系统割接 Test, report, joint sign-off, cutover and retention for one information system.",
            tags=("cutover",),
            concurrency_limit=10,
        ),
        Deployment(
            name="watch",
            entrypoint="flows.watch.watch_retention",
            description="保留期监控 Watch every retained system; roll back automatically after K failed checks.",
            tags=("cutover", "watch"),
            parameters=_watch_parameters(_WATCH_EVERY),
            concurrency_limit=2,  # the next run starts while the previous one hands over
            interval=_WATCH_EVERY,
        ),
        Deployment(
            name="decommission",
            entrypoint="flows.decommission.decommission_flow",
            description="服务退出 Decommission a retained original after its window, signed by both parties.",
            tags=("cutover", "decommission"),
        ),
        Deployment(
            name="recover",
            entrypoint="flows.recovery.recover",
            description="自动恢复 Continues the work of a crashed run (its worker died) from the ledger.",
            tags=("cutover", "recovery"),
            concurrency_limit=None,
        ),
        Deployment(
            name="signoff-deadline",
            entrypoint="flows.signoff_deadline.signoff_deadline",
            description="签认截止 Ends a joint sign-off still waiting at its deadline, recording who did not sign.",
            tags=("cutover", "signoff"),
            concurrency_limit=None,
        ),
        Deployment(
            name="portfolio",
            entrypoint="flows.portfolio.portfolio",
            description="迁移进度 Every day: each department's systems by stage, overdue work, exemptions and "
            "the finance lists, as artifacts for the leading-group office.",
            tags=("cutover", "portfolio"),
            interval=timedelta(days=1),
        ),
    )
}


#: The actor the one-click rollback deployment passes. ``cutover rollback`` and the watch pass their
#: own, so a run with this one was started through Prefect itself (its UI, ``prefect deployment
#: run`` or its API), and the flow records what Prefect knows of who did (:func:`flows.rollback.requested_by`).
VIA_PREFECT = "prefect"


def rollback_deployment(system_id: str) -> Deployment:
    """The system's one-click rollback deployment (one run at a time, the system id fixed)."""
    return Deployment(
        name=rollback_deployment_name(system_id).split("/", 1)[1],
        entrypoint="flows.rollback.rollback_flow",
        description=f"一键回退 One-click rollback of {system_id} to its retained original (one run at a time).",
        tags=("cutover", "rollback", f"system:{system_id}"),
        parameters={
            "system_id": system_id,
            "actor": VIA_PREFECT,
            "reason": "one-click rollback (Prefect UI, CLI or API)",
        },
    )


def rollback_deployment_name(system_id: str) -> str:
    """The full name (``flow/deployment``) of the system's rollback deployment."""
    return f"rollback/rollback-{system_id}"


_PREFECT_VERSION = "3.9.1"  # the lowest version pyproject.toml admits
_YAML_HEADER = """\
# govcloud-cutover deployments. GENERATED from flows/deployments.py by `cutover deployments --write`;
# edit the table there, not this file (a test fails when they differ).
# Register them with `cutover setup` (the work pool, these deployments and the recovery automations, idempotently;
# or by hand: `prefect work-pool create cutover-process --type cutover` first, then `prefect deploy --all --no-prompt`).
# Runs execute on the work pool's workers:  prefect worker start --pool cutover-process --type cutover
# Each worker needs CUTOVER_DATABASE_URL (the ledger), CUTOVER_SPECS_DIR and the secrets the specs
# name in its environment, and this package installed; CUTOVER_REPO is where this file lives.
# The per-system one-click rollback deployments (rollback/rollback-<system>) are created at run
# time, when a system enters its retention window.
"""


def prefect_yaml(work_pool: str = DEFAULT_POOL) -> str:
    """The text of ``prefect.yaml``: every deployment of :data:`DEPLOYMENTS` on ``work_pool``."""
    document = {
        "name": "govcloud-cutover",
        "prefect-version": _PREFECT_VERSION,
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $CUTOVER_REPO }}"}}],
        "deployments": [d.as_yaml(work_pool) for d in DEPLOYMENTS.values()],
    }
    body = yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=120)
    return _YAML_HEADER + body


def ensure_rollback_deployment(system_id: str, *, work_pool: str = DEFAULT_POOL, link: bool = True) -> UUID:
    """Create or update the system's one-click rollback deployment; its id.

    Called in a flow run (the cutover's retention opening), it also leaves a link artifact on that run.
    """
    deployment_id = _apply(rollback_deployment(system_id), work_pool=work_pool)
    if link and _in_a_run():
        create_link_artifact(
            link=deployment_url(deployment_id),
            link_text=f"一键回退 Roll back {system_id}",
            key=artifact_key("rollback-deployment", system_id),
            description="The one-click rollback deployment of this system: open it and press Run → Quick run.",
        )
    return deployment_id


def find_rollback_deployment(system_id: str) -> UUID | None:
    """The id of the system's rollback deployment, or None when the server has none."""
    with get_client(sync_client=True) as client:
        try:
            return client.read_deployment_by_name(rollback_deployment_name(system_id)).id
        except ObjectNotFound:
            return None


def remove_rollback_deployment(system_id: str) -> bool:
    """Delete the system's rollback deployment; False when there was none."""
    deployment_id = find_rollback_deployment(system_id)
    if deployment_id is None:
        return False
    with get_client(sync_client=True) as client:
        try:
            client.delete_deployment(deployment_id)
        except ObjectNotFound:
            return False
    return True


def ensure_deployment(name: str, *, work_pool: str = DEFAULT_POOL) -> UUID:
    """Create or update the deployment ``name`` of :data:`DEPLOYMENTS` on ``work_pool``; its id."""
    return _apply(DEPLOYMENTS[name], work_pool=work_pool)


def ensure_decommission_deployment(*, work_pool: str = DEFAULT_POOL) -> UUID:
    """The ``decommission/decommission`` deployment (the sign-off suspends, which needs one)."""
    return _apply(DEPLOYMENTS["decommission"], work_pool=work_pool)


def ensure_signoff_deadline_deployment(*, work_pool: str = DEFAULT_POOL) -> UUID:
    """The ``signoff-deadline/signoff-deadline`` deployment that wakes sign-offs left past their deadline."""
    return _apply(DEPLOYMENTS["signoff-deadline"], work_pool=work_pool)


def ensure_recover_deployment(*, work_pool: str = DEFAULT_POOL) -> UUID:
    """The ``recover/recover`` deployment the crash automation starts (see :mod:`flows.recovery`)."""
    return _apply(DEPLOYMENTS["recover"], work_pool=work_pool)


def ensure_watch_deployment(
    *,
    every: timedelta = _WATCH_EVERY,
    handover: timedelta = _WATCH_HANDOVER,
    work_pool: str = DEFAULT_POOL,
    paused: bool = False,
) -> UUID:
    """The scheduled ``watch-retention/watch`` deployment: every ``every``, a run that watches for
    ``every`` plus ``handover`` (two runs at a time: the next starts while this one still watches).
    """
    watch = replace(DEPLOYMENTS["watch"], parameters=_watch_parameters(every, handover), interval=every)
    return _apply(watch, work_pool=work_pool, paused=paused)


def ensure_work_pool(name: str = DEFAULT_POOL) -> Applied:
    """Create the work pool (type ``cutover``, the process job template) if the server lacks it.

    The cutover worker (:mod:`worker`) is a process worker: its pools take the process job template.
    A pool already there is left as it is (whatever its type).
    """
    from prefect.workers.process import ProcessWorker  # only when a pool is created: a heavy import

    with get_client(sync_client=True) as client:
        try:
            found = client.read_work_pool(name)
        except ObjectNotFound:
            template = ProcessWorker.get_default_base_job_template()
            pool = WorkPoolCreate(name=name, type=WORKER_TYPE, base_job_template=template)
            try:
                created = client.create_work_pool(pool, overwrite=False)
            except ObjectAlreadyExists:  # a worker starting on the pool created it in between
                found = client.read_work_pool(name)
            else:
                return Applied(f"work pool {name!r} (type {WORKER_TYPE})", "created", created.id)
    return Applied(f"work pool {name!r} (type {found.type})", "already there", found.id)


def register_deployment(name: str, *, work_pool: str = DEFAULT_POOL) -> Applied:
    """Apply the deployment ``name`` of :data:`DEPLOYMENTS` on ``work_pool`` unless it is there as the table says."""
    deployment = DEPLOYMENTS[name]
    full_name = f"{deployment.flow().name}/{deployment.name}"
    with get_client(sync_client=True) as client:
        try:
            existing: DeploymentResponse | None = client.read_deployment_by_name(full_name)
        except ObjectNotFound:
            existing = None
    what = f"deployment {full_name!r}"
    if existing is not None and not _differences(existing, deployment, work_pool):
        return Applied(what, "already there", existing.id)
    deployment_id = _apply(deployment, work_pool=work_pool)
    return Applied(what, "created" if existing is None else "updated", deployment_id)


def _differences(found: DeploymentResponse, wanted: Deployment, work_pool: str) -> list[str]:
    """The fields in which the deployment on the server differs from the table's entry."""
    intervals = sorted(s.schedule.interval.total_seconds() for s in found.schedules if hasattr(s.schedule, "interval"))
    limit = found.global_concurrency_limit.limit if found.global_concurrency_limit else None
    pairs = {
        "entrypoint": (found.entrypoint, wanted.entrypoint),
        "description": (found.description, wanted.description),
        "tags": (sorted(found.tags), sorted(wanted.tags)),
        "parameters": (found.parameters, dict(wanted.parameters)),
        "concurrency_limit": (limit, wanted.concurrency_limit),
        "schedules": (intervals, [wanted.interval.total_seconds()] if wanted.interval else []),
        "work_pool": (found.work_pool_name, work_pool),
        "job_variables": (found.job_variables or {}, _plain(wanted.job_variables)),
        "paused": (found.paused, False),
    }
    return [name for name, (have, want) in pairs.items() if have != want]


def deployment_url(deployment_id: UUID) -> str:
    """The deployment's page in the Prefect UI."""
    return f"{_ui()}/deployments/deployment/{deployment_id}"


def flow_run_url(flow_run_id: UUID) -> str:
    """The flow run's page in the Prefect UI."""
    return f"{_ui()}/runs/flow-run/{flow_run_id}"


def artifact_url(key: str) -> str:
    """The page of the artifact ``key`` in the Prefect UI: a list of all its versions.

    To show one report, link its version with :func:`artifact_version_url`.
    """
    return f"{_ui()}/artifacts/key/{key}"


def artifact_version_url(artifact_id: UUID) -> str:
    """The page of one artifact version (e.g. the report an approver signs) in the Prefect v2 UI."""
    return f"{_ui()}/v2/artifacts/artifact/{artifact_id}"


def _apply(deployment: Deployment, *, work_pool: str, paused: bool = False) -> UUID:
    ensure_work_pool(work_pool)
    runner = cast(
        RunnerDeployment,
        deployment.flow().to_deployment(
            name=deployment.name,
            parameters=dict(deployment.parameters),
            description=deployment.description,
            tags=list(deployment.tags),
            interval=deployment.interval,
            paused=paused,
            concurrency_limit=deployment.concurrency_limit,
            job_variables=_plain(deployment.job_variables),
            entrypoint_type=EntrypointType.MODULE_PATH,
        ),
    )
    return cast(UUID, runner.apply(work_pool_name=work_pool))


def _in_a_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def _ui() -> str:
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    ui = PREFECT_UI_URL.value() or (PREFECT_API_URL.value() or "http://127.0.0.1:4200/api").removesuffix("/api")
    return str(ui).rstrip("/")
