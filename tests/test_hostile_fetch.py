"""Hostile servers against the fetcher, each made here on 127.0.0.1: headers or
a body dripped a byte at a time, compression bombs in one and two layers.
Each ends in one clear refusal, within ``[fetch] timeout`` plus a second."""

from __future__ import annotations

import gzip
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from publisher.adapters.fetch import Fetcher
from publisher.core.config import FetchConfig
from publisher.core.errors import FetchError, MediaError

RSS = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
    b"<item><title>One</title><link>https://example.org/1</link></item></channel></rss>"
)
TIMEOUT = timedelta(seconds=1)


class RawServer:
    """A TCP server on 127.0.0.1 answering every connection with ``answer(conn)``."""

    def __init__(self, answer: Callable[[socket.socket], None]) -> None:
        self.answer = answer
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/feed"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                self.answer(conn)
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[socket.socket], None]], RawServer]]:
    servers: list[RawServer] = []

    def make(answer: Callable[[socket.socket], None]) -> RawServer:
        server = RawServer(answer)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def drip(data: bytes, every: float = 0.2) -> Callable[[socket.socket], None]:
    """Send ``data`` one byte at a time, ``every`` seconds apart (under the
    per-read timeout, so only a deadline on the whole request stops it)."""

    def answer(conn: socket.socket) -> None:
        for byte in data:
            conn.sendall(bytes([byte]))
            time.sleep(every)

    return answer


def whole(head: bytes, body: bytes) -> Callable[[socket.socket], None]:
    def answer(conn: socket.socket) -> None:
        conn.sendall(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

    return answer


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
ENDLESS_HEADERS = HEAD + b"X-Padding: " + b"a" * 10_000


def fetcher(**kw: object) -> Fetcher:
    return Fetcher(FetchConfig(timeout=TIMEOUT, allow_private=True, **kw))  # type: ignore[arg-type]


def test_dripped_headers_end_at_the_deadline(serve: Callable[..., RawServer]) -> None:
    server = serve(drip(ENDLESS_HEADERS))
    started = time.monotonic()
    with fetcher() as f, pytest.raises(FetchError, match=r"timed out.*\[fetch\] timeout") as info:
        f.fetch_feed(server.url)
    assert time.monotonic() - started < TIMEOUT.total_seconds() + 1
    assert "\n" not in str(info.value)


def test_a_reused_connection_is_held_to_the_deadline_too(serve: Callable[..., RawServer]) -> None:
    """Issue 14: connections are reused per host, and the watchdog still ends a
    request past its deadline on a connection it did not open."""
    connections: list[socket.socket] = []

    def answer(conn: socket.socket) -> None:
        connections.append(conn)
        whole(HEAD, RSS)(conn)
        conn.recv(65536)  # the second request, on the same connection
        drip(ENDLESS_HEADERS)(conn)

    server = serve(answer)
    with fetcher() as f:
        assert f.fetch_feed(server.url).body == RSS
        started = time.monotonic()
        with pytest.raises(FetchError, match=r"timed out.*\[fetch\] timeout"):
            f.fetch_feed(server.url)
        assert time.monotonic() - started < TIMEOUT.total_seconds() + 1
    assert len(connections) == 1, "the second request reused the first one's connection"


def test_dripped_body_ends_at_the_deadline(serve: Callable[..., RawServer]) -> None:
    server = serve(
        lambda conn: (
            conn.sendall(HEAD + b"Content-Length: 100000\r\n\r\n"),
            drip(b"<" * 100)(conn),
        )
    )
    started = time.monotonic()
    with fetcher() as f, pytest.raises(MediaError, match=r"timed out"):
        f.fetch_media(server.url)
    assert time.monotonic() - started < TIMEOUT.total_seconds() + 1


def test_redirect_hops_share_one_deadline(serve: Callable[..., RawServer]) -> None:
    slow = serve(drip(ENDLESS_HEADERS))

    def hop(conn: socket.socket) -> None:
        time.sleep(0.5)
        conn.sendall(
            b"HTTP/1.1 302 Found\r\nLocation: "
            + slow.url.encode()
            + b"\r\nContent-Length: 0\r\n\r\n"
        )

    first = serve(hop)
    started = time.monotonic()
    with fetcher() as f, pytest.raises(FetchError, match="timed out"):
        f.fetch_feed(first.url)
    assert time.monotonic() - started < TIMEOUT.total_seconds() + 1


def test_dripping_servers_do_not_hold_the_other_polls(serve: Callable[..., RawServer]) -> None:
    """As many dripping feeds as the service has poll workers: a good feed
    behind them is still read within the deadline plus a second."""
    from publisher.service.runner import POLL_WORKERS

    slow = [serve(drip(ENDLESS_HEADERS)) for _ in range(POLL_WORKERS)]
    good = serve(whole(HEAD, RSS))
    started = time.monotonic()
    with fetcher() as f, ThreadPoolExecutor(max_workers=POLL_WORKERS) as pool:
        bad = [pool.submit(f.fetch_feed, s.url) for s in slow]
        ok = pool.submit(f.fetch_feed, good.url)
        assert ok.result(timeout=10).body == RSS
        took = time.monotonic() - started
        for future in bad:
            with pytest.raises(FetchError, match="timed out"):
                future.result(timeout=10)
    assert took < TIMEOUT.total_seconds() + 1


def test_waiting_for_a_busy_host_counts_against_the_deadline(
    serve: Callable[..., RawServer],
) -> None:
    server = serve(drip(ENDLESS_HEADERS))
    started = time.monotonic()
    with fetcher(max_per_host=1) as f, ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(f.fetch_feed, server.url) for _ in range(3)]
        for future in futures:
            with pytest.raises(FetchError, match="timed out"):
                future.result(timeout=10)
    assert time.monotonic() - started < TIMEOUT.total_seconds() + 1


