"""The connection: opening, the lock, transactions, and SQLite's errors
translated into :class:`StoreError` messages that say what to do.

One connection per store, in autocommit mode, guarded by a lock (pollers
and the deliverer share it from their threads). WAL, a busy timeout and
foreign keys. Every change is one :meth:`Database.write` transaction, so a
process killed at any moment leaves either all of a change or none of it.
Opened with ``read_only=True`` the file is never written: no migration, no
journal-mode change.

Durability (SQLite's WAL with ``synchronous=NORMAL``): every committed
transaction survives the process being killed. A transaction written with
``write(durable=True)`` (the outbox's transitions: ``sending`` is committed
before each request) is run at ``synchronous=FULL``: the WAL is synced
before it returns, so it, and every transaction committed before it, also
survives a power cut or an OS crash. The other writes (poll bookkeeping:
seen keys, queued posts, sources' state) reach the disk at the next durable
write or checkpoint; a power cut may lose the last of them, and the next
poll does them again (nothing is posted twice: a post's ``sending`` mark is
durable before it goes out).

:meth:`Database.batch` makes the writes inside it one transaction (a poll
of one source); each write in it is a savepoint, so a write that fails
changes nothing and the batch goes on.

What SQLite says, and what the operator reads (:func:`translate`)::

    SQLITE_CORRUPT          the state file is damaged: restore a backup or move it away
    SQLITE_NOTADB           not a state file: check [storage] path
    SQLITE_FULL             the disk is full: free some space
    SQLITE_READONLY*        cannot be written: permissions, read-only mount
    SQLITE_BUSY / _LOCKED   another process holds it: stop that one
    SQLITE_IOERR            the disk failed a read or write: check it
    SQLITE_CANTOPEN / _PERM cannot be opened: the folder and its permissions

Anything else (a constraint, a bug in our SQL) stays the ``sqlite3`` error
it is, and so does a write attempted on a store the program itself opened
read-only: those are bugs, not something an operator can fix.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote

from publisher.adapters.sql.versions import check_current
from publisher.adapters.sqlite.schema import SCHEMA_VERSION, migrate, user_version
from publisher.core.errors import StoreError

BUSY_TIMEOUT_MS = 10_000
#: Less free space than this on the state file's disk is reported as full.
MIN_FREE_BYTES = 1024 * 1024

# SQLite's primary result codes (the low byte of an extended code).
_PERM, _BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = (
    3,
    5,
    6,
    8,
    10,
    11,
    13,
    14,
    26,
)


def translate(exc: sqlite3.Error, path: str, read_only: bool = False) -> StoreError | None:
    """The StoreError an operator should read for ``exc``, or None when it is
    not about the file or its disk (leave it as it is)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return None
    primary = code & 0xFF
    where = f"the state file {path}"
    if primary == _CORRUPT:
        return StoreError(
            f"{where} is damaged ({exc}); restore it from a backup, or move it (with its "
            "-wal and -shm files) away to start afresh"
        )
    if primary == _NOTADB:
        return StoreError(
            f"{path} is not a viber-publisher state file ({exc}); check [storage] path, "
            "or move the file away to start afresh"
        )
    if primary == _FULL:
        return StoreError(
            f"the disk holding {where} is full ({exc}); nothing was saved: free some space"
        )
    if primary == _READONLY:
        if read_only and code == _READONLY:
            return None  # we opened it read-only and then wrote: a bug, not the file
        return StoreError(
            f"{where} cannot be written ({exc}); check that this user may write the file "
            "and its folder (SQLite keeps -wal and -shm files beside it) and that the "
            "disk is not mounted read-only"
        )
    if primary in (_BUSY, _LOCKED):
        return StoreError(
            f"{where} is locked by another process ({exc}); stop the other viber-publisher "
            "(or sqlite3 shell) using it, then try again"
        )
    if primary == _IOERR:
        return StoreError(
            f"{where} could not be read or written ({exc}); check the disk it is on "
            "(the kernel log says more), then try again"
        )
    if primary in (_CANTOPEN, _PERM):
        return StoreError(
            f"{where} cannot be opened ({exc}); check that its folder exists and that "
            "this user may read and write both"
        )
    return None


