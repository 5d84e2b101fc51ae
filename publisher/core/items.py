"""The source-neutral item model, and what an item becomes.

Sources (``publisher.adapters.sources``) produce :class:`Item`; the transformer
(``publisher.pipeline.transform``) turns one item into a :class:`RenderedItem`: zero or
more Viber messages (a split caption makes two), the decisions taken on the
way, or a refusal with its reason. Everything downstream (outbox, delivery,
preview) consumes these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from publisher.core.bodypictures import body_picture_urls

MediaKind = Literal["image", "video", "file", "unknown"]


@dataclass(frozen=True)
class MediaCandidate:
    """A piece of media an item offers: a URL or a local path."""

    url: str | None = None
    path: Path | None = None
    kind: MediaKind = "unknown"
    #: The MIME type the source claims (not trusted: content is sniffed).
    mime: str | None = None
    #: The size the source claims, in bytes, if any.
    length: int | None = None
    #: Where it was found: "enclosure", "media:content", "media:thumbnail",
    #: "body", "folder".
    origin: str = ""

    @property
    def location(self) -> str:
        return self.url if self.url is not None else str(self.path)


@dataclass(frozen=True)
class Item:
    """One piece of content from a source, before it is made to fit Viber."""

    source: str
    #: Stable identity within the source: guid, normalised link or content hash.
    key: str
    title: str = ""
    #: Body as HTML (feeds) ...
    html: str = ""
    #: ... or as plain text (folders, JSON Feed content_text).
    text: str = ""
    link: str | None = None
    author: str | None = None
    #: Published (or updated) time, timezone-aware UTC.
    published: datetime | None = None
    categories: tuple[str, ...] = ()
    #: The media the source names: enclosures, ``media:content``, attachments,
    #: a folder's files (see :attr:`media` for all the item offers).
    attached: tuple[MediaCandidate, ...] = ()
    #: Set when the pictures in :attr:`html` are still to be found (feeds):
    #: the URL their relative addresses are resolved against, "" for none.
    body_base: str | None = None
    #: Not to be posted before this time (scheduled folder items).
    send_at: datetime | None = None
    #: Hash of the content, to notice edits of an item with the same key.
    content_hash: str = ""
    #: Folder items: the files this item consists of (moved after posting).
    files: tuple[Path, ...] = ()

    @cached_property
    def media(self) -> tuple[MediaCandidate, ...]:
        """Every media candidate: :attr:`attached`, then the real pictures in
        the body, found when first asked for (a poll renders only its new
        items; finding pictures was a third of reading a feed's entries)."""
        if self.body_base is None or not self.html:
            return self.attached
        have = {candidate.url for candidate in self.attached}
        found = [
            MediaCandidate(url=url, kind="image", origin="body")
            for url in body_picture_urls(self.html, self.body_base or None)
            if url not in have
        ]
        return self.attached + tuple(found) if found else self.attached


@dataclass(frozen=True)
class Decision:
    """Something the pipeline decided about an item, shown in status and preview.

    ``code`` is short and stable (``truncated``, ``split``, ``fallback``,
    ``filtered``, ``duplicate``, ``expired``, ``refused``, ``image``...);
    ``detail`` is for people.
    """

    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


@dataclass(frozen=True)
class MediaInfo:
    """What a media file was before and after transformation (for preview)."""

    kind: MediaKind
    #: The stored file name in the media dir, e.g. ``"3fa1...c2.jpg"``.
    name: str
    size: int
    mime: str
    width: int | None = None
    height: int | None = None
    quality: int | None = None
    duration: float | None = None
    source_format: str | None = None
    source_size: int | None = None
    source_width: int | None = None
    source_height: int | None = None


@dataclass(frozen=True)
class RenderedMessage:
    """One Viber post: the payload without ``auth_token`` and ``from``
    (added when it is sent), and the stored media it refers to."""

    payload: dict[str, Any]
    media: tuple[MediaInfo, ...] = ()

    @property
    def type(self) -> str:
        return str(self.payload.get("type", ""))


@dataclass(frozen=True)
class RenderedItem:
    item: Item
    messages: tuple[RenderedMessage, ...] = ()
    decisions: tuple[Decision, ...] = field(default_factory=tuple)
    #: Set when nothing can be posted for this item: the reason.
    refused: str | None = None
