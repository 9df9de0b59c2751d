"""Test support for the sign-off tests: a system with a report, two enrolled approvers, their
private keys (kept here, as on the approvers' own machines), and helpers to drive a
``signoff-demo`` deployment on a real server and a cutover worker."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from prefect import get_client
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import PrefectHTTPStatusError
from prefect.flow_runs import resume_flow_run
from prefect.states import Cancelled
from prefect.types.entrypoint import EntrypointType
from pydantic import SecretStr

from cutover import audit, sm2
from cutover.approvers import code_for, enroll, enroll_key
from cutover.ledger import Ledger, Party, ReportKind, RunKind
from cutover.lifecycle import register_system
from cutover.settings import Settings
from cutover.spec import Spec
from cutover.spec_loader import load_spec
from flows._signoff_demo import signoff_demo
from flows.deployments import ensure_work_pool
from tasks._signoff_forms import StatementFields
from tasks.signoff import sign_answer
from tests._polling import wait_until
from tests.fixtures.prefect_server import (
    REPO_ROOT,
    PrefectServer,
    kill_group,
    serve_in_subprocess,
    start_cutover_worker,
    using_server,
    wait_for_deployment,
    wait_for_final_run,
    wait_for_worker,
)

EXAMPLE_SPEC = REPO_ROOT / "cutover_specs" / "hrss-social-insurance.yaml"
DEPLOYMENT = "signoff-demo/signoff-tests"
UNIT_RUN = "00000000-0000-0000-0000-0000000000aa"  # the flow run id of forms checked without Prefect
STEP_S = 30


def form_key(n: int, kind: str = "trial-run") -> str:
    """The pause key of the n-th sign-off form."""
    return f"signoff-{kind}-{n}"


@dataclass
class Authenticator:
    """Stands in for the approvers' phones: a fresh, not yet used code each time."""

    ledger: Ledger
    settings: Settings
    last: dict[str, int] = field(default_factory=dict)

    def code(self, approver_id: str) -> str:
        """A code of a time step after the last one used for this approver (within ±1 step)."""
        while True:
            current = int(time.time()) // STEP_S
            counter = max(current, self.last.get(approver_id, -1) + 1)
            if counter <= current + 1:
                break
            time.sleep((current + 1) * STEP_S - time.time() + 0.05)
        self.last[approver_id] = counter
        return code_for(
            self.ledger, approver_id, at=datetime.fromtimestamp(counter * STEP_S, UTC), settings=self.settings
        )


@dataclass
class Keyring:
    """The approvers' SM2 private keys, as each approver keeps theirs on their own machine."""

    keys: dict[str, Any] = field(default_factory=dict)

    def enroll(self, ledger: Ledger, approver_id: str, name: str, party: Party) -> None:
        """Generate the approver's key here and have an administrator enroll its public half."""
        key = sm2.generate_key()
        self.keys[approver_id] = key
        public = sm2.public_key_pem(key).encode()
        enroll_key(ledger, approver_id, name, party, public, actor="admin.liu", source="test keygen")

    def answer(self, approver_id: str, decision: str, fields: StatementFields, comment: str) -> dict[str, str]:
        """The form answer of ``approver_id``: the statement's lines and the signature over it."""
        return sign_answer(fields, approver_id, decision, comment, self.keys[approver_id], datetime.now(UTC))[1]


