"""The two ways a request goes (issue 14): on the fetcher's own kept
connections (``http.client``, the usual way) and through ``httpx.Client`` (a test
transport or a proxy; here a real ``httpx.HTTPTransport``). Each test runs
both against a real server on 127.0.0.1 and expects the same answers and
the same one-line errors: redirect hops, each checked against the
private-address rule; 304s on a kept connection; the deadline; the
decoded-size cap; repeated and non-ASCII headers; user:password@ URLs; no
cookies kept."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest

from publisher.adapters.fetch import Fetcher
from publisher.core.config import FetchConfig
from publisher.core.errors import FetchError, MediaError

RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title></channel></rss>'
PATHS = ["pool", "client"]

#: path → (status, headers, body); the handler answers from it.
Route = tuple[int, list[tuple[str, str]], bytes]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes: ClassVar[dict[str, Route]] = {}
    connections: ClassVar[list[object]] = []
    seen: ClassVar[list[dict[str, str]]] = []

    def setup(self) -> None:
        super().setup()
        self.connections.append(self.client_address)

    def do_GET(self) -> None:
        self.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        status, headers, body = self.routes.get(self.path, (404, [], b""))
        if status == 200 and self.headers.get("If-None-Match") == '"v1"':
            status, body = 304, b""
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    _Handler.routes, _Handler.connections, _Handler.seen = {}, [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    # a short poll: shutdown() waits for it (0.5 s by default, in every test)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def make(path: str, **options: Any) -> Fetcher:
    config = FetchConfig(**options)
    fetcher = (
        Fetcher(config) if path == "pool" else Fetcher(config, transport=httpx.HTTPTransport())
    )
    # the way asked for is the way taken (no proxy in the environment)
    assert (fetcher._connections is not None) == (path == "pool")
    return fetcher


@pytest.mark.parametrize("path", PATHS)
def test_304s_on_a_kept_connection(site: str, path: str) -> None:
    _Handler.routes["/feed"] = (200, [("ETag", '"v1"')], RSS)
    with make(path) as fetcher:
        first = fetcher.fetch_feed(site + "/feed")
        assert first.body == RSS and first.etag == '"v1"'
        for _ in range(3):
            again = fetcher.fetch_feed(site + "/feed", etag=first.etag)
            assert again.not_modified and again.body == b"" and again.etag == '"v1"'
    assert len(_Handler.connections) == 1
    assert [s.get("if-none-match") for s in _Handler.seen] == [None, '"v1"', '"v1"', '"v1"']
    assert {s["user-agent"] for s in _Handler.seen} == {FetchConfig().user_agent}
    assert {s["accept-encoding"] for s in _Handler.seen} == {"gzip, deflate"}


def test_both_paths_give_the_same_answer(site: str) -> None:
    _Handler.routes["/a"] = (301, [("Location", "/b")], b"")
    _Handler.routes["/b"] = (
        200,
        [
            ("Content-Type", "application/rss+xml"),
            ("Link", "<a>"),
            ("Link", "<b>"),
            ("X-Name", "caf\u00e9"),  # sent as Latin-1 by http.server
            ("Cache-Control", "max-age=60"),
        ],
        RSS,
    )
    answers = []
    for path in PATHS:
        with make(path) as fetcher:
            answers.append(fetcher.fetch_feed(site + "/a"))
    assert answers[0] == answers[1]
    answer = answers[0]
    assert answer.headers["link"] == "<a>, <b>"
    assert answer.headers["x-name"] == "caf\u00e9"
    assert answer.permanent_redirect == site + "/b" and answer.final_url == site + "/b"
    assert answer.max_age == timedelta(seconds=60)


@pytest.mark.parametrize("path", PATHS)
def test_redirect_hops_relative_and_not_all_permanent(site: str, path: str) -> None:
    _Handler.routes["/1"] = (301, [("Location", "2")], b"")
    _Handler.routes["/2"] = (302, [("Location", site + "/3")], b"")
    _Handler.routes["/3"] = (308, [("Location", "/feed?x=1")], b"")
    _Handler.routes["/feed?x=1"] = (200, [], RSS)
    with make(path) as fetcher:
        answer = fetcher.fetch_feed(site + "/1")
    assert answer.body == RSS
    assert answer.final_url == site + "/feed?x=1"
    assert answer.permanent_redirect == site + "/2"  # the permanent hops before the 302
    assert [s["path"] for s in _Handler.seen] == ["/1", "/2", "/3", "/feed?x=1"]


@pytest.mark.parametrize("path", PATHS)
def test_every_hop_is_checked_against_the_private_address_rule(site: str, path: str) -> None:
    """The feed's own host is trusted; a hop to another local host is not."""
    port = site.rsplit(":", 1)[1]
    _Handler.routes["/feed"] = (302, [("Location", f"http://localhost:{port}/other")], b"")
    with make(path) as fetcher, pytest.raises(FetchError, match="private or local address"):
        fetcher.fetch_feed(site + "/feed")
    assert [s["path"] for s in _Handler.seen] == ["/feed"]


