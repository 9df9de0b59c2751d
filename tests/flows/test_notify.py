"""Approvers are told when a form waits: the real Prefect server's automation POSTs to a local robot.

The robot is a stdlib ``http.server`` on 127.0.0.1 (ephemeral port, in a thread) that records every
POST. The Prefect server (the session's, shared with other tests) runs the automation's action, so
every assertion looks only at this test's own uuid system ids.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from prefect import get_client
from prefect.events.worker import EventsWorker
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.notify import NotificationSetup, automation_name, ensure_notifications, mask_url, remove_notifications
from tasks.notify import WaitingForm, announce_waiting
from tests._polling import wait_until
from tests.fixtures.prefect_server import PrefectServer, free_port

pytestmark = pytest.mark.timeout(400)

DELIVERY_TIMEOUT_S = 60.0
ROBOT_KEY = "test-robot-key-5f1c9a"


@dataclass(frozen=True)
class Post:
    """One request the robot received."""

    path: str
    query: dict[str, list[str]]
    body: dict[str, Any]

    @property
    def content(self) -> str:
        return str(self.body.get("text", {}).get("content", ""))


@dataclass
class Robot:
    """A messaging robot stand-in: records POSTs (JSON bodies) under its ``url``."""

    url: str
    posts: list[Post] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hook(self, path: str) -> str:
        """A webhook URL of this robot, with a key in its query string as WeCom's has."""
        return f"{self.url}{path}?key={ROBOT_KEY}"

    def naming(self, system_id: str, path: str | None = None) -> list[Post]:
        with self.lock:
            return [p for p in self.posts if system_id in p.content and (path is None or p.path == path)]


@pytest.fixture(autouse=True)
def fresh_events_worker() -> Iterator[None]:
    """Prefect's events worker is one per process and stays bound to the API of the first event it
    sent; stop it before and after each test so this test's events reach this test's server."""
    EventsWorker.drain_all(timeout=10, at_exit=False)
    yield
    EventsWorker.drain_all(timeout=10, at_exit=False)


@pytest.fixture
def robot() -> Iterator[Robot]:
    recorder = Robot(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            parts = urlsplit(self.path)
            post = Post(parts.path, parse_qs(parts.query), json.loads(self.rfile.read(length) or b"{}"))
            with recorder.lock:
                recorder.posts.append(post)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"errcode": 0, "errmsg": "ok"}')

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="robot", daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def setup_name() -> Iterator[Callable[[], str]]:
    """A block name of this test's own; whatever it made is removed afterwards."""
    names: list[str] = []

    def make() -> str:
        names.append(f"approvers-{uuid.uuid4().hex[:10]}")
        return names[-1]

    yield make
    for name in names:
        remove_notifications(name)


def waiting_form(**changes: Any) -> WaitingForm:
    system_id = f"hrss-{uuid.uuid4().hex[:8]}"
    fields: dict[str, Any] = {
        "system_id": system_id,
        "system_name": "社会保险信息系统",
        "kind": "trial_run",
        "parties": ["云服务商 cloud service provider"],
        "deadline": datetime(2026, 12, 3, 10, 0, tzinfo=UTC),
        "link": f"http://127.0.0.1:4200/v2/runs/flow-run/{uuid.uuid4()}",
        "flow_run_id": str(uuid.uuid4()),
        "form_key": "signoff-trial-run-1",
    }
    fields.update(changes)
    return WaitingForm(**fields)


def wait_for_posts(robot: Robot, system_id: str, *, path: str | None = None, count: int = 1) -> list[Post]:
    return wait_until(
        lambda: robot.naming(system_id, path),
        ready=lambda posts: len(posts) >= count,
        what=f"{count} notification(s) naming {system_id} at the robot{f' {path}' if path else ''}",
        timeout_s=DELIVERY_TIMEOUT_S,
        interval_s=0.1,
    )


def set_up_live(robot: Robot, name: str, path: str) -> NotificationSetup:
    """Set up notifications to ``robot`` at ``path`` and wait until the server acts on them.

    The server loads a new automation just after its commit; an event arriving in that moment is
    not seen by it. So announce probe forms (each new) until one reaches the robot.
    """
    setup = ensure_notifications(robot.hook(path), name=name)
    probe_ids: list[str] = []

    def probe() -> bool:
        probe_ids.append(f"probe-{uuid.uuid4().hex[:8]}")
        announce_waiting(waiting_form(system_id=probe_ids[-1]))
        return any(robot.naming(system_id, path) for system_id in probe_ids)

    wait_until(
        probe, what=f"the automation {setup.automation_name!r} to act", timeout_s=DELIVERY_TIMEOUT_S, interval_s=1
    )
    return setup


