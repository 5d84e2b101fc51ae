"""Polls, start-up and the next-post decision, each against a baseline
measured in the same run.

- **first poll** of ``--feeds`` changed feeds (in process, all sources at
  once as the service polls them) against ``feedparser.parse`` alone on the
  same bodies: CPU seconds of this process, in three rounds of one each (the
  median ratio is the figure);
- **unchanged poll**: ``viber-publisher run --once`` (a fresh process, so its
  start is counted) over the same feeds, all answering 304, against a naive
  ``feedparser.parse(url)`` loop (no conditional request); wall seconds, in
  three rounds of one each (the median ratio is the figure);
- **start-up**: ``viber-publisher --help``, wall seconds (best of 5);
- **the next-post decision** (``queue.look`` + ``queue.decide``) with 100
  and with 10,000 posts queued;
- **scale**: ``--scale-feeds`` feeds at ``every = "10m"``: the first round
  (every feed changed) apart, then the steady state (every feed 304): the
  service's real loop run for ``--scale-seconds`` with the clock sped up
  ``--speed`` times (default 30 simulated minutes): polls, how many were
  late by more than ``every``'s jitter, the worst lateness, CPU (share of
  one core at real speed) and RSS at the start and the end.

The feed farm is a real HTTP server on 127.0.0.1 in a process of its own,
answering conditional requests (ETag / If-None-Match → 304).

    python bench/polls.py [--feeds 1000] [--scale-feeds 10000] [--scale-seconds 180] [--speed 10]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

HERE = Path(__file__).resolve().parent
ITEMS_PER_FEED = 20


# --------------------------------------------------------------------------
# the feed farm


def feed_body(n: int, items: int = ITEMS_PER_FEED) -> bytes:
    """A blog's feed: ``items`` entries with HTML bodies (links, a picture)."""
    entries = []
    for i in range(items):
        html = (
            f"<p>Entry {i} of feed {n}: some words about the day, "
            f'<a href="https://example.org/{n}/{i}/more">more</a> and '
            f'<img src="https://example.org/img/{n}-{i}.jpg" alt="picture"/>.</p>'
            "<p>" + "A longer paragraph of text that a real post would carry. " * 6 + "</p>"
        )
        entries.append(
            f"<item><title>Feed {n} entry {i}</title>"
            f"<link>https://example.org/{n}/{i}</link><guid>https://example.org/{n}/{i}</guid>"
            f"<pubDate>Tue, 05 Mar 2024 {i % 24:02d}:00:00 GMT</pubDate>"
            f"<description><![CDATA[{html}]]></description></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Feed {n}</title><link>https://example.org/{n}/</link>"
        + "".join(entries)
        + "</channel></rss>"
    ).encode()


