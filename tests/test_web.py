from __future__ import annotations

import io
import json
import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from PIL import Image
from werkzeug.test import EnvironBuilder

from publisher.adapters.httpserver import HTTPServer
from publisher.adapters.mediafolder import MediaStore
from publisher.adapters.viber.signature import sign
from publisher.adapters.web import make_app

TOKEN = "44dafb7e0f40021e-61a47a1e6778d187-f2c5a676a07050b3"
VECTOR_BODY = b'{"event":"webhook","timestamp":4977069964384421269,"message_token":1478683725125}'
VECTOR_SIGNATURE = "d21b343448c8aee33b8e93768ef6ceb64a6ba6163099973a2b8bd028fea510ef"
WEBHOOK = "/viber/webhook"
SECRET = b"TOP-SECRET-OUTSIDE-THE-MEDIA-DIR"
CACHE = "public, max-age=31536000, immutable"


def jpeg_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


@dataclass
class Service:
    url: str
    port: int
    store: MediaStore
    jpg: str
    jpg_data: bytes
    mp4: str
    mp4_data: bytes
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)


def mounted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"mounted {environ['SCRIPT_NAME']} {environ['PATH_INFO']}".encode()]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One server for the module (stopping cheroot takes a while); see ``service``."""
    tmp_path = tmp_path_factory.mktemp("web")
    (tmp_path / "secret.txt").write_bytes(SECRET)
    store = MediaStore(tmp_path / "media")
    jpg_data = jpeg_bytes()
    mp4_data = b"\x00\x00\x00\x18ftypmp42" + os.urandom(300_000)
    svc = Service(
        url="",
        port=0,
        store=store,
        jpg=store.put(jpg_data, ".jpg"),
        jpg_data=jpg_data,
        mp4=store.put(mp4_data, ".mp4"),
        mp4_data=mp4_data,
    )

    def on_callback(data: dict[str, Any]) -> None:
        if data.get("event") == "explode":
            raise RuntimeError("callback handler bug")
        svc.callbacks.append(data)

    app = make_app(
        media=store,
        webhook_path=WEBHOOK,
        token_provider=lambda: svc.state["token"],
        max_body=1024,
        health=lambda: svc.state["health"],
        ready=lambda: svc.state["ready"],
        metrics=lambda: (b"# HELP up\nup 1\n", "text/plain; version=0.0.4; charset=utf-8"),
        extra={"/channel": mounted, "/pa/": mounted},
        on_callback=on_callback,
    )
    with HTTPServer(app, "127.0.0.1", 0) as server:
        svc.url, svc.port = server.url, server.port
        yield svc


@pytest.fixture
def service(running: Service) -> Service:
    """The running service, with its switches reset for each test."""
    running.callbacks.clear()
    running.state.clear()
    running.state.update(token=TOKEN, health=(True, {"db": "ok"}), ready=(True, {}))
    return running


@pytest.fixture
def client(service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=10) as client:
        yield client


def raw_request(port: int, target: str, method: str = "GET") -> tuple[int, bytes]:
    """Send the request target exactly as given (httpx would normalise it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data


# ------------------------------------------------------------------ media


@pytest.mark.parametrize(("kind", "ctype"), [("jpg", "image/jpeg"), ("mp4", "video/mp4")])
def test_get_and_head_media(service: Service, client: httpx.Client, kind: str, ctype: str) -> None:
    name, data = getattr(service, kind), getattr(service, kind + "_data")
    get = client.get(f"/media/{name}")
    assert get.status_code == 200
    assert get.content == data
    head = client.head(f"/media/{name}")
    assert head.status_code == 200
    assert head.content == b""
    for response in (get, head):
        assert response.headers["Content-Type"] == ctype
        assert response.headers["Content-Length"] == str(len(data))
        assert response.headers["Content-Length"] == str(service.store.path(name).stat().st_size)
        assert response.headers["ETag"] == f'"{name.split(".")[0]}"'
        assert response.headers["Cache-Control"] == CACHE
        assert response.headers["Accept-Ranges"] == "bytes"
        assert "Content-Range" not in response.headers


@pytest.mark.parametrize(
    ("ext", "ctype"),
    [
        (".png", "image/png"),
        (".pdf", "application/pdf"),
        (".txt", "text/plain; charset=utf-8"),
        (".docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        (".xyz", "application/octet-stream"),
    ],
)
def test_content_type_of_other_files(
    service: Service, client: httpx.Client, ext: str, ctype: str
) -> None:
    name = service.store.put(b"some file " + ext.encode(), ext)
    response = client.get(f"/media/{name}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == ctype
    assert response.content == b"some file " + ext.encode()


@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=-10", -10, None),
        ("bytes=5-", 5, None),
        ("bytes=100-199", 100, 199),
        ("bytes=299990-999999999", 299990, None),  # end past the file is clipped
    ],
)
def test_range(
    service: Service, client: httpx.Client, range_header: str, start: int, end: int | None
) -> None:
    data = service.mp4_data
    size = len(data)
    first = start if start >= 0 else size + start
    last = size - 1 if end is None else end
    response = client.get(f"/media/{service.mp4}", headers={"Range": range_header})
    assert response.status_code == 206
    assert response.content == data[first : last + 1]
    assert response.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
    assert response.headers["Content-Length"] == str(last - first + 1)
    assert response.headers["Content-Type"] == "video/mp4"
    head = client.head(f"/media/{service.mp4}", headers={"Range": range_header})
    assert head.status_code == 206
    assert head.content == b""
    assert head.headers["Content-Range"] == response.headers["Content-Range"]


@pytest.mark.parametrize("suffix", [300_017, 300_018, 10**12])
def test_suffix_range_longer_than_the_file_is_the_whole_file(
    service: Service, client: httpx.Client, suffix: int
) -> None:
    """RFC 9110 14.1.2: a suffix longer than the representation selects all of it."""
    data = service.mp4_data
    assert len(data) < suffix
    response = client.get(f"/media/{service.mp4}", headers={"Range": f"bytes=-{suffix}"})
    assert response.status_code == 206
    assert response.content == data
    assert response.headers["Content-Range"] == f"bytes 0-{len(data) - 1}/{len(data)}"


@pytest.mark.parametrize("range_header", ["bytes=10-5", "bytes=abc", "lines=1-2", "bytes=-"])
def test_invalid_or_foreign_range_is_ignored(
    service: Service, client: httpx.Client, range_header: str
) -> None:
    """RFC 9110 14.2: an unknown unit MUST be ignored; an invalid range MAY be."""
    response = client.get(f"/media/{service.mp4}", headers={"Range": range_header})
    assert response.status_code == 200
    assert response.content == service.mp4_data


@pytest.mark.parametrize("range_header", ["bytes=999999999-", "bytes=300018-", "bytes=-0"])
def test_unsatisfiable_range(service: Service, client: httpx.Client, range_header: str) -> None:
    response = client.get(f"/media/{service.mp4}", headers={"Range": range_header})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(service.mp4_data)}"
    assert service.mp4_data[:16] not in response.content