@dataclass
class Estate:
    """One system ready for sign-off: spec file, ledger with run + report, two approvers."""

    spec_path: Path
    spec: Spec
    ledger: Ledger
    ledger_url: str
    settings: Settings
    run_id: str
    department: str
    cloud: str
    phone: Authenticator
    keyring: Keyring

    @property
    def system_id(self) -> str:
        return self.spec.system.id

    def report_digest(self) -> str:
        report = self.ledger.latest_report(self.system_id, ReportKind.TRIAL_RUN)
        assert report is not None
        return report.digest

    def new_report(self, content: str) -> str:
        """Replace the trial-run report (void the old one); the new digest."""
        self.ledger.void_reports(self.system_id)
        return self.ledger.create_report(self.run_id, self.system_id, ReportKind.TRIAL_RUN, content).digest

    def fields(self, run: UUID | str = UNIT_RUN, *, spec: Spec | None = None) -> StatementFields:
        """The fixed lines of the statement of a form of flow run ``run`` on the current report."""
        spec_digest = (spec or self.spec).digest()
        return StatementFields(self.system_id, "trial_run", self.report_digest(), spec_digest, str(run))

    def signature_input(
        self,
        approver_id: str,
        decision: str = "approve",
        *,
        run: UUID | str = UNIT_RUN,
        signer: str | None = None,
        comment: str | None = None,
        spec: Spec | None = None,
    ) -> dict[str, str]:
        """A form answer as the UI would post it, signed by ``signer``'s key (default: the approver's own)."""
        said = comment if comment is not None else f"{decision} by {approver_id}"
        answer = self.keyring.answer(signer or approver_id, decision, self.fields(run, spec=spec), said)
        return {**answer, "approver_id": approver_id}

    def totp_input(self, approver_id: str, decision: str = "approve", *, code: str | None = None) -> dict[str, str]:
        """A TOTP-mode form answer (pilot mode)."""
        return {
            "approver_id": approver_id,
            "decision": decision,
            "comment": f"{decision} by {approver_id}",
            "code": code if code is not None else self.phone.code(approver_id),
        }

    def parameters(self, *, deadline: datetime | None = None) -> dict[str, Any]:
        """Parameters of the signoff-demo flow for this system."""
        deadline = deadline or datetime.now(UTC) + timedelta(hours=1)
        return {
            "spec_path": str(self.spec_path),
            "ledger_url": self.ledger_url,
            "deadline": deadline.isoformat(),
            "report_link": f"http://127.0.0.1/reports/{self.system_id}",
        }


def write_spec(directory: Path, system_id: str, department: str, cloud: str) -> Path:
    """A copy of the example spec for ``system_id`` with the given approvers."""
    data = yaml.safe_load(EXAMPLE_SPEC.read_text(encoding="utf-8"))
    data["system"]["id"] = system_id
    data["parties"]["department"]["approvers"] = [{"id": department, "name": "王丽"}]
    data["parties"]["cloud_provider"]["approvers"] = [{"id": cloud, "name": "赵敏"}]
    path = directory / f"{system_id}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def sqlite_copy(tmp_path: Path, sqlite_template: Path) -> str:
    """A fresh SQLite ledger (copy of the migrated template); its URL."""
    db = tmp_path / "ledger.db"
    shutil.copyfile(sqlite_template, db)
    return f"sqlite:///{db}"


def make_estate(tmp_path: Path, url: str, totp_key: str) -> Estate:
    """A registered system with a cutover run, a trial-run report and two enrolled approvers."""
    suffix = uuid.uuid4().hex[:8]
    system_id, department, cloud = f"sys-{suffix}", f"wang.li-{suffix}", f"zhao.min-{suffix}"
    spec_path = write_spec(tmp_path, system_id, department, cloud)
    spec = load_spec(spec_path)
    ledger = Ledger(url, digest="sm3")
    settings = Settings(home=tmp_path / "home", totp_key=SecretStr(totp_key))
    register_system(
        ledger,
        system_id=system_id,
        name=spec.system.name,
        department=spec.system.department,
        disposition="migrate",
        spec_digest=spec.digest(),
        actor="test",
    )
    run = ledger.create_run(system_id, RunKind.CUTOVER)
    ledger.create_report(run.id, system_id, ReportKind.TRIAL_RUN, f"# trial-run report of {system_id}\nall passed\n")
    enroll(ledger, department, "王丽", settings=settings)  # TOTP secrets too, for the pilot-mode tests
    enroll(ledger, cloud, "赵敏", settings=settings)
    keyring = Keyring()
    keyring.enroll(ledger, department, "王丽", Party.DEPARTMENT)
    keyring.enroll(ledger, cloud, "赵敏", Party.CLOUD_PROVIDER)
    phone = Authenticator(ledger, settings)
    return Estate(spec_path, spec, ledger, url, settings, run.id, department, cloud, phone, keyring)


# ---------------------------------------------------------------------------- Prefect driving
def served_deployment(server: PrefectServer, totp_key: str, log_dir: Path) -> Iterator[str]:
    """Serve ``flows/_signoff_demo.py`` as ``DEPLOYMENT``; yields its id; stops the runner after."""
    env = {**server.client_env(), "CUTOVER_TOTP_KEY": totp_key, "CUTOVER_HOME": str(log_dir / "home")}
    log_file = log_dir / "runner.log"
    runner = serve_in_subprocess(
        "flows/_signoff_demo.py:signoff_demo", DEPLOYMENT.split("/")[1], env, log_file=log_file
    )
    try:
        yield wait_for_deployment(server, DEPLOYMENT, runner=runner, log_file=log_file)
    finally:
        kill_group(runner)


