"""The SQLite store: sources' state, seen items, the outbox, and each item's story.

One connection per :class:`Store`, guarded by a lock (pollers and the
deliverer share it from their threads). WAL, ``synchronous=FULL``, a busy
timeout and foreign keys. Every change is one committed transaction, so a
process killed at any moment leaves either all of a change or none of it;
nothing lives only in memory.

Tables::

    sources  name → url, validators (etag, last_modified, body_hash), poll times,
             last_error, consecutive_failures, paused, first_poll_done, snapshot
    seen     (source, key) → first_seen, last_seen, content_hash, outcome
    outbox   id (queue order), source, item_key, seq, group_id, payload, media,
             status, attempts, next_attempt_at, reason, message_token, ...
    events   id, time, source, item_key, outbox_id, event, detail
    kv       key → value (small service state)

Outbox statuses and the transitions between them (each adds an event)::

    queued ──claim──▶ sending ──mark_posted──▶ posted
      ▲  ▲              │ ├─mark_retry──▶ queued (next_attempt_at)
      │  │              │ ├─mark_failed─▶ failed ──requeue──▶ queued
      │  │              │ └─mark_unknown▶ unknown ─requeue──▶ queued
      │  └──────────────┴── recover_after_crash: sending → unknown (or queued)
      └─ mark_skipped: queued / unknown / failed → skipped

When a message of a split item fails or is skipped, the item's later
messages still waiting are skipped too (``held_by`` names the one that
caused it) and :meth:`Store.requeue` of that message brings them back.
:meth:`Store.pending` never offers a later message before the earlier ones
of its item are posted.

The schema lives in :data:`MIGRATIONS`: step *n* takes ``PRAGMA user_version``
from *n* to *n + 1* in one transaction. Opened with ``read_only=True`` the
file is never written: no migration, no journal-mode change.

Datetimes are stored as ISO-8601 UTC text with microseconds (so text order is
time order) and come back as aware UTC datetimes. ``now`` is always passed in.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from publisher.core.errors import StoreError, TransitionError
from publisher.core.items import RenderedItem
from publisher.core.policy import PostedRecord
from publisher.core.records import (
    STATUSES,
    Event,
    OutboxRow,
    OutboxStatus,
    SeenItem,
    SourceState,
)

BUSY_TIMEOUT_MS = 10_000


class _Keep(Enum):
    KEEP = 0


#: "Leave this column as it is" in :meth:`Store.record_poll`.
KEEP = _Keep.KEEP


# --------------------------------------------------------------------------
# values


def to_text(value: datetime) -> str:
    """An aware datetime as stored: ``2024-03-31T01:00:00.000000Z``."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: pass timezone-aware datetimes")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _opt_text(value: datetime | None) -> str | None:
    return None if value is None else to_text(value)


