"""Fault test across replicas: three ``viber-publisher run`` processes on one
PostgreSQL database, media in an S3 bucket (moto's server), 200 feed items
(some with a picture) routed to two channels (a stand-in each), replicas
killed with SIGKILL at random moments — most of them just after a post of
theirs went out, some mid-poll — and restarted. Then:

- no item reached a channel twice, unless it is marked ``unknown``;
- none is lost: per channel, posted + unknown + queued = the items routed
  there (each channel's ``max_per_hour`` is lower than its share, so some
  must still be queued);
- no feed was polled by two replicas at once (the feed farm records each
  poll's start and end and the replica that asked);
- no channel received more than its ``max_per_hour`` within an hour.

The scenario is bench/replicas.py's (``python bench/replicas.py --kills 50``
runs it longer); the seed is in the failure report.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType

import pytest
from postgres import PASSWORD
from s3server import Bucket

BENCH = Path(__file__).resolve().parent.parent / "bench" / "replicas.py"


def load_bench() -> ModuleType:
    """bench/replicas.py as a module (``bench_replicas``)."""
    spec = importlib.util.spec_from_file_location("bench_replicas", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_three_replicas_killed_at_random_post_each_item_once_within_the_limits(
    tmp_path: Path, postgres_url: str, s3_bucket: Bucket
) -> None:
    bench = load_bench()
    seed = random.randrange(1_000_000)
    place = bench.S3Place(
        s3_bucket.media_url,
        s3_bucket.public_media_url,
        s3_bucket.server.endpoint,
        s3_bucket.server.env(),
    )
    figures = bench.run_replica_kills(
        tmp_path,
        postgres_url,
        PASSWORD,
        place,
        replicas=3,
        items=200,
        kills=5,
        max_per_hour={"a": 30, "b": 25},
        picture_every=5,
        reveal=3.0,
        seed=seed,
        final_once=False,
    )
    report = f"seed {seed}\n" + "\n".join(figures.lines() + figures.notes[-30:])
    assert figures.kills == 5, report
    assert figures.kills_while_posting >= 1, report  # killed mid-post, not only idle
    assert figures.exits == {}, report  # no replica died by itself
    assert figures.overlaps == [], report
    assert figures.duplicates == [], report
    assert figures.losses == [], report
    assert figures.phantoms == [], report
    assert figures.items == 200, report
    for channel in figures.channels.values():
        assert channel.expected == 100, report
        assert channel.accounted == channel.expected, report  # none lost
        assert channel.queued > 0, report  # the limit bound: the rest waits
        assert channel.pictures > 0, report  # media went through the bucket
    assert figures.over_limit == [], report


def test_the_figures_see_overlapping_polls_and_a_broken_limit() -> None:
    """The checks themselves: two live replicas on one feed at once is an
    overlap; a poll still being answered after its replica was killed is
    not; more posts than the limit within an hour are counted as such."""
    bench = load_bench()
    poll = bench.Poll
    polls = [
        poll(0, "replica-1.1", 10.0, 10.2),
        poll(0, "replica-2.1", 10.1, 10.3),  # both alive: an overlap
        poll(1, "replica-1.1", 20.0, 20.3),
        poll(1, "replica-2.1", 20.2, 20.4),  # replica-1.1 was killed at 20.1
        poll(2, "replica-3.1", 30.0, 30.1),
        poll(2, "replica-3.1", 30.05, 30.2),  # one replica: not two at once
        poll(3, "replica-1.2", 40.0, 40.1),
        poll(3, "replica-2.1", 40.1, 40.2),  # one after the other
    ]
    (found,) = bench.overlapping_polls(polls, {"replica-1.1": 20.1})
    assert found.startswith("feed 0: replica-1.1 ") and "replica-2.1" in found
    assert bench.max_in_window([0.0, 10.0, 3599.0, 3601.0, 7300.0]) == 3
    assert bench.max_in_window([]) == 0
