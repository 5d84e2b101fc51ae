"""User and password in a URL never shown: logs, errors, ``status``, ``/readyz``."""

from __future__ import annotations

import io
import json
import logging
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import Probed

from publisher.adapters.fetch import Fetcher
from publisher.adapters.sources.feed import parse_feed
from publisher.adapters.sqlite import Store
from publisher.config import parse_config
from publisher.core.config import FetchConfig
from publisher.core.errors import FetchError, MediaError, SourceError
from publisher.core.redact import redact_urls
from publisher.logs import JsonFormatter, RedactingFilter, TextFormatter
from publisher.service.probes import readiness

T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://user:pass@host/feed", "https://***@host/feed"),
        ("fetching HTTP://tok@h:8080/x failed", "fetching HTTP://***@h:8080/x failed"),
        ("'https://u:p@ss@h/p?q=a@b'", "'https://***@h/p?q=a@b'"),
        ("https://host/feed?mail=a@b.example", "https://host/feed?mail=a@b.example"),
        (
            "write to a@b.example or mailto:a@b.example",
            "write to a@b.example or mailto:a@b.example",
        ),
        ("a https://u:p@one/ and ftp://x:y@two/", "a https://***@one/ and ftp://***@two/"),
        ("no url here", "no url here"),
    ],
)
def test_redact_urls(text: str, shown: str) -> None:
    assert redact_urls(text) == shown


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()])
def test_log_lines_hide_credentials(formatter: logging.Formatter) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test_redact")
    logger.addHandler(handler)
    try:
        logger.warning("polling %s failed", "https://user:s3cret@example.org/feed")
        try:
            raise ValueError("https://user:s3cret@example.org/feed")
        except ValueError:
            logger.exception("again")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "s3cret" not in out and "user:" not in out
    assert "https://***@example.org/feed" in out
    if isinstance(formatter, JsonFormatter):
        json.loads(out.splitlines()[0])


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_fetch_errors_hide_credentials() -> None:
    url = f"http://user:s3cret@127.0.0.1:{_closed_port()}/feed"
    with Fetcher(FetchConfig(allow_private=True)) as f:
        with pytest.raises(FetchError) as feed_error:
            f.fetch_feed(url)
        with pytest.raises(MediaError) as media_error:
            f.fetch_media(url.replace("/feed", "/a.jpg"))
    for error in (feed_error.value, media_error.value):
        assert "s3cret" not in str(error) and "http://***@127.0.0.1" in str(error)


def test_parse_errors_hide_credentials() -> None:
    with pytest.raises(SourceError) as info:
        parse_feed(b"<html><body>hi</body></html>", {}, "https://u:s3cret@h.example/f", "s")
    assert "s3cret" not in str(info.value) and "https://***@h.example/f" in str(info.value)


def test_readyz_and_status_hide_credentials(tmp_path: Path) -> None:
    from publisher.cli.status import status_document

    config = parse_config(
        {
            "sources": [
                {"name": "news", "type": "rss", "url": "https://user:s3cret@example.org/feed"}
            ]
        }
    )
    with Store.open(tmp_path / "state.db") as store:
        # an error recorded before this release, with the credentials in it
        store.record_poll(
            "news", T0, ok=False, error="https://user:s3cret@example.org/feed: HTTP 500"
        )
        ready, details = readiness(Probed(config, store, T0))  # type: ignore[arg-type]
        assert not ready
        assert details["sources"]["news"] == "failing: https://***@example.org/feed: HTTP 500"
        shown = json.dumps(status_document(config, store, T0), default=str)
    assert "s3cret" not in shown and "https://***@example.org/feed" in shown
