"""Disk faults while the service runs: a full disk (ENOSPC at the media
seam), a state file that cannot be written, a media folder that cannot be
made. The service stays up, /readyz says why, nothing is lost, and it goes
on by itself once fixed; one-shot commands exit 1 with one line.

Tests run as root here, where chmod is not enforced: a read-only state file
is ``PRAGMA query_only`` (what SQLite does with a file it could only open
read-only), a full disk is a MediaStore whose writes raise ENOSPC, and a
media folder that cannot be made is one whose path is a file."""

from __future__ import annotations

import errno
import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import STANDIN_TOKEN, free_port, put, write_config
from PIL import Image

from publisher.adapters.mediaguard import GuardedMedia
from publisher.adapters.sqlite import Store
from publisher.adapters.standin import ViberStandIn
from publisher.adapters.viber.client import ChannelClient
from publisher.cli import cli
from publisher.config import load_config
from publisher.core.errors import StoreError
from publisher.core.items import Item, RenderedItem, RenderedMessage
from publisher.pipeline.deliver import Deliverer
from publisher.ports import MediaStore
from publisher.service.probes import readiness
from publisher.service.runner import Service


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (20, 60, 200)).save(out, "JPEG")
    return out.getvalue()


def sqlite(store: Any) -> sqlite3.Connection:
    """The SQLite store's connection (to stand in for a read-only file)."""
    return store.db.conn  # type: ignore[no-any-return]


class FullDisk:
    """The real media store, whose writes fail with ENOSPC while ``full``."""

    def __init__(self, inner: MediaStore) -> None:
        self.inner = inner
        self.full = True

    def put(self, data: bytes, ext: str) -> str:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.inner.put(data, ext)

    def put_file(self, source: Path, ext: str | None = None) -> str:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.inner.put_file(source, ext)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def folder_config(tmp_path: Path, **options: Any) -> Path:
    port = free_port()
    return write_config(
        tmp_path,
        "local",
        listen=f"127.0.0.1:{port}",
        public_url=f"http://127.0.0.1:{port}",
        rest=f'[[sources]]\nname = "inbox"\ntype = "folder"\npath = "{tmp_path / "inbox"}"\n',
        **options,
    )


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    running = Service(load_config(folder_config(tmp_path)), serve=False)
    try:
        yield running
    finally:
        running.close()


def test_a_full_disk_fails_the_poll_with_the_reason_and_loses_nothing(
    service: Service, tmp_path: Path
) -> None:
    put(tmp_path / "inbox", "sea.jpg", jpeg())
    guarded = service.parts.media
    assert isinstance(guarded, GuardedMedia)
    disk = FullDisk(guarded.inner())
    full = GuardedMedia(lambda: disk, "media")
    service.parts.media = full
    service.parts.transformer.store = full

    [outcome] = service.poll_all()
    assert not outcome.ok
    assert outcome.error is not None and "media folder media is full: free some space" in (
        outcome.error
    )
    # Nothing seen, nothing queued, the file where it was: the next poll takes it.
    assert service.store.outbox() == []
    assert service.store.counts_by_source().get("inbox", {}).get("seen", 0) == 0
    assert (tmp_path / "inbox" / "sea.jpg").exists()
    assert not (tmp_path / "inbox" / "failed").exists()
    ready, details = readiness(service)
    assert not ready and details["media"].startswith("not writable: the media folder media")

    disk.full = False  # space freed
    [outcome] = service.poll_all()
    assert outcome.ok and outcome.queued == 1
    [row] = service.store.outbox()
    assert row.payload["type"] == "picture"
    assert readiness(service)[1]["media"] == "ok"


def test_a_state_file_that_cannot_be_written_fails_polls_then_they_go_on(
    service: Service, tmp_path: Path
) -> None:
    put(tmp_path / "inbox", "note.txt", "A note.\n")
    sqlite(service.store).execute("PRAGMA query_only = 1")
    [outcome] = service.poll_all()
    assert not outcome.ok
    assert outcome.error is not None and "cannot be written" in outcome.error
    ready, details = readiness(service)
    assert not ready and details["database"].startswith("not writable:")
    assert (tmp_path / "inbox" / "note.txt").exists()

    sqlite(service.store).execute("PRAGMA query_only = 0")  # fixed
    [outcome] = service.poll_all()
    assert outcome.ok and outcome.queued == 1
    assert readiness(service)[1]["database"] == "writable"


def test_a_media_folder_that_cannot_be_made_keeps_the_service_up(tmp_path: Path) -> None:
    (tmp_path / "media").write_text("not a folder")
    put(tmp_path / "inbox", "sea.jpg", jpeg())
    service = Service(load_config(folder_config(tmp_path)), serve=False)
    try:
        ready, details = readiness(service)
        assert not ready
        assert "media folder" in details["media"] and "cannot be created" in details["media"]
        [outcome] = service.poll_all()
        assert not outcome.ok and outcome.error is not None
        assert "cannot be created or used" in outcome.error
        assert (tmp_path / "inbox" / "sea.jpg").exists()

        (tmp_path / "media").unlink()  # fixed: it goes on by itself
        [outcome] = service.poll_all()
        assert outcome.ok and outcome.queued == 1
        assert readiness(service)[1]["media"] == "ok"
    finally:
        service.close()


def test_run_once_with_an_unusable_media_folder_exits_1_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "media").write_text("not a folder")
    put(tmp_path / "inbox", "sea.jpg", jpeg())
    config = folder_config(tmp_path)
    result = CliRunner().invoke(cli, ["--config", str(config), "run", "--once"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "media folder" in errors[0] and "Traceback" not in result.output
    assert (tmp_path / "inbox" / "sea.jpg").exists()


class RecordingFails:
    """A client whose post goes out, after which the state file turns read-only."""

    def __init__(self, client: ChannelClient, store: Store) -> None:
        self.client = client
        self.store = store

    def post(self, payload: Any, *, sender: str) -> Any:
        result = self.client.post(payload, sender=sender)
        self.store.db.conn.execute("PRAGMA query_only = 1")
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_a_post_out_but_not_recordable_is_recorded_later_never_sent_twice(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    config = load_config(folder_config(tmp_path))
    store = Store.open(config.storage.path)
    client = ChannelClient(STANDIN_TOKEN, api_url=standin.api_url)
    item = Item(source="news", key="a", title="a", content_hash="a")
    [post] = store.queue_item(
        RenderedItem(item, (RenderedMessage({"type": "text", "text": "a"}),)), item_time()
    )
    deliverer = Deliverer(
        config,
        store,
        RecordingFails(client, store),  # type: ignore[arg-type]
        clock=item_time,
    )
    try:
        with pytest.raises(StoreError, match=f"post {post} went out but could not be recorded"):
            deliverer.step()
        with pytest.raises(StoreError):
            deliverer.step()  # still read-only: nothing is sent again
        assert len(standin.posts) == 1
        store.db.conn.execute("PRAGMA query_only = 0")
        deliverer.step()
        row = store.get(post)
        assert row is not None and row.status == "posted"
        assert row.message_token == standin.posts[0].message_token
        for _ in range(3):
            deliverer.step()
        assert len(standin.posts) == 1
    finally:
        client.close()
        store.close()


def item_time() -> Any:
    from datetime import UTC, datetime

    return datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
