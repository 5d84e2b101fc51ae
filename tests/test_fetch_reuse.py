"""Unchanged polls cost little (issue 14): a 304 is read to its end (it has
no body), so its connection goes back to the pool instead of being closed;
a host name's addresses are remembered for a while, so polls on a kept
connection do not look the name up (in a thread of its own) every time;
after the TTL they do, and the private-address rule is applied to
remembered addresses as to fresh ones."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from helpers import COUNTED_RSS, CountingFeed, counting_feed_server

from publisher.adapters.fetch import Fetcher
from publisher.core.config import FetchConfig
from publisher.core.errors import FetchError, MediaError

RSS = COUNTED_RSS
_Feed = CountingFeed


@pytest.fixture
def feed_port() -> Iterator[int]:
    with counting_feed_server() as port:
        yield port


@pytest.fixture
def feed_url(feed_port: int) -> str:
    """The feed on ``localhost`` (a name, so it is looked up; the feed's own
    host is trusted, so loopback is allowed)."""
    return f"http://localhost:{feed_port}/feed"


class Counting:
    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        return list(self.addresses)


def test_unchanged_polls_reuse_one_connection(feed_port: int) -> None:
    url = f"http://127.0.0.1:{feed_port}/feed"
    with Fetcher(FetchConfig(allow_private=True)) as fetcher:
        first = fetcher.fetch_feed(url)
        assert first.body == RSS
        for _ in range(3):
            again = fetcher.fetch_feed(url, etag=first.etag)
            assert again.not_modified and again.body == b""
    assert len(_Feed.connections) == 1


def test_polls_on_a_kept_connection_look_the_name_up_once_within_the_ttl(feed_url: str) -> None:
    resolve = Counting(["127.0.0.1"])
    with Fetcher(FetchConfig(), resolve=resolve) as fetcher:
        first = fetcher.fetch_feed(feed_url)
        assert first.body == RSS
        for _ in range(3):
            assert fetcher.fetch_feed(feed_url, etag=first.etag).not_modified
    assert resolve.calls == ["localhost"]
    assert len(_Feed.connections) == 1


def test_after_the_ttl_the_name_is_looked_up_again(feed_url: str) -> None:
    resolve = Counting(["127.0.0.1"])
    with Fetcher(FetchConfig(), resolve=resolve, resolve_ttl=0.2) as fetcher:
        first = fetcher.fetch_feed(feed_url)
        assert fetcher.fetch_feed(feed_url, etag=first.etag).not_modified
        assert resolve.calls == ["localhost"]
        time.sleep(0.3)
        assert fetcher.fetch_feed(feed_url, etag=first.etag).not_modified
    assert resolve.calls == ["localhost", "localhost"]


def test_a_failed_lookup_is_not_remembered(feed_url: str) -> None:
    calls: list[str] = []

    def flaky(host: str, port: int) -> list[str]:
        calls.append(host)
        if len(calls) == 1:
            raise OSError("temporary failure in name resolution")
        return ["127.0.0.1"]

    with Fetcher(FetchConfig(), resolve=flaky) as fetcher:
        assert fetcher.fetch_feed(feed_url).body == RSS  # httpx looks it up itself
        assert fetcher.fetch_feed(feed_url).body == RSS
        assert fetcher.fetch_feed(feed_url).body == RSS
    assert calls == ["localhost", "localhost"]


def test_remembered_addresses_still_meet_the_private_address_rule() -> None:
    """A media host that resolves to a private address is refused on every
    fetch, the remembered answer as much as the first."""
    resolve = Counting(["192.168.1.10"])
    with Fetcher(FetchConfig(), resolve=resolve) as fetcher:
        for _ in range(2):
            with pytest.raises(MediaError, match=r"internal\.example resolves to .*192\.168"):
                fetcher.fetch_media("http://internal.example/a.jpg")
    assert resolve.calls == ["internal.example"]


def test_the_connection_goes_to_the_address_the_check_looked_up(feed_port: int) -> None:
    """A host name is looked up once, for the private-address rule, and the
    connection goes to that answer: a DNS server answering otherwise the
    second time (DNS rebinding) has no second time. Here the name exists
    nowhere but in the look-up the fetcher made."""
    resolve = Counting(["127.0.0.1"])
    url = f"http://feeds.invalid:{feed_port}/feed"
    with Fetcher(FetchConfig(allow_private=True), resolve=resolve) as fetcher:
        assert fetcher.fetch_feed(url).body == RSS
    assert resolve.calls == ["feeds.invalid"]
    assert len(_Feed.connections) == 1


def test_a_checked_public_answer_is_where_the_connection_goes_not_a_second_lookup(
    feed_port: int,
) -> None:
    """``localhost`` checked as a public address (the look-up says so) is
    connected to at that address, never at 127.0.0.1, where the system's own
    look-up would send it. The suite's guard (conftest) stops any connection
    off loopback, and says where it was going."""
    resolve = Counting(["93.184.216.34"])
    refused = pytest.raises(AssertionError, match=r"non-loopback address: 93\.184\.216\.34")
    with Fetcher(FetchConfig(timeout=timedelta(seconds=2)), resolve=resolve) as fetcher, refused:
        fetcher.fetch_media(f"http://localhost:{feed_port}/feed")
    assert _Feed.connections == []


def test_a_kept_connection_the_server_closed_is_not_used_again(feed_port: int) -> None:
    """A server that hangs up after each answer without saying so: the next
    poll finds the kept connection closed and opens a new one, no error."""
    _Feed.hang_up = True
    url = f"http://127.0.0.1:{feed_port}/feed"
    with Fetcher(FetchConfig(allow_private=True)) as fetcher:
        for _ in range(3):
            time.sleep(0.05)  # the server's close has arrived
            assert fetcher.fetch_feed(url).body == RSS
    assert len(_Feed.connections) == 3


def test_a_validator_that_cannot_be_sent_is_one_line(feed_port: int) -> None:
    """An ETag kept from somewhere with a line break in it: http.client will
    not send it; the poll fails with one line."""
    url = f"http://127.0.0.1:{feed_port}/feed"
    with (
        Fetcher(FetchConfig(allow_private=True)) as fetcher,
        pytest.raises(FetchError, match=r"127\.0\.0\.1.*Invalid header value") as info,
    ):
        fetcher.fetch_feed(url, etag='"v1"\r\nX-Evil: 1')
    assert "\n" not in str(info.value)
