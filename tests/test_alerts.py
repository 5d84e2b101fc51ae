"""Alerts: rate limits with an injected clock, a real webhook on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from helpers import T0, FakeClock

from publisher import logs
from publisher.adapters.alerts import Alerter, webhook_send
from publisher.adapters.httpserver import HTTPServer
from publisher.adapters.metrics import Metrics
from publisher.core.config import AlertsConfig

HOOK = "https://hooks.example.org/services/T000/B000/secretpath"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, url: str, payload: dict[str, Any]) -> None:
        self.calls.append((url, payload))


@pytest.fixture
def sent() -> Recorder:
    return Recorder()


def make(
    clock: FakeClock, send: Any, url: str | None = HOOK, interval: float = 3600, **kwargs: Any
) -> Alerter:
    config = AlertsConfig(webhook_url=url, min_interval=timedelta(seconds=interval))
    return Alerter(config, clock, send, **kwargs)


def test_one_alert_per_kind_and_subject_per_interval(clock: FakeClock, sent: Recorder) -> None:
    alerter = make(clock, sent, interval=600)
    assert alerter.alert("source_paused", "blog", "5 failures in a row")
    assert not alerter.alert("source_paused", "blog", "still failing")
    assert not alerter.alert("source_paused", "blog", "still failing")
    # Another subject, and another kind, have limits of their own.
    assert alerter.alert("source_paused", "news", "5 failures in a row")
    assert alerter.alert("recovered", "blog", "answers again")
    clock.advance(seconds=599)
    assert not alerter.alert("source_paused", "blog", "still failing")
    clock.advance(seconds=1)
    assert alerter.alert("source_paused", "blog", "still failing")
    assert alerter.flush()
    assert [(p["kind"], p["subject"]) for _, p in sent.calls] == [
        ("source_paused", "blog"),
        ("source_paused", "news"),
        ("recovered", "blog"),
        ("source_paused", "blog"),
    ]
    # The alert after a quiet period says how many were held back.
    assert "suppressed" not in sent.calls[0][1]
    assert sent.calls[3][1]["suppressed"] == 3
    assert {url for url, _ in sent.calls} == {HOOK}
    alerter.close()


def test_global_cap_per_hour(clock: FakeClock, sent: Recorder) -> None:
    metrics = Metrics(clock=clock)
    alerter = make(clock, sent, max_per_hour=3, metrics=metrics)
    results = [alerter.alert("post_failed", f"post {n}", "rejected") for n in range(5)]
    assert results == [True, True, True, False, False]
    clock.advance(minutes=59)
    assert not alerter.alert("post_failed", "post 9", "rejected")
    clock.advance(minutes=1)
    assert alerter.alert("post_failed", "post 9", "rejected")
    assert alerter.flush()
    assert len(sent.calls) == 4
    assert (
        metrics.registry.get_sample_value(
            "viber_publisher_alerts_total", {"kind": "post_failed", "result": "suppressed"}
        )
        == 3
    )
    assert (
        metrics.registry.get_sample_value(
            "viber_publisher_alerts_total", {"kind": "post_failed", "result": "sent"}
        )
        == 4
    )
    alerter.close()


def test_without_webhook_alerts_are_only_logged(
    clock: FakeClock, sent: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    alerter = make(clock, sent, url=None)
    with caplog.at_level(logging.INFO, logger="publisher.adapters.alerts"):
        assert alerter.alert("posting_stopped", "channel", "Viber refused the token")
        assert alerter.alert("recovered", "channel", "posting again")
    assert alerter.flush()
    assert sent.calls == []
    levels = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert levels == [
        ("WARNING", "alert posting_stopped: channel: Viber refused the token"),
        ("INFO", "alert recovered: channel: posting again"),
    ]


def test_unknown_kind_is_a_programming_error(clock: FakeClock, sent: Recorder) -> None:
    with pytest.raises(ValueError, match="unknown alert kind"):
        make(clock, sent).alert("sky_falling", "x", "y")


def test_details_never_override_the_core_fields(clock: FakeClock, sent: Recorder) -> None:
    alerter = make(clock, sent)
    details = {"kind": "forged", "service": "other", "failures": 5, "last_error": "HTTP 503"}
    assert alerter.alert("source_paused", "blog", "paused", details)
    assert alerter.flush()
    payload = sent.calls[0][1]
    assert payload["kind"] == "source_paused"
    assert payload["service"] == "viber-publisher"
    assert payload["failures"] == 5
    assert payload["last_error"] == "HTTP 503"
    assert payload["time"] == T0.isoformat()
    alerter.close()


def test_the_caller_does_not_wait_for_the_webhook(clock: FakeClock) -> None:
    release, done = threading.Event(), threading.Event()

    def slow(url: str, payload: dict[str, Any]) -> None:
        release.wait(10)
        done.set()

    alerter = make(clock, slow)
    assert alerter.alert("post_failed", "item 1", "rejected")
    assert not done.is_set()  # alert() returned while the webhook was still busy
    release.set()
    assert alerter.flush()
    assert done.is_set()
    alerter.close()


def test_send_failures_are_logged_never_raised(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(url: str, payload: dict[str, Any]) -> None:
        raise OSError("network is down")

    metrics = Metrics(clock=clock)
    alerter = make(clock, broken, metrics=metrics)
    with caplog.at_level(logging.WARNING, logger="publisher.adapters.alerts"):
        assert alerter.alert("posting_stopped", "channel", "token refused")
        assert alerter.flush()
    failures = [r.getMessage() for r in caplog.records if "could not be sent" in r.getMessage()]
    assert failures == [
        "alert posting_stopped could not be sent to hooks.example.org: OSError: network is down"
    ]
    assert "secretpath" not in caplog.text
    assert (
        metrics.registry.get_sample_value(
            "viber_publisher_alerts_total", {"kind": "posting_stopped", "result": "failed"}
        )
        == 1
    )
    alerter.close()


# -- a real webhook on 127.0.0.1 ------------------------------------------


class Hook:
    """A WSGI webhook receiver that records JSON bodies and answers ``status``."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status = "204 No Content"

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        self.bodies.append(json.loads(environ["wsgi.input"].read(length)))
        self.headers.append({"content-type": environ.get("CONTENT_TYPE", "")})
        start_response(self.status, [("Content-Length", "0")])
        return [b""]


