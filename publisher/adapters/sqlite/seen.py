"""Seen items: what each source offered, so nothing is posted twice.

Forgotten only by the source's ``remember`` (:meth:`forget_older_than`),
never by history pruning.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime

from publisher.adapters.sqlite import rows
from publisher.adapters.sqlite.db import Database
from publisher.adapters.sqlite.history import write_event
from publisher.adapters.sqlite.rows import to_text
from publisher.adapters.sqlite.sources import ensure_source
from publisher.core.records import SeenItem

#: Keys asked for in one statement by :meth:`SQLiteSeenItems.seen_many`
#: (SQLite before 3.32 takes at most 999 parameters).
_KEYS_PER_QUERY = 500


def upsert_seen(
    db: sqlite3.Connection,
    source: str,
    key: str,
    content_hash: str,
    now: datetime,
    outcome: str,
) -> SeenItem | None:
    """Remember the item as seen now; returns how it was seen before, if it was."""
    before = db.execute("SELECT * FROM seen WHERE source = ? AND key = ?", (source, key)).fetchone()
    db.execute(
        "INSERT INTO seen (source, key, first_seen, last_seen, content_hash, outcome)"
        " VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (source, key) DO UPDATE SET last_seen = excluded.last_seen,"
        " content_hash = excluded.content_hash, outcome = excluded.outcome",
        (source, key, to_text(now), to_text(now), content_hash, outcome),
    )
    return None if before is None else rows.seen_item(before)


def mark_seen_in(
    db: sqlite3.Connection,
    source: str,
    key: str,
    content_hash: str,
    now: datetime,
    outcome: str,
    detail: str = "",
) -> None:
    ensure_source(db, source)
    upsert_seen(db, source, key, content_hash, now, outcome)
    write_event(db, now, source, key, outcome, detail)


class SQLiteSeenItems:
    """:class:`publisher.ports.SeenItems` on the ``seen`` table."""

    _db: Database

    def seen(self, source: str, key: str) -> SeenItem | None:
        """The item as last seen, or None; compare ``content_hash`` to notice edits."""
        with self._db.read() as db:
            row = db.execute(
                "SELECT * FROM seen WHERE source = ? AND key = ?", (source, key)
            ).fetchone()
        return None if row is None else rows.seen_item(row)

    def seen_many(self, source: str, keys: Iterable[str]) -> dict[str, SeenItem]:
        """The items among ``keys`` seen before, by key (one read; a key
        never seen, or forgotten, is absent)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, SeenItem] = {}
        with self._db.read() as db:
            for start in range(0, len(wanted), _KEYS_PER_QUERY):
                chunk = wanted[start : start + _KEYS_PER_QUERY]
                marks = ", ".join("?" * len(chunk))
                for row in db.execute(
                    f"SELECT * FROM seen WHERE source = ? AND key IN ({marks})",
                    (source, *chunk),
                ):
                    item = rows.seen_item(row)
                    found[item.key] = item
        return found

    def mark_seen_many(
        self, source: str, items: Sequence[tuple[str, str, str, str]], now: datetime
    ) -> None:
        """:meth:`mark_seen` for several items of one source in one write:
        each ``(key, content_hash, outcome, detail)``, with its event, in order."""
        if not items:
            return
        when = to_text(now)
        with self._db.write() as db:
            ensure_source(db, source)
            db.executemany(
                "INSERT INTO seen (source, key, first_seen, last_seen, content_hash, outcome)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (source, key) DO UPDATE SET last_seen = excluded.last_seen,"
                " content_hash = excluded.content_hash, outcome = excluded.outcome",
                [(source, key, when, when, digest, outcome) for key, digest, outcome, _ in items],
            )
            db.executemany(
                "INSERT INTO events (time, source, item_key, outbox_id, event, detail)"
                " VALUES (?, ?, ?, NULL, ?, ?)",
                [(when, source, key, outcome, detail) for key, _, outcome, detail in items],
            )

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
        with self._db.write() as db:
            mark_seen_in(db, source, key, content_hash, now, outcome, detail)

    def touch_seen(self, source: str, keys: Iterable[str], now: datetime) -> int:
        """Items still offered by the source: keep remembering them from now."""
        with self._db.write() as db:
            cursor = db.executemany(
                "UPDATE seen SET last_seen = ? WHERE source = ? AND key = ? AND last_seen < ?",
                ((to_text(now), source, key, to_text(now)) for key in keys),
            )
            return cursor.rowcount

    def forget_older_than(self, source: str, cutoff: datetime) -> int:
        """Forget keys last seen before ``cutoff`` (the source's ``remember``)."""
        with self._db.write() as db:
            cursor = db.execute(
                "DELETE FROM seen WHERE source = ? AND last_seen < ?", (source, to_text(cutoff))
            )
            return cursor.rowcount
