"""One service per database: PostgreSQL's counterpart of the SQLite state
file's lock (:mod:`publisher.adapters.sqlite.lock`).

:meth:`ServiceLock.acquire` opens a connection of its own (not one of the
store's pool) and takes the session-level advisory lock
:data:`SERVICE_LOCK` with ``pg_try_advisory_lock``; it holds that
connection, idle, for the life of the ``run``. Once the lock is its own it
writes who holds it in the one row of ``service_holder`` (pid, host name,
since when, and its server session), so that a second ``run`` — on this
machine or any other — that finds the lock taken stops at once with a
:class:`StoreError` naming the holder's pid and host. The refused one only
reads (``pg_locks`` and that row): no migration, no crash recovery, no
webhook, no pid file.

The server drops the lock when the holder's session ends: the process
exits, however it exits (its socket is closed by the kernel), or its machine
is gone (the session's TCP keepalives, set here to give up after about a
minute of silence). The other commands (``status``, ``preview``, ``post``,
``retry``) do not take it: they work beside a running service.

Not covered: a holder whose lock connection is cut while it runs (the
server restarted) does not notice, and does not take the lock again.
"""

from __future__ import annotations

import os
import socket
from contextlib import suppress
from datetime import UTC, datetime

import psycopg
from psycopg.rows import dict_row

from publisher.adapters.postgres.db import connection_info, describe, translate
from publisher.adapters.postgres.rows import Conn
from publisher.core.errors import StoreError

#: The advisory lock key of a running service ("vibersvc" in ASCII); the
#: migrations use another (:data:`publisher.adapters.postgres.schema.MIGRATION_LOCK`).
SERVICE_LOCK = 0x7669626572737663

#: The server gives up on a silent holder after idle + interval * count seconds.
_KEEPALIVES = "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3"

_HOLDER_TABLE = """
    CREATE TABLE IF NOT EXISTS service_holder (
        id boolean PRIMARY KEY DEFAULT true CHECK (id),
        pid integer NOT NULL,
        host text NOT NULL,
        started_at timestamptz NOT NULL,
        backend_pid integer NOT NULL
    )
"""

_RECORD = """
    INSERT INTO service_holder (id, pid, host, started_at, backend_pid)
    VALUES (true, %s, %s, now(), pg_backend_pid())
    ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, host = excluded.host,
        started_at = excluded.started_at, backend_pid = excluded.backend_pid
"""

#: The server session holding the service lock in this database, if any.
_LOCK_HOLDER = """
    SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database
    WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()
      AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.objsubid = 1
"""


class ServiceLock:
    """The held lock and its connection; :meth:`release` (or the process's
    exit) frees it."""

    def __init__(self, conn: Conn, where: str) -> None:
        self._conn: Conn | None = conn
        self.where = where

    @classmethod
    def acquire(cls, url: str, *, password: str | None = None) -> ServiceLock:
        """Take the service lock of the database at ``url``, or raise
        StoreError naming the run that holds it (or why the server cannot
        be used)."""
        where = describe(url)
        conninfo = connection_info(
            url,
            password=password,
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
            options=_KEEPALIVES,
        )
        try:
            conn: Conn = psycopg.connect(conninfo, autocommit=True, row_factory=dict_row)
        except psycopg.Error as exc:
            raise translate(exc, where) or StoreError(
                f"{where}: cannot be used as the state database ({exc})"
            ) from exc
        try:
            row = conn.execute(
                "SELECT pg_try_advisory_lock(%s) AS taken", (SERVICE_LOCK,)
            ).fetchone()
            if row is None or not row["taken"]:
                raise StoreError(
                    f"the state database ({where}) is in use by another viber-publisher run "
                    f"({_holder(conn)}); stop that one first (`viber-publisher status` "
                    "works beside it)"
                )
            # A server set to end idle sessions would end the lock with them
            # (idle_session_timeout: PostgreSQL 14 and later).
            with suppress(psycopg.Error):
                conn.execute("SET idle_session_timeout = 0")
            with conn.transaction():
                conn.execute(_HOLDER_TABLE)
                conn.execute(_RECORD, (os.getpid(), socket.gethostname()))
        except psycopg.Error as exc:
            conn.close()
            raise translate(exc, where) or StoreError(
                f"{where}: cannot take the service lock ({exc})"
            ) from exc
        except BaseException:
            conn.close()
            raise
        return cls(conn, where)

    def release(self) -> None:
        """Free the lock: the session ends, and the server drops it. The
        holder's row stays (the next holder overwrites it)."""
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        with suppress(psycopg.Error):
            conn.execute("SELECT pg_advisory_unlock(%s)", (SERVICE_LOCK,))
        conn.close()

    @property
    def held(self) -> bool:
        return self._conn is not None


def _holder(conn: Conn) -> str:
    """Who holds the lock, in words: "pid 123 on host web1, since …"."""
    found = conn.execute(_LOCK_HOLDER, (SERVICE_LOCK >> 32, SERVICE_LOCK & 0xFFFFFFFF)).fetchone()
    table = conn.execute("SELECT to_regclass('service_holder') IS NOT NULL AS t").fetchone()
    if found is None:
        return "it has just stopped: try again"
    if table is None or not table["t"]:
        return "it has not recorded itself yet"
    row = conn.execute(
        "SELECT pid, host, started_at, backend_pid FROM service_holder WHERE id"
    ).fetchone()
    if row is None or row["backend_pid"] != found["pid"]:
        return "it has not recorded itself yet"
    since = row["started_at"].astimezone(UTC) if isinstance(row["started_at"], datetime) else None
    when = f", since {since:%Y-%m-%d %H:%M} UTC" if since is not None else ""
    return f"pid {row['pid']} on host {row['host']}{when}"
