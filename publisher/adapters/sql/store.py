"""What the whole store does over its parts, the same on every database:
the counts ``status`` and ``/metrics`` show, handing the single-channel
state to a named channel, closing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar, Self

from publisher.adapters.itemcounts import ITEM_COUNTS_SQL, fold
from publisher.adapters.sql.channel import MAIN
from publisher.adapters.sql.dialect import Database, Dialect
from publisher.core.records import STATUSES


class SQLStore:
    """The store's own methods (a backend's ``Store`` adds opening and the
    schema's version)."""

    _db: Database
    _dialect: ClassVar[Dialect]

    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def path(self) -> str:
        """Where the state is, for messages (never a password)."""
        return self._db.path

    @property
    def read_only(self) -> bool:
        return self._db.read_only

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """``with store.batch():`` the writes inside are one transaction,
        committed at the end; each write is a savepoint of it, so one that
        fails changes nothing (a poll of one source). Do the slow work
        (parsing, fetching) before it: SQLite holds its lock throughout
        (see each backend's ``db.py``)."""
        with self._db.batch():
            yield

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_writable(self) -> None:
        """Raise StoreError unless a change could be saved now; writes nothing
        (``/readyz`` asks this on every probe)."""
        self._db.check_writable()

    def adopt(self, channel: str) -> int:
        """Give the posts and state of the single-channel version (kept under
        ``main``) to ``channel``, when the config has no channel ``main``.
        Returns how many posts changed hands (0 once done: it is idempotent)."""
        if channel == MAIN:
            return 0
        d = self._dialect
        with self._db.write() as db:
            moved = d.execute(
                db, "UPDATE outbox SET channel = ? WHERE channel = ?", (channel, MAIN)
            ).rowcount
            if not d.execute(db, "SELECT 1 FROM channels WHERE name = ?", (channel,)).fetchone():
                d.execute(db, "UPDATE channels SET name = ? WHERE name = ?", (channel, MAIN))
        return int(moved)

    def counts_by_source(self) -> dict[str, dict[str, int]]:
        """``{source: {status: count, ..., "seen": count}}``, every status present."""
        result: dict[str, dict[str, int]] = {}

        def entry(source: str) -> dict[str, int]:
            return result.setdefault(source, dict.fromkeys((*STATUSES, "seen"), 0))

        d = self._dialect
        with self._db.read(snapshot=True) as db:
            for row in d.execute(db, "SELECT name FROM sources ORDER BY name").fetchall():
                entry(row["name"])
            for row in d.execute(
                db, "SELECT source, status, count(*) AS n FROM outbox GROUP BY source, status"
            ).fetchall():
                entry(row["source"])[row["status"]] = row["n"]
            for row in d.execute(
                db, "SELECT source, count(*) AS n FROM seen GROUP BY source"
            ).fetchall():
                entry(row["source"])["seen"] = row["n"]
        return result

    def item_counts_by_source(self) -> dict[str, dict[str, int]]:
        """``{source: {"seen": items, state: items, ...}}``: each item counted
        once, in one state (see :mod:`publisher.adapters.itemcounts`)."""
        d = self._dialect
        with self._db.read(snapshot=True) as db:
            names = [r["name"] for r in d.execute(db, "SELECT name FROM sources ORDER BY name")]
            found = [(r["source"], r["state"], r["n"]) for r in d.execute(db, ITEM_COUNTS_SQL)]
        return fold(names, found)
