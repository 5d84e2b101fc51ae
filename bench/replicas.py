"""Replicas under kills: several ``viber-publisher run`` processes on one
PostgreSQL database, media in an S3-compatible bucket, two channels, killed
with SIGKILL at random and restarted. Is every item posted exactly once (or
marked ``unknown``), none lost, no source polled by two replicas at once, and
each channel's ``max_per_hour`` held overall?

The parts, all on 127.0.0.1:

- a **feed farm** (an HTTP server in this process): ``--feeds`` RSS feeds
  whose entries, ``--items`` in all, appear over the first seconds of the
  run; every third entry has a picture (a JPEG the farm serves), so media go
  through the bucket. Half the feeds post to channel ``a``, half to ``b``.
  The farm answers each poll a little late and records when each began and
  ended, and which replica asked (each replica's ``[fetch] user_agent``
  names it), so two replicas polling one feed at once are seen;
- two **Viber stand-ins**, one per channel, which record every post with
  the time it arrived and fetch its media from the bucket's public address,
  as Viber does. Each answers a post a little late (after recording it), so
  a kill often lands between the channel's recording and the replica's;
- the **replicas**: ``--replicas`` processes, each with a config of its own
  (its own user agent, and a local folder of its own for its pid file, as
  on machines of their own; ``--shared-folder``: one for all, as on one
  host) on the same database and bucket. At random moments a
  random replica is killed with SIGKILL and started again, ``--kills`` times.
  Then the replicas run until nothing moves, stop with SIGTERM, and one
  ``run --once`` ends it.

Each channel's ``max_per_hour`` is lower than its share of the items, so not
everything can be posted: what is not out must still be queued. The figures:
per channel, posted / unknown / queued against the items expected, posts
out twice (other than ``unknown`` ones), losses, the most posts the channel
received in any hour, polls of one feed by two replicas at once; kills, and
how many landed while posts were going out.

    python bench/replicas.py [--replicas 3] [--items 200] [--kills 20]

needs PostgreSQL's server programs (``make postgres``) and moto (``make``
installs it); it starts both and says so in one line when it cannot. It
exits 1 when a duplicate, a loss, an overlapping poll or a broken limit is
found. tests/test_replicas_kill.py runs :func:`run_replica_kills` with small
numbers and asserts on the figures.
"""

from __future__ import annotations

import argparse
import bisect
import importlib.util
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: Two channels; each gets a stand-in and a token of its own.
CHANNELS = ("a", "b")
TOKENS = {
    "a": "aaaa1111aaaa1111-8a9fe0d7c4bbd05c-5c3a4e1b2f7d9e60",
    "b": "bbbb2222bbbb2222-8a9fe0d7c4bbd05c-5c3a4e1b2f7d9e60",
}
#: How an item is named in its post's text: "Story <feed>.<entry>".
STORY = re.compile(r"Story (\d+)\.(\d+)\b")
HOUR = 3600.0


# --------------------------------------------------------------------------
# the feed farm