def _bomb(size: int, layers: int) -> bytes:
    """``size`` bytes of "<" gzipped ``layers`` times, never whole in memory."""
    inner = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"<" * 1_000_000
    data = b"".join(inner.compress(chunk) for _ in range(size // len(chunk))) + inner.flush()
    for _ in range(layers - 1):
        data = gzip.compress(data, compresslevel=9)
    return data


@pytest.mark.parametrize("encoding", ["gzip", "gzip, gzip", "x-gzip"])
def test_compression_bombs_are_refused(serve: Callable[..., RawServer], encoding: str) -> None:
    layers = encoding.count(",") + 1
    body = _bomb(200_000_000, layers)
    server = serve(whole(HEAD + f"Content-Encoding: {encoding}\r\n".encode(), body))
    with fetcher(max_bytes=1_000_000) as f, pytest.raises(FetchError, match=r"max_bytes"):
        f.fetch_feed(server.url)


def test_deflate_with_and_without_zlib_header(serve: Callable[..., RawServer]) -> None:
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    bodies = [zlib.compress(RSS), raw.compress(RSS) + raw.flush()]
    with fetcher() as f:
        for body in bodies:
            server = serve(whole(HEAD + b"Content-Encoding: deflate\r\n", body))
            assert f.fetch_feed(server.url).body == RSS


@pytest.mark.parametrize(
    ("encoding", "body", "words"),
    [
        ("br", b"xx", "compression 'br', not supported"),
        ("gzip", b"not gzip at all", "cannot be decoded"),
    ],
)
def test_bad_compression_is_one_line(
    serve: Callable[..., RawServer], encoding: str, body: bytes, words: str
) -> None:
    server = serve(whole(HEAD + f"Content-Encoding: {encoding}\r\n".encode(), body))
    with fetcher() as f, pytest.raises(FetchError, match=words) as info:
        f.fetch_feed(server.url)
    assert "\n" not in str(info.value)


def test_gzip_inside_gzip_feed_is_refused_before_parsing(serve: Callable[..., RawServer]) -> None:
    """One layer declared, a second one inside: the body handed to the parser
    is gzip data, which it refuses (feedparser is never asked to inflate it)."""
    from publisher.adapters.sources.feed import parse_feed
    from publisher.core.errors import SourceError

    server = serve(whole(HEAD + b"Content-Encoding: gzip\r\n", _bomb(50_000_000, 2)))
    with fetcher() as f:
        response = f.fetch_feed(server.url)
    with pytest.raises(SourceError, match="compressed"):
        parse_feed(response.body, response.headers, server.url, "s")


BOMB_SCRIPT = """
import socket, sys, threading
sys.path[:0] = [TESTS]
from test_hostile_fetch import _bomb
from publisher.adapters.fetch import Fetcher
from publisher.adapters.sources.feed import parse_feed
from publisher.core.config import FetchConfig
from publisher.core.errors import PublisherError

body = _bomb(2_000_000_000, 2)
srv = socket.create_server(("127.0.0.1", 0))
head = (
    "HTTP/1.1 200 OK\\r\\nContent-Type: application/rss+xml\\r\\n"
    f"Content-Encoding: {ENCODING}\\r\\nContent-Length: {len(body)}\\r\\n\\r\\n"
).encode()

def serve():
    conn, _ = srv.accept()
    conn.recv(65536)
    conn.sendall(head + body)
    conn.close()

threading.Thread(target=serve, daemon=True).start()
url = f"http://127.0.0.1:{srv.getsockname()[1]}/"
try:
    with Fetcher(FetchConfig(allow_private=True)) as f:
        response = f.fetch_feed(url)
    parse_feed(response.body, response.headers, url, "s")
except PublisherError as exc:
    print("refused:", exc)
# VmHWM is this process's own peak (ru_maxrss may carry the parent's over exec)
with open("/proc/self/status", encoding="ascii") as status:
    hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print("peak_mb", hwm // 1024)
"""


@pytest.mark.slow
@pytest.mark.parametrize("encoding", ["gzip, gzip", "gzip"])
def test_double_gzip_feed_stays_under_300_mb(encoding: str) -> None:
    """A 2 GB feed gzipped twice (a few KB on the wire): the process stays small."""
    script = BOMB_SCRIPT.replace("{ENCODING}", encoding).replace(
        "[TESTS]", repr([str(Path(__file__).parent)])
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    assert "refused:" in result.stdout, result.stdout
    peak = int(result.stdout.split("peak_mb")[1])
    assert peak < 300, result.stdout


@pytest.mark.parametrize(
    ("host", "private"),
    [
        ("64:ff9b::7f00:1", True),  # NAT64 of 127.0.0.1
        ("64:ff9b::a00:1", True),  # NAT64 of 10.0.0.1
        ("64:ff9b::808:808", False),  # NAT64 of 8.8.8.8
        ("64:ff9b:1::1", True),  # local-use NAT64
        ("::7f00:1", True),  # IPv4-compatible 127.0.0.1
        ("::c0a8:101", True),  # IPv4-compatible 192.168.1.1
        ("::8.8.8.8", False),
        ("::ffff:127.0.0.1", True),  # IPv4-mapped
        ("::ffff:169.254.169.254", True),
        ("::ffff:8.8.8.8", False),
        ("2002:7f00:1::1", True),  # 6to4 of 127.0.0.1
        ("2002:a9fe:a9fe::1", True),  # 6to4 of 169.254.169.254
        ("2002:808:808::1", False),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", True),  # Teredo
        ("fec0::1", True),  # site-local
        ("fc00::1", True),
        ("fe80::1%eth0", True),
        ("ff02::1", True),
        ("::", True),
        ("[::1]", True),
        ("100.64.0.1", True),
        ("224.0.0.1", True),
        ("2606:4700::1", False),
        ("example.org", False),  # a name: resolved and judged by its addresses
    ],
)
def test_private_address_rule(host: str, private: bool) -> None:
    from publisher.core.config import is_private_address

    assert is_private_address(host) is private


@pytest.mark.parametrize("host", ["[64:ff9b::7f00:1]", "[::7f00:1]", "[2002:7f00:1::1]"])
def test_ipv6_forms_of_loopback_are_refused(host: str) -> None:
    with Fetcher(FetchConfig()) as f, pytest.raises(MediaError, match="private or local address"):
        f.fetch_media(f"http://{host}/a.jpg")


def test_a_name_resolving_to_nat64_loopback_is_refused() -> None:
    with (
        Fetcher(FetchConfig(), resolve=lambda host, port: ["64:ff9b::7f00:1"]) as f,
        pytest.raises(MediaError, match="resolves to the private or local address"),
    ):
        f.fetch_media("http://sneaky.example/a.jpg")


# --------------------------------------------------------------------------
# a slow DNS server: the look-up counts against the same deadline


@pytest.fixture
def slow_dns() -> Iterator[Callable[[float, list[str]], Callable[[str, int], list[str]]]]:
    """``slow_dns(seconds, addresses)``: a resolver answering ``addresses``
    after ``seconds``; its waits end when the test does."""
    done = threading.Event()
    asked: list[str] = []

    def make(seconds: float, addresses: list[str]) -> Callable[[str, int], list[str]]:
        def resolve(host: str, port: int) -> list[str]:
            asked.append(host)
            done.wait(seconds)
            return addresses

        return resolve

    yield make
    done.set()


def on_localhost(url: str) -> str:
    return url.replace("//127.0.0.1:", "//localhost:")


def test_a_slow_lookup_of_a_media_host_ends_at_the_deadline(
    slow_dns: Callable[[float, list[str]], Callable[[str, int], list[str]]],
) -> None:
    resolve = slow_dns(30, ["93.184.216.34"])
    started = time.monotonic()
    with (
        Fetcher(FetchConfig(timeout=TIMEOUT), resolve=resolve) as f,
        pytest.raises(MediaError, match=r"timed out.*\[fetch\] timeout") as info,
    ):
        f.fetch_media("http://slow-dns.example/a.jpg")
    assert time.monotonic() - started < TIMEOUT.total_seconds() + 1
    assert "\n" not in str(info.value)


def test_a_slow_lookup_of_a_feeds_own_host_ends_at_the_deadline(
    serve: Callable[..., RawServer],
    slow_dns: Callable[[float, list[str]], Callable[[str, int], list[str]]],
) -> None:
    """The feed's own host is trusted (no private-address check), yet its name
    is looked up within the deadline too, not left to httpx's own look-up."""
    server = serve(whole(HEAD, RSS))
    started = time.monotonic()
    with (
        Fetcher(FetchConfig(timeout=TIMEOUT), resolve=slow_dns(30, ["127.0.0.1"])) as f,
        pytest.raises(FetchError, match=r"timed out.*\[fetch\] timeout"),
    ):
        f.fetch_feed(on_localhost(server.url))
    assert time.monotonic() - started < TIMEOUT.total_seconds() + 1


def test_the_lookup_and_the_request_share_one_deadline(
    serve: Callable[..., RawServer],
    slow_dns: Callable[[float, list[str]], Callable[[str, int], list[str]]],
) -> None:
    """0.9 s of the 1 s go to the look-up; the dripping server gets the rest."""
    server = serve(drip(ENDLESS_HEADERS))
    started = time.monotonic()
    with (
        Fetcher(FetchConfig(timeout=TIMEOUT), resolve=slow_dns(0.9, ["127.0.0.1"])) as f,
        pytest.raises(FetchError, match=r"timed out.*\[fetch\] timeout"),
    ):
        f.fetch_feed(on_localhost(server.url))
    assert time.monotonic() - started < TIMEOUT.total_seconds() + 0.5


def test_a_failed_lookup_ahead_leaves_the_feed_to_httpx(serve: Callable[..., RawServer]) -> None:
    """Looking a trusted host up ahead only bounds its time: when it fails
    (a proxy setup without local DNS, say) httpx still connects its own way."""

    def no_dns(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    server = serve(whole(HEAD, RSS))
    with Fetcher(FetchConfig(timeout=TIMEOUT), resolve=no_dns) as f:
        assert f.fetch_feed(on_localhost(server.url)).body == RSS
