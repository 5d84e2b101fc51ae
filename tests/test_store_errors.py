"""The store's failures as the operator meets them: SQLite's errors become
StoreError messages that say what to do, and ``/readyz`` checks the file
can take a write without writing."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import Probed

from publisher.adapters.sqlite import Store, translate
from publisher.config import parse_config
from publisher.core.errors import StoreError
from publisher.core.items import Item, RenderedItem, RenderedMessage
from publisher.service.probes import readiness

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def rendered(key: str, text: str = "hello") -> RenderedItem:
    item = Item(source="blog", key=key, title=key, content_hash="h")
    return RenderedItem(item, (RenderedMessage({"type": "text", "text": text}),))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "publisher.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with Store.open(db_path) as s:
        yield s


def fingerprint(path: Path) -> dict[str, str | None]:
    """The bytes of the state file and its WAL."""
    out: dict[str, str | None] = {}
    for suffix in ("", "-wal"):
        p = Path(str(path) + suffix)
        out[suffix] = hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None
    return out


# ---- damaged, foreign, full, read-only, locked


def test_a_damaged_file_says_restore_a_backup_or_move_it_away(db_path: Path) -> None:
    with Store.open(db_path) as s:
        for i in range(200):
            s.queue_item(rendered(f"k{i}", "x" * 500), T0)
    raw = sqlite3.connect(db_path)
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    data = bytearray(db_path.read_bytes())
    page = 4096
    for start in range(2 * page, len(data), page):  # keep page 1 (the header), break the rest
        data[start : start + 64] = b"\xa5" * 64
    db_path.write_bytes(bytes(data))
    with pytest.raises(StoreError) as caught, Store.open(db_path) as s:
        s.outbox(limit=1000)
    message = str(caught.value)
    assert str(db_path) in message
    assert "damaged" in message and "restore it from a backup" in message, message
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


def test_a_file_that_is_not_a_database_is_named(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is a text file, not SQLite\n" * 200)
    with pytest.raises(
        StoreError, match=r"not a viber-publisher state file.*check \[storage\] path"
    ):
        Store.open(db_path)
    with pytest.raises(StoreError, match="not a viber-publisher state file"):
        Store.open(db_path, read_only=True)


def test_a_full_disk_saves_nothing_and_says_free_some_space(store: Store) -> None:
    pages = store.db.conn.execute("PRAGMA page_count").fetchone()[0]
    store.db.conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreError, match=r"is full .*free some space"):
        store.queue_item(rendered("big", "x" * 100_000), T0)
    store.db.conn.execute("PRAGMA max_page_count = 1000000")
    assert store.outbox() == [] and store.seen("blog", "big") is None
    assert store.queue_item(rendered("big", "x" * 100_000), T0), "works again once there is room"


def test_a_file_that_cannot_be_written_says_check_permissions(store: Store) -> None:
    # What SQLite does with a file it could only open read-only (chmod, a
    # read-only mount): every write is SQLITE_READONLY. As root chmod is
    # not enforced, so query_only stands in for it.
    store.db.conn.execute("PRAGMA query_only = 1")
    with pytest.raises(StoreError, match=r"cannot be written.*may write the file"):
        store.mark_seen("blog", "k", "h", T0, "filtered")
    with pytest.raises(StoreError, match="cannot be written"):
        store.check_writable()
    store.db.conn.execute("PRAGMA query_only = 0")
    store.check_writable()


def test_a_file_held_by_another_process_says_locked(db_path: Path) -> None:
    Store.open(db_path).close()
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with Store.open(db_path, busy_timeout_ms=50) as s:
            with pytest.raises(StoreError, match=r"locked by another process.*stop the other"):
                s.mark_seen("blog", "k", "h", T0, "filtered")
            with pytest.raises(StoreError, match="locked"):
                s.check_writable()
            assert s.get_source("blog").name == "blog", "reading still works"
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_errors_that_are_not_about_the_file_stay_what_they_are() -> None:
    assert translate(sqlite3.IntegrityError("UNIQUE constraint failed"), "x") is None
    assert translate(sqlite3.OperationalError("no such table: t"), "x") is None


def test_a_folder_that_cannot_be_made_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot create its folder"):
        Store.open(tmp_path / "file" / "state.sqlite3")


def test_check_writable_refuses_a_read_only_open(db_path: Path) -> None:
    Store.open(db_path).close()
    with Store.open(db_path, read_only=True) as ro, pytest.raises(StoreError, match="read-only"):
        ro.check_writable()


# ---- readiness writes nothing


def test_readyz_probes_write_nothing_to_the_state_file(db_path: Path) -> None:
    with Store.open(db_path) as store:
        store.queue_item(rendered("k"), T0)
        watcher = sqlite3.connect(db_path)
        version = watcher.execute("PRAGMA data_version").fetchone()[0]
        changes = store.db.conn.total_changes
        before = fingerprint(db_path)
        probed = Probed(parse_config({}), store, T0)
        for _ in range(5):
            ready, details = readiness(probed)
            assert ready and details["database"] == "writable"
        assert watcher.execute("PRAGMA data_version").fetchone()[0] == version
        assert store.db.conn.total_changes == changes
        assert fingerprint(db_path) == before
        watcher.close()


def test_readyz_says_not_ready_when_the_file_cannot_be_written(store: Store) -> None:
    store.db.conn.execute("PRAGMA query_only = 1")
    ready, details = readiness(Probed(parse_config({}), store, T0))
    assert not ready
    assert details["database"].startswith("not writable: the state file")


def test_check_writable_finds_a_nearly_full_disk(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from publisher.adapters.sqlite import db as db_module

    real = shutil.disk_usage
    monkeypatch.setattr(
        db_module.shutil,
        "disk_usage",
        lambda path: real(path)._replace(free=db_module.MIN_FREE_BYTES - 1),
    )
    with pytest.raises(StoreError, match=r"is full .*free some space"):
        store.check_writable()
