"""tasks/health.py: a failed HTTP check says what it expected and what came back."""

from __future__ import annotations

import uuid

import pytest
from pydantic import TypeAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from cutover.errors import HealthCheckFailed
from cutover.secrets import REDACTOR
from cutover.spec import HealthGate, HttpCheckStep
from tasks.health import health_gate, probe
from tests.fixtures.httpapp import HttpApp, serve


def a_check(url: str, **fields: object) -> HttpCheckStep:
    return TypeAdapter(HttpCheckStep).validate_python(
        {"id": "api", "name": "API", "kind": "http_check", "url": url, **fields}
    )


def test_a_check_failing_on_its_body_names_the_expected_text_and_an_excerpt_of_what_came(httpapp: HttpApp) -> None:
    httpapp.configure(wrong_body_rate=1.0)

    seen = probe(a_check(f"{httpapp.base_url}/api/items/42", expect_body_contains='"id":42'))

    assert not seen.passed
    message = seen.describe()
    assert "failed (HTTP 200," in message
    assert "expected the body to contain '\"id\":42'" in message
    assert "injected wrong body" in message


def test_a_check_failing_on_its_status_names_the_expected_status_and_what_came(httpapp: HttpApp) -> None:
    httpapp.configure(error_rate=1.0)

    message = probe(a_check(f"{httpapp.base_url}/healthz")).describe()

    assert "failed (HTTP 500," in message and "expected HTTP 200; got 'injected error'" in message


def test_a_check_that_gets_no_answer_says_what_it_expected_and_that_nothing_came() -> None:
    message = probe(a_check("http://127.0.0.1:9/healthz")).describe()  # the discard port: nothing listens

    assert "failed (no answer," in message and "expected HTTP 200; got no answer (ConnectError" in message


def test_a_health_gate_that_times_out_says_how_many_passes_it_expected_and_what_the_last_round_got(
    httpapp: HttpApp,
) -> None:
    httpapp.configure(error_rate=1.0)
    gate = HealthGate.model_validate({"passes": 3, "interval": "100ms", "within": "1s"})

    with pytest.raises(HealthCheckFailed) as caught:
        health_gate([a_check(f"{httpapp.base_url}/healthz")], gate)

    message = str(caught.value)
    assert message.startswith("health gate: expected 3 consecutive passes within 1 s; got the last round failed: ")
    assert "expected HTTP 200; got 'injected error'" in message


def test_a_health_gate_whose_passes_come_too_slowly_says_how_many_came_in_a_row(httpapp: HttpApp) -> None:
    httpapp.configure(error_rate=0.0)
    gate = HealthGate.model_validate({"passes": 100, "interval": "100ms", "within": "500ms"})

    with pytest.raises(HealthCheckFailed, match=r"expected 100 consecutive passes within 0.5 s; got only \d+ in a row"):
        health_gate([a_check(f"{httpapp.base_url}/healthz")], gate)


class LeakyApp(HttpApp):
    """Answers every path with a long page that holds a secret (as an error page might)."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def asgi(self) -> Starlette:
        async def page(request: Request) -> Response:
            return PlainTextResponse(f"database url postgresql://app:{self.secret}@db/app " + "lorem " * 200)

        return Starlette(routes=[Route("/{path:path}", page)])


def test_the_excerpt_of_a_failed_check_masks_secrets_and_stays_short() -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    REDACTOR.register(secret)

    with serve(LeakyApp(secret)) as app:
        message = probe(a_check(f"{app.base_url}/status", expect_body_contains="all systems go")).describe()

    assert (
        "expected the body to contain 'all systems go'; got 'database url postgresql://app:***@db/app lorem" in message
    )
    assert secret not in message
    assert len(message) < 300
