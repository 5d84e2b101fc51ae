"""Plain helpers shared by the tests (fixtures live in conftest.py).

Imported as ``helpers``: tests/ is not a package, and pytest's default
"prepend" import mode puts the test modules' folder (tests/) on sys.path.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from publisher.adapters.standin import ViberStandIn

#: The token the ``standin`` fixture accepts (made up; shaped like Viber's).
STANDIN_TOKEN = "4453b6ac1b35ba45-8a9fe0d7c4bbd05c-5c3a4e1b2f7d9e60"

#: How long a wait for a running service polls before it gives up.
DEADLINE = 20.0

BENCH = Path(__file__).resolve().parent.parent / "bench" / "faults.py"


# --------------------------------------------------------------------------
# time

#: Where a :class:`FakeClock` starts unless told.
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    """The one fake clock of the tests: what the code under test calls for
    "now" (``clock: Callable[[], datetime]``, timezone-aware UTC), moved only
    by the test (``advance``, or set ``now``)."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta = timedelta(), **parts: float) -> datetime:
        """Move on by ``delta`` and/or ``seconds=``, ``minutes=``…; the new now."""
        self.now += delta + timedelta(**parts)
        return self.now


# --------------------------------------------------------------------------
# ports, waits


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the moment of asking)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    check: Callable[[], Any], what: str, log: Path | None = None, timeout: float = DEADLINE
) -> Any:
    """Poll ``check`` until it returns something true, and return that; fail
    after ``timeout`` seconds, with the text of ``log`` when given."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            message = f"timed out waiting for {what}"
            if log is not None:
                message += "\n" + log.read_text(errors="replace")
            raise AssertionError(message)
        time.sleep(0.05)


# --------------------------------------------------------------------------
# files a folder source finds


def rss(count: int) -> bytes:
    """An RSS document of ``count`` items: "Post N", its link, guid and a body."""
    entries = "".join(
        f"<item><title>Post {n}</title><link>https://example.org/{n}</link>"
        f"<guid>post-{n}</guid><description>&lt;p&gt;Body {n}&lt;/p&gt;</description></item>"
        for n in range(count)
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title>'
        f"<link>https://example.org/</link>{entries}</channel></rss>"
    ).encode()


@contextmanager
def feed_server(body: bytes, etag: str | None = None) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 answering every path with ``body``
    (RSS); with ``etag``, a request that sends it back gets 304. Yields
    ``<server>/feed``."""
    from publisher.adapters.httpserver import HTTPServer

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = [("ETag", etag)] if etag is not None else []
        if etag is not None and environ.get("HTTP_IF_NONE_MATCH") == etag:
            start_response("304 Not Modified", headers)
            return [b""]
        start_response("200 OK", [("Content-Type", "application/rss+xml"), *headers])
        return [body]

    with HTTPServer(app, host="127.0.0.1", port=0) as server:
        yield server.url + "/feed"


def put(folder: Path, name: str, data: bytes | str) -> Path:
    """Write a file with an mtime an hour ago, so it counts as stable at once."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    past = time.time() - 3600
    os.utime(path, (past, past))
    return path


def notes(folder: Path, *texts: str) -> None:
    """Settled notes ``001-note.txt``, ``002-note.txt``… one line of text each."""
    for i, text in enumerate(texts, 1):
        put(folder, f"{i:03d}-note.txt", text + "\n")


def names(folder: Path) -> list[str]:
    """The sorted names in ``folder``; none when it does not exist."""
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# --------------------------------------------------------------------------
# sources.toml


def config_text(
    api_url: str,
    *,
    listen: str = "127.0.0.1:0",
    public_url: str | None = None,
    state: str = "state.sqlite3",
    media_dir: str = "media",
    viber: str = "",
    delivery: str = "",
    rest: str = "",
) -> str:
    """A sources.toml with ``[viber]``, ``[server]``, ``[storage]`` and
    ``[delivery]`` (``min_interval = "0s"``); ``viber`` and ``delivery`` are
    more lines of those tables, ``rest`` more tables (``[[sources]]``…)."""
    public = f'public_url = "{public_url}"\n' if public_url is not None else ""
    return f"""
