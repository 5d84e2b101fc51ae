"""The connections: a pool, transactions, and PostgreSQL's errors
translated into :class:`StoreError` messages that say what to do.

A pool of connections (psycopg_pool) shared by the pollers, the deliverers
and the web endpoints; each :meth:`Database.write` is one transaction on one
connection, so a process killed at any moment leaves either all of a change
or none of it; :meth:`Database.batch` makes the writes inside it (a poll of
one source) one transaction, each write a savepoint of it, so a write that
fails changes nothing and the batch goes on. Every commit is durable (the
server's ``synchronous_commit``): a post is ``sending`` on the server's
disk before its request goes out. Rows of the outbox that a transition changes are locked
(``SELECT ... FOR UPDATE``) so that two threads, or two processes, never
both claim a post. Opened with ``read_only=True`` every transaction is
``READ ONLY`` and nothing is migrated.

What the server says, and what the operator reads (:func:`translate`)::

    cannot connect (refused, timeout, DNS)   the server is not reachable: start it, check url
    28P01 / 28000   login refused            the user in url, the password in password_env
    3D000           no such database         create it (createdb), or fix url
    42501           permission denied        grant the user rights, or use the owner
    53100           disk full                free space on the server
    53300           too many connections     raise max_connections, or run fewer processes
    25006           read-only transaction    a standby: point url at the primary
    57P01-57P03     shutting down / starting try again when the server is up
    08xxx, a dropped connection              the connection was lost: check the server

Anything else (a constraint, a bug in our SQL) stays the ``psycopg`` error
it is, and so does a write attempted on a store the program itself opened
read-only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from publisher.adapters.postgres.rows import Conn, Row
from publisher.adapters.postgres.schema import SCHEMA_VERSION, migrate, schema_version
from publisher.adapters.sql.versions import check_current
from publisher.core.errors import StoreError

#: Seconds to wait for a connection (new, or from the pool).
CONNECT_TIMEOUT = 10
#: The most connections one process holds: pollers, deliverers, the web.
POOL_MAX = 8


def describe(url: str) -> str:
    """The server and database as the operator wrote them, never a password."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the PostgreSQL server in [storage] url"
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    where = f"{host}:{port}" if not str(host).startswith("/") else str(host)
    return f"PostgreSQL at {where}, database {params.get('dbname') or params.get('user') or '?'}"


def translate(
    exc: psycopg.Error | PoolTimeout, where: str, read_only: bool = False
) -> StoreError | None:
    """The StoreError an operator should read for ``exc``, or None when it is
    not about the server, the login or the connection (leave it as it is)."""
    if isinstance(exc, PoolTimeout):
        return StoreError(
            f"{where}: no connection within {CONNECT_TIMEOUT} s ({exc}); check that the "
            "server is up and reachable, and that it accepts this many connections"
        )
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    state = exc.sqlstate or _connect_state(detail)
    if state in ("28P01", "28000"):
        return StoreError(
            f"{where} refused the login ({detail}); check the user in [storage] url and the "
            "password in the environment variable named by [storage] password_env "
            "(default PGPASSWORD) or in [storage] password_file"
        )
    if state == "3D000":
        return StoreError(
            f"{where}: the database does not exist ({detail}); create it "
            "(createdb -h HOST -U USER NAME) or fix [storage] url"
        )
    if state == "42501":
        return StoreError(
            f"{where}: permission denied ({detail}); let the user own the database "
            "(ALTER DATABASE ... OWNER TO ...) or grant it the rights on its tables"
        )
    if state == "53100":
        return StoreError(f"{where}: the server's disk is full ({detail}); free some space")
    if state == "53300":
        return StoreError(
            f"{where}: too many connections ({detail}); raise the server's max_connections "
            "or run fewer processes against it"
        )
    if state == "25006":
        if read_only:
            return None  # we opened it read-only and then wrote: a bug, not the server
        return StoreError(
            f"{where} accepts no writes ({detail}); it is a standby or read-only: point "
            "[storage] url at the primary"
        )
    if state.startswith("57P"):
        return StoreError(
            f"{where} is shutting down or starting ({detail}); try again when it is up"
        )
    if state.startswith("08") or (isinstance(exc, psycopg.OperationalError) and not state):
        return StoreError(
            f"{where} cannot be reached ({detail}); check that the server runs and "
            "listens there, and the host and port in [storage] url"
        )
    return None


#: What libpq says when a connection is refused, and the SQLSTATE it means
#: (a failed connection carries no SQLSTATE of its own).
_CONNECT_FAILURES = (
    ("password authentication failed", "28P01"),
    ("no password supplied", "28P01"),
    ("no pg_hba.conf entry", "28000"),
    ("role ", "28000"),  # role "x" does not exist
    ("database ", "3D000"),  # database "x" does not exist
    ("too many clients", "53300"),
    ("the database system is", "57P03"),  # starting up / shutting down
)


