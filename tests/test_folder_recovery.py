"""Folder items finished before a stop: their files are moved on the next poll.

The crash is simulated at the one moment that matters: the post is recorded
(``posted``, ``failed``, ``skipped``, or the item refused) but the service
stops before it moves the files. The next poll finds the item already seen
and moves its files then; an item whose posts are not all finished stays
where it is. Real files, a real SQLite store, the stand-in channel on
127.0.0.1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import STANDIN_TOKEN, names, put

from publisher.adapters.sources import folder as folder_module
from publisher.adapters.sources.folder import move_done, scan_folder
from publisher.adapters.sqlite import Store
from publisher.adapters.standin import ViberStandIn
from publisher.adapters.viber.client import ChannelClient
from publisher.config import parse_config
from publisher.core.config import Config
from publisher.core.items import Item, RenderedItem, RenderedMessage
from publisher.service.runner import Service

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def inbox_files(inbox: Path) -> list[str]:
    return sorted(p.name for p in inbox.iterdir() if p.is_file())


def make_config(tmp_path: Path, inbox: Path) -> Config:
    return parse_config(
        {
            "storage": {
                "path": str(tmp_path / "state.sqlite3"),
                "media_dir": str(tmp_path / "media"),
            },
            "delivery": {"min_interval": "0s", "max_attempts": 1},
            "sources": [{"name": "inbox", "type": "folder", "path": str(inbox)}],
        }
    )


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def service(tmp_path: Path, inbox: Path, standin: ViberStandIn) -> Iterator[Service]:
    config = make_config(tmp_path, inbox)
    client = ChannelClient(STANDIN_TOKEN, api_url=standin.api_url)
    svc = Service(config, token=STANDIN_TOKEN, client=client, serve=False)
    svc.start()
    try:
        yield svc
    finally:
        svc.close()


def poll(service: Service) -> int:
    outcome = service.poll_source(service.config.sources[0])
    assert outcome.ok, outcome.error
    return outcome.recovered


def scanned(inbox: Path) -> list[Item]:
    return scan_folder(inbox, "inbox", None).items


# --------------------------------------------------------------------------
# the store query the recovery uses


def test_rows_for_item_lists_every_queuing_of_one_item_of_one_source(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.sqlite3") as store:

        def queue(source: str, key: str, *texts: str, at: datetime = T0) -> list[int]:
            item = Item(source=source, key=key, content_hash=texts[0])
            messages = tuple(RenderedMessage({"type": "text", "text": t}) for t in texts)
            return store.queue_item(RenderedItem(item, messages), at)

        first = queue("inbox", "file:a", "a1", "a2")
        queue("inbox", "file:b", "b")
        queue("other", "file:a", "other a")
        again = queue("inbox", "file:a", "a edited", at=T0 + timedelta(minutes=5))

        rows = store.rows_for_item("inbox", "file:a")
        assert [r.id for r in rows] == [*first, *again]
        assert [r.group_id for r in rows] == [first[0], first[0], again[0]]
        assert store.rows_for_item("inbox", "file:none") == []

        store.add_event("inbox", "file:a", "moved", "1 file(s) moved to posted/", T0)
        story = store.item_story("inbox", "file:a")
        assert (story[-1].event, story[-1].detail) == ("moved", "1 file(s) moved to posted/")


# --------------------------------------------------------------------------
# finished before the stop: moved on the next poll


def test_a_posted_item_left_in_the_inbox_moves_to_posted_on_the_next_poll(
    service: Service, inbox: Path, standin: ViberStandIn
) -> None:
    put(inbox, "1-note.txt", "A note for the channel.\n")
    put(inbox, "2-later.txt", "Not posted yet.\n")
    poll(service)
    assert service.deliverer is not None
    service.deliverer.on_done = None  # the crash: the post is recorded, the move never runs
    service.deliverer.step()
    assert [p.payload["text"] for p in standin.posts] == ["A note for the channel."]
    assert inbox_files(inbox) == ["1-note.txt", "2-later.txt"]  # the gap

    assert poll(service) == 1

    assert names(inbox / "posted") == ["1-note.txt"]
    assert inbox_files(inbox) == ["2-later.txt"]  # still queued: stays
    assert not (inbox / "failed").exists()
    key = scanned(inbox / "posted")[0].key  # same name, size and mtime: same key
    assert service.store.item_story("inbox", key)[-1].event == "moved"

    assert poll(service) == 0  # nothing left behind: nothing more happens
    assert len(standin.posts) == 1


def test_a_failed_item_left_in_the_inbox_moves_to_failed_with_its_reason(
    service: Service, inbox: Path, standin: ViberStandIn
) -> None:
    put(inbox, "1-note.txt", "Viber will refuse this one.\n")
    poll(service)
    assert service.deliverer is not None
    service.deliverer.on_done = None
    standin.fail_next("status", status=3, status_message="badData: test refusal")
    service.deliverer.step()
    [row] = service.store.outbox()
    assert row.status == "failed"
    assert inbox_files(inbox) == ["1-note.txt"]

    assert poll(service) == 1

    assert names(inbox / "failed") == ["1-note.txt", "1-note.txt.reason.txt"]
    reason = (inbox / "failed" / "1-note.txt.reason.txt").read_text(encoding="utf-8")
    assert row.reason is not None and reason.strip() == row.reason
    assert "badData: test refusal" in reason
    assert inbox_files(inbox) == []
    assert not (inbox / "posted").exists()


def test_a_skipped_item_left_in_the_inbox_moves_to_failed(service: Service, inbox: Path) -> None:
    put(inbox, "1-note.txt", "Skipped by the operator.\n")
    poll(service)
    [row] = service.store.outbox()
    service.store.mark_skipped(row.id, "skipped by the operator", datetime.now(UTC))

    assert poll(service) == 1

    assert names(inbox / "failed") == ["1-note.txt", "1-note.txt.reason.txt"]
    reason = (inbox / "failed" / "1-note.txt.reason.txt").read_text(encoding="utf-8")
    assert reason.strip() == "skipped by the operator"


def test_a_refused_item_left_in_the_inbox_moves_to_failed_with_its_reason(
    service: Service, inbox: Path
) -> None:
    put(inbox, "1-photo.jpg", "not a picture at all")
    [item] = scanned(inbox)
    # the crash: the refusal is recorded, the files never moved
    why = "1-photo.jpg: not an image Pillow can read; not posted"
    service.store.mark_seen("inbox", item.key, item.content_hash, T0, "refused", why)

    assert poll(service) == 1

    assert names(inbox / "failed") == ["1-photo.jpg", "1-photo.jpg.reason.txt"]
    reason = (inbox / "failed" / "1-photo.jpg.reason.txt").read_text(encoding="utf-8")
    assert reason.strip() == why
    assert service.store.outbox() == []


def test_a_filtered_item_is_not_moved(service: Service, inbox: Path) -> None:
    put(inbox, "1-note.txt", "Filtered out.\n")
    [item] = scanned(inbox)
    service.store.mark_seen("inbox", item.key, item.content_hash, T0, "filtered", "exclude")

    assert poll(service) == 0

    assert inbox_files(inbox) == ["1-note.txt"]
    assert not (inbox / "posted").exists() and not (inbox / "failed").exists()


# --------------------------------------------------------------------------
# not finished: never moved


def test_an_item_whose_post_is_queued_sending_or_unknown_is_never_moved(
    service: Service, inbox: Path
) -> None:
    put(inbox, "1-note.txt", "Still on its way.\n")
    poll(service)
    [row] = service.store.outbox()
    store = service.store

    assert row.status == "queued"
    assert poll(service) == 0 and inbox_files(inbox) == ["1-note.txt"]

    assert store.claim(row.id, datetime.now(UTC))  # sending
    assert poll(service) == 0 and inbox_files(inbox) == ["1-note.txt"]

    store.mark_unknown(row.id, "no answer", datetime.now(UTC))
    assert poll(service) == 0 and inbox_files(inbox) == ["1-note.txt"]

    store.mark_posted(row.id, 42, datetime.now(UTC))  # the operator confirmed it
    assert poll(service) == 1
    assert names(inbox / "posted") == ["1-note.txt"]


def test_a_split_item_moves_only_once_its_last_message_is_finished(
    service: Service, inbox: Path
) -> None:
    put(inbox, "1-photo.jpg", "picture bytes")
    put(inbox, "1-photo.txt", "Its caption.\n")
    [item] = scanned(inbox)
    assert [p.name for p in item.files] == ["1-photo.jpg", "1-photo.txt"]
    messages = (
        RenderedMessage({"type": "text", "text": "part 1"}),
        RenderedMessage({"type": "text", "text": "part 2"}),
    )
    first, second = service.store.queue_item(RenderedItem(item, messages), T0)
    store = service.store

    assert store.claim(first, T0)
    store.mark_posted(first, 1, T0)
    assert poll(service) == 0  # the second message is still queued
    assert inbox_files(inbox) == ["1-photo.jpg", "1-photo.txt"]

    assert store.claim(second, T0)
    store.mark_posted(second, 2, T0)
    assert poll(service) == 1
    assert names(inbox / "posted") == ["1-photo.jpg", "1-photo.txt"]
    assert inbox_files(inbox) == []


def test_an_edited_item_reposted_waits_for_the_new_post(service: Service, inbox: Path) -> None:
    put(inbox, "1-note.txt", "First words.\n")
    [item] = scanned(inbox)
    text = RenderedMessage({"type": "text", "text": "First words."})
    [old] = service.store.queue_item(RenderedItem(item, (text,)), T0)
    service.store.claim(old, T0)
    service.store.mark_posted(old, 1, T0)
    # edited, and queued again under the same key (on_update = "repost"), not sent yet
    edited = replace(item, content_hash="edited")
    service.store.queue_item(RenderedItem(edited, (text,)), T0 + timedelta(minutes=1))

    assert poll(service) == 0
    assert inbox_files(inbox) == ["1-note.txt"]


# --------------------------------------------------------------------------
# two movers of one file (the deliverer and a poll, or `skip` in another process)


def test_a_file_moved_by_another_mover_meanwhile_is_kept_once(
    inbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(inbox, "1-note.txt", "Moved twice at once.\n")
    real_link = os.link

    def link_and_lose_the_race(src: Path, dst: Path, *, follow_symlinks: bool = True) -> None:
        real_link(src, dst, follow_symlinks=follow_symlinks)
        # the other mover links its own copy and unlinks the source first
        real_link(src, Path(dst).with_name("theirs-" + Path(dst).name))
        os.unlink(src)

    monkeypatch.setattr(folder_module.os, "link", link_and_lose_the_race)
    moved = move_done(inbox, [inbox / "1-note.txt"], ok=False, reason="refused")
    monkeypatch.undo()

    assert moved == []
    assert names(inbox / "failed") == ["theirs-1-note.txt"]  # one copy, no reason of ours
    assert inbox_files(inbox) == []
