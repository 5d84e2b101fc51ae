"""History: each item's story (events), what was posted (for the policy
and ``status``), and pruning what is old and finished — the same rule as
:mod:`publisher.adapters.sqlite.history`: an item's posts go when every
message of it is finished and the last finished before the cutoff; events
go when older than the cutoff and no post of their item is left.
"""

from __future__ import annotations

from datetime import UTC, datetime

from publisher.adapters.postgres import rows
from publisher.adapters.postgres.db import Database
from publisher.adapters.postgres.rows import Conn, ts
from publisher.core.policy import PostedRecord
from publisher.core.records import FINISHED, Event, OutboxRow


def write_event(
    db: Conn,
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
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (ts(now), source, item_key, outbox_id, event, detail),
    )


class PostgresHistory:
    """:class:`publisher.ports.History` on the ``events`` and ``outbox`` tables."""

    _db: Database

    def add_event(
        self, source: str, key: str | None, event: str, detail: str, now: datetime
    ) -> None:
        with self._db.write() as db:
            write_event(db, now, source, key, event, detail)

    def item_story(self, source: str | None, key: str) -> list[Event]:
        with self._db.read() as db:
            found = db.execute(
                "SELECT * FROM events WHERE item_key = %(key)s"
                " AND (%(source)s::text IS NULL OR source = %(source)s) ORDER BY id",
                {"key": key, "source": source},
            ).fetchall()
        return [rows.event(r) for r in found]

    def events(self, limit: int = 50, source: str | None = None) -> list[Event]:
        with self._db.read() as db:
            found = db.execute(
                "SELECT * FROM events WHERE (%(source)s::text IS NULL OR source = %(source)s)"
                " ORDER BY id DESC LIMIT %(limit)s",
                {"source": source, "limit": limit},
            ).fetchall()
        return [rows.event(r) for r in found]

    def history_since(self, since: datetime, *, channel: str | None = None) -> list[PostedRecord]:
        with self._db.read() as db:
            found = db.execute(
                "SELECT source, posted_at, seq FROM outbox"
                " WHERE status = 'posted' AND posted_at >= %(since)s"
                " AND (%(channel)s::text IS NULL OR channel = %(channel)s)"
                " ORDER BY posted_at, id",
                {"since": ts(since), "channel": channel},
            ).fetchall()
        return [PostedRecord(r["source"], r["posted_at"].astimezone(UTC), r["seq"]) for r in found]

    def recent_posts(self, limit: int = 20, *, channel: str | None = None) -> list[OutboxRow]:
        with self._db.read() as db:
            found = db.execute(
                "SELECT * FROM outbox WHERE status = 'posted'"
                " AND (%(channel)s::text IS NULL OR channel = %(channel)s)"
                " ORDER BY posted_at DESC, id DESC LIMIT %(limit)s",
                {"channel": channel, "limit": limit},
            ).fetchall()
        return [rows.outbox_row(r) for r in found]

    def prune_history(self, before: datetime) -> tuple[int, int]:
        """Delete finished items' posts and old events, in one transaction.
        Returns how many (posts, events) were deleted."""
        cutoff = ts(before)
        with self._db.write() as db:
            posts = db.execute(
                "DELETE FROM outbox WHERE group_id IN ("
                " SELECT group_id FROM outbox GROUP BY group_id"
                "  HAVING bool_and(status = ANY(%(finished)s))"
                "  AND count(finished_at) = count(*) AND max(finished_at) < %(cutoff)s)",
                {"finished": list(FINISHED), "cutoff": cutoff},
            ).rowcount
            events = db.execute(
                "DELETE FROM events WHERE time < %s"
                " AND NOT EXISTS (SELECT 1 FROM outbox AS o"
                "   WHERE o.item_key = events.item_key AND o.source = events.source)"
                " AND (outbox_id IS NULL OR NOT EXISTS"
                "   (SELECT 1 FROM outbox AS o WHERE o.id = events.outbox_id))",
                (cutoff,),
            ).rowcount
        return posts, events