class Database:
    """The store's one connection, its lock, and its transactions."""

    def __init__(self, conn: sqlite3.Connection, path: str, read_only: bool) -> None:
        self.conn = conn
        self.path = path
        self.read_only = read_only
        self.lock = threading.RLock()
        #: Open batch depth (only the thread holding ``lock`` reads or changes it).
        self._batch = 0
        #: Whether the open batch holds a durable write.
        self._durable_batch = False

    @classmethod
    def open(
        cls, path: Path | str, *, read_only: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS
    ) -> Database:
        """Open (and create or migrate) the database at ``path``; ``":memory:"`` works.

        With ``read_only=True`` the file is opened ``mode=ro`` and never
        written; an absent file or an older schema is a StoreError.
        """
        name = str(path)
        if read_only:
            if name == ":memory:":
                raise StoreError("an in-memory database cannot be opened read-only")
            if not Path(name).exists():
                raise StoreError(
                    f"{name}: no database yet; it is created when the service first runs"
                )
            target = "file:" + quote(str(Path(name).resolve())) + "?mode=ro"
        else:
            target = name
            if name != ":memory:":
                try:
                    Path(name).parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(
                        f"{name}: cannot create its folder ({exc.strerror}); "
                        "check [storage] path and the folder's permissions"
                    ) from exc
        timeout = busy_timeout_ms / 1000
        try:
            conn = sqlite3.connect(
                target,
                uri=read_only,
                isolation_level=None,
                check_same_thread=False,
                timeout=timeout,
            )
        except sqlite3.Error as exc:
            raise _open_error(exc, name, read_only) from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms:d}")
            conn.execute("PRAGMA foreign_keys = ON")
            if read_only:
                empty = conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is None
                check_current(name, user_version(conn), SCHEMA_VERSION, empty)
            else:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                migrate(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise _open_error(exc, name, read_only) from exc
        except BaseException:
            conn.close()
            raise
        return cls(conn, name, read_only)

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    # ---- transactions

    @contextmanager
    def write(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it commits, or none of it.

        ``durable``: synced to disk before this returns (see the module
        docstring). Inside :meth:`batch` it is a savepoint of the batch's
        transaction (a durable write needs a durable batch: SQLite cannot
        change the sync level inside a transaction).
        """
        with self.lock, self._translated():
            conn = self.conn
            if self._batch:
                if durable and not self._durable_batch:
                    raise RuntimeError("a durable write inside a batch(durable=False)")
                conn.execute("SAVEPOINT write")
                try:
                    yield conn
                    conn.execute("RELEASE write")
                except BaseException:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK TO write")
                        conn.execute("RELEASE write")
                    raise
                return
            with self._transaction(durable):
                yield conn

    @contextmanager
    def batch(self, *, durable: bool = False) -> Iterator[None]:
        """The writes inside are one transaction, committed at the end (or
        rolled back if the block raises); each is a savepoint, so one that
        fails changes nothing and the others stay. Holds the lock throughout:
        do no slow work (parsing, fetching) inside. A nested batch joins the
        outer one."""
        with self.lock, self._translated():
            if self._batch:
                if durable and not self._durable_batch:
                    raise RuntimeError("a durable batch inside a batch(durable=False)")
                self._batch += 1
                try:
                    yield
                finally:
                    self._batch -= 1
                return
            with self._transaction(durable):
                self._batch, self._durable_batch = 1, durable
                try:
                    yield
                finally:
                    self._batch, self._durable_batch = 0, False

    @contextmanager
    def _transaction(self, durable: bool) -> Iterator[None]:
        """BEGIN IMMEDIATE … COMMIT (ROLLBACK if the block raises); at
        ``synchronous=FULL`` when ``durable``. Called with the lock held."""
        conn = self.conn
        if durable:
            conn.execute("PRAGMA synchronous = FULL")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        finally:
            if durable:
                with suppress(sqlite3.Error):
                    conn.execute("PRAGMA synchronous = NORMAL")

    @contextmanager
    def read(self, *, snapshot: bool = False) -> Iterator[sqlite3.Connection]:
        """Reads under the lock; ``snapshot``: several statements that see
        one consistent state."""
        with self.lock, self._translated():
            if not snapshot or self._batch:  # a batch's transaction is a snapshot already
                yield self.conn
                return
            self.conn.execute("BEGIN")
            try:
                yield self.conn
            finally:
                self._rollback()

    def check_writable(self) -> None:
        """Raise StoreError unless a change could be saved now, writing nothing.

        Takes the write lock and starts a write statement that matches no
        row (so a file SQLite could only open read-only, or one another
        process holds, is found out), rolls back, and checks the disk has
        some free space left. The file's bytes and ``PRAGMA data_version``
        stay as they were.
        """
        if self.read_only:
            raise StoreError(f"{self.path}: opened read-only; the service opens it for writing")
        with self.lock, self._translated():
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.execute("UPDATE channels SET name = name WHERE 0")
            finally:
                self._rollback()
        if self.path == ":memory:":
            return
        try:
            free = shutil.disk_usage(Path(self.path).resolve().parent).free
        except OSError as exc:
            raise StoreError(
                f"the state file {self.path}: its disk cannot be checked ({exc.strerror})"
            ) from exc
        if free < MIN_FREE_BYTES:
            raise StoreError(
                f"the disk holding the state file {self.path} is full ({free} bytes free); "
                "free some space"
            )

    # ---- plumbing

    def _rollback(self) -> None:
        """End the transaction if SQLite has not already (a failed COMMIT, a
        full disk); the error that got us here is the one to report."""
        if self.conn.in_transaction:
            with suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            error = translate(exc, self.path, self.read_only)
            if error is None:
                raise
            raise error from exc


def _open_error(exc: sqlite3.Error, name: str, read_only: bool) -> StoreError:
    return translate(exc, name, read_only) or StoreError(
        f"{name}: cannot be used as the state file ({exc})"
    )


# ---- whole-file tools: the integrity check (``check``) and online backups (``backup``)


def _connect_read_only(path: Path | str) -> sqlite3.Connection:
    """A read-only connection to the state file ``path`` (never written)."""
    name = str(path)
    if not Path(name).is_file():
        raise StoreError(f"{name}: no state file there; check [storage] path")
    target = "file:" + quote(str(Path(name).resolve())) + "?mode=ro"
    try:
        conn = sqlite3.connect(target, uri=True, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
    except sqlite3.Error as exc:
        raise _open_error(exc, name, True) from exc
    return conn


def quick_check(path: Path | str) -> list[str]:
    """``PRAGMA quick_check`` of the state file, opened read-only: [] when it
    is sound, else what SQLite found (at most a few lines). StoreError when it
    cannot be opened at all."""
    name = str(path)
    conn = _connect_read_only(name)
    try:
        found = [str(r[0]) for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
    except sqlite3.Error as exc:
        if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF in (_CORRUPT, _NOTADB):
            return [str(exc)]  # damaged beyond what quick_check can walk
        error = translate(exc, name, True) or StoreError(f"{name}: cannot be checked ({exc})")
        raise error from exc
    finally:
        conn.close()
    return [] if found == ["ok"] else found


def backup(path: Path | str, target: Path | str) -> Path:
    """Copy the state file ``path`` to ``target`` while it is in use (SQLite's
    online backup API: a consistent snapshot, the running service is not
    stopped), through a temporary file renamed into place. Returns ``target``.
    StoreError when it cannot be read or the copy cannot be written."""
    source_name, target_path = str(path), Path(target)
    temp = target_path.with_name(f".{target_path.name}.{os.getpid()}.tmp")
    source = _connect_read_only(source_name)
    try:
        try:
            copy = sqlite3.connect(str(temp), isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(
                f"{target_path}: cannot be written ({exc}); choose another path"
            ) from exc
        try:
            source.backup(copy)
            copy.execute("PRAGMA journal_mode = DELETE")
        except sqlite3.Error as exc:
            where = translate(exc, source_name, True)
            raise StoreError(
                str(where) if where is not None else f"{target_path}: the copy failed ({exc})"
            ) from exc
        finally:
            copy.close()
        os.replace(temp, target_path)
    except OSError as exc:
        raise StoreError(
            f"{target_path}: the copy cannot be written ({exc.strerror or exc}); "
            "check the folder and the free space"
        ) from exc
    finally:
        source.close()
        with suppress(OSError):
            temp.unlink()
    return target_path
