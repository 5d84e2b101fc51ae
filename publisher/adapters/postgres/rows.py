"""Values as PostgreSQL stores them: its :class:`PostgresDialect` (rows are
read back into records by :mod:`publisher.adapters.sql.rows`).

Datetimes are ``timestamptz`` (microseconds, like the SQLite text) and come
back as aware UTC datetimes; naive ones are refused before they reach the
server. Payloads, media lists, decisions, files and snapshots are ``jsonb``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from publisher.adapters.sql.dialect import Dialect, aware

#: A row as psycopg's ``dict_row`` gives it.
Row = dict[str, Any]
#: A connection whose rows are dicts.
Conn = psycopg.Connection[Row]


class PostgresDialect(Dialect):
    """PostgreSQL's spelling: ``%s`` parameters, rows a transition changes
    read ``FOR UPDATE`` (two threads or processes changing one post wait for
    each other), ``timestamptz`` and ``jsonb`` values, ``RETURNING``."""

    for_update = " FOR UPDATE"

    def sql(self, query: str) -> str:
        return _pyformat(query)

    def one_of(self, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        # One array parameter: with ``IN`` of 50 parameters, the plan psycopg
        # prepares after five runs scans the source's whole seen_last_seen
        # index (a 50-key poll measured 4-10x slower).
        return "= ANY(?)", (list(values),)

    def ts(self, value: datetime) -> datetime:
        return aware(value)

    def dt(self, value: Any) -> datetime:
        assert isinstance(value, datetime)
        return value.astimezone(UTC)

    def json(self, value: Any) -> Jsonb:
        return Jsonb(value)

    def unjson(self, value: Any) -> Any:
        return value  # psycopg decodes jsonb


@lru_cache(maxsize=1024)
def _pyformat(query: str) -> str:
    """``?`` parameters as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return query.replace("%", "%%").replace("?", "%s")


DIALECT = PostgresDialect()
