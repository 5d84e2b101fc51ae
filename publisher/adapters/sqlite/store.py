"""The store: one class made of the parts, one per concern.

:class:`Store` is :class:`publisher.ports.Store` on one SQLite file: it
inherits the parts (sources' state, seen items, the outbox, history) and
hands out a channel's state by name. The parts share one
:class:`~publisher.adapters.sqlite.db.Database` (connection, lock,
transactions, error translation).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from publisher.adapters.itemcounts import ITEM_COUNTS_SQL, fold
from publisher.adapters.sqlite.channel import MAIN, SQLiteChannelState
from publisher.adapters.sqlite.db import BUSY_TIMEOUT_MS, Database
from publisher.adapters.sqlite.history import SQLiteHistory
from publisher.adapters.sqlite.outbox import SQLiteOutbox
from publisher.adapters.sqlite.rows import DIALECT
from publisher.adapters.sqlite.schema import user_version
from publisher.adapters.sqlite.seen import SQLiteSeenItems
from publisher.adapters.sqlite.sources import SQLiteSourceStates
from publisher.core.records import STATUSES


class Store(SQLiteSourceStates, SQLiteSeenItems, SQLiteOutbox, SQLiteHistory):
    """The service's whole persistent state. Open with :meth:`Store.open`."""

    _db: Database
    _dialect = DIALECT

    def __init__(self, db: Database) -> None:
        self._db = db

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
    def path(self) -> str:
        return self._db.path

    @property
    def read_only(self) -> bool:
        return self._db.read_only

    @property
    def db(self) -> Database:
        """The connection and its lock (for tests and tools, not for callers)."""
        return self._db

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """``with store.batch():`` the writes inside are one transaction,
        committed (not synced, see :mod:`~publisher.adapters.sqlite.db`) at
        the end; each write is a savepoint, so one that fails changes nothing.
        The store's lock is held throughout: parse and fetch before it."""
        with self._db.batch():
            yield

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        with self._db.read() as db:
            return user_version(db)

    def channel(self, name: str = MAIN) -> SQLiteChannelState:
        """The state of channel ``name`` (the one channel so far is ``main``)."""
        return SQLiteChannelState(self._db, name)

    def adopt(self, channel: str) -> int:
        """Give the posts and state of the single-channel version (kept under
        ``main``) to ``channel``, when the config has no channel ``main``.
        Returns how many posts changed hands (0 once done: it is idempotent)."""
        if channel == MAIN:
            return 0
        with self._db.write() as db:
            moved = db.execute(
                "UPDATE outbox SET channel = ? WHERE channel = ?", (channel, MAIN)
            ).rowcount
            if not db.execute("SELECT 1 FROM channels WHERE name = ?", (channel,)).fetchone():
                db.execute("UPDATE channels SET name = ? WHERE name = ?", (channel, MAIN))
        return int(moved)

    def check_writable(self) -> None:
        """Raise StoreError unless a change could be saved now; writes nothing
        (``/readyz`` asks this on every probe)."""
        self._db.check_writable()

    def counts_by_source(self) -> dict[str, dict[str, int]]:
        """``{source: {status: count, ..., "seen": count}}``, every status present."""
        result: dict[str, dict[str, int]] = {}

        def entry(source: str) -> dict[str, int]:
            return result.setdefault(source, dict.fromkeys((*STATUSES, "seen"), 0))

        with self._db.read(snapshot=True) as db:
            for name in db.execute("SELECT name FROM sources ORDER BY name").fetchall():
                entry(name[0])
            for row in db.execute(
                "SELECT source, status, count(*) FROM outbox GROUP BY source, status"
            ).fetchall():
                entry(row[0])[row[1]] = row[2]
            for row in db.execute("SELECT source, count(*) FROM seen GROUP BY source").fetchall():
                entry(row[0])["seen"] = row[1]
        return result

    def item_counts_by_source(self) -> dict[str, dict[str, int]]:
        """``{source: {"seen": items, state: items, ...}}``: each item counted
        once, in one state (see :mod:`publisher.adapters.itemcounts`)."""
        with self._db.read(snapshot=True) as db:
            names = [r[0] for r in db.execute("SELECT name FROM sources ORDER BY name")]
            rows = [(r[0], r[1], r[2]) for r in db.execute(ITEM_COUNTS_SQL)]
        return fold(names, rows)
