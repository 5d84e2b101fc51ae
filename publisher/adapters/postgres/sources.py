"""Sources' state: validators, poll times, errors, paused, a folder's listing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import sql

from publisher.adapters.postgres import rows
from publisher.adapters.postgres.db import Database
from publisher.adapters.postgres.history import write_event
from publisher.adapters.postgres.rows import Conn, json, opt_ts, ts
from publisher.core.records import SourceState
from publisher.ports import KEEP, Keep

_SOURCE_COLUMNS = ("etag", "last_modified", "body_hash", "url")


def ensure_source(db: Conn, name: str) -> None:
    """The source's row exists (seen items and posts refer to it)."""
    db.execute("INSERT INTO sources (name) VALUES (%s) ON CONFLICT DO NOTHING", (name,))


class PostgresSourceStates:
    """:class:`publisher.ports.SourceStates` on the ``sources`` table."""

    _db: Database

    def get_source(self, name: str) -> SourceState:
        with self._db.read() as db:
            row = db.execute("SELECT * FROM sources WHERE name = %s", (name,)).fetchone()
        return SourceState(name) if row is None else rows.source_state(row)

    def sources(self) -> list[SourceState]:
        with self._db.read() as db:
            found = db.execute("SELECT * FROM sources ORDER BY name").fetchall()
        return [rows.source_state(row) for row in found]

    def record_poll(
        self,
        name: str,
        now: datetime,
        *,
        ok: bool,
        error: str | None = None,
        etag: str | Keep | None = KEEP,
        last_modified: str | Keep | None = KEEP,
        body_hash: str | Keep | None = KEEP,
        url: str | Keep | None = KEEP,
        next_poll: datetime | Keep | None = KEEP,
        snapshot: Any = KEEP,
        first_poll_done: bool | Keep = KEEP,
    ) -> SourceState:
        """Record a poll (see :meth:`publisher.ports.SourceStates.record_poll`)."""
        sets: dict[str, Any] = {"last_poll": ts(now)}
        if ok:
            sets |= {"last_success": ts(now), "last_error": None}
            if first_poll_done is KEEP:
                first_poll_done = True
        else:
            sets["last_error"] = error or "unknown error"
        given = {"etag": etag, "last_modified": last_modified, "body_hash": body_hash, "url": url}
        sets |= {column: given[column] for column in _SOURCE_COLUMNS if given[column] is not KEEP}
        if next_poll is not KEEP:
            sets["next_poll"] = opt_ts(next_poll)
        if snapshot is not KEEP:
            sets["snapshot"] = None if snapshot is None else json(snapshot)
        if first_poll_done is not KEEP:
            sets["first_poll_done"] = bool(first_poll_done)
        failures = sql.SQL("0" if ok else "consecutive_failures + 1")
        statement = sql.SQL(
            "UPDATE sources SET {}, consecutive_failures = {} WHERE name = %s RETURNING *"
        ).format(
            sql.SQL(", ").join(
                sql.SQL("{} = %s").format(sql.Identifier(column)) for column in sets
            ),
            failures,
        )
        with self._db.write() as db:
            ensure_source(db, name)
            row = db.execute(statement, (*sets.values(), name)).fetchone()
        assert row is not None
        return rows.source_state(row)

    def set_paused(self, name: str, paused: bool, now: datetime, reason: str = "") -> None:
        with self._db.write() as db:
            ensure_source(db, name)
            db.execute("UPDATE sources SET paused = %s WHERE name = %s", (paused, name))
            write_event(db, now, name, None, "paused" if paused else "resumed", reason)
