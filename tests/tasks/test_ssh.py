"""Steps on hosts over SSH, against real OpenSSH sshd processes on loopback."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cutover import audit
from cutover.errors import (
    AuthenticationFailed,
    CommandFailed,
    CommandTimedOut,
    HostKeyRefused,
    HostUnreachable,
)
from cutover.ledger import Ledger, Run, RunKind, StepStatus
from cutover.settings import Settings
from cutover.spec import Spec, SshStep
from tasks.ssh import ConnectionPool, StepContext, fan_out, run_ssh_step
from tests._polling import wait_until
from tests.specbuilder import spec_for

SECRET_VALUE = "s3cr3t-Tok3n-" + uuid.uuid4().hex[:6]


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    yield ledger
    ledger.dispose()


@pytest.fixture
def pool() -> Iterator[ConnectionPool]:
    connections = ConnectionPool()
    yield connections
    connections.close_all()


def context(
    spec: Spec, ledger: Ledger, pool: ConnectionPool, tmp_path: Path, log: list[str] | None = None
) -> StepContext:
    from cutover import lifecycle

    lifecycle.register_system(
        ledger, system_id=spec.system.id, name="t", department="d", disposition="migrate", actor="test"
    )
    run: Run = ledger.create_run(spec.system.id, RunKind.CUTOVER)
    settings = Settings(home=tmp_path / "home", known_hosts_file=tmp_path / "known_hosts")
    return StepContext(
        spec=spec,
        ledger=ledger,
        run_id=run.id,
        pool=pool,
        settings=settings,
        log=(log.append if log is not None else None),
    )


def step(host: str, *argv: Any, **fields: Any) -> SshStep:
    return SshStep.model_validate(
        {
            "kind": "ssh",
            "id": fields.pop("id", "s1"),
            "name": "step",
            "host": host,
            "run": list(argv),
            "changes_state": False,
            **fields,
        }
    )


def calls(estate: Any, host: str) -> list[str]:
    log = estate.hosts[host].root_dir / "data" / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def with_host(estate: Any, name: str, **changes: Any) -> Spec:
    hosts = {n: {**h.spec_entry(), **(changes if n == name else {})} for n, h in estate.hosts.items()}
    return spec_for(estate, hosts=hosts, secrets={"tok": {"source": "env", "name": "CUTOVER_TEST_TOKEN"}})


def test_arguments_with_shell_metacharacters_arrive_literally(
    estate: Any, sqlite_ledger: Ledger, pool: ConnectionPool, tmp_path: Path
) -> None:
    nasty = ["; rm -rf /tmp/x", "$(id)", "`id`", 'it\'s "quoted"', "two words", "*", "汉字 ünïcode", "", "-n"]
    ctx = context(spec_for(estate), sqlite_ledger, pool, tmp_path)
    result = run_ssh_step(ctx, step("legacy", estate.hosts["legacy"].program("echo-argv"), *nasty), "legacy")
    assert json.loads(result.tail[-1]) == nasty


def test_each_run_is_recorded_before_and_after_under_its_idempotency_key(
    estate: Any, sqlite_ledger: Ledger, pool: ConnectionPool, tmp_path: Path
) -> None:
    ctx = context(spec_for(estate), sqlite_ledger, pool, tmp_path)
    marker = f"rec-{uuid.uuid4().hex[:8]}"
    the_step = step("legacy", estate.hosts["legacy"].program("count-calls"), marker, id="count")
    first = run_ssh_step(ctx, the_step, "legacy")
    again = run_ssh_step(ctx, the_step, "legacy")
    record = sqlite_ledger.get_step(ctx.run_id, "count")
    assert record is not None and record.status is StepStatus.SUCCEEDED and record.exit_status == 0
    assert record.duration_s is not None and record.finished_at is not None
    assert not first.replayed and again.replayed
    assert sum(marker in line for line in calls(estate, "legacy")) == 1


def test_an_unknown_host_key_is_refused_before_any_command(
    estate: Any, sqlite_ledger: Ledger, pool: ConnectionPool, tmp_path: Path
) -> None:
    stranger = "SHA256:" + "A" * 43
    spec = with_host(estate, "legacy", host_key=stranger)
    ctx = context(spec, sqlite_ledger, pool, tmp_path)
    marker = f"key-{uuid.uuid4().hex[:8]}"
    with pytest.raises(
        HostKeyRefused, match=r"host legacy .* does not match the pinned key SHA256:A+\. Nothing was run"
    ):
        run_ssh_step(ctx, step("legacy", estate.hosts["legacy"].program("count-calls"), marker), "legacy")
    assert not any(marker in line for line in calls(estate, "legacy"))
    refusals = [e for e in audit.events(sqlite_ledger) if e.action == "ssh.host_key_refused"]
    assert refusals and refusals[0].object.endswith("/legacy")
    assert sqlite_ledger.get_step(ctx.run_id, "s1").status is StepStatus.FAILED  # type: ignore[union-attr]


def test_a_changed_host_key_is_refused_before_any_command(
    estate: Any, sqlite_ledger: Ledger, pool: ConnectionPool, tmp_path: Path
) -> None:
    other = estate.hosts["cloud"].host_public_key  # a real key, but another host's
    spec = with_host(estate, "legacy", host_key=other)
    ctx = context(spec, sqlite_ledger, pool, tmp_path)
    marker = f"chg-{uuid.uuid4().hex[:8]}"
    with pytest.raises(HostKeyRefused, match="does not match the pinned key ssh-ed25519"):
        run_ssh_step(ctx, step("legacy", estate.hosts["legacy"].program("count-calls"), marker), "legacy")
    assert not any(marker in line for line in calls(estate, "legacy"))


def test_a_host_missing_from_the_known_hosts_file_is_refused(
    estate: Any, sqlite_ledger: Ledger, pool: ConnectionPool, tmp_path: Path
) -> None:
    (tmp_path / "known_hosts").write_text("")
    ctx = context(with_host(estate, "legacy", host_key="known_hosts"), sqlite_ledger, pool, tmp_path)
    with pytest.raises(HostKeyRefused, match="is not in the known_hosts file"):
        run_ssh_step(ctx, step("legacy", "true"), "legacy")


def test_the_known_hosts_file_is_honoured_when_the_spec_says_so(
    estate: Any, sqlite_ledger: Ledger, pool: ConnectionPool, tmp_path: Path
) -> None:
    host = estate.hosts["legacy"]
    (tmp_path / "known_hosts").write_text(f"[{host.address}]:{host.port} {host.host_public_key}\n")
    ctx = context(with_host(estate, "legacy", host_key="known_hosts"), sqlite_ledger, pool, tmp_path)
    assert run_ssh_step(ctx, step("legacy", "true"), "legacy").exit_status == 0


def test_a_wrong_client_key_fails_authentication(
    estate: Any, sqlite_ledger: Ledger, pool: ConnectionPool, tmp_path: Path
) -> None:
    key_file = tmp_path / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_file)], check=True)
    ctx = context(with_host(estate, "legacy", key_file=str(key_file)), sqlite_ledger, pool, tmp_path)
    with pytest.raises(AuthenticationFailed, match="refused our key"):
        run_ssh_step(ctx, step("legacy", "true"), "legacy")


def test_a_host_that_is_not_listening_fails_within_the_connect_timeout(
    estate: Any, sqlite_ledger: Ledger, pool: ConnectionPool, tmp_path: Path
) -> None:
    ctx = context(with_host(estate, "legacy", address="127.0.0.99", port=2299), sqlite_ledger, pool, tmp_path)
    started = time.monotonic()
    with pytest.raises(
        HostUnreachable, match=r"host legacy \(cutover-ops@127\.0\.0\.99:2299\) did not accept a connection"
    ):
        run_ssh_step(ctx, step("legacy", "true"), "legacy")
    assert time.monotonic() - started < pool.timeouts.connect + 1


def test_a_command_past_its_deadline_is_killed_on_the_host(
    estate: Any, sqlite_ledger: Ledger, pool: ConnectionPool, tmp_path: Path
) -> None:
    ctx = context(spec_for(estate), sqlite_ledger, pool, tmp_path)
    nap = f"{40 + uuid.uuid4().int % 1000 / 1000:.3f}"
    with pytest.raises(CommandTimedOut, match=r"step s1 on host legacy passed its 1 s deadline and was killed"):
        run_ssh_step(ctx, step("legacy", "sleep", nap, timeout="1s"), "legacy")
    wait_until(lambda: not _running(f"sleep {nap}"), what=f"`sleep {nap}` to be killed", timeout_s=60, interval_s=0.1)


def _running(pattern: str) -> bool:
    return subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 0


def test_a_non_zero_exit_names_the_host_the_step_and_the_status(
    estate: Any, sqlite_ledger: Ledger, pool: ConnectionPool, tmp_path: Path
) -> None:
    ctx = context(spec_for(estate), sqlite_ledger, pool, tmp_path)
    with pytest.raises(
        CommandFailed,
        match=r"step s1 on host legacy exited 3, expected 0: sh -c 'echo boom >&2; exit 3'.*last output: boom",
    ):
        run_ssh_step(ctx, step("legacy", "sh", "-c", "echo boom >&2; exit 3"), "legacy")
    record = sqlite_ledger.get_step(ctx.run_id, "s1")
    assert record is not None and record.status is StepStatus.FAILED and record.exit_status == 3


def test_one_connection_per_host_is_reused(
    estate: Any, sqlite_ledger: Ledger, pool: ConnectionPool, tmp_path: Path
) -> None:
    ctx = context(spec_for(estate), sqlite_ledger, pool, tmp_path)
    run_ssh_step(ctx, step("legacy", "true", id="a"), "legacy")
    first = pool._connections["legacy"]
    run_ssh_step(ctx, step("legacy", "true", id="b"), "legacy")
    assert pool._connections["legacy"] is first


def test_a_twenty_host_fan_out_with_three_failures_keeps_every_outcome(
    estate: Any, estate_extra_hosts: Any, sqlite_ledger: Ledger, pool: ConnectionPool, tmp_path: Path
) -> None:
    nodes = estate_extra_hosts(20)
    hosts = {n.name: n.spec_entry() for n in nodes}
    hosts[nodes[0].name]["host_key"] = "SHA256:" + "B" * 43  # refused
    hosts[nodes[1].name]["port"] = 1  # unreachable
    broken = nodes[2].name
    spec = spec_for(estate, hosts=hosts)
    ctx = context(spec, sqlite_ledger, pool, tmp_path)
    argv = [
        "sh",
        "-c",
        f'test "$(hostname -I 2>/dev/null; echo $SSH_CONNECTION)" != "" && ! echo "$SSH_CONNECTION" | grep -q " {nodes[2].address} "',
    ]
    fan = SshStep.model_validate(
        {
            "kind": "ssh",
            "id": "fan",
            "name": "fan",
            "hosts": [n.name for n in nodes],
            "run": argv,
            "changes_state": False,
            "concurrency": 10,
        }
    )
    result = fan_out(ctx, fan)
    assert len(result.results) == 17 and set(result.errors) == {nodes[0].name, nodes[1].name, broken}
    assert isinstance(result.errors[nodes[0].name], HostKeyRefused)
    assert isinstance(result.errors[nodes[1].name], HostUnreachable)
    assert isinstance(result.errors[broken], CommandFailed) and broken in str(result.errors[broken])


def test_a_secret_never_appears_in_logs_ledger_or_errors(
    estate: Any, sqlite_ledger: Ledger, pool: ConnectionPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUTOVER_TEST_TOKEN", SECRET_VALUE)
    lines: list[str] = []
    ctx = context(with_host(estate, "legacy"), sqlite_ledger, pool, tmp_path, lines)
    echo = estate.hosts["legacy"].program("echo-argv")
    ok = run_ssh_step(ctx, step("legacy", echo, "--token", {"secret": "tok"}, id="ok"), "legacy")
    with pytest.raises(CommandFailed) as failed:
        run_ssh_step(ctx, step("legacy", "sh", "-c", 'echo "$1"; exit 4', "x", {"secret": "tok"}, id="bad"), "legacy")
    recorded = [json.dumps({"tail": s.output_tail, "detail": s.detail}) for s in sqlite_ledger.list_steps(ctx.run_id)]
    everything = "\n".join(
        [*lines, *ok.tail, str(failed.value), *recorded, *(json.dumps(e.detail) for e in audit.events(sqlite_ledger))]
    )
    assert "***" in everything and "{secret:tok}" in everything
    assert SECRET_VALUE not in everything


def test_a_client_key_held_in_a_secret_authenticates(
    estate: Any, sqlite_ledger: Ledger, pool: ConnectionPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_text = estate.hosts["legacy"].client_key_path.read_text()
    monkeypatch.setenv("CUTOVER_TEST_SSH_KEY", key_text)
    hosts = {n: h.spec_entry() for n, h in estate.hosts.items()}
    legacy = {k: v for k, v in hosts["legacy"].items() if k != "key_file"}
    hosts["legacy"] = {**legacy, "key_secret": {"secret": "ops-key"}}
    spec = spec_for(estate, hosts=hosts, secrets={"ops-key": {"source": "env", "name": "CUTOVER_TEST_SSH_KEY"}})
    ctx = context(spec, sqlite_ledger, pool, tmp_path)
    assert run_ssh_step(ctx, step("legacy", "true"), "legacy").exit_status == 0


def test_sudo_is_non_interactive_and_the_command_is_quoted_for_the_remote_shell() -> None:
    from tasks._ssh_client import remote_command

    line = remote_command(["appctl", "freeze", "it's; rm -rf /"], sudo=True)
    assert line.endswith("exec sudo -n -- appctl freeze 'it'\"'\"'s; rm -rf /'")
    assert line.startswith("echo __cutover_pid=$$; ")


def test_a_step_whose_definition_changed_runs_again_and_an_unchanged_one_is_replayed(
    estate: Any, sqlite_ledger: Ledger, pool: ConnectionPool, tmp_path: Path
) -> None:
    ctx = context(spec_for(estate), sqlite_ledger, pool, tmp_path)
    count = estate.hosts["legacy"].program("count-calls")
    old, new = (f"def-{uuid.uuid4().hex[:8]}" for _ in range(2))
    run_ssh_step(ctx, step("legacy", count, old, id="count"), "legacy")

    unchanged = run_ssh_step(ctx, step("legacy", count, old, id="count"), "legacy")
    edited = run_ssh_step(ctx, step("legacy", count, new, id="count"), "legacy")

    assert unchanged.replayed and not edited.replayed
    assert [estate.calls("legacy", old), estate.calls("legacy", new)] == [1, 1]
    history = [(s.attempt, s.status) for s in sqlite_ledger.list_steps(ctx.run_id) if s.step_id == "count"]
    assert history == [(1, StepStatus.SUCCEEDED), (2, StepStatus.SUCCEEDED)]
    assert audit.verify(sqlite_ledger).steps_checked == 2


def test_a_failed_step_run_again_is_recorded_as_a_new_attempt(
    estate: Any, sqlite_ledger: Ledger, pool: ConnectionPool, tmp_path: Path
) -> None:
    ctx = context(spec_for(estate), sqlite_ledger, pool, tmp_path)
    flag = f"/tmp/cutover-flag-{uuid.uuid4().hex[:8]}"
    flaky = step("legacy", "sh", "-c", f"test -e {flag} || {{ touch {flag}; exit 3; }}", id="flaky")
    with pytest.raises(CommandFailed):
        run_ssh_step(ctx, flaky, "legacy")

    result = run_ssh_step(ctx, flaky, "legacy")

    assert result.exit_status == 0 and not result.replayed
    history = [(s.attempt, s.status, s.exit_status) for s in sqlite_ledger.list_steps(ctx.run_id)]
    assert history == [(1, StepStatus.FAILED, 3), (2, StepStatus.SUCCEEDED, 0)]
    assert audit.verify(sqlite_ledger).ok
    Path(flag).unlink(missing_ok=True)
