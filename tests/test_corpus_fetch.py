"""Every feed of the corpus (tests/data/feeds) goes through the real pipeline
up to the outbox: served over HTTP on 127.0.0.1 with a plausible
Content-Type, fetched, parsed, planned and rendered by
``Service.poll_source``. Nothing raises; a broken feed becomes a recorded,
readable source error; a good one queues its items.

Media named in the feeds live on the internet and are never contacted: the
service's media seam is replaced by one that refuses (and records) every
URL, so pictures fall back to text posts as they would for an unreachable
host."""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import STANDIN_TOKEN as TOKEN

from publisher.adapters.httpserver import HTTPServer
from publisher.config import parse_config
from publisher.core.errors import MediaError
from publisher.service.runner import PollOutcome, Service

#: The whole corpus through the pipeline: seconds, not milliseconds.
pytestmark = pytest.mark.slow

DATA = Path(__file__).parent / "data"
INDEX = json.loads((DATA / "feeds" / "index.json").read_text(encoding="utf-8"))


def content_type(path: Path, meta: dict[str, Any]) -> str:
    fmt = str(meta.get("detected_format") or "")
    if path.suffix == ".json" or fmt.startswith("JSON") or fmt == "RSS-in-JSON":
        return "application/feed+json"
    if fmt.startswith("Atom") or path.suffix == ".atom":
        return "application/atom+xml"
    if "RDF" in fmt or path.suffix == ".rdf":
        return "application/rdf+xml"
    if fmt.startswith("RSS") or path.suffix == ".rss":
        return "application/rss+xml"
    guessed = mimetypes.guess_type(path.name)[0]
    return guessed if guessed and "xml" in guessed else "application/xml"


class Corpus:
    """Serves ``/<index>`` → the corpus file, with its Content-Type."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        for number, meta in enumerate(INDEX):
            path = DATA / meta["path"]
            self.files[f"/{number}"] = (path.read_bytes(), content_type(path, meta))

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        found = self.files.get(environ["PATH_INFO"])
        if found is None:
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
        body, ctype = found
        start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
        return [body]


@pytest.fixture(scope="module")
def corpus_url() -> Iterator[str]:
    with HTTPServer(Corpus().app) as server:
        yield server.url


@pytest.fixture(scope="module")
def outcomes(
    corpus_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Service, list[PollOutcome], list[str]]]:
    tmp = tmp_path_factory.mktemp("corpus")
    data = {
        "viber": {"api_url": "http://127.0.0.1:9/pa"},  # never called: nothing is delivered
        "server": {"listen": "127.0.0.1:0"},
        "storage": {"path": str(tmp / "state.sqlite3"), "media_dir": str(tmp / "media")},
        "fetch": {"timeout": "10s"},
        "sources": [
            {
                "name": f"feed-{number:03d}",
                "type": "rss",
                "url": f"{corpus_url}/{number}",
                # the newest 5 of each are rendered; the rest are planned as backfill
                "backfill": 5,
            }
            for number in range(len(INDEX))
        ],
    }
    config = parse_config(data, tmp / "sources.toml")
    service = Service(config, token=TOKEN, serve=False)
    asked: list[str] = []

    def refuse(url: str) -> tuple[bytes, str | None]:
        asked.append(url)
        raise MediaError(f"{url}: not fetched in tests")

    service.transformer.fetch_media = refuse
    try:
        results = service.poll_all()
        yield service, results, asked
    finally:
        service.close()


def meta_of(outcome: PollOutcome) -> dict[str, Any]:
    meta: dict[str, Any] = INDEX[int(outcome.source.rsplit("-", 1)[1])]
    return meta


def test_no_feed_crashes_the_poll(
    outcomes: tuple[Service, list[PollOutcome], list[str]],
) -> None:
    _, results, _ = outcomes
    assert len(results) == len(INDEX) > 250
    internal = [
        (meta_of(o)["path"], o.error) for o in results if "internal error" in (o.error or "")
    ]
    assert internal == []


def test_broken_feeds_record_a_readable_error(
    outcomes: tuple[Service, list[PollOutcome], list[str]],
) -> None:
    service, results, _ = outcomes
    failed = [o for o in results if not o.ok]
    assert failed, "the corpus holds broken feeds (an empty file, not-a-feed XML, bad JSON)"
    for outcome in failed:
        state = service.store.get_source(outcome.source)
        assert state.last_error == outcome.error
        assert state.consecutive_failures == 1
        error = outcome.error or ""
        assert 15 < len(error) < 600, error
        assert "Traceback" not in error and "Exception(" not in error, error
        assert f"/{outcome.source.rsplit('-', 1)[1].lstrip('0') or '0'}" in error, error
    for outcome in results:
        if outcome.ok:
            assert service.store.get_source(outcome.source).last_error is None


def test_good_feeds_queue_their_items(
    outcomes: tuple[Service, list[PollOutcome], list[str]],
) -> None:
    """Every well-formed feed in which feedparser finds entries is polled
    without error; all but the few whose entries are empty shells (no title,
    text, link or media: skipped, or refused as nothing to post) queue posts."""
    service, results, _ = outcomes
    checked = nothing = 0
    for outcome in results:
        meta = meta_of(outcome)
        expected = meta.get("feedparser_6_0_14", {}).get("entries", 0)
        if not meta.get("well_formed_xml") or not expected:
            continue
        checked += 1
        assert outcome.ok, (meta["path"], outcome.error)
        assert service.store.get_source(outcome.source).first_poll_done
        assert outcome.seen <= max(5, expected), (meta["path"], outcome)
        if outcome.queued == 0:
            nothing += 1
    assert checked > 150
    assert nothing < 30
    assert sum(o.queued for o in results) > 300


def test_json_feeds_are_parsed(
    outcomes: tuple[Service, list[PollOutcome], list[str]],
) -> None:
    _, results, _ = outcomes
    json_feeds = [
        o
        for o in results
        if str(meta_of(o).get("detected_format") or "").startswith("JSON Feed")
        and meta_of(o).get("items")
    ]
    assert len(json_feeds) >= 10
    for outcome in json_feeds:
        assert outcome.ok, (meta_of(outcome)["path"], outcome.error)
    # all but the feeds of empty items (only an id) queue posts
    assert sum(1 for o in json_feeds if o.queued) >= len(json_feeds) - 3


def test_remote_media_were_not_contacted(
    outcomes: tuple[Service, list[PollOutcome], list[str]],
) -> None:
    """Without a public_url nothing is fetched but pictures at https .jpg URLs,
    which went to the refusing seam, never to the network (the loopback
    guard of conftest would have failed the poll as an internal error)."""
    _, _, asked = outcomes
    assert all(url.startswith(("http://", "https://")) for url in asked)
