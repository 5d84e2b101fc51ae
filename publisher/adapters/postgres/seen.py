"""Seen items: what each source offered, so nothing is posted twice.

Forgotten only by the source's ``remember`` (:meth:`forget_older_than`),
never by history pruning.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from publisher.adapters.postgres import rows
from publisher.adapters.postgres.db import Database
from publisher.adapters.postgres.history import write_event
from publisher.adapters.postgres.rows import Conn, ts
from publisher.adapters.postgres.sources import ensure_source
from publisher.core.records import SeenItem


def upsert_seen(
    db: Conn, source: str, key: str, content_hash: str, now: datetime, outcome: str
) -> SeenItem | None:
    """Remember the item as seen now; returns how it was seen before, if it was."""
    before = db.execute(
        "SELECT * FROM seen WHERE source = %s AND key = %s FOR UPDATE", (source, key)
    ).fetchone()
    db.execute(
        "INSERT INTO seen (source, key, first_seen, last_seen, content_hash, outcome)"
        " VALUES (%(source)s, %(key)s, %(now)s, %(now)s, %(hash)s, %(outcome)s)"
        " ON CONFLICT (source, key) DO UPDATE SET last_seen = excluded.last_seen,"
        " content_hash = excluded.content_hash, outcome = excluded.outcome",
        {"source": source, "key": key, "now": ts(now), "hash": content_hash, "outcome": outcome},
    )
    return None if before is None else rows.seen_item(before)


def mark_seen_in(
    db: Conn,
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


class PostgresSeenItems:
    """:class:`publisher.ports.SeenItems` on the ``seen`` table."""

    _db: Database

    def seen(self, source: str, key: str) -> SeenItem | None:
        with self._db.read() as db:
            row = db.execute(
                "SELECT * FROM seen WHERE source = %s AND key = %s", (source, key)
            ).fetchone()
        return None if row is None else rows.seen_item(row)

    def seen_many(self, source: str, keys: Iterable[str]) -> dict[str, SeenItem]:
        """The items among ``keys`` seen before, by key (one query; a key
        never seen, or forgotten, is absent)."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        with self._db.read() as db:
            found = db.execute(
                "SELECT * FROM seen WHERE source = %s AND key = ANY(%s)", (source, wanted)
            ).fetchall()
        return {item.key: item for item in map(rows.seen_item, found)}

    def mark_seen_many(
        self, source: str, items: Sequence[tuple[str, str, str, str]], now: datetime
    ) -> None:
        """:meth:`mark_seen` for several items of one source in one write:
        each ``(key, content_hash, outcome, detail)``, with its event, in order."""
        if not items:
            return
        when = ts(now)
        with self._db.write() as db, db.cursor() as cursor:
            ensure_source(db, source)
            cursor.executemany(
                "INSERT INTO seen (source, key, first_seen, last_seen, content_hash, outcome)"
                " VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (source, key) DO UPDATE SET last_seen = excluded.last_seen,"
                " content_hash = excluded.content_hash, outcome = excluded.outcome",
                [(source, key, when, when, digest, outcome) for key, digest, outcome, _ in items],
            )
            cursor.executemany(
                "INSERT INTO events (time, source, item_key, outbox_id, event, detail)"
                " VALUES (%s, %s, %s, NULL, %s, %s)",
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
        with self._db.write() as db:
            mark_seen_in(db, source, key, content_hash, now, outcome, detail)

    def touch_seen(self, source: str, keys: Iterable[str], now: datetime) -> int:
        """Items still offered by the source: keep remembering them from now."""
        with self._db.write() as db:
            return db.execute(
                "UPDATE seen SET last_seen = %(now)s WHERE source = %(source)s"
                " AND key = ANY(%(keys)s) AND last_seen < %(now)s",
                {"now": ts(now), "source": source, "keys": list(keys)},
            ).rowcount

    def forget_older_than(self, source: str, cutoff: datetime) -> int:
        with self._db.write() as db:
            return db.execute(
                "DELETE FROM seen WHERE source = %s AND last_seen < %s", (source, ts(cutoff))
            ).rowcount
