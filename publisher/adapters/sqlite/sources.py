"""Sources' state: validators, poll times, errors, paused, a folder's listing."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from publisher.adapters.sqlite import rows
from publisher.adapters.sqlite.db import Database
from publisher.adapters.sqlite.history import write_event
from publisher.adapters.sqlite.rows import opt_text, to_json, to_text
from publisher.core.records import SourceState
from publisher.ports import KEEP, Keep

_SOURCE_COLUMNS = ("etag", "last_modified", "body_hash", "url")


def ensure_source(db: sqlite3.Connection, name: str) -> None:
    """The source's row exists (seen items and posts refer to it)."""
    db.execute("INSERT OR IGNORE INTO sources (name) VALUES (?)", (name,))


class SQLiteSourceStates:
    """:class:`publisher.ports.SourceStates` on the ``sources`` table."""

    _db: Database

    def get_source(self, name: str) -> SourceState:
        """The source's state; a fresh one (never polled) if it is not known yet."""
        with self._db.read() as db:
            row = db.execute("SELECT * FROM sources WHERE name = ?", (name,)).fetchone()
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
            values.append(opt_text(next_poll))
        if snapshot is not KEEP:
            sets.append("snapshot = ?")
            values.append(None if snapshot is None else to_json(snapshot))
        if first_poll_done is not KEEP:
            sets.append("first_poll_done = ?")
            values.append(int(bool(first_poll_done)))
        with self._db.write() as db:
            ensure_source(db, name)
            db.execute(f"UPDATE sources SET {', '.join(sets)} WHERE name = ?", (*values, name))
            row = db.execute("SELECT * FROM sources WHERE name = ?", (name,)).fetchone()
        return rows.source_state(row)

    def set_paused(self, name: str, paused: bool, now: datetime, reason: str = "") -> None:
        """Pause or resume a source (with an event naming why)."""
        with self._db.write() as db:
            ensure_source(db, name)
            db.execute("UPDATE sources SET paused = ? WHERE name = ?", (int(paused), name))
            write_event(db, now, name, None, "paused" if paused else "resumed", reason)
