"""Kept HTTP/1.1 connections on the standard library's ``http.client``.

:class:`Connections` keeps idle connections by origin (scheme, host, port)
for :class:`~publisher.adapters.fetch.Fetcher`: a feed polled again finds
its connection open. A :class:`Connection` is opened to the addresses it is
given, in order (the ones the private-address rule checked: the name is not
looked up a second time), with TLS naming and verifying the host, and tells
the caller each socket it opens at once (a watchdog may shut it). Errors are
raised as the httpx errors they stand for (:func:`as_httpx_error`), so the
fetcher says the same one line whichever way a request went.

Why not httpcore, which httpx is built on: on an unchanged poll (a 304) its
pool and h11 cost twice what the standard library's parser does, and the
standard library is what urllib3 builds on too.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable

import httpx

__all__ = ["Connection", "Connections", "Origin", "as_httpx_error"]

#: ``(scheme, host, port)``: the connections of one origin are interchangeable.
Origin = tuple[str, str, int]


class Connection(http.client.HTTPConnection):
    """One HTTP/1.1 connection to ``origin`` (opened by :meth:`open`)."""

    def __init__(self, origin: Origin, tls: ssl.SSLContext | None) -> None:
        scheme, host, port = origin
        super().__init__(host, port)
        self.origin = origin
        self._tls = tls if scheme == "https" else None
        #: When it went back to the pool (monotonic).
        self.idle_since = 0.0

    def open(
        self,
        addresses: list[str] | None,
        timeout: float,
        on_socket: Callable[[socket.socket], None],
    ) -> None:
        """Connect to the first of ``addresses`` that answers (None: the host
        name, looked up by the system), ``timeout`` seconds each; TLS for
        https, verifying the host's certificate. ``on_socket`` is told every
        socket as soon as it exists."""
        last: OSError | None = None
        sock: socket.socket | None = None
        for address in addresses or [self.host]:
            try:
                sock = socket.create_connection((address, self.port), timeout)
            except OSError as exc:
                last = exc
                continue
            break
        if sock is None:
            raise last or OSError(f"{self.host} has no address")
        on_socket(sock)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is not None:
            try:
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
            on_socket(sock)
        self.sock = sock

    def connect(self) -> None:
        """Never implicit: :meth:`open` says where to (http.client would
        look the name up again)."""
        raise http.client.NotConnected(f"{self.host}: not opened")


class Connections:
    """Idle kept connections by origin, at most ``keep`` of them, each for at
    most ``expiry`` seconds; safe to share between threads."""

    def __init__(self, tls: Callable[[], ssl.SSLContext], keep: int, expiry: float) -> None:
        self._tls = tls
        self._keep = keep
        self._expiry = expiry
        self._idle: dict[Origin, list[Connection]] = {}
        self._count = 0
        self._lock = threading.Lock()
        self._swept = time.monotonic()

    def take(self, origin: Origin) -> Connection:
        """An idle connection to ``origin`` still open and fresh, else a new
        one, not opened yet (``sock`` is None)."""
        now = time.monotonic()
        stale: list[Connection] = []
        found: Connection | None = None
        with self._lock:
            idle = self._idle.get(origin)
            while idle:
                conn = idle.pop()
                self._count -= 1
                if now - conn.idle_since < self._expiry and not _closed_by_peer(conn):
                    found = conn
                    break
                stale.append(conn)
            if idle == []:
                del self._idle[origin]
        for conn in stale:
            conn.close()
        if found is not None:
            return found
        return Connection(origin, self._tls() if origin[0] == "https" else None)

    def give(self, conn: Connection) -> None:
        """``conn`` back, its answer read to the end, for the next request
        (closed instead when ``keep`` are idle already)."""
        now = conn.idle_since = time.monotonic()
        closing: list[Connection] = []
        with self._lock:
            if now - self._swept >= self._expiry:  # connections no one asked for again
                for origin, conns in list(self._idle.items()):
                    fresh = [c for c in conns if now - c.idle_since < self._expiry]
                    closing += [c for c in conns if now - c.idle_since >= self._expiry]
                    if fresh:
                        self._idle[origin] = fresh
                    else:
                        del self._idle[origin]
                self._count -= len(closing)
                self._swept = now
            if self._count < self._keep:
                self._idle.setdefault(conn.origin, []).append(conn)
                self._count += 1
            else:
                closing.append(conn)
        for old in closing:
            old.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle, self._count = self._idle, {}, 0
        for conns in idle.values():
            for conn in conns:
                conn.close()


def _closed_by_peer(conn: Connection) -> bool:
    """True when a kept connection's socket is readable: the server closed it
    (or sent what was not asked for); it cannot take a request."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def as_httpx_error(exc: BaseException, phase: str) -> httpx.HTTPError:
    """A standard-library error met while ``phase`` ("connect", "write",
    "read") as the httpx error httpx's transport would raise for it, caused
    by the original."""
    error: httpx.HTTPError
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        kind = {"connect": httpx.ConnectTimeout, "write": httpx.WriteTimeout}
        error = kind.get(phase, httpx.ReadTimeout)(text)
    elif isinstance(exc, http.client.HTTPException):
        error = httpx.RemoteProtocolError(text)
    elif phase == "connect":
        error = httpx.ConnectError(text)
    elif phase == "write":
        error = httpx.WriteError(text)
    else:
        error = httpx.ReadError(text)
    error.__cause__ = exc
    return error
