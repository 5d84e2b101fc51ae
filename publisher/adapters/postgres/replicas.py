"""Several replicas on one PostgreSQL database: who polls a source, who
posts to a channel (:class:`publisher.ports.Leases`).

Each ``run`` process joins as a *replica*: it opens a connection of its own
(not one of the store's pool), records itself in ``replicas`` (host, pid,
since when, its server session) and takes session-level advisory locks on
that connection:

- a **source's lease** for the length of one poll (``pg_try_advisory_lock``;
  refused: another replica polls it right now);
- a **channel's lease** for as long as the replica posts to that channel
  (the lane keeps it; refused: another replica posts there, and the lane
  asks again every few seconds). So ``min_interval``, the rate limits and
  the windows, read from the shared state, hold for the channel as a whole.

The server frees a session's locks when the session ends: the process
exits, however it exits (the kernel closes its socket), or its machine is
gone (the session's TCP keepalives give up after about a minute of
silence). A replica whose session is gone (the server restarted, the network
cut it) holds nothing from that moment: every ``take_*`` answers False (so
it neither polls nor posts), :meth:`Replica.problem` says why (``/readyz``),
and it reconnects every :data:`RECONNECT_EVERY` seconds, taking leases
again as its lanes ask. Its post in flight, if any, is finished; the
replica that takes the channel next makes that post ``unknown``, never
sends it again.

``status`` (another process, not a replica) reads who holds what from
``pg_locks``, matched against ``replicas`` by server session
(:func:`live_replicas`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import zlib
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from publisher.adapters.postgres.db import connection_info, describe, translate
from publisher.adapters.postgres.rows import Conn
from publisher.adapters.postgres.schema import MIGRATION_LOCK
from publisher.core.errors import StoreError
from publisher.core.records import ReplicaInfo

log = logging.getLogger(__name__)

#: The first key of a source's advisory lock ("vpSr"); the second is its name's CRC-32.
SOURCE_KEY = 0x76705372
#: The first key of a channel's advisory lock ("vpCh").
CHANNEL_KEY = 0x76704368
#: A replica that lost its session tries again this often (seconds).
RECONNECT_EVERY = 5.0

#: The server gives up on a silent replica after idle + interval * count seconds.
_KEEPALIVES = "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3"

_TABLE = """
    CREATE TABLE IF NOT EXISTS replicas (
        backend_pid integer PRIMARY KEY,
        name text NOT NULL,
        started_at timestamptz NOT NULL
    )
"""

#: Forget the replicas whose sessions are gone.
_FORGET_GONE = """
    DELETE FROM replicas WHERE backend_pid NOT IN (SELECT pid FROM pg_stat_activity)
"""

_JOIN = """
    INSERT INTO replicas (backend_pid, name, started_at)
    VALUES (pg_backend_pid(), %s, %s)
    ON CONFLICT (backend_pid) DO UPDATE SET name = excluded.name,
        started_at = excluded.started_at
"""

#: Each live replica, and the advisory locks its session holds.
_HELD = """
    SELECT r.backend_pid, r.name, r.started_at, l.classid::bigint AS classid,
           l.objid::bigint AS objid
    FROM replicas r
    JOIN pg_stat_activity a ON a.pid = r.backend_pid
    LEFT JOIN pg_locks l ON l.pid = r.backend_pid AND l.locktype = 'advisory'
        AND l.granted AND l.objsubid = 2
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    ORDER BY r.started_at, r.name
"""


def key(name: str) -> int:
    """The second key of ``name``'s advisory lock (a signed 32-bit integer)."""
    return zlib.crc32(name.encode("utf-8")) - 2**31


def _oid(value: int) -> int:
    """A signed key as ``pg_locks`` shows it (an unsigned oid)."""
    return value & 0xFFFFFFFF


