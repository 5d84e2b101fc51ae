"""Values as SQLite stores them: its :class:`SQLiteDialect` (rows are read
back into records by :mod:`publisher.adapters.sql.rows`).

Datetimes are ISO-8601 UTC text with microseconds (so text order is time
order) and come back as aware UTC datetimes; naive ones are refused.
JSON is compact text and keeps non-ASCII text as it is.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from publisher.adapters.sql.dialect import Connection, Dialect, utc_text


class SQLiteDialect(Dialect):
    """SQLite's spelling: ``?`` parameters, no row locks (a write
    transaction, ``BEGIN IMMEDIATE``, holds the whole file), datetimes as
    text, JSON as text, a new row's id from the cursor."""

    returning = False  # RETURNING needs SQLite 3.35

    def insert(self, db: Connection, query: str, params: Sequence[Any]) -> int:
        assert isinstance(db, sqlite3.Connection)
        row_id = db.execute(query, params).lastrowid
        assert row_id is not None
        return row_id

    def index(self, name: str) -> str:
        return f" INDEXED BY {name}"

    def ts(self, value: datetime) -> str:
        return utc_text(value)

    def dt(self, value: Any) -> datetime:
        return datetime.fromisoformat(value).astimezone(UTC)

    def json(self, value: Any) -> str:
        return to_json(value)

    def unjson(self, value: Any) -> Any:
        return json.loads(value)


DIALECT = SQLiteDialect()

#: An aware datetime as stored: ``2024-03-31T01:00:00.000000Z``.
to_text = utc_text
#: A stored datetime read back, aware, in UTC.
from_text = DIALECT.dt


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
