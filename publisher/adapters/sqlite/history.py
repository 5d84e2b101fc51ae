"""History: each item's story (events), what was posted (for the policy
and ``status``), and pruning what is old and finished.

:meth:`SQLiteHistory.prune_history` is the one pruning rule: an item's
posts go when every message of it is finished (``posted``, ``failed`` or
``skipped``) and the last finished before the cutoff; events go when older
than the cutoff and no post of their item is left. Posts ``queued``,
``sending`` or ``unknown`` are never touched, nor their items' stories, nor
seen items (the sources' ``remember`` forgets those).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from publisher.adapters.sqlite import rows
from publisher.adapters.sqlite.db import Database
from publisher.adapters.sqlite.rows import from_text, to_text
from publisher.core.policy import PostedRecord
from publisher.core.records import FINISHED, Event, OutboxRow

_FINISHED_SQL = "(" + ", ".join(f"'{status}'" for status in FINISHED) + ")"


def write_event(
    db: sqlite3.Connection,
    now: datetime,
    source: str,
    item_key: str | None,
    event: str,
    detail: str = "",
    outbox_id: int | None = None,
) -> None:
    """Add a line to an item's story, inside the caller's transaction."""
    db.execute(
        "INSERT INTO events (time, source, item_key, outbox_id, event, detail)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (to_text(now), source, item_key, outbox_id, event, detail),
    )


class SQLiteHistory:
    """:class:`publisher.ports.History` on the ``events`` and ``outbox`` tables."""

    _db: Database

    def add_event(
        self, source: str, key: str | None, event: str, detail: str, now: datetime
    ) -> None:
        """Add a line to an item's story (``status --item KEY``)."""
        with self._db.write() as db:
            write_event(db, now, source, key, event, detail)

    def item_story(self, source: str | None, key: str) -> list[Event]:
        """Everything that happened to an item, in order (``status --item KEY``)."""
        with self._db.read() as db:
            found = db.execute(
                "SELECT * FROM events WHERE item_key = ? AND (? IS NULL OR source = ?) ORDER BY id",
                (key, source, source),
            ).fetchall()
        return [rows.event(r) for r in found]

    def events(self, limit: int = 50, source: str | None = None) -> list[Event]:
        """The latest events, newest first."""
        with self._db.read() as db:
            found = db.execute(
                "SELECT * FROM events WHERE (? IS NULL OR source = ?) ORDER BY id DESC LIMIT ?",
                (source, source, limit),
            ).fetchall()
        return [rows.event(r) for r in found]

    def history_since(self, since: datetime, *, channel: str | None = None) -> list[PostedRecord]:
        """What was posted (to ``channel``, or to any) at or after ``since``,
        oldest first (for the policy)."""
        with self._db.read() as db:
            found = db.execute(
                "SELECT source, posted_at, seq FROM outbox"
                " WHERE status = 'posted' AND posted_at >= ? AND (? IS NULL OR channel = ?)"
                " ORDER BY posted_at, id",
                (to_text(since), channel, channel),
            ).fetchall()
        return [PostedRecord(r["source"], from_text(r["posted_at"]), r["seq"]) for r in found]

    def recent_posts(self, limit: int = 20, *, channel: str | None = None) -> list[OutboxRow]:
        """The last posted messages (to ``channel``, or to any), newest first."""
        with self._db.read() as db:
            found = db.execute(
                "SELECT * FROM outbox WHERE status = 'posted' AND (? IS NULL OR channel = ?)"
                " ORDER BY posted_at DESC, id DESC LIMIT ?",
                (channel, channel, limit),
            ).fetchall()
        return [rows.outbox_row(r) for r in found]

    def prune_history(self, before: datetime) -> tuple[int, int]:
        """Delete finished items' posts and old events (see the module's
        docstring), in one transaction. ``before`` is now minus ``[storage]
        history_retention``, which the configuration keeps longer than the
        policy's look-back. Returns how many (posts, events) were deleted."""
        cutoff = to_text(before)
        with self._db.write() as db:
            posts = db.execute(
                "DELETE FROM outbox WHERE group_id IN ("
                " SELECT group_id FROM outbox GROUP BY group_id"
                f" HAVING sum(status NOT IN {_FINISHED_SQL}) = 0"
                "  AND count(finished_at) = count(*) AND max(finished_at) < ?)",
                (cutoff,),
            ).rowcount
            events = db.execute(
                "DELETE FROM events WHERE time < ?"
                " AND NOT EXISTS (SELECT 1 FROM outbox AS o"
                "   WHERE o.item_key = events.item_key AND o.source = events.source)"
                " AND (outbox_id IS NULL OR NOT EXISTS"
                "   (SELECT 1 FROM outbox AS o WHERE o.id = events.outbox_id))",
                (cutoff,),
            ).rowcount
        return posts, events
