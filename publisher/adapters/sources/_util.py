"""Helpers shared by the feed parsers (XML via feedparser, JSON Feed)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from publisher.core.items import Item, MediaKind
from publisher.core.render.html import MAX_DEPTH, parse_html

if TYPE_CHECKING:
    from bs4 import BeautifulSoup

#: Why an item whose HTML nests absurdly deep is skipped.
TOO_DEEP = (
    f"its HTML nests more than {MAX_DEPTH} elements deep (broken or hostile); tell the site's owner"
)

#: Future dates further ahead than this are clamped to the fetch time.
FUTURE_SLACK = timedelta(days=1)

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif"}
)
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".3gp"})
FILE_EXTENSIONS = frozenset(
    {".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".wav", ".flac", ".pdf", ".zip", ".epub"}
)
_FILE_MIMES = ("audio/", "application/pdf", "application/zip", "application/epub")


@dataclass(frozen=True)
class ParsedFeed:
    """A parsed feed: its items in document order, and survivable problems."""

    title: str
    link: str | None
    items: list[Item] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: ``rss20``, ``atom10``, ``rss10``, ``json1.1``, ``rss-in-json``...
    version: str = ""


def soup(markup: str) -> BeautifulSoup:
    # imported here: most polls find nothing new, and read no HTML
    from bs4 import MarkupResemblesLocatorWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        return parse_html(markup)


_SPACE = re.compile(r"\s+")


def html_to_text(markup: str) -> str:
    """Visible text of an HTML fragment, whitespace collapsed."""
    if "<" not in markup and "&" not in markup:
        return _SPACE.sub(" ", markup).strip()
    return _SPACE.sub(" ", soup(markup).get_text(" ")).strip()


def guess_kind(mime: str | None, url: str | None, medium: str | None = None) -> MediaKind:
    """``image``, ``video``, ``file`` or ``unknown``, from medium, MIME type or extension."""
    medium = (medium or "").lower()
    if medium in ("image", "video"):
        return medium  # type: ignore[return-value]
    if medium in ("audio", "document"):
        return "file"
    mime = (mime or "").split(";")[0].strip().lower()
    if mime.startswith("image/"):
        return "image"
    if mime.startswith("video/"):
        return "video"
    if mime.startswith(_FILE_MIMES):
        return "file"
    if url:
        try:
            suffix = PurePosixPath(unquote(urlsplit(url).path)).suffix.lower()
        except ValueError:
            suffix = ""
        if suffix in IMAGE_EXTENSIONS:
            return "image"
        if suffix in VIDEO_EXTENSIONS:
            return "video"
        if suffix in FILE_EXTENSIONS:
            return "file"
    return "unknown"


def parse_length(value: object) -> int | None:
    """A claimed size in bytes; None for missing, zero, negative or garbage."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, float):
        return int(value) if value >= 1 else None
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
        return number if number > 0 else None
    return None


def clamp_future(
    when: datetime | None, now: datetime, what: str, warnings_out: list[str]
) -> datetime | None:
    """Dates more than :data:`FUTURE_SLACK` ahead of ``now`` become ``now``."""
    if when is not None and when > now + FUTURE_SLACK:
        warnings_out.append(
            f"{what}: date {when.isoformat()} is in the future; using the fetch time instead"
        )
        return now
    return when


class Keyring:
    """Gives out item keys, noticing ids repeated within one document."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def claim(
        self, key: str, content_hash: str, fallback: Callable[[], tuple[str, str]]
    ) -> str | None:
        """The key to use for an item; None when it repeats an earlier item exactly.

        A key already given to an item with other content is not reused: the
        item gets ``fallback()``'s key (link- or hash-based; asked for only
        then) instead, or that key and the start of its hash.
        """
        previous = self._seen.get(key)
        if previous is None:
            self._seen[key] = content_hash
            return key
        if previous == content_hash:
            return None
        other, digest = fallback()
        for candidate in (other, f"{other}#{digest[:16]}"):
            previous = self._seen.get(candidate)
            if previous is None:
                self._seen[candidate] = content_hash
                return candidate
            if previous == content_hash:
                return None
        return None


def claim_key(
    keys: Keyring,
    item: Item,
    items: list[Item],
    where: str,
    warnings: list[str],
    noun: str = "item",
    key_body: Callable[[], str] | None = None,
) -> None:
    """Append ``item`` to ``items`` under a key no earlier item of the feed has.

    An exact repeat is dropped; a repeated id with other content is keyed by
    its link (or link and hash) instead. Both are warnings. ``key_body()``:
    the body such keys are made from, when it is not the item's own (see
    :func:`publisher.adapters.sources.feed._key_body`).
    """
    from publisher.core.identity import content_hash, item_key

    def fallback() -> tuple[str, str]:
        body = key_body() if key_body is not None else item.html or item.text
        other = item_key(None, item.link, item.title, body)
        digest = item.content_hash
        if key_body is not None:
            digest = content_hash(item.title, body, item.link)
        return other, digest

    key = keys.claim(item.key, item.content_hash, fallback)
    if key is None:
        warnings.append(f"{where}: skipped, it repeats an earlier {noun} exactly")
        return
    if key != item.key:
        warnings.append(f"{where}: its id {item.key!r} is used twice; keyed as {key!r}")
        item = replace(item, key=key)
    items.append(item)