class Replica:
    """This process's membership, and the leases it holds."""

    shared = True

    def __init__(self, url: str, *, password: str | None = None) -> None:
        self.where = describe(url)
        self._conninfo = connection_info(
            url,
            password=password,
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
            options=_KEEPALIVES,
        )
        self.replica = f"{socket.gethostname()}:{os.getpid()}"
        self.started_at = datetime.now(UTC)
        self._lock = threading.Lock()
        self._conn: Conn | None = None
        self._channels: set[str] = set()
        self._sources: set[str] = set()
        self._lost: str | None = None
        self._next_try = 0.0
        self._closed = False

    @classmethod
    def join(cls, url: str, *, password: str | None = None) -> Replica:
        """Join the replicas of the database at ``url``; StoreError when the
        server cannot be used (nothing is held then)."""
        replica = cls(url, password=password)
        with replica._lock:
            replica._conn = replica._connect()
        return replica

    # ---- the session

    def _connect(self) -> Conn:
        try:
            conn: Conn = psycopg.connect(self._conninfo, autocommit=True, row_factory=dict_row)
        except psycopg.Error as exc:
            raise translate(exc, self.where) or StoreError(
                f"{self.where}: cannot be used as the state database ({exc})"
            ) from exc
        try:
            # A server set to end idle sessions would end the leases with them.
            with suppress(psycopg.Error):
                conn.execute("SET idle_session_timeout = 0")
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                conn.execute(_TABLE)
                conn.execute(_FORGET_GONE)
                conn.execute(_JOIN, (self.replica, self.started_at))
        except psycopg.Error as exc:
            conn.close()
            raise translate(exc, self.where) or StoreError(
                f"{self.where}: cannot join the replicas ({exc})"
            ) from exc
        return conn

    def _session(self) -> Conn | None:
        """The live session, reconnecting when due; None while it is gone.
        The caller holds ``_lock``."""
        if self._conn is not None or self._closed:
            return self._conn
        if time.monotonic() < self._next_try:
            return None
        self._next_try = time.monotonic() + RECONNECT_EVERY
        try:
            self._conn = self._connect()
        except StoreError as exc:
            self._lost = f"lost its PostgreSQL session and cannot reconnect: {exc}"
            return None
        log.warning("replica %s: connected again; taking its leases again", self.replica)
        self._lost = None
        return self._conn

    def _ask(self, sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
        """Run ``sql`` on the session; None when the session is gone (every
        lease is lost with it). The caller holds ``_lock``."""
        conn = self._session()
        if conn is None:
            return None
        try:
            row: dict[str, Any] | None = conn.execute(sql, params).fetchone()
            return row if row is not None else {}
        except psycopg.Error as exc:
            self._drop(f"lost its PostgreSQL session ({exc.__class__.__name__}: {exc})")
            return None

    def _drop(self, why: str) -> None:
        """The session is gone: so is every lease. The caller holds ``_lock``."""
        if self._channels or self._sources:
            log.warning(
                "replica %s: %s; it holds no channel or source now, and reconnects",
                self.replica,
                why.split("\n")[0],
            )
        self._lost = why.split("\n")[0]
        self._channels.clear()
        self._sources.clear()
        conn, self._conn = self._conn, None
        self._next_try = time.monotonic() + RECONNECT_EVERY
        if conn is not None:
            with suppress(psycopg.Error):
                conn.close()

    # ---- the leases (publisher.ports.Leases)

    def take_source(self, name: str) -> bool:
        with self._lock:
            if name in self._sources:
                return True
            row = self._ask("SELECT pg_try_advisory_lock(%s, %s) AS taken", (SOURCE_KEY, key(name)))
            if row is None or not row.get("taken"):
                return False
            self._sources.add(name)
            return True

    def release_source(self, name: str) -> None:
        with self._lock:
            if name not in self._sources:
                return
            self._sources.discard(name)
            self._ask("SELECT pg_advisory_unlock(%s, %s)", (SOURCE_KEY, key(name)))

    def take_channel(self, name: str) -> bool:
        with self._lock:
            if name in self._channels:
                # Still held only while the session lives: asked before each post.
                return self._ask("SELECT 1", ()) is not None
            row = self._ask(
                "SELECT pg_try_advisory_lock(%s, %s) AS taken", (CHANNEL_KEY, key(name))
            )
            if row is None or not row.get("taken"):
                return False
            self._channels.add(name)
            return True

    def release_channel(self, name: str) -> None:
        with self._lock:
            if name not in self._channels:
                return
            self._channels.discard(name)
            self._ask("SELECT pg_advisory_unlock(%s, %s)", (CHANNEL_KEY, key(name)))

    def problem(self) -> str | None:
        with self._lock:
            return self._lost

    def replicas(self, channels: Iterable[str] = ()) -> list[ReplicaInfo]:
        """The live replicas (``channels``: the names to recognise in their
        locks; this replica's own channels are always known)."""
        with self._lock:
            conn = self._session()
            me = conn.info.backend_pid if conn is not None else None
            if conn is None:
                return []
            try:
                found = held_by_session(conn, {*channels, *self._channels})
            except psycopg.Error as exc:
                self._drop(f"lost its PostgreSQL session ({exc})")
                return []
        return [replace(r, me=True) if pid == me else r for pid, r in found]

    def release(self) -> None:
        """Leave: the session ends and the server frees every lease."""
        with self._lock:
            self._closed = True
            self._channels.clear()
            self._sources.clear()
            conn, self._conn = self._conn, None
        if conn is not None:
            # Freed now, not when the server notices the session has ended.
            with suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock_all()")
            with suppress(psycopg.Error):
                conn.execute("DELETE FROM replicas WHERE backend_pid = pg_backend_pid()")
            with suppress(psycopg.Error):
                conn.close()

    @property
    def held(self) -> bool:
        return self._conn is not None


def held_by_session(conn: Conn, channels: Iterable[str]) -> list[tuple[int, ReplicaInfo]]:
    """Each live replica (by server session) and what it holds: the channels
    among ``channels`` and how many sources it polls right now."""
    names = {_oid(key(name)): name for name in channels}
    table = conn.execute("SELECT to_regclass('replicas') IS NOT NULL AS t").fetchone()
    if table is None or not table["t"]:
        return []
    found: dict[int, tuple[str, datetime, list[str], int]] = {}
    for row in conn.execute(_HELD).fetchall():
        pid = row["backend_pid"]
        name, started, held, polling = found.get(pid, (row["name"], row["started_at"], [], 0))
        if row["classid"] == CHANNEL_KEY:
            held.append(names.get(row["objid"], f"#{row['objid']}"))
        elif row["classid"] == SOURCE_KEY:
            polling += 1
        found[pid] = (name, started, held, polling)
    return [
        (pid, ReplicaInfo(name, started.astimezone(UTC), tuple(sorted(held)), polling))
        for pid, (name, started, held, polling) in found.items()
    ]


def live_replicas(conn: Conn, channels: Iterable[str]) -> list[ReplicaInfo]:
    """What :meth:`Replica.replicas` shows, for a process that is not one."""
    return [info for _, info in held_by_session(conn, channels)]
