"""The demo estate: real SSH hosts, sample-app instances and an nginx gateway on loopback.

Used by the test suite (once per session) and by ``make demo``::

    estate = Estate.start(Path("/tmp/estate"))       # gateway, legacy, cloud_test, cloud
    estate.spec_hosts()                              # -> the spec's ``hosts:`` mapping
    estate.run("gateway", estate.hosts["gateway"].program("route"), "cloud")
    estate.stop()                                    # nothing left running

From a shell: ``python -m demo.estate start|status|stop --root .demo``. ``start`` writes
``<root>/estate.json`` so a later ``stop`` from another process ends what ``start`` left.

Layout under the root: ``hosts/<name>/{app,bin,data,log}`` (owned by cutover-ops; ``bin`` holds
the host programs, see :mod:`demo.hostprograms`), ``sshd/<name>/`` (config, host key, pid, log),
``ssh/`` (the client key pair, ``authorized_keys``, ``known_hosts``), and on the gateway host
``hosts/gateway/nginx/``. The estate's processes all mention ``<root>/`` on their command line;
:meth:`Estate.stop` ends every process that does.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demo import _gateway, _ssh
from demo._hostbin import write_host_programs
from demo._layout import (
    APP_HOSTS,
    DEFAULT_ADDRESSES,
    DEFAULT_HOSTS,
    GATEWAY_HOST,
    check_names,
    fresh_state,
    post_json,
    roles,
    whoami,
)
from demo._proc import cmdline, end_processes, free_port, is_alive, pids_mentioning, tcp_open, wait_for_tcp
from demo._state import EstateState, GatewaySpec
from demo._types import OPS_USER, AppInstance, EstateHost
from demo.errors import EstateError
from demo.hostprograms import running_pid

__all__ = [
    "APP_HOSTS",
    "DEFAULT_ADDRESSES",
    "DEFAULT_HOSTS",
    "GATEWAY_HOST",
    "AppInstance",
    "Estate",
    "EstateError",
    "EstateHost",
    "free_port",
]

SSHD_TIMEOUT = 5.0
APP_START_TIMEOUT = 30.0


@dataclass
class _Launch:
    """An sshd that was started but has not yet been seen listening."""

    host: EstateHost
    proc: subprocess.Popen[bytes]
    files: _ssh.SshdFiles


class Estate:
    """A running demo estate. Create it with :meth:`start` (or :meth:`load` from its root)."""

    def __init__(self, state: EstateState) -> None:
        self._state = state
        self._children: list[subprocess.Popen[bytes]] = []
        self._ops: _ssh.OpsUser | None = None

    # -- starting ---------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        root: Path,
        *,
        hosts: Sequence[str] = DEFAULT_HOSTS,
        app_db_urls: Mapping[str, str] | None = None,
        seed_rows: int = 1000,
        port: int = 2222,
        app_port: int = 8000,
        gateway_port: int = 8080,
    ) -> Estate:
        """Start the hosts' sshd, seed legacy and copy it to the others, start apps and gateway.

        ``hosts`` are names from :data:`DEFAULT_ADDRESSES`; those in ``legacy``, ``cloud_test``,
        ``cloud`` run an app on ``app_port``; ``gateway`` runs nginx on ``gateway_port``, routed
        to legacy. ``app_db_urls`` overrides an instance's database (default: a SQLite file in
        its ``data/``). ``seed_rows=0`` keeps the databases as they are. On any failure what was
        started is stopped again and :class:`EstateError` is raised.
        """
        check_names(hosts)
        estate = cls(fresh_state(root, port))
        try:
            estate._boot(hosts, dict(app_db_urls or {}), seed_rows, app_port, gateway_port)
        except BaseException:
            estate.stop()
            raise
        return estate

    def _boot(
        self, hosts: Sequence[str], db_urls: dict[str, str], seed_rows: int, app_port: int, gateway_port: int
    ) -> None:
        """Bring every part up, overlapping the slow parts (sshd start, seeding, app start)."""
        self._ops = _ssh.ensure_ops_user()
        self._prepare_client_key()
        launches = self._launch_hosts([(name, DEFAULT_ADDRESSES[name]) for name in hosts])
        self._define_apps(hosts, db_urls, app_port)
        if GATEWAY_HOST in hosts:
            self._define_gateway(gateway_port)
        self._state.save()
        starting = self._spawn_app_starts(list(self.apps))  # apps import while we seed
        if seed_rows:
            self._state.seed_rows = seed_rows
            self._seed(seed_rows)
        self._start_gateway()
        self._await_app_starts(starting)
        self._await_gateway()
        self._await_sshd(launches)
        self._state.running = True
        self._state.save()

    def _prepare_client_key(self) -> None:
        """Generate the client key pair and authorize it on every host."""
        ssh_dir = self.root / "ssh"
        ssh_dir.mkdir(mode=0o755, exist_ok=True)
        _ssh.generate_keys([(self.client_key_path, f"{OPS_USER}@estate")])
        authorized = ssh_dir / "authorized_keys"
        authorized.write_text(_ssh.public_key_line(self.client_key_path) + "\n")
        authorized.chmod(0o644)

    def _launch_hosts(self, specs: Sequence[tuple[str, str]]) -> list[_Launch]:
        """Create each host's directories, keys, config and programs, then start its sshd."""
        sshd_files = {name: _ssh.SshdFiles(self.root / "sshd" / name) for name, _ in specs}
        for files in sshd_files.values():
            files.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _ssh.generate_keys([(f.host_key, f"{name} host key") for name, f in sshd_files.items()])
        launches = [self._launch_host(name, address, sshd_files[name]) for name, address in specs]
        self._write_known_hosts()
        return launches

    def _launch_host(self, name: str, address: str, files: _ssh.SshdFiles) -> _Launch:
        """Prepare one host and start its sshd (without waiting for it)."""
        host_dir = self.root / "hosts" / name
        for sub in ("app", "bin", "data", "log"):
            (host_dir / sub).mkdir(parents=True, exist_ok=True)
        (host_dir / "data" / "calls.log").unlink(missing_ok=True)
        public_key = _ssh.public_key_line(files.host_key)
        host = EstateHost(
            name,
            address,
            self._state.ssh_port,
            OPS_USER,
            self.client_key_path,
            _ssh.fingerprint(public_key),
            public_key,
            host_dir,
        )
        files.config.write_text(
            _ssh.sshd_config(
                files,
                address=address,
                port=host.port,
                authorized_keys=self.root / "ssh" / "authorized_keys",
                bin_dir=host.bin_dir,
            )
        )
        write_host_programs(
            bin_dir=host.bin_dir,
            host=name,
            roles=roles(name),
            python=self._state.python,
            repo=self._state.repo,
            root=str(self.root),
        )
        self._give_to_ops(host_dir)
        proc = _ssh.start_sshd(files)
        self._children.append(proc)
        self._state.pids[f"sshd:{name}"] = proc.pid
        self._state.hosts[name] = host
        return _Launch(host, proc, files)

    def _await_sshd(self, launches: Iterable[_Launch]) -> None:
        """Wait until every launched sshd accepts TCP connections."""
        for launch in launches:
            host = launch.host
            wait_for_tcp(
                host.address,
                host.port,
                timeout=SSHD_TIMEOUT,
                log=launch.files.log,
                what=f"sshd for host {host.name}",
                pid=launch.proc.pid,
                banner=b"SSH-2.0-",
            )

    def _define_apps(self, hosts: Sequence[str], db_urls: dict[str, str], port: int) -> None:
        """Record an app instance for each app host."""
        unknown = set(db_urls) - {name for name in hosts if name in APP_HOSTS}
        if unknown:
            raise EstateError(f"app_db_urls names hosts without an app: {', '.join(sorted(unknown))}")
        for name in (n for n in hosts if n in APP_HOSTS):
            host_dir = self.root / "hosts" / name
            url = db_urls.get(name, f"sqlite:///{host_dir / 'data' / 'app.db'}")
            app = AppInstance(name, DEFAULT_ADDRESSES[name], port, url, host_dir / "app")
            app.frozen_flag.unlink(missing_ok=True)
            self._state.apps[name] = app
            if name not in db_urls:
                self._create_empty_sqlite(host_dir / "data" / "app.db")

    def _create_empty_sqlite(self, path: Path) -> None:
        """Create an empty database file owned by cutover-ops.

        The app may open it before seeding ends; a file still owned by root would give it a
        read-only connection.
        """
        path.unlink(missing_ok=True)
        path.touch()
        ops = self._ops_user()
        os.chown(path, ops.uid, ops.gid)

    def _define_gateway(self, port: int) -> None:
        """Record where the gateway will run."""
        directory = self.root / "hosts" / GATEWAY_HOST / "nginx"
        self._state.gateway = GatewaySpec(GATEWAY_HOST, DEFAULT_ADDRESSES[GATEWAY_HOST], port, directory)

    def _seed(self, rows: int) -> None:
        """Seed the legacy database (or the first app's) and copy it to the other instances."""
        if not self.apps:
            return
        from demo.datasync import copy_database  # SQLAlchemy: imported only when seeding
        from demo.sampleapp.seed import seed

        source = self.apps.get("legacy") or next(iter(self.apps.values()))
        seed(source.db_url, rows)
        for app in self.apps.values():
            if app.name != source.name:
                copy_database(source.db_url, app.db_url)
        for name in self.apps:
            self._give_to_ops(self.root / "hosts" / name / "data")

    def _spawn_app_starts(self, names: Sequence[str]) -> dict[str, subprocess.Popen[str]]:
        """Run ``appctl start`` as cutover-ops on each named app host, without waiting."""
        return {name: self._run_as_ops([self.hosts[name].program("appctl"), "start"]) for name in names}

    def _await_app_starts(self, starting: Mapping[str, subprocess.Popen[str]]) -> None:
        """Wait for each ``appctl start``; raise EstateError with its output if one failed."""
        for name, proc in starting.items():
            try:
                output, _ = proc.communicate(timeout=APP_START_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                output, _ = proc.communicate()
            if proc.returncode != 0:
                raise EstateError(f"appctl start on host {name} failed ({proc.returncode}): {output.strip()}")

    def _start_gateway(self) -> None:
        """Write the nginx config routed to legacy and start nginx as cutover-ops."""
        gateway = self._state.gateway
        if gateway is None:
            return
        files = gateway.files
        files.temp.mkdir(parents=True, exist_ok=True)
        files.config.write_text(_gateway.nginx_config(files, address=gateway.address, port=gateway.port))
        target = self.apps.get("legacy") or next(iter(self.apps.values()), None)
        if target is None:
            raise EstateError("the gateway needs at least one app host to route to")
        _gateway.write_upstream(files, target.name, target.address, target.port)
        self._give_to_ops(files.directory)
        ops = self._ops_user()
        proc = _gateway.start_nginx(files, uid=ops.uid, gid=ops.gid)
        self._children.append(proc)
        self._state.pids["nginx"] = proc.pid

    def _await_gateway(self) -> None:
        """Wait until the gateway answers ``/api/whoami`` from the app it routes to."""
        gateway = self._state.gateway
        if gateway is None:
            return
        target, pid = self.route_target, self._state.pids["nginx"]
        deadline = time.monotonic() + SSHD_TIMEOUT
        while time.monotonic() < deadline:
            if not is_alive(pid):
                raise EstateError(f"nginx for the gateway exited; see {gateway.files.error_log}")
            if whoami(gateway.url) == target:
                return
            time.sleep(0.02)
        raise EstateError(
            f"nginx for the gateway did not serve {target} on {gateway.url} within {SSHD_TIMEOUT:g} s; "
            f"see {gateway.files.error_log}"
        )

    def extra_hosts(self, count: int, *, first_address: str = "127.0.1.1", prefix: str = "node") -> list[EstateHost]:
        """Return SSH-only hosts ``node01`` .. ``nodeNN``, starting the ones not running yet.

        Host ``i`` listens on ``first_address + i - 1`` (``127.0.1.1`` .. ``127.0.1.20`` for 20).
        They carry ``echo-argv`` and ``count-calls`` but no app.
        """
        base = ipaddress.IPv4Address(first_address)
        wanted = [(f"{prefix}{i:02d}", str(base + i - 1)) for i in range(1, count + 1)]
        for name, address in wanted:
            if not ipaddress.IPv4Address(address).is_loopback:
                raise EstateError(f"extra host {name} would listen on {address}, not loopback")
        self._ops_user()
        missing = [(name, address) for name, address in wanted if name not in self.hosts]
        self._await_sshd(self._launch_hosts(missing))
        self._state.save()
        return [self.hosts[name] for name, _ in wanted]

    # -- resetting --------------------------------------------------------------------------

    def reset(self, *, reseed: bool = False) -> None:
        """Undo what tests and demos change: restart stopped apps, unfreeze, clear faults, route to legacy.

        With ``reseed=True`` the databases are also seeded again as at start (same rows).
        """
        if reseed and self._state.seed_rows:
            self._seed(self._state.seed_rows)
        for app in self.apps.values():
            app.frozen_flag.unlink(missing_ok=True)
        stopped = [name for name, app in self.apps.items() if running_pid(app) is None]
        self._await_app_starts(self._spawn_app_starts(stopped))
        for app in self.apps.values():
            post_json(f"{app.url}/admin/faults", {"latency_ms": 0, "error_ratio": 0.0, "healthy": True})
        first = "legacy" if "legacy" in self.apps else next(iter(self.apps), None)
        if self._state.gateway is not None and first is not None and self.route_target != first:
            self._check_ops_run("route", [self._host(GATEWAY_HOST).program("route"), first])

    def _check_ops_run(self, what: str, argv: list[str]) -> None:
        """Run a host program as cutover-ops and raise EstateError when it fails."""
        proc = self._run_as_ops(argv)
        output, _ = proc.communicate(timeout=APP_START_TIMEOUT)
        if proc.returncode != 0:
            raise EstateError(f"{what} failed ({proc.returncode}): {output.strip()}")

    # -- stopping ---------------------------------------------------------------------------

    def stop(self) -> None:
        """End every process of the estate: recorded pids, app pids and anything naming the root.

        Safe to call twice and from another process (via :meth:`load`). Raises
        :class:`EstateError` if a process survives SIGKILL.
        """
        marker = f"{self.root}/"
        recorded = [pid for pid in self._state.pids.values() if marker in cmdline(pid)]
        apps = [pid for app in self.apps.values() if (pid := running_pid(app)) is not None]
        end_processes([*recorded, *apps, *pids_mentioning(marker)])
        for child in self._children:
            child.wait(timeout=5)
        self._children.clear()
        for _ in range(3):  # a host program caught mid-spawn may have started one more child
            left = pids_mentioning(marker)
            if not left:
                break
            end_processes(left)
        self._state.pids = {}
        self._state.running = False
        if self.root.is_dir():
            self._state.save()

    def __enter__(self) -> Estate:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @classmethod
    def load(cls, root: Path) -> Estate:
        """Attach to the estate described by ``<root>/estate.json`` (e.g. to stop it)."""
        try:
            return cls(EstateState.load(Path(root).resolve()))
        except FileNotFoundError as exc:
            raise EstateError(f"no estate state at {root}/estate.json; was it started?") from exc

    # -- reading ----------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The estate directory (absolute)."""
        return self._state.root

    @property
    def hosts(self) -> dict[str, EstateHost]:
        """Every SSH host by name (the four defaults plus any extra hosts)."""
        return dict(self._state.hosts)

    @property
    def apps(self) -> dict[str, AppInstance]:
        """Every sample-app instance by name (``legacy``, ``cloud_test``, ``cloud``)."""
        return dict(self._state.apps)

    @property
    def gateway_url(self) -> str:
        """Base URL of the gateway, e.g. ``http://127.0.0.10:8080``."""
        if self._state.gateway is None:
            raise EstateError("this estate runs no gateway")
        return self._state.gateway.url

    @property
    def route_target(self) -> str | None:
        """The instance the gateway's upstream currently names."""
        gateway = self._state.gateway
        return None if gateway is None else _gateway.current_target(gateway.files)

    @property
    def client_key_path(self) -> Path:
        """The private key that logs in as cutover-ops on every host."""
        return self.root / "ssh" / "id_ed25519"

    @property
    def known_hosts_path(self) -> Path:
        """A known_hosts file pinning every host's key (for the ``ssh`` client)."""
        return self.root / "ssh" / "known_hosts"

    def app_url(self, name: str) -> str:
        """Base URL of app instance ``name``."""
        return self._app(name).url

    def db_url(self, name: str) -> str:
        """SQLAlchemy URL of app instance ``name``'s database."""
        return self._app(name).db_url

    def spec_hosts(self) -> dict[str, dict[str, Any]]:
        """The hosts as a cutover spec's ``hosts:`` mapping (address, port, user, key, key file)."""
        return {name: host.spec_entry() for name, host in self._state.hosts.items()}

    def calls(self, host: str, name: str) -> int:
        """How many times ``count-calls <name>`` ran on ``host``."""
        log = self._host(host).root_dir / "data" / "calls.log"
        if not log.exists():
            return 0
        return sum(1 for line in log.read_text().splitlines() if line.split("\t")[0] == name)

    def status(self) -> dict[str, Any]:
        """What runs: per host whether sshd listens, per app its pid and health, the gateway."""
        hosts = {name: tcp_open(host.address, host.port) for name, host in self.hosts.items()}
        apps = {
            name: {"pid": running_pid(app), "url": app.url, "frozen": app.frozen_flag.exists()}
            for name, app in self.apps.items()
        }
        gateway = None
        if self._state.gateway is not None:
            spec = self._state.gateway
            gateway = {"url": spec.url, "listening": tcp_open(spec.address, spec.port), "target": self.route_target}
        up = (
            all(hosts.values())
            and all(a["pid"] for a in apps.values())
            and (gateway is None or bool(gateway["listening"]))
        )
        return {"root": str(self.root), "up": up, "hosts": hosts, "apps": apps, "gateway": gateway}

    # -- using ------------------------------------------------------------------------------

    def ssh_argv(self, host: str, *command: str, timeout: int = 5) -> list[str]:
        """The ``ssh`` command line that runs ``command`` on ``host`` with its key pinned."""
        target = self._host(host)
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(target.client_key_path),
            "-p",
            str(target.port),
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts_path}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            f"ConnectTimeout={timeout}",
            "-o",
            "LogLevel=ERROR",
            f"{target.user}@{target.address}",
            "--",
            shlex.join(command),
        ]

    def run(self, host: str, *command: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run ``command`` on ``host`` over SSH (system ``ssh`` client) and return the result."""
        return subprocess.run(
            self.ssh_argv(host, *command),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    # -- internals --------------------------------------------------------------------------

    def _host(self, name: str) -> EstateHost:
        """Host ``name`` or a clear error."""
        if name not in self._state.hosts:
            raise EstateError(f"no host {name!r} in the estate; hosts: {', '.join(self.hosts)}")
        return self._state.hosts[name]

    def _app(self, name: str) -> AppInstance:
        """App instance ``name`` or a clear error."""
        if name not in self._state.apps:
            raise EstateError(f"no app instance {name!r}; instances: {', '.join(self.apps)}")
        return self._state.apps[name]

    def _ops_user(self) -> _ssh.OpsUser:
        """The cutover-ops user, created on first use."""
        if self._ops is None:
            self._ops = _ssh.ensure_ops_user()
        return self._ops

    def _give_to_ops(self, path: Path) -> None:
        """chown ``path`` and everything under it to cutover-ops."""
        ops = self._ops_user()
        os.chown(path, ops.uid, ops.gid)
        for parent, dirs, files in os.walk(path):
            for entry in (*dirs, *files):
                os.chown(os.path.join(parent, entry), ops.uid, ops.gid, follow_symlinks=False)

    def _run_as_ops(self, argv: list[str]) -> subprocess.Popen[str]:
        """Start ``argv`` as cutover-ops with a minimal environment."""
        ops = self._ops_user()
        env = {"PATH": "/usr/bin:/bin", "HOME": str(_ssh.OPS_HOME), "LANG": "C.UTF-8"}
        return subprocess.Popen(
            argv,
            user=ops.uid,
            group=ops.gid,
            extra_groups=[],
            env=env,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def _write_known_hosts(self) -> None:
        """Pin every host's key in ``ssh/known_hosts``."""
        lines = [f"[{h.address}]:{h.port} {h.host_public_key}" for h in self._state.hosts.values()]
        self.known_hosts_path.write_text("".join(f"{line}\n" for line in lines))


if __name__ == "__main__":
    from demo._cli import main

    raise SystemExit(main())
