"""The schema, and how a file is brought up to it.

Step *n* of :data:`MIGRATIONS` takes ``PRAGMA user_version`` from *n* to
*n + 1*, in one transaction; a file newer than this program is refused.
Append steps, never edit one that shipped.

Tables::

    sources   name → url, validators (etag, last_modified, body_hash), poll times,
              last_error, consecutive_failures, paused, first_poll_done, snapshot
    seen      (source, key) → first_seen, last_seen, content_hash, outcome
    outbox    id (queue order), channel, source, item_key, seq, group_id, payload,
              media, status, attempts, next_attempt_at, reason, message_token, ...
    events    id, time, source, item_key, outbox_id, event, detail
    channels  name → stopped_reason, cooldown_until, webhook_url, last_post_at
    kv        key → value (version 1 kept the channel's state here; now unused)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from publisher.adapters.sql.versions import refuse_newer


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


#: The kv keys version 1 kept the one channel's state under, by column.
_V1_KEYS = {
    "stopped_reason": "posting_stopped",
    "cooldown_until": "cooldown_until",
    "webhook_url": "webhook_url",
    "last_post_at": "last_post_at",
}


def _v2(db: sqlite3.Connection) -> None:
    """The channel's state gets a table of its own, a row per channel (the
    one channel so far is ``main``); the kv keys move into it."""
    db.execute(
        """
        CREATE TABLE channels (
            name TEXT PRIMARY KEY,
            stopped_reason TEXT,
            cooldown_until TEXT,
            webhook_url TEXT,
            last_post_at TEXT
        )
        """
    )
    old = dict(db.execute("SELECT key, value FROM kv").fetchall())
    values = [old.get(key) for key in _V1_KEYS.values()]
    if any(value is not None for value in values):
        db.execute(
            "INSERT INTO channels (name, stopped_reason, cooldown_until, webhook_url,"
            " last_post_at) VALUES ('main', ?, ?, ?, ?)",
            values,
        )
    db.executemany(
        "DELETE FROM kv WHERE key = ?", [(key,) for key in (*_V1_KEYS.values(), "readyz_probe")]
    )


def _v3(db: sqlite3.Connection) -> None:
    """Several channels: every outbox row belongs to one. The rows of the
    single-channel version belong to ``main`` (see :meth:`Store.adopt`)."""
    db.execute("ALTER TABLE outbox ADD COLUMN channel TEXT NOT NULL DEFAULT 'main'")
    db.execute("CREATE INDEX outbox_channel ON outbox (channel, status, id)")


def _v4(db: sqlite3.Connection) -> None:
    """Indexes for "what goes next" (:meth:`SQLiteOutbox.heads`): each
    source's queued first messages in the policy's order, their ``send_at``,
    and the queued later messages, so a decision costs the same at 10,000
    queued as at 100."""
    db.execute(
        "CREATE INDEX outbox_heads ON outbox"
        " (channel, source, coalesce(item_published, created_at), created_at, id)"
        " WHERE status = 'queued' AND seq = 0"
    )
    db.execute(
        "CREATE INDEX outbox_heads_send_at ON outbox (channel, source, send_at)"
        " WHERE status = 'queued' AND seq = 0 AND send_at IS NOT NULL"
    )
    db.execute(
        "CREATE INDEX outbox_rest ON outbox (channel, id) WHERE status = 'queued' AND seq > 0"
    )


def _v5(db: sqlite3.Connection) -> None:
    """Whom each channel's posts go out as (its superadmin, from the last
    account check), for ``status``."""
    db.execute("ALTER TABLE channels ADD COLUMN sender TEXT")


#: Step n takes the schema from ``user_version`` n to n + 1. Append, never edit.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1, _v2, _v3, _v4, _v5)
SCHEMA_VERSION = len(MIGRATIONS)


def user_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(
    db: sqlite3.Connection,
    migrations: Sequence[Callable[[sqlite3.Connection], None]] = MIGRATIONS,
) -> int:
    """Bring the schema up to ``len(migrations)``, one transaction a step; a
    new file (version 0) in one transaction for all of them, so a reader
    (``status``) finds it empty or whole, never half set up.

    ``db`` must be in autocommit mode (``isolation_level=None``). Returns the
    version reached; raises StoreError if the file is newer than this program.
    """
    target = len(migrations)
    version = user_version(db)
    refuse_newer(version, target)
    while version < target:
        db.execute("BEGIN IMMEDIATE")
        try:
            current = user_version(db)  # another process may have migrated meanwhile
            if current == version:
                last = target if version == 0 else version + 1
                for step in migrations[version:last]:
                    step(db)
                db.execute(f"PRAGMA user_version = {last:d}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        version = user_version(db)
    return version