def test_setting_up_twice_leaves_one_block_and_one_automation(
    prefect_server: PrefectServer, robot: Robot, setup_name: Callable[[], str]
) -> None:
    name = setup_name()
    first = ensure_notifications(robot.hook("/robot"), name=name)
    again = ensure_notifications(robot.hook("/robot"), name=name)
    moved = ensure_notifications(robot.hook("/robot-2"), name=name)

    assert (first.block, first.automation) == ("created", "created")
    assert (again.block, again.automation) == ("already there", "already there")
    assert moved.block == "updated" and moved.automation == "already there"
    assert first.block_document_id == again.block_document_id == moved.block_document_id
    assert first.automation_id == again.automation_id == moved.automation_id
    with get_client(sync_client=True) as client:
        assert [a.id for a in client.read_automations_by_name(automation_name(name))] == [first.automation_id]
        document = client.read_block_document_by_name(name, "custom-webhook", include_secrets=False)
    assert document.id == first.block_document_id
    assert ROBOT_KEY not in json.dumps(document.data, default=str), "the robot's key is shown by the API"
    assert ROBOT_KEY not in " ".join(moved.lines()) and "key=***" in moved.webhook


def test_a_waiting_form_reaches_the_robot_once_naming_system_party_deadline_and_link(
    prefect_server: PrefectServer, robot: Robot, setup_name: Callable[[], str]
) -> None:
    set_up_live(robot, setup_name(), "/robot")
    form = waiting_form()
    announce_waiting(form)
    announce_waiting(form)  # shown again (e.g. the flow restarted from the top): no second message
    barrier = waiting_form(kind="decommission", deadline=None)
    announce_waiting(barrier)

    wait_for_posts(robot, barrier.system_id)
    [post] = wait_for_posts(robot, form.system_id)
    assert post.body["msgtype"] == "text"
    assert post.query == {"key": [ROBOT_KEY]}, "the block lost the robot's key"
    for text in ("等待签署", "社会保险信息系统", form.system_id, "云服务商 cloud service provider", form.link):
        assert text in post.content, f"{text!r} missing from {post.content!r}"
    assert "2026-12-03 18:00 北京时间" in post.content
    assert "试运行报告签署 trial-run report sign-off" in post.content
    [undated] = robot.naming(barrier.system_id)
    assert "下线签署 decommission sign-off" in undated.content and "截止 无 none" in undated.content


def test_removing_the_setup_stops_further_deliveries(
    prefect_server: PrefectServer, robot: Robot, setup_name: Callable[[], str]
) -> None:
    removed, kept = setup_name(), setup_name()
    set_up_live(robot, removed, "/removed")
    set_up_live(robot, kept, "/kept")
    before = waiting_form()
    announce_waiting(before)
    wait_for_posts(robot, before.system_id, path="/removed")
    wait_for_posts(robot, before.system_id, path="/kept")

    removal = remove_notifications(removed)
    after = waiting_form(form_key="signoff-trial-run-2")
    announce_waiting(after)

    assert removal.block_removed and removal.automations_removed == 1
    wait_for_posts(robot, after.system_id, path="/kept")  # the kept automation has acted on the event
    assert robot.naming(after.system_id, "/removed") == []
    assert remove_notifications(removed).automations_removed == 0, "a second removal finds nothing"


def test_a_robot_that_is_down_does_not_make_announcing_raise(
    prefect_server: PrefectServer, setup_name: Callable[[], str]
) -> None:
    setup = ensure_notifications(f"http://127.0.0.1:{free_port()}/robot?key={ROBOT_KEY}", name=setup_name())
    forms: list[WaitingForm] = []

    def fired() -> list[dict[str, Any]]:
        forms.append(waiting_form())
        announce_waiting(forms[-1])  # returns, whatever becomes of the POST
        query = {
            "filter": {
                "event": {"name": ["prefect.automation.triggered"]},
                "resource": {"id": [f"prefect.automation.{setup.automation_id}"]},
            }
        }
        with prefect_server.http() as http:
            events: list[dict[str, Any]] = http.post("/events/filter", json=query).json()["events"]
        return events

    # The automation fires; its POST to the dead robot fails inside the Prefect server (3.9.1 retries
    # it 4 times, then drops it), never in the flow that announced the form.
    [first, *_] = wait_until(fired, what="the automation to fire", timeout_s=DELIVERY_TIMEOUT_S, interval_s=1)
    assert first["payload"]["triggering_event"]["payload"]["system_id"] in {f.system_id for f in forms}


def test_announcing_without_a_prefect_api_only_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="cutover")
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        announce_waiting(waiting_form(system_id="no-api"))

    [message] = [r.getMessage() for r in caplog.records if r.name == "cutover"]
    assert "PREFECT_API_URL is not set" in message and "no-api" in message


def test_an_event_prefect_refuses_is_a_warning_naming_the_link(
    prefect_server: PrefectServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cutover")
    announce_waiting(waiting_form(system_id="too-big", link="http://x/" + "a" * 2_000_000))

    [message] = [r.getMessage() for r in caplog.records if r.name == "cutover"]
    assert "were not told" in message and "too-big" in message and "EventTooLarge" in message


def test_a_webhook_url_is_printed_with_its_key_masked() -> None:
    assert mask_url("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx") == (
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***"
    )
    assert mask_url("https://oapi.dingtalk.com/robot/send?access_token=abc123&x=1") == (
        "https://oapi.dingtalk.com/robot/send?access_token=***&x=***"
    )
    assert mask_url("https://user:pw@open.feishu.cn/open-apis/bot/v2/hook/0b1c2d3e-4f56-7890-abcd-ef0123456789") == (
        "https://user:***@open.feishu.cn/open-apis/bot/v2/hook/***"
    )
