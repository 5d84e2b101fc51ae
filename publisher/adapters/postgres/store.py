"""The store: one class made of the parts, one per concern, on one
PostgreSQL database.

:class:`PostgresStore` is :class:`publisher.ports.Store`: it inherits the
parts (sources' state, seen items, the outbox, history, and the counts of
:class:`~publisher.adapters.sql.store.SQLStore`, written once for both
databases) and hands out a channel's state by name; the parts share one
:class:`~publisher.adapters.postgres.db.Database` (the pool, transactions,
error translation).
"""

from __future__ import annotations

from publisher.adapters.postgres.channel import MAIN, PostgresChannelState
from publisher.adapters.postgres.db import POOL_MAX, Database
from publisher.adapters.postgres.history import PostgresHistory
from publisher.adapters.postgres.outbox import PostgresOutbox
from publisher.adapters.postgres.rows import DIALECT
from publisher.adapters.postgres.seen import PostgresSeenItems
from publisher.adapters.postgres.sources import PostgresSourceStates
from publisher.adapters.sql.store import SQLStore


class PostgresStore(
    PostgresSourceStates, PostgresSeenItems, PostgresOutbox, PostgresHistory, SQLStore
):
    """The service's whole persistent state in PostgreSQL. Open with :meth:`open`."""

    _db: Database
    _dialect = DIALECT

    @classmethod
    def open(
        cls,
        url: str,
        *,
        password: str | None = None,
        read_only: bool = False,
        max_size: int = POOL_MAX,
    ) -> PostgresStore:
        """Connect to the database at ``url`` (``postgresql://user@host:port/db``),
        creating or migrating its tables unless ``read_only``. A server that
        cannot be used is a StoreError that says what to do."""
        return cls(Database.open(url, password=password, read_only=read_only, max_size=max_size))

    @property
    def db(self) -> Database:
        """The pool (for tests and tools, not for callers)."""
        return self._db

    @property
    def schema_version(self) -> int:
        return self._db.version()

    def channel(self, name: str = MAIN) -> PostgresChannelState:
        return PostgresChannelState(self._db, name)
