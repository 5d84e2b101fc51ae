"""Operations: ``health``, ``/readyz``, ``/metrics``, alerts, back-off and logs.

Real parts only: the service in-process with its HTTP server on 127.0.0.1
(or ``viber-publisher run`` as a subprocess), the stand-in of Viber, feeds
served from 127.0.0.1. No timing assertions: waits poll with a deadline.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import helpers
import httpx
import pytest
from conftest import MediaHost, WebhookReceiver
from helpers import (
    STANDIN_TOKEN,
    FakeClock,
    free_port,
    put,
    run_cli,
    running_service,
    wait_for,
)
from prometheus_client.parser import text_string_to_metric_families

import publisher.pipeline.deliver
from publisher.adapters.standin import ViberStandIn
from publisher.cli.health import probe_url
from publisher.config import load_config
from publisher.service.reload import pid_path
from publisher.service.runner import Service


def write_config(
    tmp: Path, body: str, *, api_url: str = "local", listen: str = "127.0.0.1:0"
) -> Path:
    return helpers.write_config(
        tmp,
        api_url,
        listen=listen,
        state="state/publisher.sqlite3",
        media_dir="state/media",
        rest=body,
    )


FOLDER_SOURCE = """
[[sources]]
name = "notes"
type = "folder"
path = "inbox"
every = "1s"
"""


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of ``/metrics``, None when absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


# --------------------------------------------------------------------------
# health (a real `run` subprocess)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """`viber-publisher run` on a free port with the local channel."""
    put(tmp_path / "inbox", "001-hello.txt", "Hello\n")
    write_config(tmp_path, FOLDER_SOURCE, listen=f"127.0.0.1:{free_port()}")
    with running_service(tmp_path) as process:
        yield tmp_path, process


def _answers(listen: str, path: str) -> bool:
    """Whether the service at ``listen`` answers 200 on ``path``."""
    try:
        return httpx.get(f"http://{listen}{path}", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.slow
def test_health_is_green_while_the_service_runs_and_red_after(
    running: tuple[Path, subprocess.Popen[str]],
) -> None:
    tmp, process = running
    config = load_config(tmp / "sources.toml")
    # Wait in-process (no CLI subprocess per try), then ask as Docker does, once.
    wait_for(lambda: _answers(config.server.listen, "/readyz"), "ready", tmp / "run.log")
    healthy = run_cli(tmp, "health")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert healthy.stdout.startswith("healthy: http://127.0.0.1:")
    assert healthy.stdout.count("\n") == 1
    ready = run_cli(tmp, "health", "--ready")
    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert ready.stdout.startswith("ready: ")
    assert pid_path(config).read_text().strip() == str(process.pid)

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert not pid_path(config).exists()
    down = run_cli(tmp, "health")
    assert down.returncode == 1
    assert down.stdout.startswith("not healthy: no answer from")
    assert down.stdout.count("\n") == 1


def test_health_with_a_broken_config_is_unhealthy_not_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "sources.toml").write_text("[server]\nlisten = 8080\n")
    result = run_cli(tmp_path, "health")
    assert result.returncode == 1  # Docker reserves 2
    assert result.stdout.startswith("unhealthy: ")


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("0.0.0.0:8080", "http://127.0.0.1:8080/healthz"),
        ("127.0.0.1:9000", "http://127.0.0.1:9000/healthz"),
        ("[::]:8080", "http://[::1]:8080/healthz"),
        ("[::1]:8080", "http://[::1]:8080/healthz"),
    ],
)
def test_probe_url_asks_the_loopback_for_wildcard_addresses(listen: str, url: str) -> None:
    assert probe_url(listen) == url
    assert probe_url(listen, ready=True) == url.replace("/healthz", "/readyz")


# --------------------------------------------------------------------------
# /readyz and /metrics (the service in-process, its real server)


@pytest.fixture
def channel() -> Iterator[ViberStandIn]:
    """A stand-in of our own: tests here change its token."""
    standin = ViberStandIn(STANDIN_TOKEN)
    with standin.serve() as serving:
        serving.preset_webhook("http://127.0.0.1:9/webhook")
        yield serving


def start_service(tmp: Path, channel: ViberStandIn, body: str = FOLDER_SOURCE) -> Service:
    config = load_config(write_config(tmp, body, api_url=channel.api_url))
    service = Service(config, token=STANDIN_TOKEN)
    service.start()
    return service


@pytest.mark.slow
def test_readyz_turns_red_when_the_token_is_refused_and_green_when_it_works_again(
    tmp_path: Path, channel: ViberStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stopped channel re-checks the token every RECHECK_EVERY (5 min): make it quick.
    if hasattr(publisher.pipeline.deliver.Deliverer, "RECHECK_EVERY"):
        monkeypatch.setattr(
            publisher.pipeline.deliver.Deliverer, "RECHECK_EVERY", timedelta(seconds=0.2)
        )
    monkeypatch.setattr(publisher.pipeline.deliver, "RECHECK_EVERY", timedelta(seconds=0.2))
    inbox = tmp_path / "inbox"
    put(inbox, "001-first.txt", "First\n")
    service = start_service(tmp_path, channel)
    thread = threading.Thread(target=service.run, kwargs={"install_signals": False})
    thread.start()
    readyz = service.server.url + "/readyz"
    try:
        wait_for(lambda: len(channel.posts) == 1, "the first post")
        wait_for(lambda: httpx.get(readyz).status_code == 200, "ready")

        channel.token = "0000000000000000-0000000000000000-0000000000000000"
        put(inbox, "002-second.txt", "Second\n")
        wait_for(lambda: httpx.get(readyz).status_code == 503, "not ready")
        body = httpx.get(readyz).json()
        assert body["ok"] is False
        assert body["posting"].startswith("stopped: ")
        assert len(channel.posts) == 1

        channel.token = STANDIN_TOKEN
        wait_for(lambda: len(channel.posts) == 2, "posting to resume")
        wait_for(lambda: httpx.get(readyz).status_code == 200, "ready again")
        assert channel.posts[1].payload["text"].strip() == "Second"
    finally:
        service.stop()
        thread.join(timeout=30)
        service.close()


def test_metrics_move_after_a_poll_and_a_post(tmp_path: Path, channel: ViberStandIn) -> None:
    put(tmp_path / "inbox", "001-hello.txt", "Hello\n")
    service = start_service(tmp_path, channel)
    url = service.server.url + "/metrics"
    try:
        before = httpx.get(url).text
        assert metric(before, "viber_publisher_polls_total", source="notes", result="ok") is None
        assert metric(before, "viber_publisher_outbox_depth") == 0

        service.poll_all()
        polled = httpx.get(url).text
        assert metric(polled, "viber_publisher_polls_total", source="notes", result="ok") == 1
        assert metric(polled, "viber_publisher_items_total", source="notes", outcome="queued") == 1
        assert metric(polled, "viber_publisher_outbox_depth") == 1
        assert (metric(polled, "viber_publisher_last_post_timestamp_seconds") or 0) == 0

        deliverer = service.deliverer
        assert deliverer is not None
        wait_for(lambda: deliverer.step() is not None and channel.posts, "a post")
        posted = httpx.get(url).text
        assert metric(posted, "viber_publisher_posts_total", result="ok") == 1
        assert metric(posted, "viber_publisher_items_total", source="notes", outcome="posted") == 1
        assert (metric(posted, "viber_publisher_last_post_timestamp_seconds") or 0) > 0
        assert metric(posted, "viber_publisher_outbox_depth") == 0
        assert metric(posted, "viber_publisher_posting_stopped") == 0
    finally:
        service.close()


# --------------------------------------------------------------------------
# a failing source: one alert, paused, a warning per back-off


def failing_feed_config(tmp: Path, feed_url: str, alerts: str) -> Service:
    body = f"""
