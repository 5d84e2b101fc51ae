"""Feeds as a source (``type = "rss"``): RSS, Atom, RDF and JSON Feed over
HTTP (or a local file), fetched conditionally and parsed."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from publisher.adapters.sources.feed import parse_feed
from publisher.core.config import SourceConfig
from publisher.core.records import SourceRead, SourceState
from publisher.ports import Fetcher


class FeedSource:
    def __init__(self, config: SourceConfig, fetcher: Fetcher | None) -> None:
        self.config = config
        self._fetcher = fetcher

    @property
    def fetcher(self) -> Fetcher:
        assert self._fetcher is not None, "a source made to finish items cannot read"
        return self._fetcher

    def read(self, state: SourceState, now: datetime, *, conditional: bool = True) -> SourceRead:
        """Fetch (with the stored validators unless ``conditional`` is off) and parse.

        The URL is the stored one when the feed moved for good, else the configured one.
        """
        url = state.url or self.config.url
        assert url is not None, "config checks that a feed has a url"
        started = time.monotonic()
        if conditional:
            response = self.fetcher.fetch_feed(
                url, etag=state.etag, last_modified=state.last_modified, body_hash=state.body_hash
            )
        else:
            response = self.fetcher.fetch_feed(url)
        seconds = time.monotonic() - started
        common = {
            "etag": response.etag,
            "last_modified": response.last_modified,
            "body_hash": response.body_hash,
            "moved_to": response.permanent_redirect,
            "floor": response.floor,
            "fetch_seconds": seconds,
        }
        if response.not_modified or response.unchanged:
            result = "not_modified" if response.not_modified else "unchanged"
            return SourceRead(result=result, **common)  # type: ignore[arg-type]
        parsed = parse_feed(
            response.body, response.headers, response.final_url, self.config.name, now
        )
        return SourceRead(
            items=tuple(parsed.items),
            first_run=not state.first_poll_done,
            notes=tuple(parsed.warnings),
            **common,  # type: ignore[arg-type]
        )

    def finish(self, files: Sequence[Path], ok: bool, reason: str | None) -> list[Path]:
        """A feed's items have no files of their own: nothing to do."""
        return []
