"""Unchanged polls reuse their connection: a 304 is read to its end (it has
no body), so the connection goes back to the pool instead of being closed
(issue 14: a new TCP connection and a name look-up for every unchanged poll)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from publisher.adapters.fetch import Fetcher
from publisher.core.config import FetchConfig

RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title></channel></rss>'


class _Feed(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: ClassVar[list[object]] = []

    def setup(self) -> None:
        super().setup()
        self.connections.append(self.client_address)

    def do_GET(self) -> None:
        if self.headers.get("If-None-Match") == '"v1"':
            self.send_response(304)
            self.send_header("ETag", '"v1"')
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("ETag", '"v1"')
        self.send_header("Content-Length", str(len(RSS)))
        self.end_headers()
        self.wfile.write(RSS)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def feed_url() -> Iterator[str]:
    _Feed.connections = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Feed)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/feed"
    finally:
        server.shutdown()
        server.server_close()


def test_unchanged_polls_reuse_one_connection(feed_url: str) -> None:
    with Fetcher(FetchConfig(allow_private=True)) as fetcher:
        first = fetcher.fetch_feed(feed_url)
        assert first.body == RSS
        for _ in range(3):
            again = fetcher.fetch_feed(feed_url, etag=first.etag)
            assert again.not_modified and again.body == b""
    assert len(_Feed.connections) == 1
