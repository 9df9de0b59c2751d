"""The cutover worker: a Prefect process worker whose flow runs start in a warm process.

Start it on every machine that executes cutover runs::

    prefect worker start --pool cutover-process --type cutover

It is Prefect's process worker (same job template, same environment, cancellation and crash
handling) with one difference: instead of a new ``python -m prefect.engine`` per flow run — which
spends 4-6 s importing Prefect, SQLAlchemy and paramiko, after Prefect 3.9's workspace supervisor
has spent as long again — the run is handed to a process started ahead of time that has already
imported them (:mod:`worker._zygote`). That is what brings a one-click rollback and a signed
report's resume within seconds of the click. A flow run then starts in well under a second after
the worker picks it up; this project's own code is still imported by the run, so a redeployed
flow is picked up by the next run.

One more warm process is kept for rollback runs only (flow ``rollback``, automatic or one-click):
a scheduled watch or a cutover holding the shared warm processes never makes a rollback wait for
a cold start. It is replaced as soon as a rollback takes it.

Each worker also keeps the watch alive (:mod:`flows.watch_guard`): as it starts, and whenever a
retained system would next go unprobed, it checks that somebody probes; if nobody has for about
an interval (a worker restart killed the watch run), it marks the dead watch runs Crashed and
starts a watch run at once, submitting it itself without waiting for its next poll.

A pool whose job template sets an explicit ``command`` runs that command instead, exactly as the
process worker does. It builds on Prefect 3.9's runner (``FlowRunExecutorContext``, process
handles, the control channel for cancellation), hence ``prefect>=3.9.1``;
tests/cutover/test_worker.py runs, cancels and re-runs flows through it on a real server.
Registered with Prefect through this package's ``prefect.collections`` entry point, so
``--type cutover`` works wherever the package is installed.
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import httpx
import prefect
from prefect.exceptions import PrefectException
from prefect.flows import load_flow_from_flow_run
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker, ProcessWorkerResult
from sqlalchemy.exc import SQLAlchemyError

from cutover.errors import CutoverError
from cutover.secrets import redact
from cutover.settings import WORKER_TYPE, get_settings
from worker._version import check_prefect_version

try:  # Prefect's private runner modules, which differ between minor versions (worker/_version.py)
    from prefect.runner._flow_run_executor import FlowRunExecutionResult, FlowRunExecutorContext
    from prefect.runner._process_manager import ProcessHandle

    from worker._warm import WarmEngineStarter, WarmProcesses
except ImportError:  # another Prefect: importing this package (Prefect loads it as a collection) still works;
    pass  # CutoverWorker() then refuses to start, naming the plain process worker

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

    from flows.watch_guard import WatchKeeper

__all__ = ["WORKER_TYPE", "CutoverWorker", "infrastructure_id"]


def infrastructure_id(pid: int) -> str:
    """A run's ``infrastructure_pid`` as this worker records it: ``host:pid``, so a worker started after
    this one died can tell a dead run's process from a live one (see :mod:`flows.watch_guard`)."""
    return f"{socket.gethostname()}:{pid}"


def _new_keeper(work_pool: str) -> WatchKeeper:
    from flows.watch_guard import WatchKeeper

    return WatchKeeper(work_pool)


