"""``preview`` of a folder of many files, and the delivery simulation it runs.

- **a fresh folder** of ``--files`` notes (nothing polled yet): ``viber-publisher
  preview`` in a process of its own, wall seconds (the next poll takes at
  most 100 of them; preview says so);
- **a folder already mostly queued** (the service took all but the last 100
  files, 100 per poll): ``preview`` shows every file (a card each), the
  queue and where the 100 new ones would go after it; wall seconds, and
  with ``--json`` (the same pipeline, no cards);
- **the delivery simulation alone** (``pipeline.preview.run_policy``) over
  ``--queue`` queued posts against the naive one (the policy asked over the
  whole queue and history at every step, as preview first ran it; O(n²)),
  measured in the same run over a queue of ``--naive-queue``, and the same
  simulation over 100 queued: cost per decision.

    python bench/preview.py [--files 10000] [--queue 10000] [--naive-queue 1000]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

NOW = datetime(2024, 3, 6, 12, 0, tzinfo=UTC)


def config_text(tmp: Path) -> str:
    return textwrap.dedent(
        f"""
        [[channels]]
        name = "main"
        api_url = "local"
        [channels.delivery]
        min_interval = "3s"
        max_per_hour = 60
        [server]
        listen = "127.0.0.1:0"
        [storage]
        path = "{tmp / "state.sqlite3"}"
        media_dir = "{tmp / "media"}"
        [[sources]]
        name = "inbox"
        type = "folder"
        path = "{tmp / "inbox"}"
        every = "10s"
        """
    )


def make_folder(tmp: Path, files: int) -> Path:
    inbox = tmp / "inbox"
    inbox.mkdir()
    old = time.time() - 3600  # settled long ago
    for n in range(files):
        path = inbox / f"{n:05d}-note.txt"
        path.write_text(f"Note {n}\nA few words for the channel.\n", encoding="utf-8")
        os.utime(path, (old, old))
    config = tmp / "sources.toml"
    config.write_text(config_text(tmp), encoding="utf-8")
    return config


def preview_seconds(tmp: Path, *options: str) -> tuple[float, str]:
    exe = shutil.which("viber-publisher", path=str(Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-m", "publisher"]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "--config", "sources.toml", "preview", *(options or ("--width", "100"))],
        cwd=tmp,
        env=dict(os.environ, VIBER_AUTH_TOKEN="local"),
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        return seconds, f"exit {done.returncode}: {done.stderr.strip()[-300:]}"
    if options:
        return seconds, f"{len(done.stdout.splitlines())} lines"
    lines = [line for line in done.stdout.splitlines() if line.startswith("note:")]
    return seconds, " / ".join([*lines, *done.stdout.strip().splitlines()[-2:]])


def queue_in_state(config_path: Path, items: int) -> int:
    """Let the service take the folder's first ``items`` files into its queue,
    in one poll (the service takes 100 per poll: the state is the same, 99
    polls of a 10,000-file folder take minutes)."""
    import tomllib

    from publisher.config import parse_config
    from publisher.pipeline import poll
    from publisher.service.runner import Service

    text = config_path.read_text(encoding="utf-8")
    config = parse_config(tomllib.loads(text))
    service = Service(config, serve=False)
    poll.MAX_NEW_PER_POLL, taken = items, poll.MAX_NEW_PER_POLL
    try:
        service.poll_all()
        return len(service.store.outbox("queued", limit=100_000))
    finally:
        poll.MAX_NEW_PER_POLL = taken
        service.close()


def bench_folder(files: int) -> None:
    print(f"preview of a folder of {files:,} notes (a process of its own)", flush=True)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        config = make_folder(tmp, files)
        seconds, said = preview_seconds(tmp)
        print(f"  nothing queued yet: {seconds:.2f} s wall (target <= 30 s)\n    {said}")
        queued = queue_in_state(config, max(files - 100, 0))
        seconds, said = preview_seconds(tmp)
        print(f"  {queued:,} queued, 100 new: {seconds:.2f} s wall (target <= 30 s)\n    {said}")
        seconds, said = preview_seconds(tmp, "--json")
        print(f"  the same, --json (no cards): {seconds:.2f} s wall, {said}")


def _simulation_inputs(queued: int) -> tuple[Any, Any, list[Any]]:
    from publisher.core.config import ChannelConfig, Config, DeliveryConfig, Policy, SourceConfig
    from publisher.core.policy import Candidate
    from publisher.pipeline.queue import QueueView

    policy = Policy(max_per_hour=60, min_interval=timedelta(seconds=3))
    config = Config(
        channels=(ChannelConfig(name="main", delivery=DeliveryConfig(policy=policy)),),
        sources=tuple(
            SourceConfig(name=f"s{n}", type="folder", path=Path(f"/in/{n}")) for n in range(5)
        ),
    )
    queue = [
        Candidate(
            id=n + 1,
            source=f"s{n % 5}",
            item_key=f"k{n}",
            created_at=NOW - timedelta(minutes=queued - n),
            group=n + 1,
        )
        for n in range(queued)
    ]
    view = QueueView(
        now=NOW, due=(), history=(), cooldown_until=None, stopped=None, next_retry=None
    )
    return view, config, queue


def naive(view: Any, config: Any, queue: Sequence[Any]) -> Iterator[Any]:
    """The simulation as preview first ran it: the policy over everything."""
    from publisher.core.policy import Idle, PostedRecord, Skip, Wait
    from publisher.pipeline.queue import decide

    pending, history, clock = list(queue), list(view.history), NOW
    for _ in range(len(pending) * 8 + 64):
        verdict = decide(view, config, "main", queue=pending, history=history, now=clock)
        yield clock, verdict
        if isinstance(verdict, Idle):
            return
        if isinstance(verdict, Wait):
            clock = max(verdict.until, clock + timedelta(microseconds=1))
            continue
        pending.remove(verdict.candidate)
        if isinstance(verdict, Skip):
            continue
        history.append(PostedRecord(verdict.candidate.source, clock, verdict.candidate.seq))


def _simulate(queued: int, *, slow: bool = False) -> tuple[float, int]:
    from publisher.pipeline.preview import run_policy

    view, config, queue = _simulation_inputs(queued)
    horizon = timedelta(days=3650)  # every post, not only the next 60 days
    started = time.perf_counter()
    if slow:
        verdicts = list(naive(view, config, queue))
    else:
        verdicts = list(run_policy(view, config, "main", queue, NOW, horizon=horizon))
    return time.perf_counter() - started, len(verdicts)


def bench_simulation(queued: int, naive_queued: int) -> None:
    print("the delivery simulation (run_policy): every post of the queue", flush=True)
    small, small_n = _simulate(100)
    large, large_n = _simulate(queued)
    base, _ = _simulate(naive_queued, slow=True)
    same, _ = _simulate(naive_queued)
    print(f"  {100:>6} queued: {small:.3f} s, {small / small_n * 1e6:.0f} µs per decision")
    print(f"  {queued:>6} queued: {large:.3f} s, {large / large_n * 1e6:.0f} µs per decision")
    print(
        f"  per decision, {queued:,} vs 100 queued: "
        f"{(large / large_n) / (small / small_n):.2f}x (O(n log n) overall: about 1x)"
    )
    print(
        f"  {naive_queued:,} queued: {same:.3f} s vs {base:.3f} s naive baseline "
        f"= {same / base:.3f}x ({base / same:.0f}x faster)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--queue", type=int, default=10_000)
    parser.add_argument("--naive-queue", type=int, default=1_000)
    parser.add_argument("--only", choices=["folder", "simulation"])
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    if args.only in (None, "simulation"):
        bench_simulation(args.queue, args.naive_queue)
    if args.only in (None, "folder"):
        bench_folder(args.files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
