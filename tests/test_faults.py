"""Fault test: 50 posts against the stand-in answering HTTP 500, status 12,
other statuses, slowly (after the client's timeout) and dropping the
connection before and after recording the post. Every post is out exactly
once or marked ``unknown`` (out at most once); nothing is lost.

The scenario is bench/faults.py's (``python bench/faults.py --posts 500`` runs
it longer); here it runs small, with a fake clock, and its figures are checked.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import STANDIN_TOKEN, load_bench

from publisher.adapters.standin import ViberStandIn


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1])
def test_every_post_is_out_exactly_once_or_unknown(
    tmp_path: Path, standin: ViberStandIn, seed: int
) -> None:
    bench = load_bench()
    figures = bench.run_faults(
        standin, STANDIN_TOKEN, tmp_path, posts=50, fault_rate=0.4, seed=seed
    )
    report = "\n".join(figures.lines())
    assert figures.attempted == 50
    assert figures.duplicates == [], report
    assert figures.losses == [], report
    assert figures.phantoms == [], report
    assert figures.failed == 0, report  # enough attempts: nothing gives up
    assert figures.posted + figures.unknown == 50, report
    # The faults really happened: every kind, and some posts ended unknown.
    assert set(figures.faults) == {kind for kind, _ in bench.FAULTS}, report
    assert figures.unknown >= 1, report


def test_the_tally_finds_duplicates_and_losses(tmp_path: Path, standin: ViberStandIn) -> None:
    """The checker itself: a post sent twice, and one never sent, are reported."""
    bench = load_bench()
    from collections import Counter
    from datetime import UTC, datetime

    from publisher.adapters.sqlite import Store
    from publisher.core.items import Item, RenderedItem, RenderedMessage

    now = datetime(2024, 5, 6, tzinfo=UTC)
    with Store.open(tmp_path / "s.sqlite3") as store:
        ids = []
        for i in range(3):
            item = Item(source="s", key=f"k{i}", content_hash=str(i))
            message = RenderedMessage({"type": "text", "text": bench.text_of(i)})
            ids += store.queue_item(RenderedItem(item, (message,)), now)
        for post_id in ids[:2]:
            assert store.claim(post_id, now)
            store.mark_posted(post_id, 1, now)
        out = Counter({bench.text_of(0): 2, bench.text_of(1): 1})
        figures = bench.tally(
            bench.Figures("check"), store, out, [bench.text_of(i) for i in range(3)]
        )
    assert figures.duplicates == [f"{bench.text_of(0)} x2"]
    assert figures.losses == [f"{bench.text_of(2)} (queued)"]
    assert not figures.ok