class CutoverWorker(ProcessWorker):
    """Process worker that hands each flow run to a warm, pre-imported process."""

    type = WORKER_TYPE
    _description = (
        "Executes flow runs as subprocesses started ahead of time with Prefect and the cutover "
        "libraries already imported: a run starts within a second of being picked up."
    )
    _display_name = "Cutover (warm process)"
    _documentation_url = "https://www.prefect.io/docs/latest/concepts/workers"

    def __init__(
        self,
        *args: Any,
        warm_processes: int | None = None,
        warm_max_age_s: float | None = None,
        rollback_reserve: int = 1,
        **kwargs: Any,
    ) -> None:
        check_prefect_version(prefect.__version__)  # one line naming the fallback, not a traceback
        super().__init__(*args, **kwargs)
        settings = get_settings()  # CUTOVER_WARM_PROCESSES, CUTOVER_WARM_MAX_AGE_S
        self.warm = WarmProcesses(
            size=warm_processes or settings.warm_processes,
            max_age_s=warm_max_age_s or settings.warm_max_age_s,
            reserved=rollback_reserve,
        )

    async def setup(self) -> None:
        await super().setup()
        await self.warm.fill()  # first: the warm process imports while the automations are made
        self._keeper_scope = anyio.CancelScope()
        if self._runs_task_group is not None:
            self._runs_task_group.start_soon(self._keep_watching)
        await self._ensure_recovery()

    async def _keep_watching(self) -> None:
        """A watch run always alive: started at once when a retained system goes unprobed (flows.watch_guard)."""
        with self._keeper_scope:
            keeper = await anyio.to_thread.run_sync(_new_keeper, self._work_pool_name)  # imports off the loop
            last_said: str | None = None
            while True:
                try:
                    said, wait_s = await anyio.to_thread.run_sync(keeper.check)
                except (PrefectException, httpx.HTTPError, CutoverError, SQLAlchemyError) as exc:
                    self._logger.warning("could not check that the watch is alive: %s", redact(str(exc)))
                    said, wait_s = None, 5.0
                done = said.split("; ", 1)[-1] if said is not None else None  # what was done, not the seconds
                if said is not None and done != last_said:
                    self._logger.warning("the watch had stopped: %s", said)
                if said is not None and " started" in said:
                    await self.get_and_submit_flow_runs()  # now, not at the next poll
                last_said = done
                await anyio.sleep(wait_s)

    async def _ensure_recovery(self) -> None:
        """Zombie detection and automatic resume on this worker's pool (idempotent, see flows.recovery)."""
        from datetime import timedelta

        from flows.recovery import ensure_recovery

        silence = timedelta(seconds=get_settings().recovery_silence_s)
        await anyio.to_thread.run_sync(lambda: ensure_recovery(self._work_pool_name, silence=silence))

    async def teardown(self, *exc_info: Any) -> None:
        keeper = getattr(self, "_keeper_scope", None)
        if keeper is not None:
            keeper.cancel()
        try:
            await super().teardown(*exc_info)
        finally:
            await self.warm.close()

    async def sync_with_backend(self) -> None:
        await super().sync_with_backend()
        await self.warm.refresh()
        await self._crash_silent_runs()

    async def _crash_silent_runs(self) -> None:
        """Dead runs of this pool marked Crashed (then resumed), whatever the server's automation does."""
        from datetime import timedelta

        from flows.recovery import crash_silent_runs

        silence = timedelta(seconds=get_settings().recovery_silence_s)
        try:
            crashed = await anyio.to_thread.run_sync(lambda: crash_silent_runs(self._work_pool_name, silence))
        except (PrefectException, httpx.HTTPError) as exc:  # the server busy or away: the automation remains
            self._logger.warning("could not check this pool's runs for stopped heartbeats: %s", exc)
            return
        for flow_run_id in crashed:
            self._logger.warning(
                "flow run %s sent no heartbeat for %s: marked Crashed (it is resumed)", flow_run_id, silence
            )

    async def run(
        self,
        flow_run: FlowRun,
        configuration: ProcessJobConfiguration,
        task_status: anyio.abc.TaskStatus[int] | None = None,
    ) -> ProcessWorkerResult:
        if configuration._command_configured:  # the pool names its own command: run it as is
            return await super().run(flow_run, configuration, task_status)
        status = task_status if task_status is not None else anyio.TASK_STATUS_IGNORED
        working_dir_ctx = (
            tempfile.TemporaryDirectory(suffix="prefect")
            if not configuration.working_dir
            else contextlib.nullcontext(configuration.working_dir)
        )
        with working_dir_ctx as working_dir, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            execution = await self._execute(flow_run, configuration, Path(working_dir).resolve(), status)
        if execution is None or execution.status_code is None:
            raise RuntimeError("Failed to start flow run process.")
        return ProcessWorkerResult(status_code=execution.status_code, identifier=str(execution.handle.pid))

    async def _execute(
        self,
        flow_run: FlowRun,
        configuration: ProcessJobConfiguration,
        cwd: Path,
        task_status: anyio.abc.TaskStatus[Any],  # given "host:pid", recorded as the run's infrastructure_pid
    ) -> FlowRunExecutionResult | None:
        execution: FlowRunExecutionResult | None = None
        async with FlowRunExecutorContext() as ctx:
            starter = WarmEngineStarter(
                self.warm,
                cwd=cwd,
                env=configuration.env,
                stream_output=configuration.stream_output,
                control_channel=ctx.control_channel,
                flow_name=configuration.labels.get("prefect.io/flow-name"),
            )
            executor = ctx.create_executor(
                flow_run, starter, resolve_flow=load_flow_from_flow_run, propose_submitting=False
            )

            async def execute(*, task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED) -> None:
                nonlocal execution
                execution = await executor.submit(task_status=task_status)

            async with anyio.create_task_group() as group:
                handle = await group.start(execute)
                if handle.pid is None:
                    raise RuntimeError("Flow run process has no PID")
                task_status.started(infrastructure_id(handle.pid))
        return execution
