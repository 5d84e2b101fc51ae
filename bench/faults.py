"""Delivery under faults and kills: is every post out exactly once?

Two scenarios against the Viber stand-in on 127.0.0.1, both counting what
the stand-in recorded per post text:

- **faults** (in-process): a Deliverer with a fake clock (back-off waits are
  clock advances) drains ``--posts`` text posts while the stand-in answers
  HTTP 500, status 12, another status, slowly (after the client's timeout),
  or drops the connection before or after recording the post;
- **kills**: a real ``viber-publisher run`` on a folder of ``--posts`` notes,
  killed with SIGKILL ``--kills`` times at random moments while it posts,
  restarted each time, then run to completion with ``run --once``.

Either way a post must end ``posted`` (and be out exactly once) or
``unknown`` (out at most once); nothing is lost, nothing is left queued.

    python bench/faults.py --posts 500 --kills 50

prints the figures and exits 1 when a duplicate or a loss is found. The
tests (tests/test_faults.py, tests/test_crash.py) run the same functions
with small numbers and assert on the figures.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from publisher.adapters.sqlite import Store
from publisher.adapters.standin import ViberStandIn
from publisher.adapters.viber.client import ChannelClient
from publisher.config import parse_config
from publisher.core.items import Item, RenderedItem, RenderedMessage
from publisher.pipeline.deliver import Deliverer

TOKEN = "b3nchb3nchb3nch0-8a9fe0d7c4bbd05c-5c3a4e1b2f7d9e60"
#: (kind, extra arguments of fail_next); "slow" waits longer than the client.
FAULTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("http500", {}),
    ("status12", {}),
    ("status", {"status": 99, "status_message": "generalError"}),
    ("slow", {"delay": 1.0}),
    ("drop_before", {}),
    ("drop_after", {}),
)
CLIENT_TIMEOUT = 0.3


@dataclass
class Figures:
    scenario: str
    attempted: int = 0
    posted: int = 0
    unknown: int = 0
    failed: int = 0
    #: Texts the stand-in recorded more than once though their row is not unknown.
    duplicates: list[str] = field(default_factory=list)
    #: Texts neither out nor unknown, or rows left queued/sending.
    losses: list[str] = field(default_factory=list)
    #: Rows posted per the outbox that the stand-in never recorded.
    phantoms: list[str] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    kills: int = 0
    #: The exit code of the final ``run --once`` (kill scenario).
    final_exit: int | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.losses or self.phantoms)

    def lines(self) -> list[str]:
        lines = [
            f"{self.scenario}: {self.attempted} posts attempted in {self.seconds:.1f} s",
            f"  posted {self.posted}, unknown {self.unknown}, failed {self.failed}",
            f"  duplicates {len(self.duplicates)}, losses {len(self.losses)}, "
            f"posted but not out {len(self.phantoms)}",
        ]
        if self.faults:
            shown = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
            lines.append(f"  faults injected: {shown}")
        if self.kills:
            lines.append(f"  kills: {self.kills}")
        for name in ("duplicates", "losses", "phantoms"):
            found = getattr(self, name)
            if found:
                lines.append(f"  {name}: {', '.join(found[:10])}")
        return lines


def text_of(i: int) -> str:
    return f"post {i:05d}"


def tally(figures: Figures, store: Store, out: Counter[str], expected: list[str]) -> Figures:
    """Compare the outbox with what the stand-in recorded."""
    rows = {row.payload.get("text", ""): row for row in store.outbox(limit=1_000_000)}
    figures.attempted = len(expected)
    for text in expected:
        row = rows.get(text)
        count = out[text]
        if row is None:
            figures.losses.append(f"{text} (never queued)")
            continue
        if row.status == "posted":
            figures.posted += 1
            if count == 0:
                figures.phantoms.append(text)
            elif count > 1:
                figures.duplicates.append(f"{text} x{count}")
        elif row.status == "unknown":
            figures.unknown += 1
            if count > 1:
                figures.duplicates.append(f"{text} x{count} (unknown)")
        elif row.status == "failed":
            figures.failed += 1
            if count:
                figures.duplicates.append(f"{text} x{count} (failed)")
        else:
            figures.losses.append(f"{text} ({row.status})")
    return figures


# --------------------------------------------------------------------------
# faults, in-process


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def run_faults(
    standin: ViberStandIn,
    token: str,
    workdir: Path,
    posts: int = 50,
    fault_rate: float = 0.3,
    max_attempts: int = 50,
    seed: int | None = None,
) -> Figures:
    """Drain ``posts`` text posts through a Deliverer while the stand-in
    misbehaves; the stand-in must be serving with its webhook set."""
    rng = random.Random(seed)
    figures = Figures("faults")
    started = time.monotonic()
    config = parse_config(
        {
            "storage": {"path": str(workdir / "faults.sqlite3"), "media_dir": str(workdir)},
            "delivery": {
                "min_interval": "0s",
                "retry_backoff": "1s",
                "rate_limit_cooldown": "2s",
                "max_attempts": max_attempts,
            },
        }
    )
    clock = _Clock()
    expected = [text_of(i) for i in range(posts)]
    with (
        Store.open(config.storage.path) as store,
        ChannelClient(token, api_url=standin.api_url, timeout=CLIENT_TIMEOUT) as client,
    ):
        for i, text in enumerate(expected):
            item = Item(source="bench", key=f"k{i}", title=text, content_hash=str(i))
            store.queue_item(
                RenderedItem(item, (RenderedMessage({"type": "text", "text": text}),)), clock()
            )
        deliverer = Deliverer(config, store, client, clock=clock, rng=rng)
        for _ in range(posts * 20):
            if not store.outbox("queued", limit=1) and not store.outbox("sending", limit=1):
                break
            if rng.random() < fault_rate:
                kind, extra = rng.choice(FAULTS)
                standin.fail_next(kind, **extra)
                figures.faults[kind] += 1
            wait = deliverer.step()
            if wait is not None:
                clock.now += min(wait, timedelta(hours=1))
        out = Counter(p.payload.get("text", "") for p in standin.posts)
        standin.clear()  # answer slow requests still waiting; forget unused faults
        tally(figures, store, out, expected)
    figures.seconds = time.monotonic() - started
    return figures


# --------------------------------------------------------------------------
# kills, with real processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_kill_setup(workdir: Path, api_url: str, posts: int) -> Path:
    """A folder of ``posts`` notes and a sources.toml posting them to ``api_url``."""
    inbox = workdir / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    past = time.time() - 3600
    for i in range(posts):
        note = inbox / f"{i:05d}.txt"
        note.write_text(text_of(i) + "\n", encoding="utf-8")
        os.utime(note, (past, past))
    config = workdir / "sources.toml"
    config.write_text(
        f"""