def test_multiple_ranges_are_ignored(service: Service, client: httpx.Client) -> None:
    response = client.get(f"/media/{service.jpg}", headers={"Range": "bytes=0-1,5-9"})
    assert response.status_code == 200
    assert response.content == service.jpg_data
    assert "Content-Range" not in response.headers


def test_if_range_with_another_etag_gives_the_whole_file(
    service: Service, client: httpx.Client
) -> None:
    response = client.get(
        f"/media/{service.jpg}", headers={"Range": "bytes=0-9", "If-Range": '"other"'}
    )
    assert response.status_code == 200
    assert response.content == service.jpg_data
    etag = f'"{service.jpg.split(".")[0]}"'
    response = client.get(f"/media/{service.jpg}", headers={"Range": "bytes=0-9", "If-Range": etag})
    assert response.status_code == 206
    assert response.content == service.jpg_data[:10]


def test_if_none_match(service: Service, client: httpx.Client) -> None:
    etag = client.head(f"/media/{service.jpg}").headers["ETag"]
    for method in ("GET", "HEAD"):
        response = client.request(method, f"/media/{service.jpg}", headers={"If-None-Match": etag})
        assert response.status_code == 304
        assert response.content == b""
        assert response.headers["ETag"] == etag
    response = client.get(f"/media/{service.jpg}", headers={"If-None-Match": '"something-else"'})
    assert response.status_code == 200
    assert response.content == service.jpg_data


def test_large_media_is_streamed(service: Service) -> None:
    """The app hands the server chunks of the file, not the file in one piece."""
    app = make_app(media=service.store, webhook_path=WEBHOOK, token_provider=lambda: None)
    environ = EnvironBuilder(path=f"/media/{service.mp4}").get_environ()
    environ.pop("wsgi.file_wrapper", None)
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    body = app(environ, start_response)
    try:
        chunks = iter(body)
        first = next(chunks)
        assert statuses == ["200 OK"]
        assert 0 < len(first) < len(service.mp4_data) // 4
        assert first + b"".join(chunks) == service.mp4_data
    finally:
        getattr(body, "close", lambda: None)()