[alerts]
{alerts}

[[sources]]
name = "dead"
type = "rss"
url = "{feed_url}"
every = "1m"
"""
    config = load_config(write_config(tmp, body, api_url="http://127.0.0.1:9/pa"))
    return Service(config, token=STANDIN_TOKEN, clock=FakeClock(), serve=False)


def test_a_failing_source_alerts_once_not_once_per_poll(
    tmp_path: Path, media_host: MediaHost, webhook_receiver: WebhookReceiver
) -> None:
    feed = media_host.add("/feed.xml", b"broken", "text/plain", status=500)
    alerts = f'webhook_url = "{webhook_receiver.url}"\nsource_failures = 3'
    service = failing_feed_config(tmp_path, feed, alerts)
    clock = service.clock
    assert isinstance(clock, FakeClock)
    source = service.config.source("dead")
    try:
        for _ in range(8):
            outcome = service.poll_source(source)
            assert not outcome.ok
            # Far past [alerts] min_interval: the alerter would let a repeat through.
            clock.now += timedelta(hours=7)
        assert service.alerter.flush(timeout=10)
        assert len(webhook_receiver.calls) == 1
        alert = json.loads(webhook_receiver.calls[0][0])
        assert alert["kind"] == "source_paused"
        assert alert["subject"] == "dead"
        state = service.store.get_source("dead")
        assert state.paused
        assert state.consecutive_failures == 8
        # Paused: polled at the longest back-off only.
        assert state.next_poll is not None and state.last_poll is not None
        assert state.next_poll - state.last_poll == service.config.fetch.max_backoff
        body, _ = service.metrics.render()
        assert metric(body.decode(), "viber_publisher_source_paused", source="dead") == 1

        # The feed answers again: resumed by itself.
        media_host.add(
            "/feed.xml", b"<rss version='2.0'><channel></channel></rss>", "application/rss+xml"
        )
        assert service.poll_source(source).ok
        assert not service.store.get_source("dead").paused
        body, _ = service.metrics.render()
        assert metric(body.decode(), "viber_publisher_source_paused", source="dead") == 0
    finally:
        service.close()


def test_a_dead_feed_logs_a_warning_once_per_back_off(
    tmp_path: Path, media_host: MediaHost, caplog: pytest.LogCaptureFixture
) -> None:
    feed = media_host.add("/feed.xml", b"broken", "text/plain", status=500)
    service = failing_feed_config(tmp_path, feed, "source_failures = 100")
    clock = service.clock
    assert isinstance(clock, FakeClock)
    source = service.config.source("dead")
    start = clock.now
    polled_at: list[int] = []
    try:
        with caplog.at_level(logging.WARNING, logger="publisher.pipeline.poll"):
            # The loop looks every minute for an hour; a source due by then
            # (give or take its jitter) is polled.
            for minute in range(60):
                clock.now = start + timedelta(minutes=minute)
                if service.due(source) <= clock.now + timedelta(seconds=30):
                    polled_at.append(minute)
                    service.poll_source(source)
    finally:
        service.close()
    warnings = [r for r in caplog.records if "source dead:" in r.getMessage()]
    assert polled_at == [0, 1, 3, 7, 15, 31]
    assert len(warnings) == len(polled_at)
    assert "failure 6 in a row" in warnings[-1].getMessage()


# --------------------------------------------------------------------------
# logs


def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    put(tmp_path / "inbox", "001-hello.txt", "Hello\n")
    write_config(tmp_path, FOLDER_SOURCE)
    result = run_cli(tmp_path, "--log-format", "json", "run", "--once")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert any("posted" in line for line in lines)
    for line in lines:
        record = json.loads(line)
        assert isinstance(record, dict)
        assert {"time", "level", "logger", "message"} <= set(record)


def test_metrics_show_the_media_folder_size_at_each_scrape(
    tmp_path: Path, channel: ViberStandIn
) -> None:
    put(tmp_path / "inbox", "001-hello.txt", "Hello\n")
    service = start_service(tmp_path, channel)
    assert service.server is not None
    url = service.server.url + "/metrics"
    media = service.config.storage.media_dir
    try:
        before = httpx.get(url).text
        files = metric(before, "viber_publisher_media_files") or 0
        size = metric(before, "viber_publisher_media_bytes") or 0
        (media / ("c" * 32 + ".jpg")).write_bytes(b"x" * 1234)
        after = httpx.get(url).text
        assert metric(after, "viber_publisher_media_files") == files + 1
        assert metric(after, "viber_publisher_media_bytes") == size + 1234
    finally:
        service.close()


def test_the_pid_file_is_written_by_replicas_started_together_and_never_stops_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each process writes its own temporary file before the rename (two
    replicas starting at once in one folder once raced on a shared name);
    a pid file that cannot be written is one warning, and the run goes on."""
    import os

    from publisher.service.reload import read_pid, write_pid

    path = tmp_path / "state.sqlite3.pid"
    ours = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    stranger = path.with_name(path.name + ".tmp")
    stranger.write_text("123\n")  # another process's file, mid-write
    assert write_pid(path) and read_pid(path) == os.getpid()
    assert stranger.read_text() == "123\n" and not ours.exists()
    blocked = tmp_path / "file"
    blocked.write_text("")
    with caplog.at_level(logging.WARNING):
        assert not write_pid(blocked / "state.sqlite3.pid")  # its folder is a file
    [line] = [r.getMessage() for r in caplog.records]
    assert "could not write the pid file" in line and "send it SIGHUP" in line
