"""``Service.poll_all`` reads every source's state in one query and hands
each poll its own, instead of one ``get_source`` per source (issue 14)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from publisher.adapters.httpserver import HTTPServer
from publisher.config import parse_config
from publisher.service.runner import Service

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
BODY = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title>'
    b"<link>https://example.org/</link><item><title>Post</title>"
    b"<link>https://example.org/1</link><guid>post-1</guid></item></channel></rss>"
)


@pytest.fixture
def feed_url() -> Iterator[str]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("HTTP_IF_NONE_MATCH") == '"v1"':
            start_response("304 Not Modified", [("ETag", '"v1"')])
            return [b""]
        start_response("200 OK", [("Content-Type", "application/rss+xml"), ("ETag", '"v1"')])
        return [BODY]

    with HTTPServer(app, host="127.0.0.1", port=0) as server:
        yield server.url + "/feed"


def test_poll_all_reads_the_states_once(tmp_path: Path, feed_url: str) -> None:
    config = parse_config(
        {
            "viber": {"api_url": "local"},
            "storage": {"path": str(tmp_path / "state.sqlite3"), "media_dir": str(tmp_path / "m")},
            "sources": [
                {"name": f"s{n}", "type": "rss", "url": f"{feed_url}/{n}"} for n in range(4)
            ],
        }
    )
    now = [T0]
    service = Service(config, clock=lambda: now[0], serve=False)
    try:
        assert [o.result for o in service.poll_all()] == ["ok"] * 4
        store = service.parts.store
        reads: list[str] = []
        get_source, sources = store.get_source, store.sources

        def counted_get(name: str) -> Any:
            reads.append(name)
            return get_source(name)

        def counted_all() -> Any:
            reads.append("*")
            return sources()

        store.get_source = counted_get  # type: ignore[method-assign]
        store.sources = counted_all  # type: ignore[method-assign]
        now[0] = T0 + timedelta(hours=1)
        # the ETags come from the one read: every feed answers 304
        assert [o.result for o in service.poll_all()] == ["not_modified"] * 4
        assert reads == ["*"]
        store.get_source, store.sources = get_source, sources  # type: ignore[method-assign]
        assert all(s.last_poll == now[0] for s in store.sources())
    finally:
        service.close()


def test_a_source_polled_alone_still_reads_its_state(tmp_path: Path, feed_url: str) -> None:
    config = parse_config(
        {
            "viber": {"api_url": "local"},
            "storage": {"path": str(tmp_path / "state.sqlite3"), "media_dir": str(tmp_path / "m")},
            "sources": [{"name": "s", "type": "rss", "url": f"{feed_url}/s"}],
        }
    )
    now = [T0]
    service = Service(config, clock=lambda: now[0], serve=False)
    try:
        (source,) = config.sources
        assert service.poll_source(source).result == "ok"
        now[0] = T0 + timedelta(hours=1)
        assert service.poll_source(source).result == "not_modified"
    finally:
        service.close()
