"""Seen items: what each source offered, so nothing is posted twice.

Forgotten only by the source's ``remember`` (:meth:`SQLSeenItems.forget_older_than`),
never by history pruning.

:func:`upsert_seen` reads the item's row with the dialect's row lock
(PostgreSQL's ``FOR UPDATE``), so two processes seeing one item at once
learn, one after the other, how it was seen before. Many keys are asked
for with the dialect's :meth:`~publisher.adapters.sql.dialect.Dialect.one_of`,
at most :data:`KEYS_PER_QUERY` a statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, ClassVar

from publisher.adapters.sql import rows
from publisher.adapters.sql.dialect import Connection, Database, Dialect
from publisher.adapters.sql.history import write_event
from publisher.adapters.sql.sources import ensure_source
from publisher.core.records import SeenItem

#: Keys in one statement (SQLite before 3.32 takes at most 999 parameters).
KEYS_PER_QUERY = 500
#: The seen table's primary key (source, key) in SQLite, named for its
#: planner: given ``last_seen < ?`` it would rather scan the source's
#: ``seen_last_seen`` index (7x slower for 50 keys of a source of 20,000).
_SQLITE_PRIMARY_KEY = "sqlite_autoindex_seen_1"

_UPSERT = (
    "INSERT INTO seen (source, key, first_seen, last_seen, content_hash, outcome)"
    " VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (source, key) DO UPDATE SET last_seen = excluded.last_seen,"
    " content_hash = excluded.content_hash, outcome = excluded.outcome"
)


def upsert_seen(
    d: Dialect,
    db: Connection,
    source: str,
    key: str,
    content_hash: str,
    now: datetime,
    outcome: str,
) -> SeenItem | None:
    """Remember the item as seen now; returns how it was seen before, if it was."""
    before = d.execute(
        db, f"SELECT * FROM seen WHERE source = ? AND key = ?{d.for_update}", (source, key)
    ).fetchone()
    when = d.ts(now)
    d.execute(db, _UPSERT, (source, key, when, when, content_hash, outcome))
    return None if before is None else rows.seen_item(d, before)


def mark_seen_in(
    d: Dialect,
    db: Connection,
    source: str,
    key: str,
    content_hash: str,
    now: datetime,
    outcome: str,
    detail: str = "",
) -> None:
    """Remember an item that is not queued, with an event ``outcome: detail``,
    inside the caller's transaction."""
    ensure_source(d, db, source)
    upsert_seen(d, db, source, key, content_hash, now, outcome)
    write_event(d, db, now, source, key, outcome, detail)


def _chunks(d: Dialect, keys: Iterable[str]) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """The distinct keys, :data:`KEYS_PER_QUERY` at a time: ``key`` tested
    against them, and its parameters."""
    wanted = list(dict.fromkeys(keys))
    for start in range(0, len(wanted), KEYS_PER_QUERY):
        test, params = d.one_of(wanted[start : start + KEYS_PER_QUERY])
        yield f"key {test}", params


class SQLSeenItems:
    """:class:`publisher.ports.SeenItems` on the ``seen`` table."""

    _db: Database
    _dialect: ClassVar[Dialect]

    def seen(self, source: str, key: str) -> SeenItem | None:
        """The item as last seen, or None; compare ``content_hash`` to notice edits."""
        d = self._dialect
        with self._db.read() as db:
            row = d.execute(
                db, "SELECT * FROM seen WHERE source = ? AND key = ?", (source, key)
            ).fetchone()
        return None if row is None else rows.seen_item(d, row)

    def seen_many(self, source: str, keys: Iterable[str]) -> dict[str, SeenItem]:
        """The items among ``keys`` seen before, by key (one read; a key
        never seen, or forgotten, is absent)."""
        d = self._dialect
        found: dict[str, SeenItem] = {}
        with self._db.read() as db:
            for test, params in _chunks(d, keys):
                query = f"SELECT * FROM seen WHERE source = ? AND {test}"
                for row in d.execute(db, query, (source, *params)).fetchall():
                    item = rows.seen_item(d, row)
                    found[item.key] = item
        return found

    def mark_seen_many(
        self, source: str, items: Sequence[tuple[str, str, str, str]], now: datetime
    ) -> None:
        """:meth:`mark_seen` for several items of one source in one write:
        each ``(key, content_hash, outcome, detail)``, with its event, in order."""
        if not items:
            return
        d = self._dialect
        when = d.ts(now)
        with self._db.write() as db:
            ensure_source(d, db, source)
            d.executemany(
                db,
                _UPSERT,
                [(source, key, when, when, digest, outcome) for key, digest, outcome, _ in items],
            )
            d.executemany(
                db,
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
            mark_seen_in(self._dialect, db, source, key, content_hash, now, outcome, detail)

    def rehash_seen(self, source: str, hashes: Sequence[tuple[str, str]]) -> None:
        """Store new content hashes, each ``(key, content_hash)``, of items
        seen before whose stored hash was made another way."""
        if not hashes:
            return
        d = self._dialect
        with self._db.write() as db:
            d.executemany(
                db,
                "UPDATE seen SET content_hash = ? WHERE source = ? AND key = ?",
                [(digest, source, key) for key, digest in hashes],
            )

    def touch_seen(self, source: str, keys: Iterable[str], now: datetime) -> int:
        """Items still offered by the source: keep remembering them from now.
        How many were last seen before ``now``."""
        d = self._dialect
        when = d.ts(now)
        touched = 0
        with self._db.write() as db:
            for test, params in _chunks(d, keys):
                touched += d.execute(
                    db,
                    f"UPDATE seen{d.index(_SQLITE_PRIMARY_KEY)} SET last_seen = ?"
                    f" WHERE source = ? AND {test} AND last_seen < ?",
                    (when, source, *params, when),
                ).rowcount
        return touched

    def forget_older_than(self, source: str, cutoff: datetime) -> int:
        """Forget keys last seen before ``cutoff`` (the source's ``remember``)."""
        d = self._dialect
        with self._db.write() as db:
            return d.execute(
                db, "DELETE FROM seen WHERE source = ? AND last_seen < ?", (source, d.ts(cutoff))
            ).rowcount
