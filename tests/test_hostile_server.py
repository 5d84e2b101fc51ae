"""Slow clients against the built-in server, made here on 127.0.0.1: a hundred
connections sending their headers a byte at a time never starve ``/healthz``
or the media Viber fetches, at the HTTP level and end to end (a real service
on the local channel posting a picture while they hang on)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import put, write_config

from publisher.adapters.httpserver import HTTPServer
from publisher.adapters.mediafolder import MediaStore
from publisher.adapters.web import make_app
from publisher.config import load_config
from publisher.service.runner import Service

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 400


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[HTTPServer, str]]:
    store = MediaStore(tmp_path / "media")
    name = store.put(JPEG, ".jpg")
    app = make_app(media=store, webhook_path="/viber", token_provider=lambda: "t" * 40)
    with HTTPServer(app) as running:
        yield running, name


def slow_clients(
    url: str, count: int, stop: threading.Event, seconds: float = 20.0
) -> list[socket.socket]:
    """``count`` connections that each send a request head one byte every 0.2 s,
    for at most ``seconds`` (or until ``stop``): the head is never finished."""
    host, port = url.removeprefix("http://").split(":")
    sockets = [socket.create_connection((host, int(port))) for _ in range(count)]
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * int(seconds / 0.2)

    def drip() -> None:
        for byte in head:
            if stop.wait(0.2):
                return
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.send(bytes([byte]))

    threading.Thread(target=drip, name="slow-clients", daemon=True).start()
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


@pytest.mark.slow
def test_a_picture_post_goes_out_while_a_hundred_slow_clients_hang_on(
    tmp_path: Path, jpeg_bytes: bytes
) -> None:
    """End to end: a real service serving on 127.0.0.1:0 on the local channel
    (which posts through that server and fetches the picture from it, as
    Viber would), a hundred slow clients on the same server, a folder with a
    JPEG: ``run_once`` posts it, and ``/healthz`` answers within 1 s
    throughout."""
    inbox = tmp_path / "inbox"
    put(inbox, "001-sea.jpg", jpeg_bytes)
    config = write_config(
        tmp_path,
        "local",
        rest=f'[[sources]]\nname = "inbox"\ntype = "folder"\npath = "{inbox}"\n',
    )
    service = Service(load_config(config), serve=True)
    stop = threading.Event()
    sockets: list[socket.socket] = []
    probes: list[tuple[int, float]] = []
    probing = threading.Event()

    def probe(url: str) -> None:
        """``/healthz`` every 0.1 s until told to stop: (status, seconds) each."""
        with httpx.Client(base_url=url, timeout=5) as client:
            while True:
                started = time.monotonic()
                try:
                    status = client.get("/healthz").status_code
                except httpx.HTTPError:
                    status = 0
                probes.append((status, time.monotonic() - started))
                if probing.wait(0.1):
                    return

    prober: threading.Thread | None = None
    try:
        service.start()
        assert service.server is not None
        sockets = slow_clients(service.server.url, 100, stop, seconds=15.0)
        time.sleep(1.0)  # every slow client has started its request
        prober = threading.Thread(target=probe, args=(service.server.url,), daemon=True)
        prober.start()
        time.sleep(0.3)  # probes before the post…
        started = time.monotonic()
        service.run_once()
        took = time.monotonic() - started
        time.sleep(0.3)  # …and after it, still under load
        posts = [p.payload for p in service.local_channel.posts]
    finally:
        probing.set()
        if prober is not None:
            prober.join(timeout=10)
        stop.set()
        for sock in sockets:
            sock.close()
        service.close()
    assert [p["type"] for p in posts] == ["picture"]
    assert (inbox / "posted" / "001-sea.jpg").exists()
    assert took < 10.0
    assert len(probes) >= 4
    assert all(status == 200 for status, _ in probes), probes
    assert max(seconds for _, seconds in probes) < 1.0, probes