class _Farm(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: with Nagle's algorithm the body waits
    # for the client's delayed ACK of the headers (~40 ms per 200 answer).
    disable_nagle_algorithm = True
    bodies: ClassVar[dict[str, tuple[bytes, str]]] = {}

    def do_GET(self) -> None:
        try:
            n = int(self.path.rsplit("/", 1)[-1])
        except ValueError:
            n = -1
        if self.path not in self.bodies:
            # /tiny/N: one entry (the scale bench's 10,000 feeds); else 20
            body = feed_body(n, 1 if "/tiny/" in self.path else ITEMS_PER_FEED)
            self.bodies[self.path] = (body, '"' + hashlib.md5(body).hexdigest() + '"')
        body, etag = self.bodies[self.path]
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def serve_farm() -> None:
    """Run by the farm's own process: print the port, serve until killed."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Farm)
    server.daemon_threads = True
    server.request_queue_size = 1024
    print(server.server_address[1], flush=True)
    server.serve_forever()


class Farm:
    def __enter__(self) -> Farm:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--farm"], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{self.process.stdout.readline().strip()}/feed"
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.kill()
        self.process.wait()


# --------------------------------------------------------------------------
# helpers


def config_text(tmp: Path, url: str, feeds: int, every: str = "10m") -> str:
    sources = "".join(
        f'[[sources]]\nname = "f{n}"\ntype = "rss"\nurl = "{url}/{n}"\nevery = "{every}"\n\n'
        for n in range(feeds)
    )
    return textwrap.dedent(
        f"""
        [viber]
        api_url = "local"
        [server]
        listen = "127.0.0.1:0"
        [storage]
        path = "{tmp / "state.sqlite3"}"
        media_dir = "{tmp / "media"}"
        """
    ) + ("\n" + sources)


def cli(tmp: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    exe = shutil.which("viber-publisher", path=str(Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-m", "publisher"]
    env = dict(os.environ, VIBER_AUTH_TOKEN="local")
    # As installed (pip compiles a wheel's modules): the first, untimed run
    # writes the bytecode that the timed ones load, instead of every start
    # compiling the package from source where writing it is turned off.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    started = time.perf_counter()
    done = subprocess.run(
        [*command, *args], cwd=tmp, env=env, capture_output=True, text=True, check=False
    )
    return time.perf_counter() - started, done


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# --------------------------------------------------------------------------
# the benches


def bench_first_poll(farm: Farm, feeds: int, rounds: int = 3) -> None:
    import feedparser
    import httpx

    from publisher.config import parse_config
    from publisher.service.runner import Service

    print(f"first poll of {feeds} changed feeds ({ITEMS_PER_FEED} entries each)", flush=True)
    with httpx.Client() as client:
        bodies = [client.get(f"{farm.url}/{n}").content for n in range(feeds)]

    import tomllib

    # Baseline and poll in turns, each round its own pair: a shared machine's
    # slow minutes fall on both sides of a ratio, and the median is printed.
    ratios: list[float] = []
    for _ in range(rounds):
        started = cpu()
        for body in bodies:
            feedparser.parse(body, resolve_relative_uris=True, sanitize_html=True)
        base = cpu() - started
        with tempfile.TemporaryDirectory() as tmp:
            config = parse_config(tomllib.loads(config_text(Path(tmp), farm.url, feeds)))
            service = Service(config, serve=False)
            try:
                started, wall = cpu(), time.perf_counter()
                outcomes = service.poll_all()
                ours, wall = cpu() - started, time.perf_counter() - wall
            finally:
                service.close()
        bad = [o for o in outcomes if not o.ok]
        print(
            f"  {len(outcomes) - len(bad)} polled ok, {len(bad)} failed; {wall:.2f} s wall;"
            f" CPU {ours:.3f} s vs {base:.3f} s = {ours / base:.2f}x"
        )
        if bad:
            print(f"  first failure: {bad[0].error}")
        ratios.append(ours / base)
    print(
        f"  CPU, whole poll vs feedparser alone: median {statistics.median(ratios):.2f}x"
        f" of {rounds} rounds (target <= 1.15x)",
        flush=True,
    )


def bench_unchanged(farm: Farm, feeds: int, rounds: int = 3) -> None:
    import feedparser

    print(f"unchanged poll of {feeds} feeds (all 304), with process start", flush=True)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "sources.toml").write_text(config_text(tmp, farm.url, feeds), encoding="utf-8")
        seconds, done = cli(tmp, "--config", "sources.toml", "run", "--once")
        if done.returncode != 0:
            print(f"  first run --once failed ({done.returncode}): {done.stderr[-500:]}")
            return
        print(f"  first run --once (all changed): {seconds:.2f} s")
        # in turns, as the first poll: each round a run --once and the loop
        runs: list[float] = []
        ratios: list[float] = []
        for _ in range(rounds):
            seconds, done = cli(tmp, "--config", "sources.toml", "run", "--once")
            started = time.perf_counter()
            for n in range(feeds):
                feedparser.parse(f"{farm.url}/{n}")
            base = time.perf_counter() - started
            print(f"  run --once, all 304: {seconds:.2f} s; naive loop {base:.2f} s")
            runs.append(seconds)
            ratios.append(base / seconds)
    print(f"  run --once, all 304: median {statistics.median(runs):.2f} s wall (target <= 3 s)")
    print(
        f"  naive feedparser.parse(url) loop: median {statistics.median(ratios):.1f}x slower"
        f" of {rounds} rounds (target >= 10x)",
        flush=True,
    )


def bench_startup() -> None:
    print("start-up: viber-publisher --help", flush=True)
    with tempfile.TemporaryDirectory() as name:
        runs = [cli(Path(name), "--help")[0] for _ in range(5)]
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        python = time.perf_counter() - started
    print(f"  best {min(runs):.3f} s, median {statistics.median(runs):.3f} s (target <= 0.3 s)")
    print(f"  python -c pass: {python:.3f} s")


def bench_decision() -> None:
    from publisher.adapters.sqlite import Store
    from publisher.config import parse_config
    from publisher.core.items import Item, RenderedItem, RenderedMessage
    from publisher.pipeline.queue import decide, look

    print("the next-post decision (look + decide)", flush=True)
    now = datetime(2024, 3, 6, 12, 0, tzinfo=UTC)
    config = parse_config(
        {
            "viber": {"api_url": "local"},
            "delivery": {"max_per_hour": 30, "min_interval": "1m"},
            "sources": [
                {"name": f"s{n}", "type": "folder", "path": f"/nonexistent/{n}"} for n in range(5)
            ],
        }
    )
    figures = {}
    with tempfile.TemporaryDirectory() as name:
        for queued in (100, 10_000):
            with Store.open(Path(name) / f"{queued}.sqlite3") as store:
                with store.batch():
                    for i in range(queued):
                        item = Item(
                            source=f"s{i % 5}",
                            key=f"k{i}",
                            title=f"post {i}",
                            content_hash=str(i),
                            published=now - timedelta(minutes=queued - i),
                        )
                        message = RenderedMessage({"type": "text", "text": f"post {i}"})
                        store.queue_item(RenderedItem(item, (message,)), now - timedelta(hours=1))
                    channel = config.channels[0].name
                    if channel != "main":
                        store.adopt(channel)
                runs = []
                for _ in range(30):
                    started = time.perf_counter()
                    decide(look(store, config, now), config)
                    runs.append(time.perf_counter() - started)
                figures[queued] = statistics.median(runs)
                print(f"  {queued:>6} queued: {figures[queued] * 1000:.2f} ms (median of 30)")
    print(f"  10,000 vs 100 queued: {figures[10_000] / figures[100]:.2f}x (target <= 2x)")


class _SpedClock:
    """The service's clock: real speed, then ``speed`` times faster from
    :meth:`speed_up` on (the first round runs at real speed)."""

    def __init__(self) -> None:
        self._at = (datetime.now(UTC), time.monotonic(), 1.0)

    def __call__(self) -> datetime:
        start, real, speed = self._at
        return start + timedelta(seconds=(time.monotonic() - real) * speed)

    def speed_up(self, speed: float) -> None:
        self._at = (self(), time.monotonic(), speed)


def bench_scale(farm: Farm, feeds: int, seconds: float, speed: float) -> None:
    """The first round (every feed changed) apart, then the steady state:
    the service's loop for ``seconds`` real with the clock ``speed`` times
    faster, every feed answering 304."""
    from publisher.config import parse_config
    from publisher.service.runner import JITTER, Service

    every = 600.0
    allowed = every * JITTER
    print(
        f"scale: {feeds} feeds at every=10m: the first round apart, then {seconds:.0f} s real"
        f" = {seconds * speed / 60:.0f} min simulated (clock x{speed:g}), all 304",
        flush=True,
    )
    import tomllib

    clock = _SpedClock()
    with tempfile.TemporaryDirectory() as name:
        tiny = farm.url.replace("/feed", "/tiny")
        config = parse_config(tomllib.loads(config_text(Path(name), tiny, feeds)))
        rss0 = rss_mb()
        service = Service(config, clock=clock, serve=False)
        try:
            cpu0, wall0 = cpu(), time.perf_counter()
            outcomes = service.poll_all()
            used, wall = cpu() - cpu0, time.perf_counter() - wall0
            bad = [o for o in outcomes if not o.ok]
            print(
                f"  first round (all changed, real time): {wall:.1f} s wall, {used:.1f} s CPU,"
                f" {len(outcomes) - len(bad)} ok, {len(bad)} failed"
                + (f" (first: {bad[0].error})" if bad else "")
            )
            # lateness of each source's first poll after the first round (all
            # 10,000 come due within the jitter: at x10, ten times as densely
            # as at real speed) and of the later ones
            late: tuple[list[float], list[float]] = ([], [])
            rounds: dict[str, int] = {}
            original: Callable[..., Any] = service.poll_source

            def timed(source: Any, **kw: Any) -> Any:
                lateness = (clock() - service.due(source)).total_seconds()
                late[min(rounds.get(source.name, 0), 1)].append(lateness)
                rounds[source.name] = rounds.get(source.name, 0) + 1
                return original(source, **kw)

            service.poll_source = timed  # type: ignore[method-assign]
            stop = threading.Event()
            thread = threading.Thread(target=_drive, args=(service, stop, speed), daemon=True)
            clock.speed_up(speed)
            rss1, cpu1 = rss_mb(), cpu()
            thread.start()
            time.sleep(seconds)
            stop.set()
            thread.join(timeout=30)
            used = cpu() - cpu1
            backlog = sum(1 for s in config.sources if service.due(s) < clock())
        finally:
            service.close()
    polls = len(late[0]) + len(late[1])
    print(
        f"  steady state: {polls} polls ({polls / feeds:.2f} per feed);"
        f" overdue at the end: {backlog} sources"
    )
    labels = ("first polls after the first round", "later polls")
    for label, lateness in zip(labels, late, strict=True):
        if lateness:
            over = sum(1 for x in lateness if x > allowed)
            print(
                f"  {label}: {len(lateness)}, late by more than the jitter ({allowed:.0f} s):"
                f" {over}; worst {max(lateness):.1f} s, median"
                f" {statistics.median(lateness):.2f} s simulated"
            )
    print(
        f"  CPU: {used:.1f} s over {seconds:.0f} s = {used / seconds:.2f} core at x{speed:g}"
        f" = {used / seconds / speed:.3f} core at real speed (target <= 0.5)"
    )
    print(
        f"  RSS: {rss0:.0f} MB at start, {rss1:.0f} MB after the first round,"
        f" {rss_mb():.0f} MB at the end"
    )


def _drive(service: Any, stop: threading.Event, speed: float) -> None:
    """The service's main loop (``Service._run_loop``) with its sleeps in
    simulated seconds: a wait of ``w`` on the clock is ``w / speed`` real."""
    wake = service._loop_wake
    while not stop.is_set():
        wait = service._poll_due()
        wake.wait(timeout=max(wait / speed, 0.005))
        wake.clear()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--scale-feeds", type=int, default=10_000)
    parser.add_argument("--scale-seconds", type=float, default=180.0)
    parser.add_argument("--speed", type=float, default=10.0)
    parser.add_argument("--only", choices=["first", "unchanged", "startup", "decision", "scale"])
    parser.add_argument("--farm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.farm:
        serve_farm()
        return 0
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    with Farm() as farm:
        if args.only in (None, "startup"):
            bench_startup()
        if args.only in (None, "decision"):
            bench_decision()
        if args.only in (None, "first"):
            bench_first_poll(farm, args.feeds)
        if args.only in (None, "unchanged"):
            bench_unchanged(farm, args.feeds)
        if args.only in (None, "scale"):
            bench_scale(farm, args.scale_feeds, args.scale_seconds, args.speed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