@pytest.mark.parametrize("path", PATHS)
def test_http_errors_are_one_line(site: str, path: str) -> None:
    _Handler.routes["/gone"] = (410, [], b"")
    with make(path, allow_private=True) as fetcher:
        with pytest.raises(FetchError, match=r"HTTP 410 Gone; the server says it is gone") as info:
            fetcher.fetch_feed(site + "/gone")
        assert info.value.status == 410
        with pytest.raises(MediaError, match="HTTP 404 Not Found; nothing at this address"):
            fetcher.fetch_media(site + "/pic")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("path", PATHS)
def test_user_and_password_in_the_url_are_sent_as_basic_auth(site: str, path: str) -> None:
    _Handler.routes["/private"] = (200, [], RSS)
    with make(path) as fetcher:
        fetcher.fetch_feed(site.replace("//", "//me:s%20cret@") + "/private")
    assert _Handler.seen[0]["authorization"] == "Basic bWU6cyBjcmV0"  # me:s cret
    assert _Handler.seen[0]["host"] == site.split("//", 1)[1]


@pytest.mark.parametrize("path", PATHS)
def test_no_cookies_are_kept(site: str, path: str) -> None:
    _Handler.routes["/feed"] = (200, [("Set-Cookie", "session=1; Path=/")], RSS)
    with make(path) as fetcher:
        fetcher.fetch_feed(site + "/feed")
        fetcher.fetch_feed(site + "/feed")
    assert [s.get("cookie") for s in _Handler.seen] == [None, None]


@pytest.mark.parametrize("path", PATHS)
def test_gzip_is_undone_and_a_bomb_stopped_at_the_cap(site: str, path: str) -> None:
    _Handler.routes["/small"] = (200, [("Content-Encoding", "gzip")], gzip.compress(RSS))
    bomb = gzip.compress(gzip.compress(b"\0" * 5_000_000))
    _Handler.routes["/bomb"] = (200, [("Content-Encoding", "gzip, gzip")], bomb)
    with make(path, max_bytes=100_000) as fetcher:
        assert fetcher.fetch_feed(site + "/small").body == RSS
        with pytest.raises(FetchError, match=r"larger than 100,000 bytes \(\[fetch\] max_bytes\)"):
            fetcher.fetch_feed(site + "/bomb")


# --------------------------------------------------------------------------
# servers that misbehave


def _raw_server(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/feed"
    finally:
        stop.set()
        listener.close()


@pytest.fixture
def dripping() -> Iterator[str]:
    def answer(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.1)

    yield from _raw_server(answer)


@pytest.fixture
def hanging_up() -> Iterator[str]:
    def answer(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)

    yield from _raw_server(answer)


@pytest.mark.parametrize("path", PATHS)
def test_a_dripping_server_ends_at_the_deadline(dripping: str, path: str) -> None:
    with (
        make(path, timeout=timedelta(seconds=0.5), allow_private=True) as fetcher,
        pytest.raises(FetchError, match=r"timed out after .* without a complete answer") as info,
    ):
        fetcher.fetch_feed(dripping)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("path", PATHS)
def test_a_server_hanging_up_is_one_line(hanging_up: str, path: str) -> None:
    with (
        make(path, allow_private=True) as fetcher,
        pytest.raises(FetchError, match="closed the connection or sent a broken answer") as info,
    ):
        fetcher.fetch_feed(hanging_up)
    assert "\n" not in str(info.value)


@pytest.fixture
def cut_short() -> Iterator[str]:
    """Says 1,000 bytes, sends 10, hangs up."""

    def answer(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n<rss>....")

    yield from _raw_server(answer)


@pytest.mark.parametrize("path", PATHS)
def test_a_body_cut_short_is_not_taken_for_the_whole(cut_short: str, path: str) -> None:
    with (
        make(path, allow_private=True) as fetcher,
        pytest.raises(FetchError, match="closed the connection or sent a broken answer") as info,
    ):
        fetcher.fetch_feed(cut_short)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("path", PATHS)
def test_connection_refused_is_one_line(path: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        make(path, allow_private=True) as fetcher,
        pytest.raises(FetchError, match="connection refused; is the server up"),
    ):
        fetcher.fetch_feed(f"http://127.0.0.1:{port}/feed")


@pytest.mark.parametrize("path", PATHS)
def test_a_url_httpx_cannot_read_is_one_line(path: str) -> None:
    with (
        make(path, allow_private=True) as fetcher,
        pytest.raises(FetchError, match="not a valid") as info,
    ):
        fetcher.fetch_feed("http://127.0.0.1:8/" + "a" * 70000)
    assert "\n" not in str(info.value)
