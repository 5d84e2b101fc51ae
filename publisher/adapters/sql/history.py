"""History: each item's story (events), what was posted (for the policy
and ``status``), and pruning what is old and finished.

:meth:`SQLHistory.prune_history` is the one pruning rule: an item's posts
go when every message of it is finished (``posted``, ``failed`` or
``skipped``) and the last finished before the cutoff; events go when older
than the cutoff and no post of their item is left. Posts ``queued``,
``sending`` or ``unknown`` are never touched, nor their items' stories, nor
seen items (the sources' ``remember`` forgets those).
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from publisher.adapters.sql import rows
from publisher.adapters.sql.dialect import Connection, Database, Dialect
from publisher.core.policy import PostedRecord
from publisher.core.records import FINISHED, Event, OutboxRow

#: The finished statuses, as SQL (constants, never input).
FINISHED_SQL = "(" + ", ".join(f"'{status}'" for status in FINISHED) + ")"


def write_event(
    d: Dialect,
    db: Connection,
    now: datetime,
    source: str,
    item_key: str | None,
    event: str,
    detail: str = "",
    outbox_id: int | None = None,
) -> None:
    """Add a line to an item's story, inside the caller's transaction."""
    d.execute(
        db,
        "INSERT INTO events (time, source, item_key, outbox_id, event, detail)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (d.ts(now), source, item_key, outbox_id, event, detail),
    )


class SQLHistory:
    """:class:`publisher.ports.History` on the ``events`` and ``outbox`` tables."""

    _db: Database
    _dialect: ClassVar[Dialect]

    def add_event(
        self, source: str, key: str | None, event: str, detail: str, now: datetime
    ) -> None:
        """Add a line to an item's story (``status --item KEY``)."""
        with self._db.write() as db:
            write_event(self._dialect, db, now, source, key, event, detail)

    def item_story(self, source: str | None, key: str) -> list[Event]:
        """Everything that happened to an item, in order (``status --item KEY``)."""
        d = self._dialect
        with self._db.read() as db:
            found = d.execute(
                db,
                "SELECT * FROM events WHERE item_key = ?"
                " AND (CAST(? AS TEXT) IS NULL OR source = ?) ORDER BY id",
                (key, source, source),
            ).fetchall()
        return [rows.event(d, r) for r in found]

    def events(self, limit: int = 50, source: str | None = None) -> list[Event]:
        """The latest events, newest first."""
        d = self._dialect
        with self._db.read() as db:
            found = d.execute(
                db,
                "SELECT * FROM events WHERE (CAST(? AS TEXT) IS NULL OR source = ?)"
                " ORDER BY id DESC LIMIT ?",
                (source, source, limit),
            ).fetchall()
        return [rows.event(d, r) for r in found]

    def history_since(self, since: datetime, *, channel: str | None = None) -> list[PostedRecord]:
        """What was posted (to ``channel``, or to any) at or after ``since``,
        oldest first (for the policy). A post whose fate is ``unknown`` may
        have gone out: it counts too, at its last attempt (its latest
        ``sending`` event), so a kill mid-request never lets a channel go
        over its limits."""
        d = self._dialect
        with self._db.read() as db:
            found = d.execute(
                db,
                "SELECT source, posted_at AS at, seq, id FROM outbox"
                " WHERE status = 'posted' AND posted_at >= ?"
                " AND (CAST(? AS TEXT) IS NULL OR channel = ?)"
                " UNION ALL"
                " SELECT o.source, max(e.time) AS at, o.seq, o.id FROM outbox o"
                " JOIN events e ON e.outbox_id = o.id AND e.event = 'sending'"
                " WHERE o.status = 'unknown' AND (CAST(? AS TEXT) IS NULL OR o.channel = ?)"
                " GROUP BY o.id, o.source, o.seq HAVING max(e.time) >= ?"
                " ORDER BY at, id",
                (d.ts(since), channel, channel, channel, channel, d.ts(since)),
            ).fetchall()
        return [PostedRecord(r["source"], d.dt(r["at"]), r["seq"]) for r in found]

    def recent_posts(self, limit: int = 20, *, channel: str | None = None) -> list[OutboxRow]:
        """The last posted messages (to ``channel``, or to any), newest first."""
        d = self._dialect
        with self._db.read() as db:
            found = d.execute(
                db,
                "SELECT * FROM outbox WHERE status = 'posted'"
                " AND (CAST(? AS TEXT) IS NULL OR channel = ?)"
                " ORDER BY posted_at DESC, id DESC LIMIT ?",
                (channel, channel, limit),
            ).fetchall()
        return [rows.outbox_row(d, r) for r in found]

    def prune_history(self, before: datetime) -> tuple[int, int]:
        """Delete finished items' posts and old events (see the module's
        docstring), in one transaction. ``before`` is now minus ``[storage]
        history_retention``, which the configuration keeps longer than the
        policy's look-back. Returns how many (posts, events) were deleted."""
        d = self._dialect
        cutoff = d.ts(before)
        with self._db.write() as db:
            posts = d.execute(
                db,
                "DELETE FROM outbox WHERE group_id IN ("
                " SELECT group_id FROM outbox GROUP BY group_id"
                f" HAVING sum(CASE WHEN status IN {FINISHED_SQL} THEN 0 ELSE 1 END) = 0"
                "  AND count(finished_at) = count(*) AND max(finished_at) < ?)",
                (cutoff,),
            ).rowcount
            events = d.execute(
                db,
                "DELETE FROM events WHERE time < ?"
                " AND NOT EXISTS (SELECT 1 FROM outbox AS o"
                "   WHERE o.item_key = events.item_key AND o.source = events.source)"
                " AND (outbox_id IS NULL OR NOT EXISTS"
                "   (SELECT 1 FROM outbox AS o WHERE o.id = events.outbox_id))",
                (cutoff,),
            ).rowcount
        return posts, events