def from_text(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _opt_dt(value: str | None) -> datetime | None:
    return None if value is None else from_text(value)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _source_state(row: sqlite3.Row) -> SourceState:
    return SourceState(
        name=row["name"],
        url=row["url"],
        etag=row["etag"],
        last_modified=row["last_modified"],
        body_hash=row["body_hash"],
        last_poll=_opt_dt(row["last_poll"]),
        last_success=_opt_dt(row["last_success"]),
        next_poll=_opt_dt(row["next_poll"]),
        last_error=row["last_error"],
        consecutive_failures=row["consecutive_failures"],
        paused=bool(row["paused"]),
        first_poll_done=bool(row["first_poll_done"]),
        snapshot=None if row["snapshot"] is None else json.loads(row["snapshot"]),
    )


def _seen_item(row: sqlite3.Row) -> SeenItem:
    return SeenItem(
        source=row["source"],
        key=row["key"],
        first_seen=from_text(row["first_seen"]),
        last_seen=from_text(row["last_seen"]),
        content_hash=row["content_hash"],
        outcome=row["outcome"],
    )


def _outbox_row(row: sqlite3.Row) -> OutboxRow:
    token = row["message_token"]
    return OutboxRow(
        id=row["id"],
        source=row["source"],
        item_key=row["item_key"],
        seq=row["seq"],
        group_id=row["group_id"],
        payload=json.loads(row["payload"]),
        media=tuple(json.loads(row["media"])),
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=_opt_dt(row["next_attempt_at"]),
        reason=row["reason"],
        message_token=None if token is None else int(token),
        created_at=from_text(row["created_at"]),
        posted_at=_opt_dt(row["posted_at"]),
        finished_at=_opt_dt(row["finished_at"]),
        item_published=_opt_dt(row["item_published"]),
        send_at=_opt_dt(row["send_at"]),
        decisions=tuple((str(c), str(d)) for c, d in json.loads(row["decisions"])),
        files=tuple(json.loads(row["files"])),
        held_by=row["held_by"],
    )


def _event(row: sqlite3.Row) -> Event:
    return Event(
        id=row["id"],
        time=from_text(row["time"]),
        source=row["source"],
        item_key=row["item_key"],
        outbox_id=row["outbox_id"],
        event=row["event"],
        detail=row["detail"],
    )


# --------------------------------------------------------------------------
# schema


def _v1(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE sources (
            name TEXT PRIMARY KEY,
            url TEXT,
            etag TEXT,
            last_modified TEXT,
            body_hash TEXT,
            last_poll TEXT,
            last_success TEXT,
            next_poll TEXT,
            last_error TEXT,
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            paused INTEGER NOT NULL DEFAULT 0,
            first_poll_done INTEGER NOT NULL DEFAULT 0,
            snapshot TEXT
        )
        """
    )
    db.execute(
        """
        CREATE TABLE seen (
            source TEXT NOT NULL REFERENCES sources(name) ON UPDATE CASCADE,
            key TEXT NOT NULL,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            content_hash TEXT NOT NULL DEFAULT '',
            outcome TEXT NOT NULL,
            PRIMARY KEY (source, key)
        )
        """
    )
    db.execute("CREATE INDEX seen_last_seen ON seen (source, last_seen)")
    db.execute(
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            source TEXT NOT NULL REFERENCES sources(name) ON UPDATE CASCADE,
            item_key TEXT NOT NULL,
            seq INTEGER NOT NULL DEFAULT 0,
            group_id INTEGER,
            payload TEXT NOT NULL,
            media TEXT NOT NULL DEFAULT '[]',
            status TEXT NOT NULL CHECK (status IN
                ('queued', 'sending', 'posted', 'failed', 'skipped', 'unknown')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT,
            reason TEXT,
            message_token TEXT,
            created_at TEXT NOT NULL,
            posted_at TEXT,
            finished_at TEXT,
            item_published TEXT,
            send_at TEXT,
            decisions TEXT NOT NULL DEFAULT '[]',
            files TEXT NOT NULL DEFAULT '[]',
            held_by INTEGER REFERENCES outbox(id) ON DELETE SET NULL
        )
        """
    )
    db.execute("CREATE INDEX outbox_status ON outbox (status, next_attempt_at)")
    db.execute("CREATE INDEX outbox_group ON outbox (group_id, seq)")
    db.execute("CREATE INDEX outbox_item ON outbox (item_key, source)")
    db.execute("CREATE INDEX outbox_posted ON outbox (posted_at) WHERE posted_at IS NOT NULL")
    db.execute("CREATE INDEX outbox_held_by ON outbox (held_by) WHERE held_by IS NOT NULL")
    db.execute(
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            time TEXT NOT NULL,
            source TEXT NOT NULL,
            item_key TEXT,
            outbox_id INTEGER REFERENCES outbox(id) ON DELETE SET NULL,
            event TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT ''
        )
        """
    )
    db.execute("CREATE INDEX events_item ON events (item_key, source)")
    db.execute("CREATE INDEX events_time ON events (time)")
    db.execute("CREATE INDEX events_outbox ON events (outbox_id) WHERE outbox_id IS NOT NULL")
    db.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


#: Step n takes the schema from ``user_version`` n to n + 1. Append, never edit.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1,)
SCHEMA_VERSION = len(MIGRATIONS)


def user_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(
    db: sqlite3.Connection,
    migrations: Sequence[Callable[[sqlite3.Connection], None]] = MIGRATIONS,
) -> int:
    """Bring the schema up to ``len(migrations)``, one transaction a step.

    ``db`` must be in autocommit mode (``isolation_level=None``). Returns the
    version reached; raises StoreError if the file is newer than this program.
    """
    target = len(migrations)
    version = user_version(db)
    if version > target:
        raise StoreError(
            f"the database has schema version {version}, newer than this program's "
            f"{target}; upgrade viber-publisher (or restore a backup made before)"
        )
    while version < target:
        db.execute("BEGIN IMMEDIATE")
        try:
            current = user_version(db)  # another process may have migrated meanwhile
            if current == version:
                migrations[version](db)
                db.execute(f"PRAGMA user_version = {version + 1:d}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        version = user_version(db)
    return version


# --------------------------------------------------------------------------
# the store


_SOURCE_COLUMNS = ("etag", "last_modified", "body_hash", "url")


class Store:
    """The service's whole persistent state. Open with :meth:`Store.open`."""

    def __init__(self, db: sqlite3.Connection, path: str, read_only: bool) -> None:
        self._db = db
        self._lock = threading.RLock()
        self.path = path
        self.read_only = read_only

    # ---- lifecycle

    @classmethod
    def open(cls, path: Path | str, *, read_only: bool = False) -> Store:
        """Open (and create or migrate) the database at ``path``; ``":memory:"`` works.

        With ``read_only=True`` the file is opened ``mode=ro`` and never
        written; an absent file or an older schema is a StoreError.
        """
        name = str(path)
        if read_only:
            if name == ":memory:":
                raise StoreError("an in-memory database cannot be opened read-only")
            if not Path(name).exists():
                raise StoreError(
                    f"{name}: no database yet; it is created when the service first runs"
                )
            uri = "file:" + quote(str(Path(name).resolve())) + "?mode=ro"
            db = sqlite3.connect(
                uri, uri=True, isolation_level=None, check_same_thread=False, timeout=10
            )
        else:
            if name != ":memory:":
                Path(name).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(name, isolation_level=None, check_same_thread=False, timeout=10)
        try:
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
            db.execute("PRAGMA foreign_keys = ON")
            if read_only:
                version = user_version(db)
                if version != SCHEMA_VERSION:
                    older = version < SCHEMA_VERSION
                    raise StoreError(
                        f"{name}: schema version {version}, this program uses "
                        f"{SCHEMA_VERSION}; "
                        + (
                            "run the service once to upgrade it"
                            if older
                            else "upgrade viber-publisher"
                        )
                    )
            else:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = FULL")
                migrate(db)
        except sqlite3.DatabaseError as exc:
            db.close()
            raise StoreError(f"{name}: cannot be used as the database ({exc})") from exc
        except BaseException:
            db.close()
            raise
        return cls(db, name, read_only)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        with self._lock:
            return user_version(self._db)

    # ---- plumbing

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it commits, or none of it."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One consistent read."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                self._db.execute("COMMIT")

    @staticmethod
    def _event(
        db: sqlite3.Connection,
        now: datetime,
        source: str,
        item_key: str | None,
        event: str,
        detail: str = "",
        outbox_id: int | None = None,
    ) -> None:
        db.execute(
            "INSERT INTO events (time, source, item_key, outbox_id, event, detail)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (to_text(now), source, item_key, outbox_id, event, detail),
        )

    @staticmethod
    def _ensure_source(db: sqlite3.Connection, name: str) -> None:
        db.execute("INSERT OR IGNORE INTO sources (name) VALUES (?)", (name,))

    # ---- sources

    def get_source(self, name: str) -> SourceState:
        """The source's state; a fresh one (never polled) if it is not known yet."""
        with self._lock:
            row = self._db.execute("SELECT * FROM sources WHERE name = ?", (name,)).fetchone()
        return SourceState(name) if row is None else _source_state(row)

    def sources(self) -> list[SourceState]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM sources ORDER BY name").fetchall()
        return [_source_state(row) for row in rows]

    def record_poll(
        self,
        name: str,
        now: datetime,
        *,
        ok: bool,
        error: str | None = None,
        etag: str | _Keep | None = KEEP,
        last_modified: str | _Keep | None = KEEP,
        body_hash: str | _Keep | None = KEEP,
        url: str | _Keep | None = KEEP,
        next_poll: datetime | _Keep | None = KEEP,
        snapshot: Any = KEEP,
        first_poll_done: bool | _Keep = KEEP,
    ) -> SourceState:
        """Record a poll. ``ok`` clears the error and the failure count and
        (unless given) marks the first poll done; a failure counts one more.
        Columns passed as :data:`KEEP` (the default) stay as they are; None clears."""
        sets = ["last_poll = ?"]
        values: list[Any] = [to_text(now)]
        if ok:
            sets += ["last_success = ?", "last_error = NULL", "consecutive_failures = 0"]
            values.append(to_text(now))
            if first_poll_done is KEEP:
                first_poll_done = True
        else:
            sets += ["last_error = ?", "consecutive_failures = consecutive_failures + 1"]
            values.append(error or "unknown error")
        given = {"etag": etag, "last_modified": last_modified, "body_hash": body_hash, "url": url}
        for column in _SOURCE_COLUMNS:
            value = given[column]
            if value is not KEEP:
                sets.append(f"{column} = ?")
                values.append(value)
        if next_poll is not KEEP:
            sets.append("next_poll = ?")
            values.append(_opt_text(next_poll))
        if snapshot is not KEEP:
            sets.append("snapshot = ?")
            values.append(None if snapshot is None else _json(snapshot))
        if first_poll_done is not KEEP:
            sets.append("first_poll_done = ?")
            values.append(int(bool(first_poll_done)))
        with self._tx() as db:
            self._ensure_source(db, name)
            db.execute(f"UPDATE sources SET {', '.join(sets)} WHERE name = ?", (*values, name))
            row = db.execute("SELECT * FROM sources WHERE name = ?", (name,)).fetchone()
        return _source_state(row)

    def set_paused(self, name: str, paused: bool, now: datetime, reason: str = "") -> None:
        """Pause or resume a source (with an event naming why)."""
        with self._tx() as db:
            self._ensure_source(db, name)
            db.execute("UPDATE sources SET paused = ? WHERE name = ?", (int(paused), name))
            self._event(db, now, name, None, "paused" if paused else "resumed", reason)

    # ---- seen items

    def seen(self, source: str, key: str) -> SeenItem | None:
        """The item as last seen, or None; compare ``content_hash`` to notice edits."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM seen WHERE source = ? AND key = ?", (source, key)
            ).fetchone()
        return None if row is None else _seen_item(row)

    @staticmethod
    def _upsert_seen(
        db: sqlite3.Connection,
        source: str,
        key: str,
        content_hash: str,
        now: datetime,
        outcome: str,
    ) -> SeenItem | None:
        before = db.execute(
            "SELECT * FROM seen WHERE source = ? AND key = ?", (source, key)
        ).fetchone()
        db.execute(
            "INSERT INTO seen (source, key, first_seen, last_seen, content_hash, outcome)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (source, key) DO UPDATE SET last_seen = excluded.last_seen,"
            " content_hash = excluded.content_hash, outcome = excluded.outcome",
            (source, key, to_text(now), to_text(now), content_hash, outcome),
        )
        return None if before is None else _seen_item(before)

    def mark_seen(
        self,
        source: str,
        key: str,
        content_hash: str,
        now: datetime,
        outcome: str,
        detail: str = "",
    ) -> None:
        """Remember an item that is not queued (filtered, backfill-skipped,
        duplicate, refused...), with an event ``outcome: detail``."""
        with self._tx() as db:
            self._ensure_source(db, source)
            self._upsert_seen(db, source, key, content_hash, now, outcome)
            self._event(db, now, source, key, outcome, detail)

    def touch_seen(self, source: str, keys: Iterable[str], now: datetime) -> int:
        """Items still offered by the source: keep remembering them from now."""
        with self._tx() as db:
            cursor = db.executemany(
                "UPDATE seen SET last_seen = ? WHERE source = ? AND key = ? AND last_seen < ?",
                ((to_text(now), source, key, to_text(now)) for key in keys),
            )
            return cursor.rowcount

    def forget_older_than(self, source: str, cutoff: datetime) -> int:
        """Forget keys last seen before ``cutoff`` (the source's ``remember``)."""
        with self._tx() as db:
            cursor = db.execute(
                "DELETE FROM seen WHERE source = ? AND last_seen < ?", (source, to_text(cutoff))
            )
            return cursor.rowcount

    # ---- queueing

    def queue_item(
        self, rendered: RenderedItem, now: datetime, outcome: str = "queued"
    ) -> list[int]:
        """Mark the item seen, queue one outbox row per message and write its
        events, all in one transaction. Returns the new ids in order.

        A refused item (or one without messages) is only marked seen, with
        outcome ``refused``, and gives ``[]``.
        """
        item = rendered.item
        if rendered.refused is not None or not rendered.messages:
            reason = rendered.refused or "nothing to post"
            self.mark_seen(item.source, item.key, item.content_hash, now, "refused", reason)
            return []
        decisions = [[d.code, d.detail] for d in rendered.decisions]
        files = [str(f) for f in item.files]
        ids: list[int] = []
        with self._tx() as db:
            self._ensure_source(db, item.source)
            before = self._upsert_seen(db, item.source, item.key, item.content_hash, now, outcome)
            if before is not None and before.content_hash != item.content_hash:
                seen_detail = "content changed since first seen"
            elif before is not None:
                seen_detail = "seen again"
            else:
                seen_detail = item.title[:200]
            self._event(db, now, item.source, item.key, "seen", seen_detail)
            for decision in rendered.decisions:
                self._event(db, now, item.source, item.key, decision.code, decision.detail)
            group_id: int | None = None
            for seq, message in enumerate(rendered.messages):
                payload = {
                    k: v for k, v in message.payload.items() if k not in ("auth_token", "from")
                }
                cursor = db.execute(
                    "INSERT INTO outbox (source, item_key, seq, group_id, payload, media, status,"
                    " created_at, item_published, send_at, decisions, files)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
                    (
                        item.source,
                        item.key,
                        seq,
                        group_id,
                        _json(payload),
                        _json([m.name for m in message.media]),
                        to_text(now),
                        _opt_text(item.published),
                        _opt_text(item.send_at),
                        _json(decisions),
                        _json(files),
                    ),
                )
                row_id = cursor.lastrowid
                assert row_id is not None
                if group_id is None:
                    group_id = row_id
                    db.execute("UPDATE outbox SET group_id = ? WHERE id = ?", (row_id, row_id))
                ids.append(row_id)
            kinds = ", ".join(m.type or "?" for m in rendered.messages)
            numbers = ", ".join(f"#{i}" for i in ids)
            self._event(
                db, now, item.source, item.key, outcome, f"{numbers} ({kinds})", outbox_id=ids[0]
            )
        return ids

    # ---- outbox transitions

    @staticmethod
    def _fetch(db: sqlite3.Connection, outbox_id: int) -> OutboxRow:
        row = db.execute("SELECT * FROM outbox WHERE id = ?", (outbox_id,)).fetchone()
        if row is None:
            raise StoreError(f"no post #{outbox_id}; `status` lists the posts and their ids")
        return _outbox_row(row)

    @staticmethod
    def _check(row: OutboxRow, allowed: tuple[str, ...], action: str) -> None:
        if row.status not in allowed:
            raise TransitionError(
                f"post #{row.id} is {row.status}; only {' or '.join(allowed)} posts can be {action}"
            )

    def _hold_rest(
        self, db: sqlite3.Connection, row: OutboxRow, now: datetime, why: str
    ) -> list[int]:
        """Skip the item's later messages that are still waiting."""
        later = db.execute(
            "SELECT id FROM outbox WHERE group_id = ? AND seq > ?"
            " AND status IN ('queued', 'unknown') ORDER BY seq",
            (row.group_id, row.seq),
        ).fetchall()
        ids = [r["id"] for r in later]
        reason = f"not sent: message #{row.id} of this item was {why}"
        for later_id in ids:
            db.execute(
                "UPDATE outbox SET status = 'skipped', reason = ?, held_by = ?,"
                " finished_at = ?, next_attempt_at = NULL WHERE id = ?",
                (reason, row.id, to_text(now), later_id),
            )
            self._event(db, now, row.source, row.item_key, "skipped", reason, later_id)
        return ids

    def claim(self, outbox_id: int, now: datetime) -> bool:
        """queued → sending, one more attempt. False if it was not queued."""
        with self._tx() as db:
            row = self._fetch(db, outbox_id)
            if row.status != "queued":
                return False
            db.execute(
                "UPDATE outbox SET status = 'sending', attempts = attempts + 1,"
                " next_attempt_at = NULL WHERE id = ? AND status = 'queued'",
                (outbox_id,),
            )
            detail = f"attempt {row.attempts + 1}"
            self._event(db, now, row.source, row.item_key, "sending", detail, outbox_id)
        return True

    def mark_posted(self, outbox_id: int, token: int | str | None, now: datetime) -> None:
        """sending (or unknown, confirmed later) → posted, with Viber's message_token."""
        exact = None if token is None else int(token)
        with self._tx() as db:
            row = self._fetch(db, outbox_id)
            self._check(row, ("sending", "unknown"), "marked posted")
            db.execute(
                "UPDATE outbox SET status = 'posted', message_token = ?, posted_at = ?,"
                " finished_at = ?, reason = NULL, next_attempt_at = NULL WHERE id = ?",
                (None if exact is None else str(exact), to_text(now), to_text(now), outbox_id),
            )
            detail = f"token={exact}" if exact is not None else "confirmed without a token"
            self._event(db, now, row.source, row.item_key, "posted", detail, outbox_id)

    def mark_failed(self, outbox_id: int, reason: str, now: datetime) -> list[int]:
        """→ failed (from sending, queued or unknown). The item's later
        messages still waiting are skipped; their ids are returned."""
        with self._tx() as db:
            row = self._fetch(db, outbox_id)
            self._check(row, ("sending", "queued", "unknown"), "marked failed")
            db.execute(
                "UPDATE outbox SET status = 'failed', reason = ?, finished_at = ?,"
                " next_attempt_at = NULL WHERE id = ?",
                (reason, to_text(now), outbox_id),
            )
            self._event(db, now, row.source, row.item_key, "failed", reason, outbox_id)
            return self._hold_rest(db, row, now, f"failed ({reason})")

    def mark_retry(
        self,
        outbox_id: int,
        reason: str,
        next_attempt_at: datetime,
        now: datetime,
        *,
        refund: bool = False,
    ) -> None:
        """sending → queued, not to be tried before ``next_attempt_at``.
        ``refund``: the attempt does not count (it failed for a reason
        outside the post: token refused, webhook not set)."""
        with self._tx() as db:
            row = self._fetch(db, outbox_id)
            self._check(row, ("sending",), "retried")
            db.execute(
                "UPDATE outbox SET status = 'queued', reason = ?, next_attempt_at = ?,"
                " attempts = max(attempts - ?, 0) WHERE id = ?",
                (reason, to_text(next_attempt_at), int(refund), outbox_id),
            )
            detail = f"{reason}; next attempt after {to_text(next_attempt_at)}"
            self._event(db, now, row.source, row.item_key, "retry", detail, outbox_id)

    def mark_unknown(self, outbox_id: int, reason: str, now: datetime) -> None:
        """sending → unknown: it may or may not be out; an operator decides."""
        with self._tx() as db:
            row = self._fetch(db, outbox_id)
            self._check(row, ("sending",), "marked unknown")
            db.execute(
                "UPDATE outbox SET status = 'unknown', reason = ? WHERE id = ?",
                (reason, outbox_id),
            )
            self._event(db, now, row.source, row.item_key, "unknown", reason, outbox_id)

    def mark_skipped(self, outbox_id: int, reason: str, now: datetime) -> list[int]:
        """queued / unknown / failed → skipped (expired, or the operator's
        ``skip``). The item's later messages are skipped too; their ids are returned."""
        with self._tx() as db:
            row = self._fetch(db, outbox_id)
            self._check(row, ("queued", "unknown", "failed"), "skipped")
            db.execute(
                "UPDATE outbox SET status = 'skipped', reason = ?, finished_at = ?,"
                " next_attempt_at = NULL WHERE id = ?",
                (reason, to_text(now), outbox_id),
            )
            self._event(db, now, row.source, row.item_key, "skipped", reason, outbox_id)
            return self._hold_rest(db, row, now, f"skipped ({reason})")

    def requeue(self, outbox_id: int, now: datetime, detail: str = "by the operator") -> list[int]:
        """unknown / failed → queued (the ``retry ID`` command), attempts from
        zero; the item's messages skipped because of it come back too.
        Returns every id queued again."""
        with self._tx() as db:
            row = self._fetch(db, outbox_id)
            self._check(row, ("unknown", "failed"), "retried")
            held = [
                r["id"]
                for r in db.execute(
                    "SELECT id FROM outbox WHERE held_by = ? AND status = 'skipped' ORDER BY id",
                    (outbox_id,),
                ).fetchall()
            ]
            for requeued in (outbox_id, *held):
                db.execute(
                    "UPDATE outbox SET status = 'queued', attempts = 0, reason = NULL,"
                    " next_attempt_at = NULL, finished_at = NULL, held_by = NULL WHERE id = ?",
                    (requeued,),
                )
                self._event(db, now, row.source, row.item_key, "retried", detail, requeued)
        return [outbox_id, *held]

    def recover_after_crash(
        self, now: datetime, on_unknown: Literal["hold", "retry"] = "hold"
    ) -> list[int]:
        """At start-up: every ``sending`` row was interrupted. It becomes
        ``unknown`` (hold) or ``queued`` again (retry). Returns their ids."""
        reason = "interrupted while sending: the post may or may not be out"
        with self._tx() as db:
            rows = [
                _outbox_row(r)
                for r in db.execute(
                    "SELECT * FROM outbox WHERE status = 'sending' ORDER BY id"
                ).fetchall()
            ]
            for row in rows:
                if on_unknown == "retry":
                    db.execute(
                        "UPDATE outbox SET status = 'queued', reason = ? WHERE id = ?",
                        (reason, row.id),
                    )
                    event = "retried"
                else:
                    db.execute(
                        "UPDATE outbox SET status = 'unknown', reason = ? WHERE id = ?",
                        (reason, row.id),
                    )
                    event = "unknown"
                self._event(db, now, row.source, row.item_key, event, reason, row.id)
        return [row.id for row in rows]

    # ---- queries

    def get(self, outbox_id: int) -> OutboxRow | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM outbox WHERE id = ?", (outbox_id,)).fetchone()
        return None if row is None else _outbox_row(row)

    def item_rows(self, group_id: int) -> list[OutboxRow]:
        """All messages of one queued item, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM outbox WHERE group_id = ? ORDER BY seq", (group_id,)
            ).fetchall()
        return [_outbox_row(r) for r in rows]

    def rows_for_item(self, source: str, key: str) -> list[OutboxRow]:
        """Every message ever queued for item ``key`` of ``source`` (an edited
        item reposted has more than one group), in queue order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM outbox WHERE item_key = ? AND source = ? ORDER BY id",
                (key, source),
            ).fetchall()
        return [_outbox_row(r) for r in rows]

    def add_event(
        self, source: str, key: str | None, event: str, detail: str, now: datetime
    ) -> None:
        """Add a line to an item's story (``status --item KEY``)."""
        with self._tx() as db:
            self._event(db, now, source, key, event, detail)

    def pending(self, now: datetime) -> list[OutboxRow]:
        """Queued rows that may be tried now, in queue order; a later message
        only once every earlier one of its item is posted."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM outbox AS o WHERE status = 'queued'"
                " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
                " AND NOT EXISTS (SELECT 1 FROM outbox AS p WHERE p.group_id = o.group_id"
                "   AND p.seq < o.seq AND p.status != 'posted')"
                " ORDER BY id",
                (to_text(now),),
            ).fetchall()
        return [_outbox_row(r) for r in rows]

    def next_attempt(self) -> datetime | None:
        """The earliest ``next_attempt_at`` of a queued row in back-off."""
        with self._lock:
            row = self._db.execute(
                "SELECT min(next_attempt_at) FROM outbox WHERE status = 'queued'"
            ).fetchone()
        return _opt_dt(row[0])

    def outbox(
        self,
        status: OutboxStatus | None = None,
        limit: int = 100,
        *,
        source: str | None = None,
        newest_first: bool = True,
    ) -> list[OutboxRow]:
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
        order = "DESC" if newest_first else "ASC"
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM outbox WHERE (? IS NULL OR status = ?)"
                f" AND (? IS NULL OR source = ?) ORDER BY id {order} LIMIT ?",
                (status, status, source, source, limit),
            ).fetchall()
        return [_outbox_row(r) for r in rows]

    def recent_posts(self, limit: int = 20) -> list[OutboxRow]:
        """The last posted messages, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM outbox WHERE status = 'posted'"
                " ORDER BY posted_at DESC, id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_outbox_row(r) for r in rows]

    def history_since(self, since: datetime) -> list[PostedRecord]:
        """What was posted at or after ``since``, oldest first (for the policy)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT source, posted_at, seq FROM outbox"
                " WHERE status = 'posted' AND posted_at >= ? ORDER BY posted_at, id",
                (to_text(since),),
            ).fetchall()
        return [PostedRecord(r["source"], from_text(r["posted_at"]), r["seq"]) for r in rows]

    def counts_by_source(self) -> dict[str, dict[str, int]]:
        """``{source: {status: count, ..., "seen": count}}``, every status present."""
        result: dict[str, dict[str, int]] = {}

        def entry(source: str) -> dict[str, int]:
            return result.setdefault(source, dict.fromkeys((*STATUSES, "seen"), 0))

        with self._read() as db:
            for name in db.execute("SELECT name FROM sources ORDER BY name").fetchall():
                entry(name[0])
            for row in db.execute(
                "SELECT source, status, count(*) FROM outbox GROUP BY source, status"
            ).fetchall():
                entry(row[0])[row[1]] = row[2]
            for row in db.execute("SELECT source, count(*) FROM seen GROUP BY source").fetchall():
                entry(row[0])["seen"] = row[1]
        return result

    def item_story(self, source: str | None, key: str) -> list[Event]:
        """Everything that happened to an item, in order (``status --item KEY``)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM events WHERE item_key = ? AND (? IS NULL OR source = ?) ORDER BY id",
                (key, source, source),
            ).fetchall()
        return [_event(r) for r in rows]

    def events(self, limit: int = 50, source: str | None = None) -> list[Event]:
        """The latest events, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM events WHERE (? IS NULL OR source = ?) ORDER BY id DESC LIMIT ?",
                (source, source, limit),
            ).fetchall()
        return [_event(r) for r in rows]

    def media_in_use(self, finished_after: datetime) -> set[str]:
        """Media names referenced by rows not finished, or finished at or
        after ``finished_after`` (now minus the media retention)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT media FROM outbox WHERE media != '[]'"
                " AND (finished_at IS NULL OR finished_at >= ?)",
                (to_text(finished_after),),
            ).fetchall()
        names: set[str] = set()
        for row in rows:
            names.update(json.loads(row[0]))
        return names

    # ---- housekeeping

    def prune(self, before: datetime) -> int:
        """Delete finished outbox rows and events older than ``before``.
        (Keep ``before`` well past the policy's history horizon.)"""
        with self._tx() as db:
            posts = db.execute(
                "DELETE FROM outbox WHERE finished_at < ? AND status IN ('posted', 'skipped')"
                " AND NOT EXISTS (SELECT 1 FROM outbox AS o WHERE o.group_id = outbox.group_id"
                "   AND o.status NOT IN ('posted', 'skipped'))",
                (to_text(before),),
            ).rowcount
            events = db.execute("DELETE FROM events WHERE time < ?", (to_text(before),)).rowcount
        return posts + events

    # ---- small service state

    def kv_get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def kv_set(self, key: str, value: str | None) -> None:
        """Set a value; None deletes it."""
        with self._tx() as db:
            if value is None:
                db.execute("DELETE FROM kv WHERE key = ?", (key,))
            else:
                db.execute(
                    "INSERT INTO kv (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    def kv_get_time(self, key: str) -> datetime | None:
        value = self.kv_get(key)
        return None if value is None else from_text(value)

    def kv_set_time(self, key: str, value: datetime | None) -> None:
        self.kv_set(key, _opt_text(value))
