"""The fetcher against real HTTP servers on 127.0.0.1 (and MockTransport for
redirects through host names, which the loopback guard would refuse)."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from publisher.adapters.fetch import Fetcher, sniff_type
from publisher.adapters.httpserver import HTTPServer
from publisher.adapters.sources.feed import parse_feed
from publisher.core.config import FetchConfig
from publisher.core.errors import FetchError, MediaError, SourceError
from publisher.core.records import FeedResponse

RSS = (
    b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
    b"<item><title>One</title><link>https://example.org/1</link><guid>1</guid></item>"
    b"</channel></rss>"
)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 100

Handler = Callable[[dict[str, Any]], tuple[int, list[tuple[str, str]], Iterable[bytes]]]


@dataclass
class Site:
    """A tiny router: path → handler(environ) → (status, headers, body chunks)."""

    routes: dict[str, Handler] = field(default_factory=dict)
    seen: list[dict[str, str]] = field(default_factory=list)
    url: str = ""
    active: int = 0
    peak: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = {
            key[5:].replace("_", "-").lower(): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        with self.lock:
            self.seen.append({"path": environ["PATH_INFO"], **headers})
        handler = self.routes.get(environ["PATH_INFO"])
        if handler is None:
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
        status, response_headers, body = handler(environ)
        start_response(f"{status} X", response_headers)
        return body


def static(body: bytes, content_type: str = "application/rss+xml", **extra: str) -> Handler:
    def handler(environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], Iterable[bytes]]:
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        headers += [(k.replace("_", "-"), v) for k, v in extra.items()]
        return 200, headers, [body]

    return handler


def redirect(status: int, location: str) -> Handler:
    def handler(environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], Iterable[bytes]]:
        return status, [("Location", location), ("Content-Length", "0")], [b""]

    return handler


@pytest.fixture(scope="module")
def _shared_site() -> Iterator[Site]:
    site = Site()
    server = HTTPServer(site.app).start()
    site.url = server.url
    try:
        yield site
    finally:
        server.stop()


@pytest.fixture
def site(_shared_site: Site) -> Site:
    """One server per module (stopping cheroot is slow); routes reset per test."""
    _shared_site.routes.clear()
    _shared_site.seen.clear()
    _shared_site.active = _shared_site.peak = 0
    return _shared_site


def fetcher(**kw: Any) -> Fetcher:
    options: dict[str, Any] = {"timeout": timedelta(seconds=5)}
    options.update(kw)
    return Fetcher(FetchConfig(**options))


def test_feed_200_sends_user_agent_and_hash(site: Site) -> None:
    site.routes["/feed"] = static(RSS, ETag='"v1"', Last_Modified="Mon, 01 Jan 2024 00:00:00 GMT")
    with fetcher(user_agent="test-agent/1") as f:
        response = f.fetch_feed(site.url + "/feed")
    assert response.status == 200 and response.body == RSS
    assert response.etag == '"v1"'
    assert response.last_modified == "Mon, 01 Jan 2024 00:00:00 GMT"
    assert response.body_hash and not response.unchanged and not response.not_modified
    assert response.final_url == site.url + "/feed"
    assert site.seen[-1]["user-agent"] == "test-agent/1"


def test_conditional_get_304(site: Site) -> None:
    def handler(environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], Iterable[bytes]]:
        if environ.get("HTTP_IF_NONE_MATCH") == '"v1"':
            return 304, [("ETag", '"v1"')], [b""]
        return 200, [("ETag", '"v1"'), ("Content-Type", "application/rss+xml")], [RSS]

    site.routes["/feed"] = handler
    with fetcher() as f:
        first = f.fetch_feed(site.url + "/feed")
        second = f.fetch_feed(
            site.url + "/feed",
            etag=first.etag,
            last_modified="Mon, 01 Jan 2024 00:00:00 GMT",
            body_hash=first.body_hash,
        )
    assert second.status == 304 and second.not_modified and second.body == b""
    assert second.etag == '"v1"' and second.body_hash == first.body_hash
    assert site.seen[-1]["if-none-match"] == '"v1"'
    assert site.seen[-1]["if-modified-since"] == "Mon, 01 Jan 2024 00:00:00 GMT"
    assert "if-none-match" not in site.seen[0]


def test_unchanged_body_detected_by_hash(site: Site) -> None:
    site.routes["/feed"] = static(RSS)
    with fetcher() as f:
        first = f.fetch_feed(site.url + "/feed")
        second = f.fetch_feed(site.url + "/feed", body_hash=first.body_hash)
        third = f.fetch_feed(site.url + "/feed", body_hash="0" * 64)
    assert not first.unchanged
    assert second.unchanged and not second.not_modified and second.status == 200
    assert not third.unchanged


def test_gzip_is_decoded(site: Site) -> None:
    packed = gzip.compress(RSS)
    site.routes["/feed"] = static(packed, Content_Encoding="gzip")
    with fetcher() as f:
        response = f.fetch_feed(site.url + "/feed")
    assert response.body == RSS
    assert "gzip" in site.seen[-1]["accept-encoding"]


def test_timeout_is_a_source_error(site: Site) -> None:
    release = threading.Event()

    def slow(environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], Iterable[bytes]]:
        release.wait(5)
        return 200, [("Content-Type", "application/rss+xml")], [RSS]

    site.routes["/slow"] = slow
    try:
        with (
            fetcher(timeout=timedelta(milliseconds=200)) as f,
            pytest.raises(FetchError, match=r"timed out.*raise \[fetch\] timeout"),
        ):
            f.fetch_feed(site.url + "/slow")
    finally:
        release.set()


def test_html_instead_of_feed(site: Site) -> None:
    page = b"<!DOCTYPE html><html><head><title>Hi</title></head><body>page</body></html>"
    site.routes["/"] = static(page, "text/html; charset=utf-8")
    with fetcher() as f:
        response = f.fetch_feed(site.url + "/")
    with pytest.raises(SourceError, match="returned an HTML page, not a feed; check the url"):
        parse_feed(response.body, response.headers, response.final_url, "s")


def test_permanent_redirect_reported(site: Site) -> None:
    site.routes["/old"] = redirect(301, "/older")
    site.routes["/older"] = redirect(308, "/new")
    site.routes["/temp"] = redirect(302, "/new")
    site.routes["/mixed"] = redirect(302, "/old")
    site.routes["/new"] = static(RSS)
    with fetcher() as f:
        moved = f.fetch_feed(site.url + "/old")
        temp = f.fetch_feed(site.url + "/temp")
        mixed = f.fetch_feed(site.url + "/mixed")
    assert moved.permanent_redirect == site.url + "/new"
    assert moved.final_url == site.url + "/new" and moved.body == RSS
    assert temp.permanent_redirect is None and temp.final_url == site.url + "/new"
    assert mixed.permanent_redirect is None


def test_redirect_loop(site: Site) -> None:
    site.routes["/a"] = redirect(302, "/b")
    site.routes["/b"] = redirect(302, "/a")
    with fetcher() as f, pytest.raises(FetchError, match="redirects"):
        f.fetch_feed(site.url + "/a")


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_size_cap(site: Site, declared: bool) -> None:
    body = b"x" * 5000

    def big(environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], Iterable[bytes]]:
        headers = [("Content-Type", "application/rss+xml")]
        if declared:
            headers.append(("Content-Length", str(len(body))))
        return 200, headers, (body[i : i + 500] for i in range(0, len(body), 500))

    site.routes["/big"] = big
    site.routes["/media"] = big
    with fetcher(max_bytes=1000, allow_private=True) as f:
        with pytest.raises(FetchError, match=r"larger than 1,000 bytes.*raise \[fetch\] max_bytes"):
            f.fetch_feed(site.url + "/big")
        with pytest.raises(MediaError, match="max_bytes"):
            f.fetch_media(site.url + "/media")
    with fetcher(max_bytes=5000) as f:
        assert f.fetch_feed(site.url + "/big").body == body


def test_cache_hints(site: Site) -> None:
    site.routes["/feed"] = static(RSS, Cache_Control="public, max-age=600", Retry_After="120")
    site.routes["/plain"] = static(RSS, Cache_Control="no-cache, max-age=600")
    with fetcher() as f:
        response = f.fetch_feed(site.url + "/feed")
        plain = f.fetch_feed(site.url + "/plain")
    assert response.max_age == timedelta(seconds=600)
    assert response.retry_after == timedelta(seconds=120)
    assert response.floor == timedelta(seconds=600)
    assert plain.max_age is None and plain.floor is None


def test_429_carries_retry_after(site: Site) -> None:
    def limited(environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], Iterable[bytes]]:
        return 429, [("Retry-After", "30"), ("Content-Length", "0")], [b""]

    site.routes["/feed"] = limited
    with fetcher() as f, pytest.raises(FetchError) as caught:
        f.fetch_feed(site.url + "/feed")
    assert caught.value.status == 429
    assert caught.value.retry_after == timedelta(seconds=30)
    assert "HTTP 429" in str(caught.value)


@pytest.mark.parametrize(("status", "words"), [(404, "check the url"), (503, "retried later")])
def test_http_errors(site: Site, status: int, words: str) -> None:
    def failing(environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], Iterable[bytes]]:
        return status, [("Content-Length", "0")], [b""]

    site.routes["/feed"] = failing
    with fetcher() as f, pytest.raises(FetchError, match=f"HTTP {status}.*{words}") as caught:
        f.fetch_feed(site.url + "/feed")
    assert caught.value.status == status


def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with fetcher() as f, pytest.raises(FetchError, match="refused"):
        f.fetch_feed(f"http://127.0.0.1:{port}/feed")


def test_media_private_address_rule(site: Site) -> None:
    site.routes["/a.jpg"] = static(JPEG, "image/jpeg")
    with fetcher() as f, pytest.raises(MediaError, match="allow_private"):
        f.fetch_media(site.url + "/a.jpg")
    assert site.seen == []  # refused before connecting
    with fetcher(allow_private=True) as f:
        media = f.fetch_media(site.url + "/a.jpg")
    assert media.data == JPEG
    assert media.sniffed_type == "image/jpeg"
    assert media.content_type_header == "image/jpeg"
    assert media.final_url == site.url + "/a.jpg"


@pytest.mark.parametrize(
    "url", ["http://10.1.2.3/x.jpg", "http://169.254.169.254/latest", "http://[::1]/x", "ftp://a/b"]
)
def test_media_refused_literals_and_schemes(url: str) -> None:
    with fetcher() as f, pytest.raises(MediaError):
        f.fetch_media(url)


def test_feed_redirect_to_other_private_host_refused(site: Site) -> None:
    # The configured host (127.0.0.1) is trusted; "localhost" is another host
    # that resolves to a loopback address, so the hop is refused.
    port = site.url.rsplit(":", 1)[1]
    site.routes["/feed"] = redirect(302, f"http://localhost:{port}/real")
    site.routes["/same"] = redirect(302, "/real")
    site.routes["/real"] = static(RSS)
    with fetcher() as f:
        assert f.fetch_feed(site.url + "/same").body == RSS
        with pytest.raises(FetchError, match="localhost resolves to the private or local"):
            f.fetch_feed(site.url + "/feed")
    assert [seen["path"] for seen in site.seen].count("/real") == 1  # only via /same


def _mock(routes: dict[str, httpx.Response]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        return routes.get(str(request.url), httpx.Response(404))

    return httpx.MockTransport(handle)


def _public_resolver(host: str, port: int) -> list[str]:
    if host == "internal.example":
        return ["192.168.1.10"]
    if host == "nowhere.example":
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return ["93.184.216.34"]


def test_media_redirect_to_private_is_rechecked() -> None:
    transport = _mock(
        {
            "https://cdn.example/a.jpg": httpx.Response(
                302, headers={"Location": "http://127.0.0.1:9/secret"}
            ),
            "https://cdn.example/b.jpg": httpx.Response(
                301, headers={"Location": "https://internal.example/b.jpg"}
            ),
            "https://cdn.example/c.jpg": httpx.Response(
                302, headers={"Location": "https://img.example/c.jpg"}
            ),
            "https://img.example/c.jpg": httpx.Response(
                200, content=JPEG, headers={"Content-Type": "image/jpeg"}
            ),
        }
    )
    with Fetcher(FetchConfig(), transport=transport, resolve=_public_resolver) as f:
        with pytest.raises(MediaError, match=r"127\.0\.0\.1 is a private or local address"):
            f.fetch_media("https://cdn.example/a.jpg")
        with pytest.raises(MediaError, match=r"internal\.example resolves to .*192\.168\.1\.10"):
            f.fetch_media("https://cdn.example/b.jpg")
        ok = f.fetch_media("https://cdn.example/c.jpg")
        with pytest.raises(MediaError, match="could not be resolved"):
            f.fetch_media("https://nowhere.example/x.jpg")
    assert ok.final_url == "https://img.example/c.jpg" and ok.data == JPEG


def test_tls_error_translated() -> None:
    import ssl

    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("boom") from ssl.SSLCertVerificationError(
            "certificate verify failed"
        )

    with (
        Fetcher(
            FetchConfig(), transport=httpx.MockTransport(handle), resolve=_public_resolver
        ) as f,
        pytest.raises(FetchError, match="TLS"),
    ):
        f.fetch_feed("https://bad-cert.example/feed")


def test_local_files(tmp_path: Path) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_bytes(RSS)
    with fetcher(max_bytes=10_000) as f:
        by_path = f.fetch_feed(str(feed))
        by_uri = f.fetch_feed(feed.as_uri(), body_hash=by_path.body_hash)
        with pytest.raises(FetchError, match="no such file"):
            f.fetch_feed(str(tmp_path / "missing.xml"))
        with pytest.raises(FetchError, match="is a folder"):
            f.fetch_feed(str(tmp_path))
    assert by_path.body == RSS and by_path.status == 200 and not by_path.unchanged
    assert by_uri.unchanged
    with fetcher(max_bytes=10) as f, pytest.raises(FetchError, match="max_bytes"):
        f.fetch_feed(str(feed))


def test_max_per_host(site: Site) -> None:
    def slow(environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], Iterable[bytes]]:
        with site.lock:
            site.active += 1
            site.peak = max(site.peak, site.active)
        time.sleep(0.15)
        with site.lock:
            site.active -= 1
        return 200, [("Content-Type", "application/rss+xml")], [RSS]

    site.routes["/feed"] = slow
    results: list[FeedResponse] = []
    with fetcher(max_per_host=2) as f:
        threads = [
            threading.Thread(target=lambda: results.append(f.fetch_feed(site.url + "/feed")))
            for _ in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(results) == 6
    assert site.peak <= 2


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (JPEG, "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"GIF89a....", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00", "video/mp4"),
        (b"\x00\x00\x00\x18ftypqt  \x00\x00", "video/quicktime"),
        (b"\x00\x00\x00\x1cftypavif", "image/avif"),
        (b"%PDF-1.7", "application/pdf"),
        (b"<html>", None),
    ],
)
def test_sniff_type(data: bytes, mime: str | None) -> None:
    assert sniff_type(data) == mime