@dataclass(frozen=True)
class Poll:
    """One request for a feed, as the farm saw it."""

    feed: int
    agent: str
    start: float
    end: float


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A killed replica's connection breaks mid-request: not worth a traceback."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class FeedFarm:
    """RSS feeds on 127.0.0.1, in a thread of this process.

    Feed ``n`` (``/feed/n``) has ``sizes[n]`` entries; they appear one by one
    over ``reveal`` seconds from :meth:`start` (entry 0 at once). Every
    ``picture_every``-th entry has a picture (``/img/<n>-<i>.jpg``, a JPEG of
    its own colour). Each feed request is answered after ``delay`` seconds and
    recorded in :attr:`polls`; conditional requests get 304.
    """

    def __init__(
        self,
        sizes: list[int],
        reveal: float = 5.0,
        delay: float = 0.05,
        picture_every: int = 3,
    ) -> None:
        self.sizes = sizes
        self.reveal = reveal
        self.delay = delay
        self.picture_every = picture_every
        self.polls: list[Poll] = []
        #: When the first feed was asked for: the entries appear from then on.
        self.started: float | None = None
        self._lock = threading.Lock()
        self._jpegs: dict[str, bytes] = {}
        farm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                farm._get(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FeedFarm:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    def shown(self, feed: int, now: float | None = None) -> int:
        """How many of the feed's entries are out at ``now`` (monotonic)."""
        size = self.sizes[feed]
        now = time.monotonic() if now is None else now
        if self.started is None:
            return 1
        elapsed = now - self.started
        if self.reveal <= 0 or elapsed >= self.reveal:
            return size
        return min(size, 1 + int(size * elapsed / self.reveal))

    def has_picture(self, feed: int, entry: int) -> bool:
        return self.picture_every > 0 and entry % self.picture_every == 0

    def document(self, feed: int, shown: int) -> bytes:
        base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
        entries = []
        for i in reversed(range(shown)):
            picture = (
                f'<p><img src="{self.url}/img/{feed}-{i}.jpg" alt="picture {feed}.{i}"/></p>'
                if self.has_picture(feed, i)
                else ""
            )
            body = f"<p>Story {feed}.{i}: a few words about it.</p>{picture}"
            entries.append(
                f"<item><title>Story {feed}.{i}</title>"
                f"<link>https://example.org/{feed}/{i}</link>"
                f'<guid isPermaLink="false">urn:bench:{feed}:{i}</guid>'
                f"<pubDate>{format_datetime(base + timedelta(seconds=i))}</pubDate>"
                f"<description><![CDATA[{body}]]></description></item>"
            )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Feed {feed}</title><link>https://example.org/{feed}/</link>"
            + "".join(entries)
            + "</channel></rss>"
        ).encode()

    def jpeg(self, name: str) -> bytes:
        with self._lock:
            if name not in self._jpegs:
                from PIL import Image

                digest = sum(ord(c) * 31**k for k, c in enumerate(name))
                colour = (digest % 251, digest // 251 % 241, digest // 60_000 % 239)
                out = io.BytesIO()
                Image.new("RGB", (96, 64), colour).save(out, "JPEG", quality=85)
                self._jpegs[name] = out.getvalue()
            return self._jpegs[name]

    def _get(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path
        if path.startswith("/img/") and path.endswith(".jpg"):
            self._send(handler, 200, self.jpeg(path[5:-4]), "image/jpeg")
            return
        try:
            feed = int(path.rsplit("/", 1)[-1]) if path.startswith("/feed/") else -1
        except ValueError:
            feed = -1
        if not 0 <= feed < len(self.sizes):
            self._send(handler, 404, b"", "text/plain")
            return
        start = time.monotonic()
        with self._lock:
            self.started = start if self.started is None else self.started
        shown = self.shown(feed, start)
        etag = f'"{feed}-{shown}"'
        time.sleep(self.delay)  # a slow server: two polls at once would overlap
        if handler.headers.get("If-None-Match") == etag:
            self._send(handler, 304, b"", None, etag)
        else:
            self._send(handler, 200, self.document(feed, shown), "application/rss+xml", etag)
        poll = Poll(feed, handler.headers.get("User-Agent", ""), start, time.monotonic())
        with self._lock:
            self.polls.append(poll)

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        content_type: str | None,
        etag: str | None = None,
    ) -> None:
        handler.send_response(status)
        if content_type:
            handler.send_header("Content-Type", content_type)
        if etag:
            handler.send_header("ETag", etag)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if body:
            handler.wfile.write(body)


# --------------------------------------------------------------------------
# the figures


@dataclass(frozen=True)
class S3Place:
    """Where media go: ``[storage] media_url``, ``public_media_url``,
    ``s3_endpoint``, and the AWS_* variables the replicas need."""

    media_url: str
    public_media_url: str
    endpoint: str
    env: dict[str, str]


@dataclass
class ChannelFigures:
    name: str
    max_per_hour: int
    expected: int = 0
    posted: int = 0
    unknown: int = 0
    queued: int = 0
    #: Items the channel received, and of those with a picture.
    received: int = 0
    pictures: int = 0
    #: The most items the channel received within any hour.
    max_in_hour: int = 0
    #: Unknown posts that did reach the channel.
    unknown_out: int = 0

    @property
    def accounted(self) -> int:
        return self.posted + self.unknown + self.queued


@dataclass
class ReplicaFigures:
    replicas: int
    items: int = 0
    channels: dict[str, ChannelFigures] = field(default_factory=dict)
    #: Posts out more than once (other than unknown ones), or out though queued.
    duplicates: list[str] = field(default_factory=list)
    #: Items never queued, or left sending, failed or skipped.
    losses: list[str] = field(default_factory=list)
    #: Rows posted per the outbox that the channel never received.
    phantoms: list[str] = field(default_factory=list)
    #: Two replicas polling one feed at once: "feed N: agent x [s, e] and agent y [s, e]".
    overlaps: list[str] = field(default_factory=list)
    #: Channels that received more than their max_per_hour within an hour.
    over_limit: list[str] = field(default_factory=list)
    polls: int = 0
    kills: int = 0
    #: Kills while the channels were receiving posts (one within the last second).
    kills_while_posting: int = 0
    #: Kills of a replica while it polled a source.
    kills_while_polling: int = 0
    #: Unknown rows whose reason says a replica died while sending.
    interrupted: int = 0
    #: Replicas that exited on their own (not killed), or not with 0 when
    #: stopped (-999: still running 15 s after SIGTERM), and how.
    exits: dict[str, int] = field(default_factory=dict)
    final_exit: int | None = None
    seconds: float = 0.0
    #: Where the time went: seconds per phase.
    phases: dict[str, float] = field(default_factory=dict)
    #: Whether every item was queued and each channel posted all it may.
    settled: bool = False
    #: Lines worth showing when something is wrong: the replicas' logs' ends.
    notes: list[str] = field(default_factory=list)

    def phase(self, name: str, since: float) -> float:
        """Record the phase that began at ``since``; now (monotonic)."""
        now = time.monotonic()
        self.phases[name] = now - since
        return now

    @property
    def ok(self) -> bool:
        return not (
            self.duplicates
            or self.losses
            or self.phantoms
            or self.overlaps
            or self.over_limit
            or self.exits
            or not self.settled
            or self.final_exit not in (None, 0)
        )

    def lines(self) -> list[str]:
        lines = [
            f"replicas: {self.replicas} replicas, {self.items} items, {self.kills} kills "
            f"({self.kills_while_posting} while posting, {self.kills_while_polling} while "
            f"polling), {self.polls} polls, {self.seconds:.1f} s",
        ]
        for c in self.channels.values():
            lines.append(
                f"  channel {c.name}: {c.expected} expected = posted {c.posted} + unknown "
                f"{c.unknown} ({c.unknown_out} out) + queued {c.queued}"
                + ("" if c.accounted == c.expected else f" (missing {c.expected - c.accounted})")
                + f"; received {c.received} ({c.pictures} pictures); most in an hour "
                f"{c.max_in_hour} of max_per_hour {c.max_per_hour}"
            )
        lines.append(
            f"  duplicates {len(self.duplicates)}, losses {len(self.losses)}, posted but not "
            f"out {len(self.phantoms)}, overlapping polls {len(self.overlaps)}, limits broken "
            f"{len(self.over_limit)}; unknown after a kill mid-post {self.interrupted}"
        )
        if self.final_exit not in (None, 0):
            lines.append(f"  the final run --once exited {self.final_exit}")
        if not self.settled:
            lines.append("  NOT SETTLED: items not queued, or posts a channel could still make")
        if self.exits:
            shown = ", ".join(f"{agent} ({code})" for agent, code in self.exits.items())
            lines.append(f"  replicas that exited by themselves: {shown}")
        if self.phases:
            shown = ", ".join(f"{name} {s:.1f} s" for name, s in self.phases.items())
            lines.append(f"  time: {shown}")
        for name in ("duplicates", "losses", "phantoms", "overlaps", "over_limit"):
            found = getattr(self, name)
            if found:
                lines.append(f"  {name}: {'; '.join(found[:10])}")
        return lines


def max_in_window(times: list[float], window: float = HOUR) -> int:
    """The most of ``times`` within any ``window`` seconds."""
    ordered = sorted(times)
    best = 0
    for i, t in enumerate(ordered):
        best = max(best, bisect.bisect_right(ordered, t + window) - i)
    return best


def overlapping_polls(polls: list[Poll], killed_at: dict[str, float]) -> list[str]:
    """Polls of one feed by two replicas at once. A poll still being answered
    after its replica was killed does not count: its replica polls no more."""
    found = []
    by_feed: dict[int, list[Poll]] = defaultdict(list)
    for poll in polls:
        by_feed[poll.feed].append(poll)
    for feed, group in sorted(by_feed.items()):
        group.sort(key=lambda p: p.start)
        for i, first in enumerate(group):
            for second in group[i + 1 :]:
                if second.start >= first.end:
                    break
                if second.agent == first.agent:
                    continue
                if killed_at.get(first.agent, float("inf")) <= second.start:
                    continue
                found.append(
                    f"feed {feed}: {first.agent} [{first.start:.3f}, {first.end:.3f}] and "
                    f"{second.agent} [{second.start:.3f}, {second.end:.3f}]"
                )
    return found


# --------------------------------------------------------------------------
# the replicas


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Setup:
    """What every replica's config holds."""

    workdir: Path
    database_url: str
    s3: S3Place
    api_urls: dict[str, str]
    farm_url: str
    routes: list[str]  # the channel of each feed
    max_per_hour: dict[str, int]

    def config(self, agent: str, folder: str) -> Path:
        """A replica's config file: the same state, its own user agent; its
        local files (the pid file) in ``folder``."""
        sources = "".join(
            f'[[sources]]\nname = "feed-{n}"\ntype = "rss"\nurl = "{self.farm_url}/feed/{n}"\n'
            f'every = "1s"\nbackfill = 10000\nchannels = ["{channel}"]\n\n'
            for n, channel in enumerate(self.routes)
        )
        channels = "".join(
            f'[[channels]]\nname = "{name}"\napi_url = "{self.api_urls[name]}"\n'
            f'token_env = "BENCH_TOKEN_{name.upper()}"\ntimeout = "10s"\n'
            f"[channels.delivery]\nmax_per_hour = {self.max_per_hour[name]}\n"
            'min_interval = "0s"\nretry_backoff = "1s"\nrate_limit_cooldown = "2s"\n'
            "max_attempts = 20\n\n"
            for name in CHANNELS
        )
        path = self.workdir / f"{agent}.toml"
        path.write_text(
            f"""
[server]
listen = "127.0.0.1:0"

[storage]
url = "{self.database_url}"
path = "{folder}/state.sqlite3"
media_dir = "{folder}/media"
media_url = "{self.s3.media_url}"
public_media_url = "{self.s3.public_media_url}"
s3_endpoint = "{self.s3.endpoint}"

[fetch]
allow_private = true
timeout = "5s"
user_agent = "{agent}"

{channels}
{sources}""",
            encoding="utf-8",
        )
        return path


def _command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "publisher", "--config", str(config), *args]