def _connect_state(detail: str) -> str:
    for words, state in _CONNECT_FAILURES:
        if words in detail and ("does not exist" in detail or words[-1] != " "):
            return state
    return ""


def connection_info(
    url: str, *, password: str | None = None, read_only: bool = False, **extra: Any
) -> str:
    """The libpq connection string for ``url``: a deadline to connect, the
    program's name, the password (never in the URL), ``extra`` parameters;
    StoreError when ``url`` is not a PostgreSQL URL."""
    params: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT,
        "application_name": "viber-publisher",
        **extra,
    }
    if password is not None:
        params["password"] = password
    if read_only:
        params["options"] = "-c default_transaction_read_only=on"
    try:
        return make_conninfo(url, **params)
    except psycopg.ProgrammingError as exc:
        raise StoreError(f"[storage] url is not a PostgreSQL URL ({exc})") from exc


class Database:
    """The store's pool of connections, and its transactions."""

    def __init__(self, pool: ConnectionPool[Conn], where: str, read_only: bool) -> None:
        self.pool = pool
        self.path = where
        self.read_only = read_only
        #: The connection of the batch this thread is in, if any.
        self._local = threading.local()

    @classmethod
    def open(
        cls,
        url: str,
        *,
        password: str | None = None,
        read_only: bool = False,
        max_size: int = POOL_MAX,
    ) -> Database:
        """Connect to ``url`` (created or migrated unless ``read_only``).

        With ``read_only=True`` nothing is written: an empty database or an
        older schema is a StoreError, as is a server that cannot be used.
        """
        where = describe(url)
        conninfo = connection_info(url, password=password, read_only=read_only)
        try:
            with psycopg.connect(conninfo, autocommit=True, row_factory=dict_row) as conn:
                _prepare(conn, where, read_only)
        except psycopg.Error as exc:
            raise translate(exc, where, read_only) or StoreError(
                f"{where}: cannot be used as the state database ({exc})"
            ) from exc
        pool: ConnectionPool[Conn] = ConnectionPool(
            conninfo,
            connection_class=psycopg.Connection[Row],
            kwargs={"row_factory": dict_row},
            min_size=1,
            max_size=max_size,
            timeout=CONNECT_TIMEOUT,
            check=ConnectionPool.check_connection,
            name="viber-publisher",
            open=True,
        )
        return cls(pool, where, read_only)

    def close(self) -> None:
        self.pool.close()

    # ---- transactions

    def _batch(self) -> Conn | None:
        conn: Conn | None = getattr(self._local, "conn", None)
        return conn

    @contextmanager
    def write(self, *, durable: bool = False) -> Iterator[Conn]:
        """One write transaction: all of it commits, or none of it; inside
        :meth:`batch`, a savepoint of the batch's transaction. Every commit
        is durable here, so ``durable`` asks nothing more."""
        batch = self._batch()
        if batch is not None:
            with self._translated(), batch.transaction():
                yield batch
            return
        with self._translated(), self.pool.connection() as conn, conn.transaction():
            yield conn

    @contextmanager
    def batch(self) -> Iterator[None]:
        """The writes of this thread inside are one transaction, committed at
        the end (rolled back if the block raises); each is a savepoint. A
        nested batch joins the outer one. Other threads are not held up."""
        if self._batch() is not None:
            yield
            return
        with self._translated(), self.pool.connection() as conn, conn.transaction():
            self._local.conn = conn
            try:
                yield
            finally:
                self._local.conn = None

    @contextmanager
    def read(self, *, snapshot: bool = False) -> Iterator[Conn]:
        """Reads; ``snapshot``: several statements that see one consistent
        state. Inside :meth:`batch`, on its transaction (its writes are seen)."""
        batch = self._batch()
        if batch is not None:
            with self._translated():
                yield batch
            return
        with self._translated(), self.pool.connection() as conn:
            try:
                if snapshot:
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                yield conn
            finally:
                with suppress(psycopg.Error):
                    conn.rollback()

    def check_writable(self) -> None:
        """Raise StoreError unless a change could be saved now, writing nothing:
        a write statement that matches no row, rolled back."""
        if self.read_only:
            raise StoreError(f"{self.path}: opened read-only; the service opens it for writing")
        with self._translated(), self.pool.connection() as conn:
            try:
                conn.execute("UPDATE channels SET name = name WHERE false")
            finally:
                with suppress(psycopg.Error):
                    conn.rollback()

    def version(self) -> int:
        with self.read() as conn:
            return schema_version(conn)

    # ---- plumbing

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except (psycopg.Error, PoolTimeout) as exc:
            error = translate(exc, self.path, self.read_only)
            if error is None:
                raise
            raise error from exc


def _prepare(conn: Conn, where: str, read_only: bool) -> None:
    """Migrate (or, read-only, check the version of) the database."""
    if not read_only:
        migrate(conn)
        return
    version = schema_version(conn)
    if version == 0:
        raise StoreError(f"{where}: no state yet; it is created when the service first runs")
    check_current(where, version, SCHEMA_VERSION)
