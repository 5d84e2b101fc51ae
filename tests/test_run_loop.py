"""Acceptance: sources polled together and the long-running loop.

- ``poll_all`` polls a 304 feed, an unchanged one, a slow one and an HTML
  page concurrently; only the failing ones record errors, and the slow one
  does not hold the others up;
- ``viber-publisher run`` in a subprocess posts new items as they appear,
  backs a failing source off while the other keeps posting, and stops on
  SIGTERM with exit 0 after the post in flight.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import helpers
import pytest
from helpers import STANDIN_TOKEN, posted_titles, wait_for

from publisher.adapters.httpserver import HTTPServer
from publisher.adapters.sqlite import Store
from publisher.adapters.standin import ViberStandIn
from publisher.config import load_config
from publisher.service.runner import Service

LAST_MODIFIED = "Sun, 01 Mar 2026 12:00:00 GMT"


def rss(titles: Iterable[str]) -> bytes:
    items = "".join(
        f"<item><title>{t}</title><link>https://example.org/{t.replace(' ', '-')}</link>"
        f"<guid>{t}</guid></item>"
        for t in titles
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"{items}</channel></rss>"
    ).encode()


class Site:
    """Routes for the poll_all test and the run loop, recording what it is asked."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.titles: list[str] = ["Item 2", "Item 1"]  # newest first
        self.release = threading.Event()
        self.slow_finished = threading.Event()

    def add(self, title: str) -> None:
        with self.lock:
            self.titles.insert(0, title)

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        headers = {
            k[5:].replace("_", "-").lower(): str(v) for k, v in environ.items() if k[:5] == "HTTP_"
        }
        with self.lock:
            self.requests.append((path, headers))
            titles = list(self.titles)
        feed_type = ("Content-Type", "application/rss+xml")
        if path == "/etag":
            if headers.get("if-none-match") == '"v1"':
                start_response("304 Not Modified", [("ETag", '"v1"')])
                return [b""]
            body = rss(["Tagged"])
            start_response(
                "200 OK",
                [feed_type, ("ETag", '"v1"'), ("Last-Modified", LAST_MODIFIED)],
            )
            return [body]
        if path == "/same":
            start_response("200 OK", [feed_type])
            return [rss(["Same"])]
        if path == "/slow":
            self.release.wait(timeout=4)  # longer than [fetch] timeout
            self.slow_finished.set()
            start_response("200 OK", [feed_type])
            return [rss(["Slow"])]
        if path == "/html":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [b"<!DOCTYPE html><html><head><title>Blog</title></head><body>Hi</body></html>"]
        if path == "/feed":
            start_response("200 OK", [feed_type])
            return [rss(titles)]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"nothing here"]


@pytest.fixture
def site() -> Iterator[tuple[Site, str]]:
    s = Site()
    with HTTPServer(s.app, threads=16) as server:
        try:
            yield s, server.url
        finally:
            s.release.set()


def write_config(
    tmp_path: Path, standin: ViberStandIn, sources: list[tuple[str, str]], **fetch: str
) -> Path:
    blocks = "".join(
        f'[[sources]]\nname = "{name}"\ntype = "rss"\nurl = "{url}"\n'
        'every = "1s"\nbackfill = 10\n\n'
        for name, url in sources
    )
    fetch_lines = "".join(f'{key} = "{value}"\n' for key, value in fetch.items())
    return helpers.write_config(tmp_path, standin.api_url, rest=f"[fetch]\n{fetch_lines}\n{blocks}")


