"""Warm processes for the cutover worker: started ahead of time, handed one flow run each.

:class:`WarmProcesses` keeps ``size`` processes of :mod:`worker._zygote` ready, plus ``reserved``
more that only runs of the flows in ``reserved_for`` (the rollback) may take: a rollback never
waits for a cold start because a watch or cutover run holds the shared ones. :meth:`take`
hands one out at once and starts its replacement in the background (:meth:`filled` waits for it); :meth:`refresh` replaces any that died or grew older
than ``max_age_s`` (so an upgraded library is picked up within that time); :meth:`close` ends the
idle ones. :class:`WarmEngineStarter` is the Prefect runner "starter" that gives a flow run to a
warm process with the environment ``python -m prefect.engine`` would have received.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.abc
from prefect.runner._process_manager import ProcessHandle
from prefect.settings import get_current_settings
from prefect.utilities.processutils import sanitize_subprocess_env

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun
    from prefect.runner._control_channel import ControlChannel

__all__ = ["RESERVED_FOR", "WarmEngineStarter", "WarmProcess", "WarmProcesses", "zygote_command"]

#: The flows whose runs may take the reserved warm processes: the rollback, automatic or one-click.
RESERVED_FOR = frozenset({"rollback"})


def zygote_command() -> list[str]:
    """The command of a warm process: this interpreter running :mod:`worker._zygote`."""
    return [sys.executable, "-m", "worker._zygote"]


@dataclass
class WarmProcess:
    """One started warm process and when it started."""

    process: anyio.abc.Process
    started: float = field(default_factory=time.monotonic)

    def alive(self) -> bool:
        return self.process.returncode is None

    def age_s(self) -> float:
        return time.monotonic() - self.started

    async def give(self, cwd: Path | str, env: dict[str, str], *, quiet: bool = False) -> None:
        """Hand it its flow run: one JSON line on stdin, then end of input (``quiet``: no output)."""
        stdin = self.process.stdin
        if stdin is None:
            raise RuntimeError("warm process has no stdin")
        await stdin.send((json.dumps({"cwd": str(cwd), "env": env, "quiet": quiet}) + "\n").encode())
        await stdin.aclose()

    async def retire(self) -> None:
        """End an idle process (it holds no work): end of input, then SIGTERM, then SIGKILL."""
        if self.process.stdin is not None:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                await self.process.stdin.aclose()
        for stop, grace_s in ((None, 0.5), (self.process.terminate, 5.0), (self.process.kill, None)):
            if self.process.returncode is not None:
                return
            if stop is not None:
                with contextlib.suppress(ProcessLookupError):
                    stop()
            with anyio.move_on_after(grace_s):
                await self.process.wait()


class WarmProcesses:
    """A few warm processes kept ready for the next flow runs; ``reserved`` more for ``reserved_for``."""

    def __init__(
        self,
        *,
        size: int = 1,
        max_age_s: float = 900.0,
        reserved: int = 0,
        reserved_for: Iterable[str] = RESERVED_FOR,
    ) -> None:
        if size < 1 or reserved < 0:
            raise ValueError("at least one warm process is needed, and no negative reserve")
        self.size = size
        self.reserved = reserved
        self.reserved_for = frozenset(reserved_for)
        self.max_age_s = max_age_s
        self._ready: list[WarmProcess] = []
        self._reserve: list[WarmProcess] = []
        self._filling = anyio.Lock()
        self._refills: set[asyncio.Task[None]] = set()

    async def _start_one(self) -> WarmProcess:
        process = await anyio.open_process(zygote_command(), stdin=-1, stdout=None, stderr=None, env=dict(os.environ))
        return WarmProcess(process)

    async def fill(self) -> None:
        """Start processes until ``size`` are ready, and ``reserved`` in the reserve."""
        async with self._filling:
            while len(self._reserve) < self.reserved:
                self._reserve.append(await self._start_one())
            while len(self._ready) < self.size:
                self._ready.append(await self._start_one())

    async def take(self, flow_name: str | None = None) -> WarmProcess:
        """A ready process (started now if none is), its replacement started in its place.

        A run of a flow in ``reserved_for`` takes from the reserve first; other runs never do.
        """
        shelves = [self._reserve, self._ready] if flow_name in self.reserved_for else [self._ready]
        candidate = await self._first_alive(shelves)
        self._refill_soon()  # the run does not wait for its replacement to be spawned
        return candidate or await self._start_one()

    def _refill_soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self.fill())
        self._refills.add(task)
        task.add_done_callback(self._refilled)

    def _refilled(self, task: asyncio.Task[None]) -> None:
        self._refills.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved, not raised: a failed refill is made good by the next take or refresh

    async def filled(self) -> None:
        """Wait until the replacements started by :meth:`take` are spawned."""
        while self._refills:
            await asyncio.gather(*list(self._refills), return_exceptions=True)

    async def _first_alive(self, shelves: list[list[WarmProcess]]) -> WarmProcess | None:
        for shelf in shelves:
            while shelf:
                candidate = shelf.pop(0)
                if candidate.alive():
                    return candidate
                await candidate.retire()
        return None

    async def hand_over(
        self, cwd: Path | str, env: dict[str, str], *, quiet: bool = False, flow_name: str | None = None
    ) -> WarmProcess:
        """Give a flow run to a warm process; one that died meanwhile is replaced by a new one."""
        warm = await self.take(flow_name)
        try:
            await warm.give(cwd, env, quiet=quiet)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            await warm.retire()
            warm = await self._start_one()
            await warm.give(cwd, env, quiet=quiet)
        return warm

    async def refresh(self) -> None:
        """Replace the processes that died or are older than ``max_age_s``."""
        for shelf in (self._ready, self._reserve):
            keep: list[WarmProcess] = []
            for warm in shelf:
                if warm.alive() and warm.age_s() < self.max_age_s:
                    keep.append(warm)
                else:
                    await warm.retire()
            shelf[:] = keep
        await self.fill()

    async def close(self) -> None:
        """End every idle process."""
        await self.filled()
        idle = self._ready + self._reserve
        self._ready, self._reserve = [], []
        for warm in idle:
            await warm.retire()

    def pids(self) -> list[int]:
        """Process ids of the ready shared processes (for tests and status output)."""
        return [warm.process.pid for warm in self._ready]

    def reserved_pids(self) -> list[int]:
        """Process ids of the ready processes kept for ``reserved_for`` runs."""
        return [warm.process.pid for warm in self._reserve]


class WarmEngineStarter:
    """Runs a flow run in a warm process, as ``python -m prefect.engine`` would in a new one."""

    def __init__(
        self,
        warm: WarmProcesses,
        *,
        cwd: Path | str,
        env: dict[str, str | None],
        stream_output: bool = True,
        control_channel: ControlChannel | None = None,
        flow_name: str | None = None,
    ) -> None:
        self._warm = warm
        self._flow_name = flow_name
        self._cwd = cwd
        self._env = env
        self._stream_output = stream_output
        self._control_channel = control_channel

    def _run_env(self, flow_run: FlowRun, control_env: dict[str, str]) -> dict[str, str]:
        # The same environment Prefect's EngineCommandStarter gives `python -m prefect.engine`.
        env: dict[str, str | None] = {**os.environ, **self._env}
        env.update(get_current_settings().to_environment_variables(exclude_unset=True))
        env.update(
            {
                "PREFECT__FLOW_RUN_ID": str(flow_run.id),
                "PREFECT__ENABLE_CANCELLATION_AND_CRASHED_HOOKS": "false",
                "PREFECT__DEPLOYMENT_NAME": self._env.get("PREFECT__DEPLOYMENT_NAME"),
                **control_env,
            }
        )
        env.pop("PREFECT__FLOW_ENTRYPOINT", None)
        return {k: v for k, v in sanitize_subprocess_env(env).items() if v is not None}

    def _register_control(self, flow_run: FlowRun) -> dict[str, str]:
        if self._control_channel is None:
            return {}
        try:
            port, token = self._control_channel.register(flow_run.id)
        except RuntimeError:  # channel disabled: Prefect falls back to kill-only cancellation
            return {}
        return {"PREFECT__CONTROL_PORT": str(port), "PREFECT__CONTROL_TOKEN": token}

    async def start(
        self,
        flow_run: FlowRun,
        task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        control_env = self._register_control(flow_run)
        handed_off = False
        try:
            env = self._run_env(flow_run, control_env)
            warm = await self._warm.hand_over(self._cwd, env, quiet=not self._stream_output, flow_name=self._flow_name)
            task_status.started(ProcessHandle(warm.process))
            handed_off = True
            await warm.process.wait()
        except BaseException:
            if control_env and not handed_off and self._control_channel is not None:
                self._control_channel.unregister(flow_run.id)
            raise