class Replica:
    """One replica slot: a process, restarted under a new name after each kill."""

    def __init__(
        self,
        number: int,
        setup: Setup,
        env: dict[str, str],
        logs: Path,
        shared_folder: bool = False,
    ) -> None:
        self.number = number
        self.shared_folder = shared_folder
        self.setup = setup
        self.env = env
        self.logs = logs
        self.generation = 0
        self.agent = ""
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.generation += 1
        self.agent = f"replica-{self.number}.{self.generation}"
        # Each slot its own folder, as on machines of their own; or one for all.
        folder = "local" if self.shared_folder else f"local-{self.number}"
        config = self.setup.config(self.agent, folder)
        with open(self.logs / f"{self.agent}.log", "wb") as log:
            self.process = subprocess.Popen(
                _command(config, "--log-level", os.environ.get("BENCH_LOG_LEVEL", "info"), "run"),
                cwd=self.setup.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> float:
        """SIGKILL; the moment it was sent (monotonic)."""
        assert self.process is not None
        at = time.monotonic()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        return at

    def stop(self, timeout: float = 15.0, *, signalled: bool = False) -> int | None:
        """SIGTERM (unless ``signalled``) and wait: the exit code, or None when
        it had to be killed (after SIGABRT: its threads' stacks are in its log)."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        if not signalled:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER: the stacks
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            return None

    @property
    def pid(self) -> int:
        return -1 if self.process is None else self.process.pid

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def running(self) -> bool:
        """Started and not (yet) dead: its log says it runs."""
        if self.process is None or self.process.poll() is not None:
            return False
        try:
            with open(self.logs / f"{self.agent}.log", "rb") as log:
                return b"publisher.service.runner: running:" in log.read()
        except OSError:
            return False

    def log_tail(self, lines: int = 8) -> list[str]:
        path = self.logs / f"{self.agent}.log"
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        return [f"{self.agent}: {line}" for line in text.splitlines()[-lines:]]


class _Watch:
    """A look at the shared state while the replicas run: the outbox's
    counts, and which replica holds which channel (as ``status`` shows)."""

    def __init__(self, url: str, password: str) -> None:
        import psycopg
        from psycopg.rows import dict_row

        self._conn = psycopg.connect(url, password=password, autocommit=True, row_factory=dict_row)

    def __enter__(self) -> _Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.close()

    def counts(self) -> dict[tuple[str, str], int]:
        """Outbox rows by (channel, status); empty before the tables exist."""
        import psycopg

        try:
            found = self._conn.execute(
                "SELECT channel, status, count(*) AS n FROM outbox GROUP BY channel, status"
            ).fetchall()
        except psycopg.Error:
            return {}
        return {(row["channel"], row["status"]): row["n"] for row in found}

    def replicas(self) -> dict[int, tuple[tuple[str, ...], int]]:
        """By replica process id: the channels it posts to and how many
        sources it polls right now (what ``status`` shows)."""
        import psycopg

        try:
            from publisher.adapters.postgres.replicas import live_replicas
        except ImportError:  # no replicas (a single service per database)
            return {}
        try:
            found = live_replicas(self._conn, CHANNELS)
        except psycopg.Error:
            return {}
        return {int(r.name.rsplit(":", 1)[1]): (r.channels, r.polling) for r in found}


def _target(
    rng: random.Random,
    watch: _Watch,
    slots: list[Replica],
    standins: dict[str, Any],
    post_delay: float,
    poster: bool = False,
) -> Replica:
    """Which replica to kill, and when (this returns at that moment): half the
    time one that posts, just after a post of its went out (so often before
    its answer came back); a quarter of the time one that polls a source; else
    any, whatever it does (starting, say). ``poster``: one that posts."""
    mode = 0.0 if poster else rng.random()
    if mode < 0.5:
        held = watch.replicas()
        holders = [(slot, c) for slot in slots for c in held.get(slot.pid, ((), 0))[0]]
        if holders:
            slot, channel = rng.choice(holders)
            count = len(standins[channel].posts)
            until = time.monotonic() + 2.0
            while len(standins[channel].posts) == count and time.monotonic() < until:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, post_delay * 1.5))
            return slot
    elif mode < 0.75:
        until = time.monotonic() + 2.0
        while time.monotonic() < until:
            held = watch.replicas()
            polling = [slot for slot in slots if held.get(slot.pid, ((), 0))[1]]
            if polling:
                return rng.choice(polling)
            time.sleep(0.005)
    return rng.choice(slots)


def _settled(
    counts: dict[tuple[str, str], int], expected: dict[str, int], limits: dict[str, int]
) -> bool:
    """Every item queued, nothing in flight, and each channel done or at its limit."""
    for channel, want in expected.items():
        of = {status: n for (c, status), n in counts.items() if c == channel}
        if sum(of.values()) < want or of.get("sending", 0):
            return False
        if of.get("queued", 0) and of.get("posted", 0) + of.get("unknown", 0) < limits[channel]:
            return False
    return True


def run_replica_kills(
    workdir: Path,
    database_url: str,
    database_password: str,
    s3: S3Place,
    *,
    replicas: int = 3,
    items: int = 200,
    kills: int = 6,
    feeds: int = 8,
    max_per_hour: dict[str, int] | None = None,
    picture_every: int = 3,
    seed: int | None = None,
    reveal: float = 4.0,
    gap: tuple[float, float] = (0.3, 1.5),
    post_delay: float = 0.03,
    quiet: float = 10.0,
    finish_timeout: float = 60.0,
    final_once: bool = True,
    shared_folder: bool = False,
    on_output: Callable[[str], None] | None = None,
) -> ReplicaFigures:
    """Start ``replicas`` replicas on the database at ``database_url`` (its
    password ``database_password``) with media at ``s3``; kill a random one
    at random moments (gaps drawn from ``gap`` seconds) ``kills`` times,
    restarting it; let them run until every item is queued and each channel
    has posted all it may (or nothing moved for ``quiet`` seconds); stop
    them, ``run --once``, and compare the outbox with what the channels
    received (``final_once=False``: without the ``run --once``, which
    should find nothing to do). Each replica has a local folder of its own
    (``[storage] path``: its pid file), as on machines of their own, unless
    ``shared_folder``: all start in one, as several on one host would.
    ``max_per_hour`` per channel: by default about two thirds of its share
    of the items, so the limit binds. Every ``picture_every``-th entry of a
    feed has a picture."""
    from publisher.adapters.standin import ViberStandIn

    rng = random.Random(seed)
    started = time.monotonic()
    figures = ReplicaFigures(replicas)
    sizes = [items // feeds + (1 if n < items % feeds else 0) for n in range(feeds)]
    routes = [CHANNELS[n % len(CHANNELS)] for n in range(feeds)]
    share = {c: sum(s for s, r in zip(sizes, routes, strict=True) if r == c) for c in CHANNELS}
    limits = max_per_hour or {c: max(1, share[c] * 2 // 3) for c in CHANNELS}
    figures.items = sum(sizes)
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(s3.env)
    env.update(PGPASSWORD=database_password, PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
    env.update({f"BENCH_TOKEN_{c.upper()}": TOKENS[c] for c in CHANNELS})
    killed_at: dict[str, float] = {}
    standins = {c: ViberStandIn(TOKENS[c], channel_name=f"Channel {c}") for c in CHANNELS}
    with ExitStack() as stack:
        for standin in standins.values():
            stack.enter_context(standin.serve())
            standin.preset_webhook("http://127.0.0.1:9/webhook")
            # Recorded at once, answered a little later: kills land in between.
            standin.fail_next("slow", items * 4, delay=post_delay)
        farm = stack.enter_context(FeedFarm(sizes, reveal=reveal, picture_every=picture_every))
        setup = Setup(
            workdir,
            database_url,
            s3,
            {c: s.api_url for c, s in standins.items()},
            farm.url,
            routes,
            limits,
        )
        slots = [Replica(n + 1, setup, env, logs, shared_folder) for n in range(replicas)]
        stack.callback(lambda: [slot.stop(timeout=5) for slot in slots])
        for slot in slots:
            slot.start()

        watch = stack.enter_context(_Watch(database_url, database_password))
        expected = {c: share[c] for c in CHANNELS}

        def last_post(channel: str) -> float:
            """Seconds since ``channel`` last received a post."""
            posts = standins[channel].posts
            return time.time() - posts[-1].time if posts else float("inf")

        def check_exits() -> None:
            for slot in slots:
                code = slot.exited()
                if code is not None and slot.agent not in figures.exits:
                    figures.exits[slot.agent] = code
                    figures.notes.extend(slot.log_tail())

        # Replicas take seconds to start: the kills begin with the posts.
        phase = time.monotonic()
        until = phase + finish_timeout
        while not any(s.posts for s in standins.values()) and time.monotonic() < until:
            time.sleep(0.05)
        phase = figures.phase("first post", phase)
        for n in range(kills):
            time.sleep(rng.uniform(*gap))
            # the first kill always hits a replica that posts
            slot = _target(rng, watch, slots, standins, post_delay, poster=n == 0)
            check_exits()
            doing = watch.replicas().get(slot.pid, ((), 0))
            killed_at[slot.agent] = slot.kill()
            figures.kills += 1
            figures.kills_while_posting += any(last_post(c) < 0.5 for c in doing[0])
            figures.kills_while_polling += doing[1] > 0
            time.sleep(rng.uniform(0, 0.5))
            slot.start()
        phase = figures.phase("kills", phase)

        # Let the survivors finish: until every item is queued and each
        # channel has posted all it may (or, all replicas up, nothing moved
        # for `quiet` seconds).
        deadline = time.monotonic() + finish_timeout
        last: Any = None
        still_since = time.monotonic()
        settled = False
        while time.monotonic() < deadline:
            counts = watch.counts()
            if counts != last or not all(slot.running() for slot in slots):
                last, still_since = counts, time.monotonic()
            settled = _settled(counts, expected, limits)
            if settled or time.monotonic() - still_since >= quiet:
                break
            time.sleep(0.2)
        check_exits()
        figures.settled = settled
        if not settled:
            shown = ", ".join(f"{c}/{status} {n}" for (c, status), n in sorted(counts.items()))
            figures.notes.append(f"not settled after {time.monotonic() - phase:.1f} s: {shown}")
            for slot in slots:  # where each one is: its threads' stacks, in its log
                if slot.process is not None and slot.process.poll() is None:
                    slot.process.send_signal(signal.SIGABRT)
                    slot.process.wait()
                    figures.notes.extend(slot.log_tail(60))
        phase = figures.phase("settling", phase)
        _stop_all(slots, figures)
        if final_once:
            final = subprocess.run(
                _command(setup.config("final", "local"), "--log-level", "info", "run", "--once"),
                cwd=workdir,
                env=env,
                capture_output=True,
                timeout=120,
            )
            figures.final_exit = final.returncode
            if on_output is not None:
                on_output(
                    final.stdout.decode(errors="replace") + final.stderr.decode(errors="replace")
                )
        posts = {c: s.posts for c, s in standins.items()}
        polls = list(farm.polls)
        figures.phase("stop" + (" and run --once" if final_once else ""), phase)
    figures.polls = len(polls)
    with open(workdir / "polls.tsv", "w", encoding="utf-8") as out:  # for a look afterwards
        out.write("feed\tagent\tstart\tend\n")
        for poll in sorted(polls, key=lambda p: p.start):
            out.write(f"{poll.feed}\t{poll.agent}\t{poll.start:.3f}\t{poll.end:.3f}\n")
        out.writelines(f"killed\t{agent}\t{at:.3f}\t\n" for agent, at in killed_at.items())
    figures.overlaps = overlapping_polls(polls, killed_at)
    _tally(figures, database_url, database_password, posts, sizes, routes, limits, farm)
    figures.seconds = time.monotonic() - started
    return figures


def _stop_all(slots: list[Replica], figures: ReplicaFigures, timeout: float = 15.0) -> None:
    """SIGTERM to every replica at once, then wait for each (SIGKILL when
    late); one that does not exit 0 is noted in ``figures.exits``."""
    for slot in slots:
        if slot.process is not None and slot.process.poll() is None:
            slot.process.send_signal(signal.SIGTERM)
    for slot in slots:
        code = slot.stop(timeout=timeout, signalled=True)
        # -SIGTERM: it was still starting (no handler yet): as good as a kill
        if code not in (0, -signal.SIGTERM) and slot.agent not in figures.exits:
            figures.exits[slot.agent] = -999 if code is None else code
            figures.notes.extend(slot.log_tail(40))


def _tally(
    figures: ReplicaFigures,
    database_url: str,
    password: str,
    posts: dict[str, list[Any]],
    sizes: list[int],
    routes: list[str],
    limits: dict[str, int],
    farm: FeedFarm,
) -> None:
    """Compare the outbox with what each channel received."""
    from publisher.adapters.postgres import PostgresStore

    with PostgresStore.open(database_url, password=password, read_only=True) as store:
        rows = store.outbox(limit=10_000_000)
    by_key: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for row in rows:
        match = STORY.search(json.dumps(row.payload))
        if match:
            by_key[(row.channel, f"{match[1]}.{match[2]}")].append(row)
    for channel in CHANNELS:
        out: Counter[str] = Counter()
        times: list[float] = []
        c = ChannelFigures(channel, limits[channel])
        for post in posts[channel]:
            match = STORY.search(json.dumps(post.payload))
            story = f"{match[1]}.{match[2]}" if match else "?"
            out[story] += 1
            times.append(post.time)
            c.received += 1
            c.pictures += post.payload.get("type") == "picture"
        c.max_in_hour = max_in_window(times)
        if c.max_in_hour > c.max_per_hour:
            figures.over_limit.append(
                f"channel {channel}: {c.max_in_hour} posts within an hour, max_per_hour "
                f"{c.max_per_hour}"
            )
        for feed, size in enumerate(sizes):
            if routes[feed] != channel:
                continue
            for entry in range(size):
                story = f"{feed}.{entry}"
                c.expected += 1
                _judge(figures, c, story, by_key.get((channel, story), []), out[story])
        figures.channels[channel] = c
    figures.interrupted = sum(
        1 for row in rows if row.status == "unknown" and "interrupted" in (row.reason or "")
    )


def _judge(
    figures: ReplicaFigures, c: ChannelFigures, story: str, rows: list[Any], count: int
) -> None:
    """One item on one channel: its rows (one per message) against the times
    it was received."""
    where = f"{c.name}/story {story}"
    if not rows:
        figures.losses.append(f"{where} never queued")
        return
    statuses = sorted({row.status for row in rows})
    if len(rows) != 1:
        # one message per item is what the farm's entries render to
        figures.notes.append(f"{where}: {len(rows)} messages ({', '.join(statuses)})")
    status = rows[0].status
    if status == "posted":
        c.posted += 1
        if count == 0:
            figures.phantoms.append(where)
        elif count > 1:
            figures.duplicates.append(f"{where} x{count}")
    elif status == "unknown":
        c.unknown += 1
        c.unknown_out += count > 0
        if count > 1:
            figures.duplicates.append(f"{where} x{count} (unknown)")
    elif status == "queued":
        c.queued += 1
        if count:
            figures.duplicates.append(f"{where} out {count}x yet queued")
    else:
        figures.losses.append(f"{where} {status}: {rows[0].reason}")


# --------------------------------------------------------------------------
# servers for main(): PostgreSQL (tests/postgres.py) and moto


def _load_test_helpers(name: str) -> Any:
    """A module of tests/ (its servers: postgres.py, s3server.py)."""
    path = HERE.parent / "tests" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def missing() -> str | None:
    """Why this bench cannot run here, or None."""
    for module in ("psycopg", "boto3", "moto"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[dev,postgres,s3]'; make does)"
    pg = _load_test_helpers("postgres")
    if pg._bindir() is None:
        return "no PostgreSQL server programs (initdb): run `make postgres`"
    return None


@contextmanager
def postgres_database() -> Iterator[tuple[str, str]]:
    """A throwaway PostgreSQL cluster and a database in it: (url, password)."""
    pg = _load_test_helpers("postgres")
    base = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    base.chmod(0o755)
    try:
        server, data = pg.start_server(base)
        try:
            server.admin('CREATE DATABASE "bench"')
            yield server.url("bench"), pg.PASSWORD
        finally:
            pg.stop_server(server, data)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def s3_bucket() -> Iterator[S3Place]:
    """moto's server (tests/s3server.py) and a bucket whose media anyone may read."""
    s3 = _load_test_helpers("s3server")
    with s3.moto_server() as server:
        bucket = s3.public_bucket(server, "bench")
        env = {k: v for k, v in server.env().items() if k != "AWS_ENDPOINT_URL"}
        yield S3Place(bucket.media_url, bucket.public_media_url, server.endpoint, env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=3, help="replicas (default 3)")
    parser.add_argument("--items", type=int, default=200, help="items in all (default 200)")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs (default 20)")
    parser.add_argument("--feeds", type=int, default=8, help="feeds (default 8)")
    parser.add_argument(
        "--reveal", type=float, default=None, help="seconds over which the items appear"
    )
    parser.add_argument("--seed", type=int, default=None, help="for a repeatable run")
    parser.add_argument(
        "--shared-folder",
        action="store_true",
        help="all replicas with one local folder (one [storage] path), as on one host",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)
    why = missing()
    if why:
        print(f"replicas: skipped: {why}", flush=True)
        return 0
    seed = random.randrange(1_000_000) if args.seed is None else args.seed
    reveal = args.reveal if args.reveal is not None else max(4.0, args.kills * 0.6)
    workdir = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    try:
        with postgres_database() as (url, password), s3_bucket() as s3:
            figures = run_replica_kills(
                workdir,
                url,
                password,
                s3,
                replicas=args.replicas,
                items=args.items,
                kills=args.kills,
                feeds=args.feeds,
                seed=seed,
                reveal=reveal,
                shared_folder=args.shared_folder,
            )
    finally:
        if args.keep:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"seed {seed}")
    print("\n".join(figures.lines()), flush=True)
    if not figures.ok:
        print("\n".join(figures.notes[-40:]))
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())