def test_poll_all_records_only_the_failures_and_the_slow_feed_blocks_nobody(
    tmp_path: Path, standin: ViberStandIn, site: tuple[Site, str]
) -> None:
    server, base = site
    names = ["etag", "same", "slow", "html"]
    config = load_config(
        write_config(tmp_path, standin, [(n, f"{base}/{n}") for n in names], timeout="1s")
    )
    service = Service(config, token=STANDIN_TOKEN, serve=False)
    recorded: list[tuple[str, bool, bool]] = []
    real_record, real_record_many = service.store.record_poll, service.store.record_polls

    def record_poll(name: str, *args: Any, **kwargs: Any) -> Any:
        state = real_record(name, *args, **kwargs)
        recorded.append((name, bool(kwargs.get("ok")), server.slow_finished.is_set()))
        return state

    def record_polls(polls: Any) -> None:  # the unchanged ones, written together
        real_record_many(polls)
        done = server.slow_finished.is_set()
        recorded.extend((name, True, done) for name, _, _ in polls)

    service.store.record_poll = record_poll  # type: ignore[method-assign]
    service.store.record_polls = record_polls  # type: ignore[method-assign]
    try:
        first = {o.source: o for o in service.poll_all()}
        assert first["etag"].ok and first["etag"].queued == 1
        assert first["same"].ok and first["same"].queued == 1

        recorded.clear()
        server.requests.clear()
        second = {o.source: o for o in service.poll_all()}
        assert second["etag"].result == "not_modified"
        assert second["same"].result == "unchanged"
        assert second["slow"].result == "error"
        assert "timed out after 1s" in (second["slow"].error or "")
        assert second["html"].result == "error"
        assert "HTML" in (second["html"].error or "")

        etag_headers = [h for path, h in server.requests if path == "/etag"]
        assert etag_headers[0]["if-none-match"] == '"v1"'
        assert etag_headers[0]["if-modified-since"] == LAST_MODIFIED

        for name in ("etag", "same"):
            state = service.store.get_source(name)
            assert state.last_error is None and state.consecutive_failures == 0
        for name in ("slow", "html"):
            state = service.store.get_source(name)
            assert state.last_error == second[name].error
            assert state.consecutive_failures == 2
        # everything but the slow feed was recorded before it gave up
        assert [name for name, _, _ in recorded][-1] == "slow"
        assert {name for name, _, _ in recorded[:-1]} == {"etag", "same", "html"}
        assert not any(slow_done for _, _, slow_done in recorded[:-1])
    finally:
        server.release.set()
        service.close()


@pytest.mark.slow
def test_run_loop_posts_new_items_backs_off_a_failing_source_and_stops_on_sigterm(
    tmp_path: Path, standin: ViberStandIn, site: tuple[Site, str]
) -> None:
    server, base = site
    config = write_config(
        tmp_path, standin, [("news", f"{base}/feed"), ("broken", f"{base}/missing")]
    )
    env = dict(os.environ, VIBER_AUTH_TOKEN=STANDIN_TOKEN, PYTHONUNBUFFERED="1")
    log_path = tmp_path / "run.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "publisher", "--config", str(config), "run"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(
            lambda: posted_titles(standin) == ["Item 1", "Item 2"], "the first two posts", log_path
        )

        server.add("Item 3")
        wait_for(lambda: posted_titles(standin)[2:] == ["Item 3"], "the new item's post", log_path)

        # the failing source backs off: 1s after its first failure, 2s after its second
        backoffs: dict[int, timedelta] = {}

        def failing_twice() -> bool:
            with Store.open(tmp_path / "state.sqlite3", read_only=True) as store:
                state = store.get_source("broken")
            if state.next_poll is not None and state.last_poll is not None:
                backoffs[state.consecutive_failures] = state.next_poll - state.last_poll
            return 2 in backoffs

        wait_for(failing_twice, "two failed polls of the broken source", log_path)
        assert backoffs[2] > backoffs.get(1, timedelta(seconds=1)) >= timedelta(seconds=1)
        with Store.open(tmp_path / "state.sqlite3", read_only=True) as store:
            broken = store.get_source("broken")
            news = store.get_source("news")
        assert "HTTP 404" in (broken.last_error or "")
        assert news.last_error is None and news.consecutive_failures == 0

        # the other source keeps posting while the broken one backs off
        server.add("Item 4")
        wait_for(
            lambda: posted_titles(standin)[3:] == ["Item 4"], "a post after the failures", log_path
        )

        # SIGTERM while a post is in flight: it is finished, then exit 0
        standin.fail_next("slow", delay=1.5)
        server.add("Item 5")
        wait_for(lambda: len(standin.posts) == 5, "the slow post to reach the channel", log_path)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    output = (tmp_path / "run.log").read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in output, output
    assert posted_titles(standin) == ["Item 1", "Item 2", "Item 3", "Item 4", "Item 5"]
    with Store.open(tmp_path / "state.sqlite3", read_only=True) as store:
        statuses = [row.status for row in store.recent_posts(limit=10)]
    assert statuses == ["posted"] * 5, output