def test_traversal_attempts_are_refused(service: Service) -> None:
    media = service.store.root
    hex32 = "0123456789abcdef" * 2
    outside = media.parent / "secret.txt"
    assert outside.read_bytes() == SECRET
    (media / (hex32 + ".jpg")).symlink_to(outside)
    (media / ("ABCDEF0123456789" * 2 + ".JPG")).write_bytes(SECRET)
    (media / ("fedcba9876543210" * 2 + ".jpg")).mkdir()
    (media / "secret.txt").write_bytes(SECRET)  # in the folder, but not a stored name
    targets = [
        "/media/../secret.txt",
        "/media/../pyproject.toml",
        "/media/%2e%2e/secret.txt",
        "/media/%2e%2e%2fsecret.txt",
        "/media/..%2fsecret.txt",
        "/media/..%2f..%2fetc%2fpasswd",
        "/media/%252e%252e%252fsecret.txt",
        "/media/%2Fetc%2Fpasswd",
        "/media//etc/passwd",
        "/media/..\\secret.txt",
        "/media/..%5csecret.txt",
        "/media/secret.txt",
        "/media/secret.txt%00.jpg",
        f"/media/{service.jpg}%00",
        f"/media/{service.jpg}/..",
        "/media/",
        "/media",
        "/media/.",
        "/media/..",
        f"/media/{hex32}.jpg",  # a symlink pointing outside
        "/media/" + "ABCDEF0123456789" * 2 + ".JPG",
        f"/media/{'fedcba9876543210' * 2}.jpg",  # a directory
        "/media/.tmp-x.part",
        "/secret.txt",
        "/../secret.txt",
    ]
    for target in targets:
        for method in ("GET", "HEAD"):
            status, raw = raw_request(service.port, target, method)
            assert status in (400, 404), (target, method, status)
            assert SECRET not in raw, target
            assert b"[project]" not in raw, target
            assert b"root:" not in raw, target


def test_media_rejects_other_methods(service: Service, client: httpx.Client) -> None:
    response = client.post(f"/media/{service.jpg}", content=b"x")
    assert response.status_code == 405
    assert service.store.path(service.jpg).read_bytes() == service.jpg_data


# ---------------------------------------------------------------- webhook


def post_webhook(
    client: httpx.Client, body: bytes | Iterator[bytes], signature: str | None
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Viber-Content-Signature"] = signature
    return client.post(WEBHOOK, content=body, headers=headers)


def test_webhook_accepts_the_documented_vector(service: Service, client: httpx.Client) -> None:
    response = post_webhook(client, VECTOR_BODY, VECTOR_SIGNATURE)
    assert response.status_code == 200
    assert response.content == b'{"status":0}'
    assert response.headers["Content-Type"] == "application/json"
    assert service.callbacks == [
        {"event": "webhook", "timestamp": 4977069964384421269, "message_token": 1478683725125}
    ]


def test_webhook_accepts_a_chunked_body(service: Service, client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield VECTOR_BODY[:20]
        yield VECTOR_BODY[20:]

    response = post_webhook(client, chunks(), VECTOR_SIGNATURE.upper())
    assert response.status_code == 200
    assert service.callbacks[0]["message_token"] == 1478683725125


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "0" * 64,
        VECTOR_SIGNATURE[:-1] + "0",
        VECTOR_SIGNATURE[:32],
        sign(VECTOR_BODY, "another-token"),
        sign(VECTOR_BODY + b" ", TOKEN),
    ],
)
def test_webhook_refuses_a_bad_signature(
    service: Service, client: httpx.Client, signature: str | None
) -> None:
    response = post_webhook(client, VECTOR_BODY, signature)
    assert response.status_code == 403
    assert service.callbacks == []


def test_webhook_signature_covers_the_exact_bytes(service: Service, client: httpx.Client) -> None:
    reformatted = json.dumps(json.loads(VECTOR_BODY)).encode()  # same JSON, other bytes
    assert post_webhook(client, reformatted, VECTOR_SIGNATURE).status_code == 403
    assert post_webhook(client, reformatted, sign(reformatted, TOKEN)).status_code == 200


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"', b"", b"\xff\xfe"])
def test_webhook_invalid_json_with_a_valid_signature(
    service: Service, client: httpx.Client, body: bytes
) -> None:
    response = post_webhook(client, body, sign(body, TOKEN))
    assert response.status_code == 400
    assert service.callbacks == []


def test_webhook_body_over_the_cap(service: Service, client: httpx.Client) -> None:
    body = b'{"event":"webhook","pad":"' + b"x" * 1100 + b'"}'
    response = post_webhook(client, body, sign(body, TOKEN))
    assert response.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(12):
            yield b"x" * 100

    assert post_webhook(client, chunks(), "0" * 64).status_code == 413
    exactly = b'{"pad":"' + b"x" * (1024 - 10) + b'"}'
    assert len(exactly) == 1024
    assert post_webhook(client, exactly, sign(exactly, TOKEN)).status_code == 200
    assert service.callbacks == [json.loads(exactly)]


