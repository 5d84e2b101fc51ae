"""Moving a SQLite state into PostgreSQL (``viber-publisher migrate-state``).

The one module that knows both schemas (:mod:`publisher.adapters.sqlite.schema`
and :mod:`publisher.adapters.postgres.schema`): :data:`TABLES` lists every
column of every table that holds state, with how its SQLite value becomes
PostgreSQL's (ISO text → ``timestamptz``, JSON text → ``jsonb``, 0/1 →
``boolean``). ``tests/test_migrate_state.py`` checks the list against both
schemas, so a column added to one store and not here fails there.

:func:`migrate_state`, in order (any refusal leaves both states as they were):

1. the SQLite file must exist, and no service may hold it: its
   :class:`~publisher.adapters.sqlite.lock.StateLock` is taken for the
   whole copy (a ``run`` started meanwhile is refused);
2. the file is checked (``PRAGMA quick_check``, and that every row refers
   to rows that exist) and opened read-only: nothing is ever written to it;
   it is read in one transaction, one consistent moment. A file an older
   version wrote is copied (SQLite's backup API) to a temporary folder and
   that copy is upgraded and read;
3. the PostgreSQL database is reached with the password of ``[storage]``,
   its tables created or migrated;
4. in one transaction (all of it commits, or none), holding the lock that
   replicas take to join (:mod:`publisher.adapters.postgres.replicas`), so
   a ``run`` started meanwhile waits for the end: a database that a running
   replica uses is refused; the five tables are locked against other
   writers (a ``post``, a ``retry``); a database that already holds state is
   refused (:class:`TargetNotEmpty`) unless ``force``, which replaces it;
   every row is copied with its id, ``group_id``, ``held_by`` and status;
   the id sequences are set past the highest id SQLite ever gave (so no
   id is reused); then it commits.

What changes on the way:

- A post ``sending`` (the service stopped in the middle of a request:
  killed, or its machine lost) becomes ``unknown``, with the reason and the
  ``unknown`` event the service's crash recovery writes (``on_unknown =
  "hold"``). Whatever ``[delivery] on_unknown`` says: nobody can tell any
  more whether it went out, and ``retry ID`` sends it again.
- The ``kv`` table (the channel's state of schema version 1, moved into
  ``channels`` by version 2) is not copied: nothing reads it.

Not copied either, being no state: the media (they stay in ``media_dir``)
and the pid file.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from publisher.adapters.postgres.db import connection_info, describe, translate
from publisher.adapters.postgres.replicas import live_replicas
from publisher.adapters.postgres.rows import Conn
from publisher.adapters.postgres.schema import MIGRATION_LOCK, migrate
from publisher.adapters.sqlite.db import Database as SQLiteDatabase
from publisher.adapters.sqlite.db import backup, quick_check
from publisher.adapters.sqlite.db import translate as translate_sqlite
from publisher.adapters.sqlite.lock import StateLock
from publisher.adapters.sqlite.rows import from_text
from publisher.adapters.sqlite.schema import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from publisher.adapters.sqlite.schema import user_version
from publisher.core.errors import StoreError
from publisher.core.records import STATUSES

#: What the service's crash recovery says of a post it found ``sending``.
INTERRUPTED = "interrupted while sending: the post may or may not be out"


class TargetNotEmpty(StoreError):
    """The PostgreSQL database holds a state already (and ``force`` was not given)."""


# --------------------------------------------------------------------------
# the tables, column by column


def _text(value: Any) -> Any:
    return None if value is None else str(value)


def _int(value: Any) -> Any:
    return None if value is None else int(value)


def _bool(value: Any) -> Any:
    return None if value is None else bool(value)


def _time(value: Any) -> Any:
    return None if value is None else from_text(str(value))


def _json(value: Any) -> Any:
    return None if value is None else Jsonb(json.loads(value))


#: A column's kind → its SQLite value as PostgreSQL takes it.
KINDS: dict[str, Callable[[Any], Any]] = {
    "text": _text,
    "int": _int,
    "bool": _bool,
    "time": _time,
    "json": _json,
}

_KIND_WORDS = {
    "text": "text",
    "int": "a whole number",
    "bool": "0 or 1",
    "time": "a time",
    "json": "JSON",
}


@dataclass(frozen=True)
class Table:
    """One table of the state: its columns in order, with their kinds."""

    name: str
    #: ``(column, kind)``; ``kind`` is a key of :data:`KINDS`.
    columns: tuple[tuple[str, str], ...]
    #: The columns that name a row (in messages) and order the copy.
    key: tuple[str, ...]
    #: Whether the table's ``id`` is an identity column in PostgreSQL.
    has_id: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def select(self) -> str:
        """The SQLite query reading every row (names from this module, never input)."""
        return f"SELECT {', '.join(self.names)} FROM {self.name} ORDER BY {', '.join(self.key)}"

    def copy(self) -> sql.Composed:
        return sql.SQL("COPY {table} ({columns}) FROM STDIN").format(
            table=sql.Identifier(self.name),
            columns=sql.SQL(", ").join(sql.Identifier(name) for name in self.names),
        )


TABLES: tuple[Table, ...] = (
    Table(
        "sources",
        (
            ("name", "text"),
            ("url", "text"),
            ("etag", "text"),
            ("last_modified", "text"),
            ("body_hash", "text"),
            ("last_poll", "time"),
            ("last_success", "time"),
            ("next_poll", "time"),
            ("last_error", "text"),
            ("consecutive_failures", "int"),
            ("paused", "bool"),
            ("first_poll_done", "bool"),
            ("snapshot", "json"),
        ),
        key=("name",),
    ),
    Table(
        "seen",
        (
            ("source", "text"),
            ("key", "text"),
            ("first_seen", "time"),
            ("last_seen", "time"),
            ("content_hash", "text"),
            ("outcome", "text"),
        ),
        key=("source", "key"),
    ),
    Table(
        "outbox",
        (
            ("id", "int"),
            ("channel", "text"),
            ("source", "text"),
            ("item_key", "text"),
            ("seq", "int"),
            ("group_id", "int"),
            ("payload", "json"),
            ("media", "json"),
            ("status", "text"),
            ("attempts", "int"),
            ("next_attempt_at", "time"),
            ("reason", "text"),
            ("message_token", "text"),
            ("created_at", "time"),
            ("posted_at", "time"),
            ("finished_at", "time"),
            ("item_published", "time"),
            ("send_at", "time"),
            ("decisions", "json"),
            ("files", "json"),
            ("held_by", "int"),
        ),
        key=("id",),
        has_id=True,
    ),
    Table(
        "events",
        (
            ("id", "int"),
            ("time", "time"),
            ("source", "text"),
            ("item_key", "text"),
            ("outbox_id", "int"),
            ("event", "text"),
            ("detail", "text"),
        ),
        key=("id",),
        has_id=True,
    ),
    Table(
        "channels",
        (
            ("name", "text"),
            ("stopped_reason", "text"),
            ("cooldown_until", "time"),
            ("webhook_url", "text"),
            ("last_post_at", "time"),
            ("sender", "text"),
        ),
        key=("name",),
    ),
)

#: What a table's rows are called in messages: (one, many).
NOUNS = {
    "sources": ("source", "sources"),
    "seen": ("seen item", "seen items"),
    "outbox": ("post", "posts"),
    "events": ("event", "events"),
    "channels": ("channel", "channels"),
}


def counted(table: str, n: int) -> str:
    """``"3 posts"``, ``"1 source"``."""
    one, many = NOUNS[table]
    return f"{n:,} {one if n == 1 else many}"


# --------------------------------------------------------------------------
# the result


@dataclass(frozen=True)
class Moved:
    """What :func:`migrate_state` copied."""

    #: The SQLite file, and the database as the operator knows it (no password).
    source: str
    target: str
    #: Rows copied, by table (every table of :data:`TABLES`).
    counts: dict[str, int]
    #: Posts copied, by status (every status, after the change below).
    statuses: dict[str, int]
    #: The posts that were ``sending`` and became ``unknown``, by id.
    interrupted: tuple[int, ...] = ()
    #: What the database held before, by table, when ``force`` replaced it.
    replaced: dict[str, int] = field(default_factory=dict)
    #: The id the next post queued in PostgreSQL gets.
    next_post_id: int = 1
    #: The file's schema version when it was older than this program's
    #: (the copy was upgraded on the way; the file was not).
    upgraded_from: int | None = None


# --------------------------------------------------------------------------
# the move


def migrate_state(
    path: Path | str,
    url: str,
    *,
    password: str | None,
    now: datetime,
    force: bool = False,
) -> Moved:
    """Copy the SQLite state at ``path`` into the PostgreSQL database at
    ``url``, as the module docstring says; ``now`` dates the events of
    interrupted posts. StoreError (one line, saying what to do) when it
    cannot; then neither state has changed."""
    name = str(path)
    if name == ":memory:" or not Path(name).is_file():
        raise StoreError(
            f"{name}: no state file there; give the SQLite state with --from PATH "
            "(default: [storage] path)"
        )
    lock = StateLock.acquire(name)
    try:
        version = _schema_version(name)
        damage = quick_check(name)
        if damage:
            raise StoreError(
                f"the state file {name} is damaged ({'; '.join(damage)[:200]}); nothing "
                "was copied: restore a backup of it and migrate that"
            )
        with ExitStack() as stack:
            readable = name
            if version < SQLITE_SCHEMA_VERSION:
                # Written by an older version: upgraded on a copy, never in place.
                scratch = stack.enter_context(TemporaryDirectory(prefix="viber-publisher-"))
                readable = str(backup(name, Path(scratch) / "state.sqlite3"))
            source = SQLiteDatabase.open(readable, read_only=readable == name)
            stack.callback(source.close)
            with source.read(snapshot=True) as src:
                _check_references(src, name)
                moved = _into_postgres(src, name, url, password, now, force)
            if version < SQLITE_SCHEMA_VERSION:
                moved = replace(moved, upgraded_from=version)
            return moved
    finally:
        lock.release()


def _schema_version(name: str) -> int:
    """The file's ``user_version``, read-only; StoreError when it is not a
    state file of this program, or one of a newer version."""
    target = "file:" + quote(str(Path(name).resolve())) + "?mode=ro"
    try:
        conn = sqlite3.connect(target, uri=True, isolation_level=None)
        try:
            version = user_version(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise translate_sqlite(exc, name, True) or StoreError(
            f"{name}: cannot be read as a state file ({exc})"
        ) from exc
    if version == 0:
        raise StoreError(
            f"{name} is not a viber-publisher state file (it has none of its tables); "
            "check --from or [storage] path"
        )
    if version > SQLITE_SCHEMA_VERSION:
        raise StoreError(
            f"{name}: schema version {version}, newer than this program's "
            f"{SQLITE_SCHEMA_VERSION}; upgrade viber-publisher, then migrate"
        )
    return version


def _check_references(src: sqlite3.Connection, name: str) -> None:
    """Refuse a file whose rows refer to rows it does not have (edited by
    hand with foreign keys off): PostgreSQL would refuse them mid-copy."""
    broken = src.execute("PRAGMA foreign_key_check").fetchall()
    if broken:
        tables = sorted({str(row[0]) for row in broken})
        raise StoreError(
            f"the state file {name}: {len(broken)} row(s) of {', '.join(tables)} refer to rows "
            "that do not exist (the file was edited outside viber-publisher); nothing was "
            "copied: restore a backup of it, or delete those rows "
            "(sqlite3 FILE 'PRAGMA foreign_key_check')"
        )


def _into_postgres(
    src: sqlite3.Connection, name: str, url: str, password: str | None, now: datetime, force: bool
) -> Moved:
    where = describe(url)
    conninfo = connection_info(url, password=password)
    try:
        with psycopg.connect(conninfo, autocommit=True, row_factory=dict_row) as conn:
            migrate(conn)
            with conn.transaction():
                return _copy(src, conn, name, where, now, force)
    except psycopg.Error as exc:
        error = translate(exc, where)
        if error is not None:
            raise error from exc
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise StoreError(
            f"{where}: the copy failed ({detail}); nothing was written to it, and the "
            f"state file {name} is unchanged"
        ) from exc


def _count(conn: Conn) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        row = conn.execute(
            sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(table.name))
        ).fetchone()
        counts[table.name] = 0 if row is None else int(row["n"])
    return counts


def _copy(
    src: sqlite3.Connection, dst: Conn, name: str, where: str, now: datetime, force: bool
) -> Moved:
    # A replica joins holding this lock: one starting now waits for the end.
    dst.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
    running = live_replicas(dst, ())
    if running:
        names = ", ".join(r.name for r in running)
        raise StoreError(
            f"{where} is in use by {len(running)} running viber-publisher replica(s) "
            f"({names}); nothing was copied: stop them first"
        )
    all_tables = sql.SQL(", ").join(sql.Identifier(t.name) for t in TABLES)
    # Other writers (a `post` or `retry` on this database) wait until the end.
    dst.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(all_tables))
    before = {table: n for table, n in _count(dst).items() if n}
    if before and not force:
        held = ", ".join(counted(table, n) for table, n in before.items())
        raise TargetNotEmpty(
            f"{where} already holds a state ({held}); nothing was copied: migrate into a new, "
            "empty database (createdb), or give --force to replace that state with the "
            f"one of {name}"
        )
    if before:
        dst.execute(sql.SQL("TRUNCATE {}").format(all_tables))
    counts: dict[str, int] = {}
    highest: dict[str, int] = {}
    statuses: Counter[str] = Counter()
    interrupted: list[tuple[int, str, str]] = []  # (id, source, item_key)
    for table in TABLES:
        convert = [KINDS[kind] for _, kind in table.columns]
        status_at = table.names.index("status") if table.name == "outbox" else -1
        n = 0
        top = 0
        with dst.cursor().copy(table.copy()) as copy:
            for row in src.execute(table.select()):
                values = _converted(table, row, convert, name)
                if status_at >= 0:
                    if values[status_at] == "sending":
                        values[status_at] = "unknown"
                        values[table.names.index("reason")] = INTERRUPTED
                        interrupted.append((int(row["id"]), row["source"], row["item_key"]))
                    statuses[values[status_at]] += 1
                if table.has_id:
                    top = max(top, int(row["id"]))
                copy.write_row(values)
                n += 1
        counts[table.name] = n
        highest[table.name] = top
    given = _sqlite_sequences(src)
    next_ids = {}
    for table in TABLES:
        if table.has_id:
            last = max(highest[table.name], given.get(table.name, 0))
            dst.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, %s)",
                (table.name, max(last, 1), last > 0),
            )
            next_ids[table.name] = last + 1
    for outbox_id, source, item_key in interrupted:
        dst.execute(
            "INSERT INTO events (time, source, item_key, outbox_id, event, detail)"
            " VALUES (%s, %s, %s, %s, 'unknown', %s)",
            (now, source, item_key, outbox_id, INTERRUPTED),
        )
    return Moved(
        source=name,
        target=where,
        counts=counts,
        statuses={status: statuses.get(status, 0) for status in STATUSES},
        interrupted=tuple(outbox_id for outbox_id, _, _ in interrupted),
        replaced=before,
        next_post_id=next_ids["outbox"],
    )


def _converted(
    table: Table, row: sqlite3.Row, convert: Sequence[Callable[[Any], Any]], name: str
) -> list[Any]:
    values = []
    for (column, kind), to_postgres, value in zip(table.columns, convert, row, strict=True):
        try:
            values.append(to_postgres(value))
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            which = ", ".join(f"{k} {row[k]!r}" for k in table.key)
            raise StoreError(
                f"the state file {name}: the {table.name} row with {which} has a {column} that "
                f"is not {_KIND_WORDS[kind]} ({str(value)[:60]!r}); it was edited outside "
                "viber-publisher: fix or delete that row, or restore a backup; nothing was copied"
            ) from exc
    return values


def _sqlite_sequences(src: sqlite3.Connection) -> dict[str, int]:
    """The highest id SQLite ever gave, by table (AUTOINCREMENT never reuses one)."""
    found = src.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'"
    ).fetchone()
    if found is None:
        return {}
    return {str(r[0]): int(r[1]) for r in src.execute("SELECT name, seq FROM sqlite_sequence")}