[viber]
api_url = "{api_url}"
{viber}
[server]
listen = "{listen}"
{public}
[storage]
path = "{state}"
media_dir = "{media_dir}"

[delivery]
min_interval = "0s"
{delivery}
{rest}
"""


def write_config(folder: Path, api_url: str, **options: Any) -> Path:
    """``folder/sources.toml`` from :func:`config_text`; its path."""
    path = folder / "sources.toml"
    path.write_text(config_text(api_url, **options), encoding="utf-8")
    return path


# --------------------------------------------------------------------------
# the CLI: in-process and as a subprocess


def run_once(config: Path) -> None:
    """``viber-publisher run --once`` (in-process) with the stand-in's token."""
    from click.testing import CliRunner

    from publisher.cli import cli

    result = CliRunner().invoke(
        cli,
        ["--config", str(config), "run", "--once"],
        env={"VIBER_AUTH_TOKEN": STANDIN_TOKEN},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output


def clean_env() -> dict[str, str]:
    """This process's environment without any ``PUBLISHER_`` setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PUBLISHER_")}


def run_cli(tmp: Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``viber-publisher --config tmp/sources.toml ARGS`` as a subprocess in ``tmp``."""
    return subprocess.run(
        [sys.executable, "-m", "publisher", "--config", str(tmp / "sources.toml"), *args],
        cwd=tmp,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


@contextmanager
def running_service(tmp: Path) -> Iterator[subprocess.Popen[str]]:
    """``viber-publisher run`` on ``tmp/sources.toml`` as a subprocess, its
    output in ``tmp/run.log``; stopped with SIGTERM (then killed) at the end."""
    log = (tmp / "run.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "publisher", "--config", "sources.toml", "run"],
        cwd=tmp,
        env=clean_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


# --------------------------------------------------------------------------
# what reached the stand-in


def posted_texts(standin: ViberStandIn) -> list[str]:
    """The text of each post at the stand-in, in posting order ("" for none)."""
    return [str(post.payload.get("text", "")) for post in standin.posts]


def posted_titles(standin: ViberStandIn) -> list[str]:
    """The first line of each post at the stand-in ("Item N"), in posting order."""
    return [text.splitlines()[0] if text else "" for text in posted_texts(standin)]


# --------------------------------------------------------------------------
# bench/faults.py


def load_bench() -> ModuleType:
    """bench/faults.py as a module (``bench_faults``), run afresh."""
    spec = importlib.util.spec_from_file_location("bench_faults", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@dataclass
class Probed:
    """What ``readiness()`` looks at, for a test without a whole service:
    the config, the store, no deliverers, the clock stopped at ``now``."""

    config: Any
    store: Any
    now: datetime = T0
    deliverers: dict[str, Any] = field(default_factory=dict)
    started_at: datetime | None = None
    stopping: bool = False
    leases: Any = field(default_factory=lambda: _solo())

    def clock(self) -> datetime:
        return self.now


def _solo() -> Any:
    from publisher.adapters.soloreplica import SoloReplica

    return SoloReplica()


#: The feed :class:`CountingFeed` serves.
COUNTED_RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title></channel></rss>'


class CountingFeed(BaseHTTPRequestHandler):
    """A feed (ETag ``"v1"``, 304 when it comes back) that counts the
    connections made to it."""

    protocol_version = "HTTP/1.1"
    connections: ClassVar[list[object]] = []
    #: Hang up after each answer, without saying so (no ``Connection: close``).
    hang_up = False

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
        self.send_header("Content-Length", str(len(COUNTED_RSS)))
        self.end_headers()
        self.wfile.write(COUNTED_RSS)
        self.close_connection = self.hang_up

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def counting_feed_server(tls: tuple[Path, Path] | None = None) -> Iterator[int]:
    """:class:`CountingFeed` on 127.0.0.1 (its counts reset), with TLS from
    ``(certificate, key)`` if given; yields the port."""
    CountingFeed.connections, CountingFeed.hang_up = [], False
    server = ThreadingHTTPServer(("127.0.0.1", 0), CountingFeed)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    # a short poll: shutdown() waits for it (0.5 s by default, in every test)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
