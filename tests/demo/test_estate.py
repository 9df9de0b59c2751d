"""The demo estate starts real sshd hosts, apps and a gateway on loopback, and stops them cleanly."""

from __future__ import annotations

import base64
import dataclasses
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import paramiko
import pytest

from demo._proc import cmdline, descendants, free_port, is_alive, pids_mentioning
from demo.errors import EstateError
from demo.estate import DEFAULT_ADDRESSES, Estate, EstateHost
from tests.fixtures.estate import make_estate_root

pytestmark = pytest.mark.timeout(120)  # a backstop on a busy machine; each wait inside is bounded

AWKWARD_ARGS = ["two words", "it's", '"quoted"', "$HOME", "a;b && c", "*", "中文 参数", "--flag", ""]


def _whoami(url: str) -> str:
    """Who answers ``/api/whoami`` at ``url``."""
    return str(httpx.get(f"{url}/api/whoami", timeout=5).json()["name"])


def _paramiko_run(host: EstateHost, *command: str) -> tuple[int, str]:
    """Run a command with paramiko, refusing any host key but the pinned one."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    kind, blob = host.host_public_key.split()
    client.get_host_keys().add(f"[{host.address}]:{host.port}", kind, paramiko.Ed25519Key(data=base64.b64decode(blob)))
    try:
        client.connect(
            host.address,
            host.port,
            username=host.user,
            key_filename=str(host.client_key_path),
            look_for_keys=False,
            allow_agent=False,
            timeout=5,
            banner_timeout=5,
            auth_timeout=5,
        )
        _, stdout, _ = client.exec_command(" ".join(command), timeout=5)
        output = stdout.read().decode()
        return stdout.channel.recv_exit_status(), output
    finally:
        client.close()


def test_every_host_runs_echo_argv_over_ssh_with_arguments_arriving_literally(estate: Estate) -> None:
    for name in DEFAULT_ADDRESSES:
        done = estate.run(name, estate.hosts[name].program("echo-argv"), *AWKWARD_ARGS, timeout=8)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == AWKWARD_ARGS


def test_hosts_listen_on_their_own_loopback_address_as_cutover_ops(estate: Estate) -> None:
    for name, address in DEFAULT_ADDRESSES.items():
        host = estate.hosts[name]
        assert (host.address, host.user) == (address, "cutover-ops")
        done = estate.run(name, "id", "-un")
        assert done.stdout.strip() == "cutover-ops", done.stderr


def test_fingerprint_is_what_ssh_keygen_prints_and_paramiko_sees(estate: Estate) -> None:
    host = estate.hosts["legacy"]
    pub = estate.root / "sshd" / "legacy" / "ssh_host_ed25519_key.pub"
    printed = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True).stdout
    assert printed.split()[1] == host.host_key_fingerprint
    assert host.host_public_key == " ".join(pub.read_text().split()[:2])
    status, output = _paramiko_run(host, host.program("echo-argv"), "x")
    assert (status, json.loads(output)) == (0, ["x"])


def test_a_host_presenting_another_key_is_refused_by_paramiko(estate: Estate) -> None:
    legacy, cloud = estate.hosts["legacy"], estate.hosts["cloud"]
    impostor = dataclasses.replace(legacy, host_public_key=cloud.host_public_key)
    with pytest.raises(paramiko.SSHException):
        _paramiko_run(impostor, "true")


def test_spec_hosts_give_address_port_user_pinned_key_and_key_file(estate: Estate) -> None:
    hosts = estate.spec_hosts()
    assert set(hosts) >= set(DEFAULT_ADDRESSES)
    legacy = hosts["legacy"]
    assert legacy == {
        "address": "127.0.0.11",
        "port": estate.hosts["legacy"].port,
        "user": "cutover-ops",
        "host_key": estate.hosts["legacy"].host_key_fingerprint,
        "key_file": str(estate.client_key_path),
    }
    assert legacy["host_key"].startswith("SHA256:") and not legacy["host_key"].endswith("=")


def test_gateway_answers_from_legacy_then_from_cloud_after_route_over_ssh(clean_estate: Estate) -> None:
    estate = clean_estate
    assert _whoami(estate.gateway_url) == "legacy"
    done = estate.run("gateway", estate.hosts["gateway"].program("route"), "cloud")
    assert done.returncode == 0, done.stderr
    assert [_whoami(estate.gateway_url) for _ in range(5)] == ["cloud"] * 5
    assert estate.route_target == "cloud"


def test_route_to_an_unknown_instance_is_refused_and_traffic_stays(clean_estate: Estate) -> None:
    done = clean_estate.run("gateway", clean_estate.hosts["gateway"].program("route"), "nowhere")
    assert done.returncode == 2
    assert "unknown instance 'nowhere'" in done.stderr
    assert _whoami(clean_estate.gateway_url) == "legacy"


def test_appctl_freeze_over_ssh_makes_payments_fail_until_unfreeze(clean_estate: Estate) -> None:
    estate, appctl = clean_estate, clean_estate.hosts["legacy"].program("appctl")
    payment = {"insured_id": 7, "amount": 1234}
    assert estate.run("legacy", appctl, "freeze").returncode == 0
    refused = httpx.post(f"{estate.app_url('legacy')}/api/payments", json=payment, timeout=5)
    assert refused.status_code == 503
    assert "frozen" in refused.json()["error"]
    assert httpx.get(f"{estate.app_url('legacy')}/api/insured/7", timeout=5).status_code == 200
    assert estate.run("legacy", appctl, "unfreeze").returncode == 0
    assert httpx.post(f"{estate.app_url('legacy')}/api/payments", json=payment, timeout=5).status_code == 201


def test_appctl_stop_and_start_over_ssh_with_selftest_following(clean_estate: Estate) -> None:
    estate, host = clean_estate, clean_estate.hosts["cloud_test"]
    assert estate.run("cloud_test", host.program("appctl"), "stop").returncode == 0
    assert estate.run("cloud_test", host.program("appctl"), "status").returncode == 3
    failed = estate.run("cloud_test", host.program("selftest"))
    assert failed.returncode == 1 and "FAILED" in failed.stderr
    assert estate.run("cloud_test", host.program("appctl"), "start").returncode == 0
    passed = estate.run("cloud_test", host.program("selftest"))
    assert passed.returncode == 0, passed.stderr
    assert "served by cloud_test" in passed.stdout


def test_pull_from_makes_the_target_database_equal_to_the_source(clean_estate: Estate) -> None:
    estate = clean_estate
    try:
        posted = httpx.post(f"{estate.app_url('legacy')}/api/payments", json={"insured_id": 3, "amount": 50}, timeout=5)
        assert posted.status_code == 201
        done = estate.run("cloud", estate.hosts["cloud"].program("pull-from"), "legacy")
        assert done.returncode == 0, done.stderr
        legacy = httpx.get(f"{estate.app_url('legacy')}/api/stats", timeout=5).json()
        cloud = httpx.get(f"{estate.app_url('cloud')}/api/stats", timeout=5).json()
        assert cloud["payments"] == legacy["payments"]
        assert httpx.get(f"{estate.app_url('cloud')}/api/insured/3", timeout=5).json() == (
            httpx.get(f"{estate.app_url('legacy')}/api/insured/3", timeout=5).json()
        )
    finally:
        estate.reset(reseed=True)


def test_count_calls_counts_every_run_on_the_host(estate: Estate) -> None:
    name = f"step-{id(estate)}"
    for _ in range(3):
        assert estate.run("cloud", estate.hosts["cloud"].program("count-calls"), name).returncode == 0
    assert estate.calls("cloud", name) == 3
    assert estate.calls("legacy", name) == 0


def test_twenty_extra_hosts_answer_in_parallel(
    estate_extra_hosts: Callable[[int], list[EstateHost]], estate: Estate
) -> None:
    hosts = estate_extra_hosts(20)
    assert [h.address for h in hosts] == [f"127.0.1.{i}" for i in range(1, 21)]
    assert len({h.host_key_fingerprint for h in hosts}) == 20
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda h: estate.run(h.name, h.program("echo-argv"), h.name, timeout=60), hosts))
    assert [json.loads(r.stdout) for r in results] == [[h.name] for h in hosts]
    assert estate_extra_hosts(5) == hosts[:5]


def test_unknown_host_names_are_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(EstateError, match="hosts must be distinct names"):
        Estate.start(tmp_path, hosts=["legacy", "mainframe"])


def test_a_root_cutover_ops_cannot_reach_is_refused_with_the_fix(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(EstateError, match=r"cutover-ops cannot reach .*chmod o\+x"):
        Estate.start(private / "estate", hosts=["legacy"])


def test_an_sshd_that_cannot_listen_is_reported_with_its_log(estate: Estate) -> None:
    root = make_estate_root("cutover-estate-busy-")
    port = free_port(["127.0.0.11"], estate.hosts["legacy"].port + 3)
    expected = rf"sshd for host legacy .* on 127\.0\.0\.11:{port}.*; see {root}/sshd/legacy/sshd.log"
    try:
        with socket.create_server(("127.0.0.11", port)), pytest.raises(EstateError, match=expected):
            Estate.start(root, hosts=["legacy"], seed_rows=5, port=port, app_port=free_port(["127.0.0.11"], 8300))
        assert not _estate_pids(root)
    finally:
        Estate.load(root).stop()  # in case it started after all
        shutil.rmtree(root, ignore_errors=True)


def _estate_pids(root: Path) -> set[int]:
    """Every live process of the estate at ``root``, nginx workers included."""
    mentioning = pids_mentioning(f"{root}/")
    return mentioning | descendants(mentioning)


def test_stop_leaves_no_process_behind_even_with_an_open_ssh_session(estate: Estate) -> None:
    root = make_estate_root("cutover-estate-stop-")
    try:
        port = free_port(DEFAULT_ADDRESSES.values(), estate.hosts["legacy"].port + 1)
        small = Estate.start(
            root,
            hosts=["gateway", "legacy"],
            seed_rows=20,
            port=port,
            app_port=free_port(["127.0.0.11"], 8100),
            gateway_port=free_port(["127.0.0.10"], 8180),
        )
        session = subprocess.Popen(small.ssh_argv("legacy", "sleep", "60"), stdin=subprocess.DEVNULL)
        running = _estate_pids(root)
        assert len(running) >= 5  # two sshd, the app, nginx master and worker
        small.stop()
        session.wait(timeout=5)
        assert not [pid for pid in running if is_alive(pid)], [cmdline(pid) for pid in running]
        assert subprocess.run(["pgrep", "-f", str(root)], capture_output=True).returncode == 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_cli_start_leaves_the_estate_running_for_status_and_stop_from_other_processes(estate: Estate) -> None:
    root = make_estate_root("cutover-estate-cli-")
    cli = [sys.executable, "-m", "demo.estate"]
    port = free_port(DEFAULT_ADDRESSES.values(), estate.hosts["legacy"].port + 2)
    try:
        start = [
            *cli,
            "start",
            "--root",
            str(root),
            "--hosts",
            "legacy",
            "--seed-rows",
            "10",
            "--port",
            str(port),
            "--app-port",
            str(free_port(["127.0.0.11"], 8200)),
        ]
        started = subprocess.run(start, capture_output=True, text=True, timeout=60)
        assert started.returncode == 0, started.stderr
        assert json.loads((root / "spec_hosts.json").read_text())["legacy"]["port"] == port
        assert subprocess.run([*cli, "status", "--root", str(root)], capture_output=True).returncode == 0
        assert subprocess.run([*cli, "stop", "--root", str(root)], capture_output=True).returncode == 0
        assert not _estate_pids(root)
        assert subprocess.run([*cli, "status", "--root", str(root)], capture_output=True).returncode == 1
    finally:
        subprocess.run([*cli, "stop", "--root", str(root)], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.postgres
def test_an_app_on_postgresql_takes_the_final_sync_from_sqlite(
    estate: Estate, make_pg_database: Callable[[], str]
) -> None:
    root = make_estate_root("cutover-estate-pg-")
    port = free_port(DEFAULT_ADDRESSES.values(), estate.hosts["legacy"].port + 4)
    app_port = free_port(["127.0.0.11", "127.0.0.13"], 8400)
    try:
        with Estate.start(
            root,
            hosts=["legacy", "cloud"],
            app_db_urls={"cloud": make_pg_database()},
            seed_rows=40,
            port=port,
            app_port=app_port,
        ) as small:
            httpx.post(f"{small.app_url('legacy')}/api/payments", json={"insured_id": 1, "amount": 9}, timeout=5)
            done = small.run("cloud", small.hosts["cloud"].program("pull-from"), "legacy")
            assert done.returncode == 0, done.stderr
            assert httpx.get(f"{small.app_url('cloud')}/api/stats", timeout=5).json()["payments"] == 41
            posted = httpx.post(
                f"{small.app_url('cloud')}/api/payments", json={"insured_id": 1, "amount": 1}, timeout=5
            )
            assert posted.status_code == 201 and posted.json()["id"] == 42
    finally:
        shutil.rmtree(root, ignore_errors=True)
