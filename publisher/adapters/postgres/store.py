"""The store: one class made of the parts, one per concern, on one
PostgreSQL database.

:class:`PostgresStore` is :class:`publisher.ports.Store`: it inherits the
parts (sources' state, seen items, the outbox, history) and hands out a
channel's state by name; the parts share one
:class:`~publisher.adapters.postgres.db.Database` (the pool, transactions,
error translation).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from publisher.adapters.itemcounts import ITEM_COUNTS_SQL, fold
from publisher.adapters.postgres.channel import MAIN, PostgresChannelState
from publisher.adapters.postgres.db import POOL_MAX, Database
from publisher.adapters.postgres.history import PostgresHistory
from publisher.adapters.postgres.outbox import PostgresOutbox
from publisher.adapters.postgres.rows import DIALECT
from publisher.adapters.postgres.seen import PostgresSeenItems
from publisher.adapters.postgres.sources import PostgresSourceStates
from publisher.core.records import STATUSES


class PostgresStore(PostgresSourceStates, PostgresSeenItems, PostgresOutbox, PostgresHistory):
    """The service's whole persistent state in PostgreSQL. Open with :meth:`open`."""

    _db: Database
    _dialect = DIALECT

    def __init__(self, db: Database) -> None:
        self._db = db

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
    def path(self) -> str:
        """Where the state is, for messages: the server and database, no password."""
        return self._db.path

    @property
    def read_only(self) -> bool:
        return self._db.read_only

    @property
    def db(self) -> Database:
        """The pool (for tests and tools, not for callers)."""
        return self._db

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """``with store.batch():`` this thread's writes inside are one
        transaction, each a savepoint of it (a poll of one source)."""
        with self._db.batch():
            yield

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self._db.version()

    def channel(self, name: str = MAIN) -> PostgresChannelState:
        return PostgresChannelState(self._db, name)

    def adopt(self, channel: str) -> int:
        """Give the posts and state kept under ``main`` to ``channel`` (see
        :meth:`publisher.adapters.sqlite.Store.adopt`); idempotent."""
        if channel == MAIN:
            return 0
        with self._db.write() as db:
            moved = db.execute(
                "UPDATE outbox SET channel = %s WHERE channel = %s", (channel, MAIN)
            ).rowcount
            if not db.execute("SELECT 1 FROM channels WHERE name = %s", (channel,)).fetchone():
                db.execute("UPDATE channels SET name = %s WHERE name = %s", (channel, MAIN))
        return int(moved)

    def check_writable(self) -> None:
        """Raise StoreError unless a change could be saved now; writes nothing."""
        self._db.check_writable()

    def counts_by_source(self) -> dict[str, dict[str, int]]:
        """``{source: {status: count, ..., "seen": count}}``, every status present."""
        result: dict[str, dict[str, int]] = {}

        def entry(source: str) -> dict[str, int]:
            return result.setdefault(source, dict.fromkeys((*STATUSES, "seen"), 0))

        with self._db.read(snapshot=True) as db:
            for row in db.execute("SELECT name FROM sources ORDER BY name").fetchall():
                entry(row["name"])
            for row in db.execute(
                "SELECT source, status, count(*) AS n FROM outbox GROUP BY source, status"
            ).fetchall():
                entry(row["source"])[row["status"]] = row["n"]
            for row in db.execute(
                "SELECT source, count(*) AS n FROM seen GROUP BY source"
            ).fetchall():
                entry(row["source"])["seen"] = row["n"]
        return result

    def item_counts_by_source(self) -> dict[str, dict[str, int]]:
        """``{source: {"seen": items, state: items, ...}}``: each item counted
        once, in one state (see :mod:`publisher.adapters.itemcounts`)."""
        with self._db.read(snapshot=True) as db:
            names = [r["name"] for r in db.execute("SELECT name FROM sources ORDER BY name")]
            rows = [(r["source"], r["state"], r["n"]) for r in db.execute(ITEM_COUNTS_SQL)]
        return fold(names, rows)
