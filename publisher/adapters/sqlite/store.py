"""The store: one class made of the parts, one per concern.

:class:`Store` is :class:`publisher.ports.Store` on one SQLite file: it
inherits the parts (sources' state, seen items, the outbox, history, and
the counts of :class:`~publisher.adapters.sql.store.SQLStore`, written once
for both databases) and hands out a channel's state by name. The parts
share one :class:`~publisher.adapters.sqlite.db.Database` (connection, lock,
transactions, error translation).
"""

from __future__ import annotations

from pathlib import Path

from publisher.adapters.sql.store import SQLStore
from publisher.adapters.sqlite.channel import MAIN, SQLiteChannelState
from publisher.adapters.sqlite.db import BUSY_TIMEOUT_MS, Database
from publisher.adapters.sqlite.history import SQLiteHistory
from publisher.adapters.sqlite.outbox import SQLiteOutbox
from publisher.adapters.sqlite.rows import DIALECT
from publisher.adapters.sqlite.schema import user_version
from publisher.adapters.sqlite.seen import SQLiteSeenItems
from publisher.adapters.sqlite.sources import SQLiteSourceStates


class Store(SQLiteSourceStates, SQLiteSeenItems, SQLiteOutbox, SQLiteHistory, SQLStore):
    """The service's whole persistent state. Open with :meth:`Store.open`."""

    _db: Database
    _dialect = DIALECT

    @classmethod
    def open(
        cls, path: Path | str, *, read_only: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS
    ) -> Store:
        """Open (and create or migrate) the database at ``path``; ``":memory:"`` works.

        With ``read_only=True`` the file is opened ``mode=ro`` and never
        written; an absent file or an older schema is a StoreError, as is a
        file that cannot be used (damaged, locked, not a database).
        """
        return cls(Database.open(path, read_only=read_only, busy_timeout_ms=busy_timeout_ms))

    @property
    def db(self) -> Database:
        """The connection and its lock (for tests and tools, not for callers)."""
        return self._db

    @property
    def schema_version(self) -> int:
        with self._db.read() as db:
            return user_version(db)

    def channel(self, name: str = MAIN) -> SQLiteChannelState:
        """The state of channel ``name`` (the one channel so far is ``main``)."""
        return SQLiteChannelState(self._db, name)