[viber]
api_url = "{api_url}"
timeout = "10s"

[server]
listen = "127.0.0.1:{free_port()}"

[storage]
path = "state.sqlite3"
media_dir = "media"

[delivery]
min_interval = "0s"
retry_backoff = "1s"
max_attempts = 20

[[sources]]
name = "inbox"
type = "folder"
path = "inbox"
every = "1s"
""",
        encoding="utf-8",
    )
    return config


def _command(config: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "publisher",
        "--config",
        str(config),
        "--log-level",
        "warning",
        *args,
    ]


def run_kills(
    standin: ViberStandIn,
    token: str,
    workdir: Path,
    posts: int = 40,
    kills: int = 8,
    seed: int | None = None,
    post_delay: float = 0.05,
    on_output: Callable[[str], None] | None = None,
) -> Figures:
    """Run, SIGKILL at a random moment while posting, restart; ``kills``
    times; then ``run --once`` to finish. The stand-in must be serving with
    its webhook set (the service has no public_url here)."""
    rng = random.Random(seed)
    figures = Figures("kills")
    started = time.monotonic()
    config = write_kill_setup(workdir, standin.api_url, posts)
    env = dict(os.environ, VIBER_AUTH_TOKEN=token, PYTHONUNBUFFERED="1")
    # Each post answers a little late (it is recorded first): a kill often
    # lands between Viber's recording and the service's.
    standin.fail_next("slow", posts * 4, delay=post_delay)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    for n in range(kills):
        before = len(standin.posts)
        if before >= posts:
            break
        with open(logs / f"run-{n}.log", "wb") as log:
            process = subprocess.Popen(
                _command(config, "run"), cwd=workdir, env=env, stdout=log, stderr=log
            )
            try:
                # Kill after a random number of new posts, at a random instant;
                # now and then early, while it starts, polls and queues.
                target = before + rng.randint(1, max(1, posts // (kills + 1)))
                patience = rng.uniform(0.2, 1.5) if rng.random() < 0.25 else 20.0
                deadline = time.monotonic() + patience
                while len(standin.posts) < target and time.monotonic() < deadline:
                    if process.poll() is not None:
                        break
                    time.sleep(0.005)
                time.sleep(rng.uniform(0, post_delay * 1.5))
            finally:
                process.send_signal(signal.SIGKILL)
                process.wait()
        figures.kills += 1
    recorded = standin.posts
    standin.clear()  # no more slow answers (this forgets the posts: they are kept above)
    final = subprocess.run(
        _command(config, "run", "--once"), cwd=workdir, env=env, capture_output=True, timeout=120
    )
    figures.final_exit = final.returncode
    if on_output is not None:
        on_output(final.stdout.decode() + final.stderr.decode())
    out = Counter(p.payload.get("text", "") for p in [*recorded, *standin.posts])
    with Store.open(workdir / "state.sqlite3", read_only=True) as store:
        tally(figures, store, out, [text_of(i) for i in range(posts)])
    figures.seconds = time.monotonic() - started
    return figures


# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=50, help="posts per scenario (default 50)")
    parser.add_argument(
        "--kills", type=int, default=8, help="SIGKILLs in the kill scenario (default 8)"
    )
    parser.add_argument(
        "--fault-rate", type=float, default=0.3, help="share of requests that misbehave"
    )
    parser.add_argument("--seed", type=int, default=None, help="for a repeatable run")
    parser.add_argument("--only", choices=("faults", "kills"), default=None)
    parser.add_argument("--verbose", action="store_true", help="show the deliverer's log")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.verbose else logging.CRITICAL)
    all_ok = True
    with (
        tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp,
        ViberStandIn(TOKEN).serve() as standin,
    ):
        if args.only in (None, "faults"):
            standin.reset()
            standin.preset_webhook("http://127.0.0.1:9/webhook")
            figures = run_faults(
                standin, TOKEN, Path(tmp), args.posts, args.fault_rate, seed=args.seed
            )
            print("\n".join(figures.lines()), flush=True)
            all_ok &= figures.ok
        if args.only in (None, "kills"):
            standin.reset()
            standin.preset_webhook("http://127.0.0.1:9/webhook")
            workdir = Path(tmp) / "kills"
            workdir.mkdir()
            figures = run_kills(standin, TOKEN, workdir, args.posts, args.kills, seed=args.seed)
            print("\n".join(figures.lines()), flush=True)
            all_ok &= figures.ok
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