@pytest.fixture
def hook() -> Iterator[tuple[Hook, str]]:
    app = Hook()
    with HTTPServer(app) as server:
        yield app, f"{server.url}/hook/secretpath"


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    token = "44dafb7e0f40021e-61a47a1e6778d187-f2c5a676a07050b3"
    monkeypatch.setattr(logs, "_SECRETS", set())
    logs.register_secret(token)
    return token


def test_webhook_gets_json_without_the_token(
    clock: FakeClock, hook: tuple[Hook, str], secret: str
) -> None:
    app, url = hook
    alerter = make(clock, None, url=url)
    assert alerter.alert(
        "posting_stopped",
        "channel",
        f"Viber refused token {secret}",
        {"response": {"status": 2, "echo": secret}, "attempts": 3},
    )
    assert alerter.flush()
    alerter.close()
    assert app.headers[0]["content-type"] == "application/json"
    body = app.bodies[0]
    assert secret not in json.dumps(body)
    assert body == {
        "kind": "posting_stopped",
        "subject": "channel",
        "message": "Viber refused token [redacted]",
        "time": "2026-03-01T12:00:00+00:00",
        "service": "viber-publisher",
        "text": "[viber-publisher] posting_stopped: channel: Viber refused token [redacted]",
        "response": {"status": 2, "echo": "[redacted]"},
        "attempts": 3,
    }


def test_webhook_error_status_is_logged(
    clock: FakeClock, hook: tuple[Hook, str], caplog: pytest.LogCaptureFixture
) -> None:
    app, url = hook
    app.status = "500 Internal Server Error"
    alerter = make(clock, None, url=url)
    with caplog.at_level(logging.WARNING, logger="publisher.adapters.alerts"):
        assert alerter.alert("post_failed", "item 7", "Viber said badData")
        assert alerter.flush()
    alerter.close()
    assert len(app.bodies) == 1
    assert "could not be sent to 127.0.0.1" in caplog.text
    assert "HTTP 500" in caplog.text
    assert "secretpath" not in caplog.text


def test_webhook_send_gives_up_after_its_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        # The connection is accepted by the backlog but never answered.
        with pytest.raises(httpx.TimeoutException):
            webhook_send(f"http://127.0.0.1:{port}/hook", {"kind": "x"}, timeout=0.2)
