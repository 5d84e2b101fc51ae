"""The seams, as Protocols: what the pipeline needs from the world.

The pipeline (:mod:`publisher.pipeline`) and the service are written
against these; the adapters (:mod:`publisher.adapters`) implement them, and
the composition root (:mod:`publisher.compose`) is the only place that
chooses which adapter stands behind which seam::

    Clock        now(): an aware UTC datetime (a fake one in the tests)
    Fetcher      HTTP GET of feeds (conditional) and media, safely
    Source       one configured source: read it, and finish an item's files
    MediaStore   content-addressed media files, served to Viber by name
    Channel      a Viber channel: account, webhook, post
    Store        the state, in parts: SourceStates, SeenItems, Outbox,
                 History, ChannelState (see below)

Everything that crosses a seam is a plain value from
:mod:`publisher.core.records` or :mod:`publisher.core.items`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from publisher.core.config import SourceConfig
from publisher.core.messages import Message
from publisher.core.records import (
    AccountInfo,
    FeedResponse,
    MediaResponse,
    PostResult,
    SourceRead,
    SourceState,
)

#: The time now, timezone-aware (UTC).
Clock = Callable[[], datetime]


class Fetcher(Protocol):
    """Fetches feeds and media over HTTP within the fetch rules (timeouts, size
    caps, private addresses refused); raises SourceError / MediaError."""

    def fetch_feed(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        body_hash: str | None = None,
    ) -> FeedResponse: ...

    def fetch_media(self, url: str) -> MediaResponse: ...

    def close(self) -> None: ...


class Source(Protocol):
    """One configured source. A source type is one module implementing this
    and one line in :data:`publisher.adapters.sources.registry.SOURCE_TYPES`."""

    config: SourceConfig

    def read(self, state: SourceState, now: datetime, *, conditional: bool = True) -> SourceRead:
        """What the source offers now (raises SourceError when it cannot be read).

        ``conditional=False`` asks for every item even when nothing changed
        (preview)."""
        ...

    def finish(self, files: Sequence[Path], ok: bool, reason: str | None) -> list[Path]:
        """An item's posts are all finished: do what this source type does
        with its files (a folder moves them to ``posted/`` or ``failed/``).
        Returns the paths moved (none for a feed)."""
        ...


class MediaStore(Protocol):
    """Content-addressed media: a name is the hash of the bytes plus an extension."""

    def put(self, data: bytes, ext: str) -> str: ...

    def put_file(self, source: Path, ext: str | None = None) -> str: ...

    def exists(self, name: str) -> bool: ...

    def open(self, name: str) -> tuple[BinaryIO, os.stat_result]: ...

    def url(self, public_url: str, name: str) -> str: ...

    def prune(self, in_use: set[str], older_than: datetime) -> list[str]: ...


class Channel(Protocol):
    """A Viber channel as the Channels Post API shows it (the real one, or the
    local channel). Raises the ViberError tree of :mod:`publisher.core.errors`."""

    def get_account_info(self) -> AccountInfo: ...

    def sender(self) -> str:
        """The id posts are sent as: the configured sender, else the superadmin."""
        ...

    def post(
        self, message: Message | Mapping[str, Any], sender: str | None = None
    ) -> PostResult: ...

    def set_webhook(self, url: str) -> dict[str, Any]: ...

    def remove_webhook(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------
# the store, in parts
