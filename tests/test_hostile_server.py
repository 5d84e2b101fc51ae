"""Slow clients against the built-in server, made here on 127.0.0.1: a hundred
connections sending their headers a byte at a time never starve ``/healthz``
or the media Viber fetches."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from publisher.adapters.httpserver import HTTPServer
from publisher.adapters.mediafolder import MediaStore
from publisher.adapters.web import make_app

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 400


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[HTTPServer, str]]:
    store = MediaStore(tmp_path / "media")
    name = store.put(JPEG, ".jpg")
    app = make_app(media=store, webhook_path="/viber", token_provider=lambda: "t" * 40)
    with HTTPServer(app) as running:
        yield running, name


def slow_clients(url: str, count: int, stop: threading.Event) -> list[socket.socket]:
    """``count`` connections that each send a request head one byte every 0.2 s."""
    host, port = url.removeprefix("http://").split(":")
    sockets = [socket.create_connection((host, int(port))) for _ in range(count)]
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000

    def drip() -> None:
        for byte in head:
            if stop.wait(0.2):
                return
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.send(bytes([byte]))

    threading.Thread(target=drip, daemon=True).start()
    return sockets


def test_a_hundred_slow_clients_do_not_starve_health_or_media(
    server: tuple[HTTPServer, str],
) -> None:
    running, name = server
    stop = threading.Event()
    sockets = slow_clients(running.url, 100, stop)
    try:
        time.sleep(1.0)  # every slow client has started its request
        with httpx.Client(base_url=running.url, timeout=5) as client:
            for _ in range(3):
                started = time.monotonic()
                assert client.get("/healthz").status_code == 200
                assert time.monotonic() - started < 1.0
            started = time.monotonic()
            media = client.get(f"/media/{name}")
            assert media.status_code == 200 and media.content == JPEG
            assert time.monotonic() - started < 1.0
    finally:
        stop.set()
        for sock in sockets:
            sock.close()
