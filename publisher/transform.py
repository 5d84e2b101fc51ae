"""Render stage: one :class:`~publisher.items.Item` → Viber messages that pass
every limit, with the media made compliant and stored for hosting.

The choice, in order, for an item with media:

- a picture (first usable image candidate): re-encoded JPEG under 1 MB and a
  400x400 thumbnail under 100 KB, hosted under ``public_url``; the caption
  fits 768, the rest follows as a text post (``caption_overflow = "split"``)
  or is cut (``"truncate"``);
- a video: MP4/H.264 within 50 MB and 180 s, with a thumbnail when a decoder
  is available; its text follows as a text post (video posts carry no text);
- a file: kept with its extension, never a forbidden one; text follows.

Fallbacks instead of failures: picture unusable → text post with the link;
video unusable → url post to the item's link, else text; nothing usable →
a refusal with the reason. Every fallback is a :class:`Decision`.

Without a ``public_url`` (and not on the local channel) nothing can be
hosted: a picture is posted from its source URL only when that is already
compliant (a JPEG under 1 MB at a ``.jpg``/``.jpeg`` URL), else text.

The text and image work is pure (``publisher.render``, ``publisher.media``);
this module only adds reading the media (fetcher, local files) and storing
the results (media store).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from publisher.config import Config, SourceConfig
from publisher.errors import MediaError, SourceError
from publisher.items import (
    Decision,
    Item,
    MediaCandidate,
    MediaInfo,
    RenderedItem,
    RenderedMessage,
)
from publisher.media.files import check_file
from publisher.media.images import make_thumbnail, prepare_picture, sniff
from publisher.media.video import check_video, inspect_video, video_thumbnail
from publisher.mediastore import MediaStore
from publisher.render import render_caption, render_text, utf16_len
from publisher.viber.messages import (
    CAPTION_MAX,
    PICTURE_MAX_BYTES,
    TEXT_MAX,
    URL_MAX,
    URL_TEXT_MAX,
    VIDEO_MAX_BYTES,
)

log = logging.getLogger(__name__)

#: Reads a media URL: (bytes, sniffed MIME or None). Raises MediaError.
FetchMedia = Callable[[str], tuple[bytes, str | None]]

_IMAGE_EXT = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".avif"}
_VIDEO_EXT = {".mp4", ".m4v", ".mov"}


@dataclass
class _Media:
    kind: str
    data: bytes | None
    path: Path | None
    name: str
    size: int
    mime: str | None


class Transformer:
    """Turns items into rendered posts. Thread-safe: it keeps no state but
    the media store (content-addressed, atomic writes)."""

    def __init__(
        self,
        config: Config,
        media_store: MediaStore,
        fetch_media: FetchMedia,
        public_url: str | None = None,
    ) -> None:
        self.config = config
        self.store = media_store
        self.fetch_media = fetch_media
        self.public_url = public_url if public_url is not None else config.public_url

    # -- entry point -------------------------------------------------------

    def render(self, item: Item, source: SourceConfig) -> RenderedItem:
        decisions: list[Decision] = []
        candidates = self._candidates(item, source, decisions)
        for candidate in candidates:
            try:
                media = self._load(candidate)
            except MediaError as exc:
                decisions.append(Decision("fallback", f"media {candidate.location}: {exc}"))
                log.info(
                    "%s/%s: media %s unusable: %s", item.source, item.key, candidate.location, exc
                )
                continue
            try:
                if media.kind == "image":
                    return self._picture(item, source, media, candidate, decisions)
                if media.kind == "video":
                    return self._video(item, source, media, decisions)
                return self._file(item, source, media, decisions)
            except MediaError as exc:
                decisions.append(Decision("fallback", f"{media.kind} {candidate.location}: {exc}"))
                log.info("%s/%s: %s unusable: %s", item.source, item.key, media.kind, exc)
                if media.kind == "video" and item.link:
                    return self._url_post(item, source, decisions)
        return self._text_only(item, source, decisions)

    # -- choosing and loading media ---------------------------------------

    def _candidates(
        self, item: Item, source: SourceConfig, decisions: list[Decision]
    ) -> list[MediaCandidate]:
        chosen: list[MediaCandidate] = []
        for candidate in item.media:
            kind: str = candidate.kind
            if kind == "unknown":
                kind = _guess_kind(candidate.location, candidate.mime)
            if kind == "image" and not source.images:
                continue
            if (
                kind in ("video", "file")
                and candidate.path is None
                and candidate.origin
                not in (
                    "enclosure",
                    "media:content",
                )
            ):
                continue
            if kind == "file" and candidate.path is None:
                # Feed enclosures that are neither image nor video (podcasts,
                # PDFs): the text post with the link serves readers better.
                continue
            chosen.append(candidate)
        # Pictures first (a post can carry one), then video, then files.
        order = {"image": 0, "video": 1, "file": 2, "unknown": 3}
        chosen.sort(
            key=lambda c: order[c.kind if c.kind != "unknown" else _guess_kind(c.location, c.mime)]
        )
        return chosen[:3]

    def _load(self, candidate: MediaCandidate) -> _Media:
        limit = self.config.fetch.max_bytes
        if candidate.path is not None:
            path = candidate.path
            try:
                size = path.stat().st_size
            except OSError as exc:
                raise MediaError(f"cannot read {path.name}: {exc.strerror}") from exc
            kind = _guess_kind(path.name, candidate.mime)
            if kind in ("video", "file"):
                with path.open("rb") as fh:
                    head = fh.read(64)
                mime = sniff(head)
                if kind == "video" and mime not in (None, "video/mp4", "video/quicktime"):
                    kind = "file"
                return _Media(kind, None, path, path.name, size, mime)
            if size > limit:
                raise MediaError(
                    f"{path.name} is {size} bytes, over [fetch] max_bytes ({limit}); "
                    "make it smaller or raise max_bytes"
                )
            data = path.read_bytes()
            return _Media("image", data, path, path.name, len(data), sniff(data))
        assert candidate.url is not None
        data, mime = self.fetch_media(candidate.url)
        mime = mime or sniff(data)
        name = Path(urlsplit(candidate.url).path).name or "media"
        if mime and mime.startswith("video/"):
            kind = "video"
        elif mime and mime.startswith("image/"):
            kind = "image"
        else:
            kind = _guess_kind(name, candidate.mime)
        return _Media(kind, data, None, name, len(data), mime)

    # -- message kinds -----------------------------------------------------

    def _picture(
        self,
        item: Item,
        source: SourceConfig,
        media: _Media,
        candidate: MediaCandidate,
        decisions: list[Decision],
    ) -> RenderedItem:
        data = media.data if media.data is not None else b""
        caption = render_caption(
            item,
            source.template,
            overflow=source.caption_overflow,
            caption_limit=CAPTION_MAX,
            text_limit=TEXT_MAX,
        )
        decisions.extend(caption.decisions)
        if self.public_url is None:
            return self._picture_unhosted(item, source, media, candidate, caption, decisions)
        picture = prepare_picture(
            data,
            max_side=self.config.media.max_side,
            max_pixels=self.config.media.max_pixels,
            max_bytes=PICTURE_MAX_BYTES,
        )
        thumb = make_thumbnail(picture, mode=self.config.media.thumbnail)
        picture_name = self.store.put(picture.data, ".jpg")
        thumb_name = self.store.put(thumb.data, ".jpg")
        decisions.append(
            Decision(
                "image",
                f"{picture.source_format} {picture.source_width}x{picture.source_height} "
                f"{picture.source_size} B → JPEG {picture.width}x{picture.height} "
                f"{len(picture.data)} B q{picture.quality}",
            )
        )
        for note in picture.decisions:
            decisions.append(Decision("image", note))
        payload: dict[str, Any] = {
            "type": "picture",
            "text": caption.caption,
            "media": self.store.url(self.public_url, picture_name),
            "thumbnail": self.store.url(self.public_url, thumb_name),
        }
        infos = (
            MediaInfo(
                kind="image",
                name=picture_name,
                size=len(picture.data),
                mime="image/jpeg",
                width=picture.width,
                height=picture.height,
                quality=picture.quality,
                source_format=picture.source_format,
                source_size=picture.source_size,
                source_width=picture.source_width,
                source_height=picture.source_height,
            ),
            MediaInfo(
                kind="image",
                name=thumb_name,
                size=len(thumb.data),
                mime="image/jpeg",
                width=thumb.width,
                height=thumb.height,
                quality=thumb.quality,
            ),
        )
        messages = [RenderedMessage(payload, infos)]
        if caption.follow_up:
            messages.append(RenderedMessage({"type": "text", "text": caption.follow_up}))
        return RenderedItem(item, tuple(messages), tuple(decisions))

    def _picture_unhosted(
        self,
        item: Item,
        source: SourceConfig,
        media: _Media,
        candidate: MediaCandidate,
        caption: Any,
        decisions: list[Decision],
    ) -> RenderedItem:
        url = candidate.url or ""
        compliant = (
            url.startswith("https://")
            and urlsplit(url).path.lower().endswith((".jpg", ".jpeg"))
            and media.mime == "image/jpeg"
            and media.size <= PICTURE_MAX_BYTES
        )
        if not compliant:
            decisions.append(
                Decision(
                    "fallback",
                    "no [server] public_url to host the converted picture, and the source "
                    "image is not a JPEG under 1 MB at an https .jpg URL: posted as text",
                )
            )
            return self._text_only(item, source, decisions, drop_caption_decisions=True)
        decisions.append(Decision("image", "posted from its source URL (no public_url)"))
        messages = [RenderedMessage({"type": "picture", "text": caption.caption, "media": url})]
        if caption.follow_up:
            messages.append(RenderedMessage({"type": "text", "text": caption.follow_up}))
        return RenderedItem(item, tuple(messages), tuple(decisions))

    def _video(
        self, item: Item, source: SourceConfig, media: _Media, decisions: list[Decision]
    ) -> RenderedItem:
        if self.public_url is None:
            raise MediaError("no [server] public_url to host the video")
        if media.path is not None:
            info = inspect_video(media.path)
        else:
            assert media.data is not None
            info = inspect_video(media.data)
        check_video(info)
        if media.path is not None:
            if info.size > VIDEO_MAX_BYTES:
                raise MediaError(f"video is {info.size} bytes, over 50 MB")
            data = media.path.read_bytes()
        else:
            assert media.data is not None
            data = media.data
        name = self.store.put(data, ".mp4")
        payload: dict[str, Any] = {
            "type": "video",
            "media": self.store.url(self.public_url, name),
            "size": len(data),
        }
        if info.duration:
            payload["duration"] = max(1, round(info.duration))
        infos = [
            MediaInfo(
                kind="video",
                name=name,
                size=len(data),
                mime="video/mp4",
                width=info.width,
                height=info.height,
                duration=info.duration,
            )
        ]
        thumb_bytes = video_thumbnail(self.store.path(name))
        if thumb_bytes:
            thumb_name = self.store.put(thumb_bytes, ".jpg")
            payload["thumbnail"] = self.store.url(self.public_url, thumb_name)
            infos.append(
                MediaInfo(kind="image", name=thumb_name, size=len(thumb_bytes), mime="image/jpeg")
            )
        else:
            decisions.append(Decision("video", "no thumbnail: no video decoder installed"))
        decisions.append(
            Decision("video", f"MP4 {info.codec} {info.duration or 0:.0f}s {len(data)} B")
        )
        return self._with_text(item, source, RenderedMessage(payload, tuple(infos)), decisions)

    def _file(
        self, item: Item, source: SourceConfig, media: _Media, decisions: list[Decision]
    ) -> RenderedItem:
        if self.public_url is None:
            raise MediaError("no [server] public_url to host the file")
        file_name = check_file(media.name, media.size)
        data = media.path.read_bytes() if media.path is not None else (media.data or b"")
        ext = Path(file_name).suffix.lower()
        name = self.store.put(data, ext)
        payload = {
            "type": "file",
            "media": self.store.url(self.public_url, name),
            "size": len(data),
            "file_name": file_name,
        }
        info = MediaInfo(
            kind="file", name=name, size=len(data), mime=media.mime or "application/octet-stream"
        )
        decisions.append(Decision("file", f"{file_name} {len(data)} B"))
        return self._with_text(item, source, RenderedMessage(payload, (info,)), decisions)

    def _with_text(
        self,
        item: Item,
        source: SourceConfig,
        message: RenderedMessage,
        decisions: list[Decision],
    ) -> RenderedItem:
        """A media post followed by the item's text, when it has any."""
        messages = [message]
        if item.title or item.text or item.html:
            rendered = render_text(item, source.template, limit=TEXT_MAX)
            decisions.extend(rendered.decisions)
            if rendered.text.strip() and not _only_link(rendered.text, item):
                messages.append(RenderedMessage({"type": "text", "text": rendered.text}))
        return RenderedItem(item, tuple(messages), tuple(decisions))

    def _url_post(
        self, item: Item, source: SourceConfig, decisions: list[Decision]
    ) -> RenderedItem:
        assert item.link is not None
        if len(item.link) > URL_MAX:
            return self._text_only(item, source, decisions)
        payload: dict[str, Any] = {"type": "url", "media": item.link}
        title = item.title.strip()
        if title:
            from publisher.render import truncate

            payload["text"] = truncate(title, URL_TEXT_MAX)
        decisions.append(Decision("fallback", "video unusable: posted a link to the item instead"))
        return RenderedItem(item, (RenderedMessage(payload),), tuple(decisions))

    def _text_only(
        self,
        item: Item,
        source: SourceConfig,
        decisions: list[Decision],
        drop_caption_decisions: bool = False,
    ) -> RenderedItem:
        if drop_caption_decisions:
            decisions = [d for d in decisions if d.code not in ("truncated", "split")]
        rendered = render_text(item, source.template, limit=TEXT_MAX)
        decisions.extend(rendered.decisions)
        if not rendered.text.strip():
            reason = "nothing to post: no text, no link and no usable media"
            decisions.append(Decision("refused", reason))
            return RenderedItem(item, (), tuple(decisions), refused=reason)
        assert utf16_len(rendered.text) <= TEXT_MAX
        return RenderedItem(
            item, (RenderedMessage({"type": "text", "text": rendered.text}),), tuple(decisions)
        )


def _only_link(text: str, item: Item) -> bool:
    return bool(item.link) and text.strip() == item.link


def _guess_kind(location: str, mime: str | None) -> str:
    if mime:
        if mime.startswith("image/"):
            return "image"
        if mime.startswith("video/"):
            return "video"
    suffix = Path(urlsplit(location).path if "://" in location else location).suffix.lower()
    if suffix in _IMAGE_EXT:
        return "image"
    if suffix in _VIDEO_EXT:
        return "video"
    return "file"


def fetch_media_with(fetcher: Any) -> FetchMedia:
    """Adapt a :class:`publisher.fetch.Fetcher` to :data:`FetchMedia`."""

    def fetch(url: str) -> tuple[bytes, str | None]:
        try:
            response = fetcher.fetch_media(url)
        except SourceError as exc:
            raise MediaError(str(exc)) from exc
        return response.data, getattr(response, "sniffed_type", None)

    return fetch
