"""https on the fetcher's own kept connections (adapters/httpconn.py): TLS
names and verifies the host even though the connection goes to the address
the private-address rule checked; an untrusted certificate is one line; a
kept TLS connection serves the next poll."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import COUNTED_RSS, CountingFeed, counting_feed_server

from publisher.adapters import fetch
from publisher.adapters.fetch import Fetcher
from publisher.core.config import FetchConfig
from publisher.core.errors import FetchError

TLS = Path(__file__).parent / "data" / "tls"
RSS = COUNTED_RSS
_Feed = CountingFeed


@pytest.fixture
def tls_port() -> Iterator[int]:
    with counting_feed_server(tls=(TLS / "localhost.crt", TLS / "localhost.key")) as port:
        yield port


def _trusting(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fetcher trusts the test certificate (as a system would trust a CA)."""
    context = ssl.create_default_context(cafile=str(TLS / "localhost.crt"))
    monkeypatch.setattr(fetch, "tls_context", lambda: context)


def test_a_trusted_certificate_is_verified_by_name_and_the_connection_kept(
    tls_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    _trusting(monkeypatch)
    url = f"https://localhost:{tls_port}/feed"
    looked_up: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return ["127.0.0.1"]

    with Fetcher(FetchConfig(allow_private=True), resolve=resolve) as fetcher:
        first = fetcher.fetch_feed(url)
        assert first.body == RSS
        assert fetcher.fetch_feed(url, etag=first.etag).not_modified
    assert looked_up == ["localhost"]
    assert len(_Feed.connections) == 1


def test_a_certificate_for_another_name_is_refused(
    tls_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection goes to 127.0.0.1, but TLS checks the URL's name:
    a certificate for ``localhost`` does not do for ``feeds.invalid``."""
    _trusting(monkeypatch)
    with (
        Fetcher(FetchConfig(allow_private=True), resolve=lambda h, p: ["127.0.0.1"]) as fetcher,
        pytest.raises(FetchError, match=r"TLS \(https\) error: .*certificate") as info,
    ):
        fetcher.fetch_feed(f"https://feeds.invalid:{tls_port}/feed")
    assert "\n" not in str(info.value)


def test_an_untrusted_certificate_is_one_line(tls_port: int) -> None:
    with (
        Fetcher(FetchConfig(allow_private=True), resolve=lambda h, p: ["127.0.0.1"]) as fetcher,
        pytest.raises(FetchError, match=r"TLS \(https\) error: .*not trusted") as info,
    ):
        fetcher.fetch_feed(f"https://localhost:{tls_port}/feed")
    assert "\n" not in str(info.value)
