"""The pool of kept connections (adapters/httpconn.py): what it gives back
is open and fresh, it keeps no more than it may, and errors read as httpx's."""

from __future__ import annotations

import http.client
import socket
import ssl
import time

import httpx
import pytest

from publisher.adapters.httpconn import Connection, Connections, as_httpx_error

ORIGIN = ("http", "feeds.example", 80)


def _opened(pool: Connections) -> tuple[Connection, socket.socket]:
    """A connection from ``pool`` with a socket whose other end the test holds."""
    conn = pool.take(ORIGIN)
    assert conn.sock is None  # a new one
    ours, theirs = socket.socketpair()
    conn.sock = ours
    return conn, theirs


def _pool(keep: int = 2, expiry: float = 60.0) -> Connections:
    return Connections(ssl.create_default_context, keep, expiry)


def test_an_idle_connection_is_given_again_while_open_and_fresh() -> None:
    pool = _pool()
    conn, peer = _opened(pool)
    pool.give(conn)
    assert pool.take(ORIGIN) is conn
    assert pool.take(("https", "feeds.example", 443)).sock is None  # another origin
    peer.close()


def test_one_the_server_closed_is_not_given_again() -> None:
    pool = _pool()
    conn, peer = _opened(pool)
    pool.give(conn)
    peer.close()  # the server hangs up while it is idle
    again = pool.take(ORIGIN)
    assert again is not conn and again.sock is None
    assert conn.sock is None  # closed


def test_no_more_than_keep_are_kept_and_none_past_the_expiry() -> None:
    pool = _pool(keep=1, expiry=0.2)
    (a, pa), (b, pb) = _opened(pool), _opened(pool)
    pool.give(a)
    pool.give(b)  # one is kept already: b is closed
    assert b.sock is None and a.sock is not None
    time.sleep(0.25)
    assert pool.take(ORIGIN) is not a  # too old
    assert a.sock is None
    pool.close()
    pa.close()
    pb.close()


def test_a_connection_is_never_opened_implicitly() -> None:
    conn = Connection(ORIGIN, None)
    with pytest.raises(http.client.NotConnected):
        conn.request("GET", "/")


@pytest.mark.parametrize(
    ("exc", "phase", "expected"),
    [
        (TimeoutError("timed out"), "connect", httpx.ConnectTimeout),
        (TimeoutError("timed out"), "read", httpx.ReadTimeout),
        (TimeoutError("timed out"), "write", httpx.WriteTimeout),
        (ConnectionRefusedError(111, "Connection refused"), "connect", httpx.ConnectError),
        (http.client.RemoteDisconnected("closed"), "read", httpx.RemoteProtocolError),
        (http.client.LineTooLong("header line"), "read", httpx.RemoteProtocolError),
        (ConnectionResetError(104, "reset"), "read", httpx.ReadError),
        (BrokenPipeError(32, "broken pipe"), "write", httpx.WriteError),
    ],
)
def test_errors_read_as_the_httpx_errors_they_stand_for(
    exc: BaseException, phase: str, expected: type[httpx.HTTPError]
) -> None:
    error = as_httpx_error(exc, phase)
    assert type(error) is expected and error.__cause__ is exc and str(error)