def test_webhook_without_a_token_is_unavailable(service: Service, client: httpx.Client) -> None:
    service.state["token"] = None
    response = post_webhook(client, VECTOR_BODY, VECTOR_SIGNATURE)
    assert response.status_code == 503
    assert "token" in response.json()["status_message"]
    assert service.callbacks == []


def test_webhook_answers_200_when_the_callback_handler_fails(
    service: Service, client: httpx.Client
) -> None:
    body = b'{"event":"explode"}'
    assert post_webhook(client, body, sign(body, TOKEN)).status_code == 200


@pytest.mark.parametrize("method", ["GET", "PUT", "HEAD"])
def test_webhook_other_methods(client: httpx.Client, method: str) -> None:
    response = client.request(method, WEBHOOK)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_logs_carry_neither_token_nor_body(
    service: Service, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="publisher")
    assert post_webhook(client, VECTOR_BODY, VECTOR_SIGNATURE).status_code == 200
    assert client.get(f"/media/{service.jpg}?token={TOKEN}").status_code == 200
    text = caplog.text
    assert f"POST {WEBHOOK} -> 200" in text
    assert f"GET /media/{service.jpg} -> 200" in text
    assert TOKEN not in text
    assert VECTOR_SIGNATURE not in text
    assert "4977069964384421269" not in text


# ----------------------------------------------------------------- probes


def test_healthz_and_readyz(service: Service, client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"ok": True, "db": "ok"}
    assert client.get("/readyz").status_code == 200
    service.state["health"] = (False, {"db": "locked"})
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"ok": False, "db": "locked"}
    assert client.get("/readyz").status_code == 200
    service.state["ready"] = (False, {"webhook": "not set"})
    assert client.get("/readyz").status_code == 503
    assert client.get("/readyz").json() == {"ok": False, "webhook": "not set"}
    service.state["health"] = (True, {})
    assert client.get("/healthz").status_code == 200


def test_probe_that_raises_is_red(service: Service, client: httpx.Client) -> None:
    def broken() -> tuple[bool, dict[str, Any]]:
        raise RuntimeError("boom")

    app = make_app(
        media=service.store, webhook_path=WEBHOOK, token_provider=lambda: None, health=broken
    )
    with HTTPServer(app) as server:
        response = httpx.get(server.url + "/healthz")
        assert response.status_code == 503
        assert response.json() == {"ok": False, "error": "RuntimeError"}
        assert httpx.get(server.url + "/readyz").json() == {"ok": True}
        assert httpx.get(server.url + "/metrics").status_code == 404


def test_a_failing_handler_is_a_500_not_a_dropped_connection(service: Service) -> None:
    def broken_metrics() -> tuple[bytes, str]:
        raise RuntimeError("exporter bug")

    app = make_app(
        media=service.store,
        webhook_path=WEBHOOK,
        token_provider=lambda: None,
        metrics=broken_metrics,
    )
    with HTTPServer(app) as server:
        response = httpx.get(server.url + "/metrics")
        assert response.status_code == 500
        assert b"exporter bug" not in response.content
        assert httpx.get(server.url + "/healthz").status_code == 200


def test_metrics(client: httpx.Client) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content == b"# HELP up\nup 1\n"
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"


# ---------------------------------------------------------- mounts, 404


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/channel", b"mounted /channel "),
        ("/channel/", b"mounted /channel /"),
        ("/channel/posts/1", b"mounted /channel /posts/1"),
        ("/pa/post", b"mounted /pa /post"),
    ],
)
def test_extra_apps_are_mounted(client: httpx.Client, path: str, expected: bytes) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.content == expected


@pytest.mark.parametrize("path", ["/", "/nothing", "/channelx", "/healthz/", "/media.jpg"])
def test_everything_else_is_404(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/plain")
    assert len(response.content) < 100


@pytest.mark.parametrize(
    ("webhook_path", "extra"),
    [
        ("viber/webhook", {}),
        ("/media/hook", {}),
        ("/healthz", {}),
        (WEBHOOK, {"/media": mounted}),
        (WEBHOOK, {"channel": mounted}),
        (WEBHOOK, {"/": mounted}),
        (WEBHOOK, {"/viber": mounted}),
    ],
)
def test_clashing_routes_are_refused(
    service: Service, webhook_path: str, extra: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        make_app(
            media=service.store,
            webhook_path=webhook_path,
            token_provider=lambda: None,
            extra=extra,
        )
