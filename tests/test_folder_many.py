"""A folder with many files dropped at once: each poll takes at most
``MAX_NEW_PER_POLL`` of them, in name order, and says how many wait."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from helpers import put

from publisher.compose import build
from publisher.config import parse_config
from publisher.pipeline import poll


def test_many_files_are_taken_a_batch_per_poll_in_name_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(poll, "MAX_NEW_PER_POLL", 10)
    inbox = tmp_path / "inbox"
    for i in range(25):
        put(inbox, f"{i}.txt", f"note {i}\n")
    config = parse_config(
        {
            "storage": {"path": str(tmp_path / "s.sqlite3"), "media_dir": str(tmp_path / "m")},
            "sources": [{"name": "f", "type": "folder", "path": str(inbox)}],
        },
        tmp_path / "sources.toml",
    )
    parts = build(config)
    source = parts.sources["f"]
    caplog.set_level(logging.INFO, logger="publisher.pipeline.poll")
    queued = [parts.poller.poll(source).queued for _ in range(4)]
    assert queued == [10, 10, 5, 0]
    assert "15 more new item(s) wait for the next poll (at most 10 are taken per poll)" in (
        caplog.text
    )
    state = parts.store.get_source("f")
    rows = [
        parts.store.rows_for_item("f", i.key)[0] for i in source.read(state, parts.clock()).items
    ]
    # queued in name order: the outbox ids rise with the names
    assert [row.payload["text"] for row in sorted(rows, key=lambda r: r.id)] == [
        f"note {i}" for i in range(25)
    ]
