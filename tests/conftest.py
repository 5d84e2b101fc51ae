"""Shared fixtures, and a guard: no test may reach beyond 127.0.0.0/8 or ::1."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import STANDIN_TOKEN, FakeClock
from s3server import s3_bucket, s3_server  # noqa: F401  (fixtures: a real S3 server)

DATA = Path(__file__).parent / "data"

#: A real PostgreSQL server (a throwaway cluster) for the store tests.
pytest_plugins = ["postgres"]

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check_address(sock: socket.socket, address: Any) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    host = address[0] if isinstance(address, tuple) else address
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise AssertionError(f"test tried to connect to a host name: {host!r}") from None
    if not ip.is_loopback:
        raise AssertionError(f"test tried to reach a non-loopback address: {host}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check_address(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check_address(self, address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    yield


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def clock() -> FakeClock:
    """A :class:`helpers.FakeClock` at ``helpers.T0``; it moves only when told."""
    return FakeClock()


# --------------------------------------------------------------------------
# Viber stand-in, webhook receiver and media host (real servers on 127.0.0.1)

import threading  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import httpx  # noqa: E402

from publisher.adapters.httpserver import HTTPServer  # noqa: E402
from publisher.adapters.standin import ViberStandIn  # noqa: E402

_REASONS = {200: "OK", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 500: "Error"}


class WebhookReceiver:
    """Answers Viber's webhook calls with ``status`` (200 unless told) and keeps them."""

    def __init__(self) -> None:
        self.status = 200
        self.calls: list[tuple[bytes, dict[str, str]]] = []
        self.url = ""
        self._lock = threading.Lock()

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            key[5:].replace("_", "-").title(): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        with self._lock:
            self.calls.append((body, headers))
        start_response(
            f"{self.status} {_REASONS.get(self.status, 'Status')}",
            [("Content-Type", "text/plain"), ("Content-Length", "0")],
        )
        return [b""]


@dataclass
class HostedFile:
    body: bytes
    content_type: str
    #: None: the true length; an int: a (possibly false) Content-Length to send.
    content_length: int | None = None
    #: False: HEAD answers 405, as some servers do.
    head: bool = True
    status: int = 200


class MediaHost:
    """Serves files by path, with exactly the headers it is told, for HEAD and GET."""

    def __init__(self) -> None:
        self.files: dict[str, HostedFile] = {}
        self.hits: list[tuple[str, str]] = []
        self.base = ""

    def add(self, path: str, body: bytes, content_type: str, **options: Any) -> str:
        self.files[path] = HostedFile(body, content_type, **options)
        return self.base + path

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        self.hits.append((method, path))
        hosted = self.files.get(path)
        if hosted is None or (method == "HEAD" and not hosted.head):
            status = 404 if hosted is None else 405
            start_response(f"{status} {_REASONS[status]}", [("Content-Length", "0")])
            return [b""]
        length = len(hosted.body) if hosted.content_length is None else hosted.content_length
        start_response(
            f"{hosted.status} {_REASONS.get(hosted.status, 'Status')}",
            [("Content-Type", hosted.content_type), ("Content-Length", str(length))],
        )
        if method == "HEAD":
            return [b""]
        return [hosted.body[:length]]


# The servers live for the whole session (a cheroot server takes ~0.5 s to stop);
# the function-scoped fixtures below hand them out reset to a known state.


@pytest.fixture(scope="session")
def _webhook_receiver_server() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    with HTTPServer(receiver.app) as server:
        receiver.url = server.url + "/viber/webhook"
        yield receiver


@pytest.fixture(scope="session")
def _media_host_server() -> Iterator[MediaHost]:
    host = MediaHost()
    with HTTPServer(host.app) as server:
        host.base = server.url
        yield host


@pytest.fixture(scope="session")
def _standin_server(_webhook_receiver_server: WebhookReceiver) -> Iterator[ViberStandIn]:
    with ViberStandIn(STANDIN_TOKEN).serve() as server:
        answer = httpx.post(
            server.api_url + "/set_webhook",
            json={"auth_token": STANDIN_TOKEN, "url": _webhook_receiver_server.url},
            timeout=10,
        ).json()
        assert answer["status"] == 0, answer
        yield server


@pytest.fixture
def webhook_receiver(_webhook_receiver_server: WebhookReceiver) -> WebhookReceiver:
    """A real server on 127.0.0.1 that answers webhook calls (``.status``, 200
    unless told) and keeps them in ``.calls``; its address is ``.url``."""
    receiver = _webhook_receiver_server
    receiver.status = 200
    receiver.calls.clear()
    return receiver


@pytest.fixture
def media_host(_media_host_server: MediaHost) -> MediaHost:
    """A real server on 127.0.0.1: ``media_host.add(path, body, content_type)``
    returns the URL it serves ``body`` at, for HEAD and GET."""
    host = _media_host_server
    host.files.clear()
    host.hits.clear()
    return host


@pytest.fixture
def standin(_standin_server: ViberStandIn, webhook_receiver: WebhookReceiver) -> ViberStandIn:
    """A serving stand-in (token ``STANDIN_TOKEN``, default members) whose
    webhook is set to ``webhook_receiver``; no posts, requests or faults."""
    _standin_server.reset()
    _standin_server.preset_webhook(webhook_receiver.url)
    return _standin_server


@pytest.fixture(scope="session")
def jpeg_bytes() -> bytes:
    """A small real JPEG (64x48) made with Pillow."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(out, "JPEG", quality=80)
    return out.getvalue()


@pytest.fixture(scope="session")
def png_bytes() -> bytes:
    """A small real PNG (64x48) made with Pillow."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (40, 200, 40)).save(out, "PNG")
    return out.getvalue()
