"""Sources' state: validators, poll times, errors, paused, a folder's listing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from publisher.adapters.sql import rows
from publisher.adapters.sql.dialect import Connection, Database, Dialect
from publisher.adapters.sql.history import write_event
from publisher.core.records import SourceState
from publisher.ports import KEEP, Keep

_SOURCE_COLUMNS = ("etag", "last_modified", "body_hash", "url")


def ensure_source(d: Dialect, db: Connection, name: str) -> None:
    """The source's row exists (seen items and posts refer to it)."""
    d.execute(db, "INSERT INTO sources (name) VALUES (?) ON CONFLICT DO NOTHING", (name,))


class SQLSourceStates:
    """:class:`publisher.ports.SourceStates` on the ``sources`` table."""

    _db: Database
    _dialect: ClassVar[Dialect]

    def get_source(self, name: str) -> SourceState:
        """The source's state; a fresh one (never polled) if it is not known yet."""
        d = self._dialect
        with self._db.read() as db:
            row = d.execute(db, "SELECT * FROM sources WHERE name = ?", (name,)).fetchone()
        return SourceState(name) if row is None else rows.source_state(d, row)

    def sources(self) -> list[SourceState]:
        d = self._dialect
        with self._db.read() as db:
            found = d.execute(db, "SELECT * FROM sources ORDER BY name").fetchall()
        return [rows.source_state(d, row) for row in found]

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
        d = self._dialect
        given = {
            "etag": etag,
            "last_modified": last_modified,
            "body_hash": body_hash,
            "url": url,
            "next_poll": next_poll,
            "snapshot": snapshot,
            "first_poll_done": first_poll_done,
        }
        sets = _poll_columns(d, now, ok, error, {k: v for k, v in given.items() if v is not KEEP})
        update = _update(sets, ok)
        with self._db.write() as db:
            ensure_source(d, db, name)
            if d.returning:
                row = d.execute(db, update + " RETURNING *", (*sets.values(), name)).fetchone()
            else:
                d.execute(db, update, (*sets.values(), name))
                row = d.execute(db, "SELECT * FROM sources WHERE name = ?", (name,)).fetchone()
        return rows.source_state(d, row)

    def record_polls(self, polls: Sequence[tuple[str, datetime, Mapping[str, Any]]]) -> None:
        """:meth:`record_poll` with ``ok=True`` for several sources in one
        write, each ``(name, now, the other arguments)``; the states are not
        read back (a turn's unchanged polls: one statement for them all)."""
        if not polls:
            return
        d = self._dialect
        grouped: dict[str, list[tuple[Any, ...]]] = {}
        for name, now, fields in polls:
            sets = _poll_columns(d, now, True, None, fields)
            grouped.setdefault(_update(sets, True), []).append((*sets.values(), name))
        with self._db.write() as db:
            d.executemany(
                db,
                "INSERT INTO sources (name) VALUES (?) ON CONFLICT DO NOTHING",
                [(name,) for name, _, _ in polls],
            )
            for update, values in grouped.items():
                d.executemany(db, update, values)

    def set_paused(self, name: str, paused: bool, now: datetime, reason: str = "") -> None:
        """Pause or resume a source (with an event naming why)."""
        d = self._dialect
        with self._db.write() as db:
            ensure_source(d, db, name)
            d.execute(db, "UPDATE sources SET paused = ? WHERE name = ?", (bool(paused), name))
            write_event(d, db, now, name, None, "paused" if paused else "resumed", reason)


def _poll_columns(
    d: Dialect, now: datetime, ok: bool, error: str | None, given: Mapping[str, Any]
) -> dict[str, Any]:
    """The columns a poll sets, and their values: ``given`` holds the
    arguments of ``record_poll`` that are not :data:`KEEP`."""
    sets: dict[str, Any] = {"last_poll": d.ts(now)}
    if ok:
        sets |= {"last_success": d.ts(now), "last_error": None}
    else:
        sets["last_error"] = error or "unknown error"
    sets |= {column: given[column] for column in _SOURCE_COLUMNS if column in given}
    if "next_poll" in given:
        sets["next_poll"] = d.opt_ts(given["next_poll"])
    if "snapshot" in given:
        snapshot = given["snapshot"]
        sets["snapshot"] = None if snapshot is None else d.json(snapshot)
    if "first_poll_done" in given or ok:
        sets["first_poll_done"] = bool(given.get("first_poll_done", True))
    return sets


def _update(sets: Mapping[str, Any], ok: bool) -> str:
    """The UPDATE of a poll's ``sets`` (column names from the code, never from input)."""
    assignments = ", ".join(f"{column} = ?" for column in sets)
    failures = "0" if ok else "consecutive_failures + 1"
    return f"UPDATE sources SET {assignments}, consecutive_failures = {failures} WHERE name = ?"