def pooled_deployment(server: PrefectServer, totp_key: str, log_dir: Path) -> Iterator[str]:
    """Deploy ``flows/_signoff_demo.py`` on a work pool of its own, polled by a cutover worker with
    warm processes (a resumed run starts at once, even on a busy machine); yields the deployment id
    and stops the worker after."""
    pool = f"signoff-tests-{uuid.uuid4().hex[:6]}"
    with using_server(server):
        ensure_work_pool(pool)
        deployment = signoff_demo.to_deployment(name=pool, entrypoint_type=EntrypointType.MODULE_PATH)
        assert isinstance(deployment, RunnerDeployment)
        deployment_id = deployment.apply(work_pool_name=pool)
    env = {
        **server.client_env(),
        "CUTOVER_TOTP_KEY": totp_key,
        "CUTOVER_HOME": str(log_dir / "home"),
        "CUTOVER_WARM_PROCESSES": "2",
    }
    log_file = log_dir / "worker.log"
    worker = start_cutover_worker(pool, env, log_file)
    try:
        with using_server(server):
            wait_for_worker(pool, worker, log_file)
        yield str(deployment_id)
    finally:
        kill_group(worker)


def start_run(deployment_id: str, parameters: dict[str, Any]) -> UUID:
    """Create a run of the deployment; its id."""
    with get_client(sync_client=True) as client:
        return client.create_flow_run_from_deployment(UUID(deployment_id), parameters=parameters).id


def deadline_margin(deployment_id: str, estate: Estate) -> timedelta:
    """How far ahead to set a deadline so the form is surely asked before it, on this machine now.

    A run with a far deadline is timed from its start to its form and cancelled; the deadline is set
    four times that (at least 30 s) ahead, so a busy machine widens the margin instead of failing.
    """
    started = time.monotonic()
    probe = start_run(deployment_id, estate.parameters(deadline=datetime.now(UTC) + timedelta(hours=1)))
    wait_for_form(probe, 1, timeout_s=300)
    to_form = time.monotonic() - started
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(probe, state=Cancelled(message="timing probe over"), force=True)
    return timedelta(seconds=max(30.0, 4 * to_form))


def read_run(flow_run_id: UUID) -> FlowRun:
    """The flow run as the server has it now."""
    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def wait_for_form(flow_run_id: UUID, n: int, timeout_s: float = 120.0) -> FlowRun:
    """Wait until the run is suspended on the n-th sign-off form."""

    def suspended_on_n(state: State) -> bool:
        if state.is_final():
            pytest.fail(f"flow run ended {state.type.value} ({state.message}) instead of asking form {n}")
        paused = state.type == StateType.PAUSED and state.state_details.pause_key == form_key(n)
        return paused and form_ready(flow_run_id, n)

    what = f"flow run {flow_run_id} to ask form {form_key(n)}"
    wait_until(lambda: read_run(flow_run_id).state, ready=suspended_on_n, what=what, timeout_s=timeout_s)
    return read_run(flow_run_id)


def form_ready(flow_run_id: UUID, n: int) -> bool:
    """True once the n-th form's schema is stored (the run is set Suspended a moment before)."""
    with get_client(sync_client=True) as client:
        try:
            client.read_flow_run_input(flow_run_id, f"suspended-{form_key(n)}-schema")
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code == 404:
                return False
            raise
    return True


def wait_final(flow_run_id: UUID, timeout_s: float = 120.0) -> FlowRun:
    """Wait until the run is in a final state."""
    return wait_for_final_run(flow_run_id, timeout_s=timeout_s)


def events(estate: Estate, action: str) -> list[audit.AuditEvent]:
    """The system's audit events of one action, oldest first."""
    return [e for e in reversed(audit.events(estate.ledger, object=f"system:{estate.system_id}")) if e.action == action]


def refusals(estate: Estate) -> list[str]:
    """Why each refused signature was refused, oldest first."""
    return [str(e.detail["reason"]) for e in events(estate, "signoff.refused")]


def sign(
    flow_run_id: UUID,
    estate: Estate,
    who: str,
    decision: str = "approve",
    *,
    comment: str | None = None,
    signer: str | None = None,
    **over: str,
) -> dict[str, str]:
    """Resume the run with ``who``'s signed answer (fields in ``over`` replaced); return the answer."""
    answer = {**estate.signature_input(who, decision, run=flow_run_id, comment=comment, signer=signer), **over}
    resume_flow_run(flow_run_id, run_input=answer)
    return answer
