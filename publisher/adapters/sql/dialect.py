"""The seam between the store, written once, and the two databases it runs
on: how a connection looks, and what each database spells its own way.

:class:`Dialect` is all that differs in the SQL: how a parameter is written
(the shared SQL says ``?``; PostgreSQL's driver wants ``%s``), how a row
that a transition will change is locked (``FOR UPDATE``, or nothing where
the write transaction holds the whole database), how a datetime or a JSON
value goes in and comes back, how a new row's id is learnt, how a column
is tested against a list of values (``IN (?, …)`` or ``= ANY(?)``), and an
index a query must use. Everything else is SQL both databases understand.

:class:`Connection`, :class:`Cursor` and :class:`Database` are what the
shared code asks of ``sqlite3``'s and ``psycopg``'s connections and of each
backend's ``Database`` (its ``read()``/``write()`` transactions).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, closing
from datetime import UTC, datetime
from typing import Any, Protocol


class Cursor(Protocol):
    """What a statement gives back (``sqlite3.Cursor``, ``psycopg.Cursor``)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


class ManyCursor(Protocol):
    """A cursor that runs one statement for many rows of parameters."""

    def executemany(self, query: str, params: Iterable[Sequence[Any]], /) -> object: ...

    def close(self) -> None: ...


class Connection(Protocol):
    """A connection inside a transaction; rows are read by column name."""

    def execute(self, query: str, params: Sequence[Any], /) -> Cursor: ...

    def cursor(self) -> ManyCursor: ...


class Database(Protocol):
    """A backend's transactions: ``write`` commits all of its block or none
    (``durable``: on disk before it returns), ``read`` (``snapshot``: its
    statements see one state)."""

    path: str
    read_only: bool

    def read(self, *, snapshot: bool = False) -> AbstractContextManager[Connection]: ...

    def write(self, *, durable: bool = False) -> AbstractContextManager[Connection]: ...

    def batch(self) -> AbstractContextManager[None]: ...

    def check_writable(self) -> None: ...

    def close(self) -> None: ...


def utc_text(value: datetime) -> str:
    """An aware datetime as text: ``2024-03-31T01:00:00.000000Z`` (text order
    is time order); a naive one is refused."""
    return aware(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def aware(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is refused before it is stored."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: pass timezone-aware datetimes")
    return value.astimezone(UTC)


class Dialect(ABC):
    """What one database spells its own way (see the module's docstring)."""

    #: Appended to a SELECT of rows the transaction goes on to change.
    for_update: str = ""
    #: Whether a changed row can be read back by the change (``RETURNING``).
    returning: bool = True

    def sql(self, query: str) -> str:
        """``query`` (parameters written ``?``) as this database's driver takes it."""
        return query

    def execute(self, db: Connection, query: str, params: Sequence[Any] = ()) -> Cursor:
        return db.execute(self.sql(query), params)

    def executemany(self, db: Connection, query: str, params: Iterable[Sequence[Any]]) -> None:
        """Run ``query`` once for each row of ``params`` (one round trip
        where the driver can)."""
        with closing(db.cursor()) as cursor:
            cursor.executemany(self.sql(query), params)

    def insert(self, db: Connection, query: str, params: Sequence[Any]) -> int:
        """Run ``query``, an INSERT of one row; the new row's id."""
        row = self.execute(db, query + " RETURNING id", params).fetchone()
        return int(row["id"])

    def one_of(self, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        """A test that a column is one of ``values`` (written after it), and
        its parameters: ``IN (?, ?, …)``."""
        return f"IN ({', '.join('?' * len(values))})", tuple(values)

    def index(self, name: str) -> str:
        """Added after a table's name: the index a query must use (SQLite's
        planner may choose a worse one), or nothing."""
        return ""

    # ---- values to and from the database

    @abstractmethod
    def ts(self, value: datetime) -> Any:
        """An aware datetime as stored (a naive one is refused)."""

    @abstractmethod
    def dt(self, value: Any) -> datetime:
        """A stored datetime read back, aware, in UTC."""

    @abstractmethod
    def json(self, value: Any) -> Any:
        """A value stored as JSON."""

    @abstractmethod
    def unjson(self, value: Any) -> Any:
        """A JSON value read back."""

    def opt_ts(self, value: datetime | None) -> Any:
        return None if value is None else self.ts(value)

    def opt_dt(self, value: Any) -> datetime | None:
        return None if value is None else self.dt(value)
