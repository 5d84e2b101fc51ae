"""Render stage: one :class:`~publisher.core.items.Item` → Viber messages that pass
every limit, with the media made compliant and stored for hosting.

The choice, in order, for an item with media (pictures first, then video,
then files; the kind of a local file is sniffed from its bytes):

- a picture (first usable image candidate): re-encoded JPEG under 1 MB and a
  400x400 thumbnail under 100 KB, hosted at ``{public_url}/media/<hash>.jpg``;
  the caption fits 768, the rest follows as a text post
  (``caption_overflow = "split"``) or is cut (``"truncate"``);
- a video: MP4/H.264 within 50 MB and 180 s (``duration`` in whole seconds,
  rounded up), with a thumbnail when a decoder is available; its text
  follows as a text post (video posts carry no text);
- a file: kept with its extension, never a forbidden one; text follows.

Several pictures (``pictures = N``, default 1): the first N usable pictures
of the item, in its order, each once (the same picture at two addresses is
posted once), as N picture posts of one item, the first with the caption (a
caption's follow-up text comes after the last picture). The delivery sends
an item's posts back to back (``core.policy`` rule 1).

Article enrichment (``enrich``, :mod:`publisher.pipeline.enrich`): with
``"text"`` a feed summary is replaced by the article's main text before
anything is rendered; with ``"image"`` an item that has no usable picture (nor
video or file) tries the pictures its article page names. A page that cannot
be read leaves the feed's own content, with a ``fallback`` decision.

Fallbacks instead of failures: picture unusable → text post with the link;
video unusable → one post: a url post to the item's link when its words fit
one (120 characters), else a text post with the link; nothing usable → a
refusal with the reasons.
Every fallback is a :class:`Decision` (code ``fallback``). Except for a
folder's media (candidate origin ``folder``): a picture, video or file put in
a folder that cannot be posted as such refuses its item, caption or not, with
a reason naming the file and the cause (``001-photo.jpg: JPEG image is
truncated or corrupt: ...; not posted (...)``); the runner moves its files to
``failed/`` with that reason.

Without a ``public_url`` (and not on the local channel) nothing can be
hosted: a picture is posted from its source URL only when that is already
compliant (an ``https`` URL ending ``.jpg``/``.jpeg`` whose bytes are a JPEG
under 1 MB: it is fetched once to check, since Viber would refuse anything
else), else text. Local files, videos and other files are not even read then.

Every payload is checked with :func:`publisher.core.messages.validate_payload`
before it leaves; one that fails (a bug) degrades to the text post.

The text and image work is pure (``publisher.core.render``, ``publisher.core.media``);
this module only adds reading the media (fetcher, local files) and storing
the results (media store; large local files are copied with ``put_file``,
never read whole into memory).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import math
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from publisher.core.config import Config, SourceConfig
from publisher.core.errors import MediaError, MessageError, SourceError
from publisher.core.items import (
    Decision,
    Item,
    MediaCandidate,
    MediaInfo,
    RenderedItem,
    RenderedMessage,
)
from publisher.core.limits import (
    CAPTION_MAX,
    PICTURE_CONTENT_TYPE,
    PICTURE_MAX_BYTES,
    PICTURE_URL_EXTENSIONS,
    TEXT_MAX,
    URL_MAX,
    URL_TEXT_MAX,
    VIDEO_MAX_BYTES,
    VIDEO_MAX_SECONDS,
)
from publisher.core.messages import utf16_len, validate_payload
from publisher.core.render import (
    CaptionResult,
    item_body,
    item_title,
    render_caption,
    render_posts,
)
from publisher.core.render.links import clean_url
from publisher.core.render.post import RenderedPosts
from publisher.core.render.style import TextStyle
from publisher.pipeline.enrich import FetchPage, Pages, enrich_text, page_pictures
from publisher.ports import Fetcher, MediaStore

if TYPE_CHECKING:
    from publisher.core.media.files import check_file
    from publisher.core.media.identify import picture_type
    from publisher.core.media.images import make_thumbnail, prepare_picture, sniff
    from publisher.core.media.video import check_video, inspect_video, video_thumbnail
else:
    # Pillow and PyAV are loaded by the first item with media, not by every
    # command that builds a Transformer (a poll that finds nothing new).

    def _on_use(module: str, name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return getattr(importlib.import_module(module), name)(*args, **kwargs)

        call.__name__ = call.__qualname__ = name
        return call

    check_file = _on_use("publisher.core.media.files", "check_file")
    picture_type = _on_use("publisher.core.media.identify", "picture_type")
    make_thumbnail = _on_use("publisher.core.media.images", "make_thumbnail")
    prepare_picture = _on_use("publisher.core.media.images", "prepare_picture")
    sniff = _on_use("publisher.core.media.images", "sniff")
    check_video = _on_use("publisher.core.media.video", "check_video")
    inspect_video = _on_use("publisher.core.media.video", "inspect_video")
    video_thumbnail = _on_use("publisher.core.media.video", "video_thumbnail")

log = logging.getLogger(__name__)

#: Reads a media URL: (bytes, sniffed MIME or None). Raises MediaError.
FetchMedia = Callable[[str], tuple[bytes, str | None]]

_IMAGE_EXT = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".avif"}
_VIDEO_EXT = {".mp4", ".m4v", ".mov"}
#: Sniffed types that are videos Viber may play (checked further by check_video).
_VIDEO_MIMES = ("video/mp4", "video/quicktime")
#: How much of a local file is read to sniff its type (Pillow reads headers in it).
_SNIFF_BYTES = 64 * 1024
#: Candidates tried per item, at most (each may be a download).
_MAX_CANDIDATES = 3
#: The message types that carry an item's media.
_MEDIA_TYPES = ("picture", "video", "file")


@dataclass(frozen=True)
class _Unusable:
    """Why a media candidate could not be used; ``config``: the fix is in the
    config (no public_url, images = false), not in the file."""

    cause: str
    config: bool = False


@dataclass
class _Media:
    kind: str
    data: bytes | None
    path: Path | None
    name: str
    size: int
    mime: str | None


@dataclass(frozen=True)
class _Encoded:
    """A picture made compliant and stored: its and its thumbnail's info."""

    infos: tuple[MediaInfo, MediaInfo]
    decisions: tuple[Decision, ...]


#: How many encoded pictures are remembered (an item rendered for several channels).
ENCODED_CACHE = 64


class Transformer:
    """Turns items into rendered posts. Thread-safe: it keeps the media store
    (content-addressed, atomic writes) and a small cache of encoded pictures."""

    def __init__(
        self,
        config: Config,
        media_store: MediaStore,
        fetch_media: FetchMedia,
        public_url: str | None = None,
        fetch_page: FetchPage | None = None,
    ) -> None:
        self.config = config
        self.store = media_store
        self.fetch_media = fetch_media
        self.public_url = public_url
        #: Article pages (``enrich``), each link fetched once.
        self.pages = Pages(fetch_page)
        self._encoded: dict[tuple[bytes, int, int, str], _Encoded] = {}
        self._encoded_lock = threading.Lock()

    # -- entry points ------------------------------------------------------

    def render(self, item: Item, source: SourceConfig) -> RenderedItem:
        """The posts for ``item``: media with its text, or a fallback, or a refusal.

        A picture, video or file put in a folder is posted as such or not at
        all: when it cannot be used the item is refused, even with a caption
        (posting the caption alone would silently drop the media), with a
        reason naming the file and the cause; its files go to ``failed/``.
        """
        unusable: dict[MediaCandidate, _Unusable] = {}
        item, enriched = enrich_text(item, source, self.pages)
        rendered = self._render_media(item, source, unusable, enriched)
        return self._require_folder_media(rendered, source, unusable)

    def _render_media(
        self,
        item: Item,
        source: SourceConfig,
        unusable: dict[MediaCandidate, _Unusable],
        decisions: list[Decision],
    ) -> RenderedItem:
        """:meth:`render` before the folder rule; why each candidate tried could
        not be used goes into ``unusable``."""
        video_unusable = False
        wanted = max(1, source.pictures)
        pictures: list[tuple[MediaCandidate, RenderedMessage]] = []
        for candidate in self._all_candidates(item, source, decisions, pictures):
            kind = _candidate_kind(candidate)
            if pictures and kind != "image":
                break
            reason = self._cannot_host(candidate, kind)
            if reason is not None:
                decisions.append(Decision("fallback", f"{kind} {candidate.location}: {reason}"))
                unusable[candidate] = _Unusable(reason, config=True)
                video_unusable = video_unusable or kind == "video"
                continue
            try:
                media = self._load(candidate)
                if media.kind == "image":
                    message = self._picture(media, candidate, decisions)
                    if any(m.payload["media"] == message.payload["media"] for _, m in pictures):
                        decisions.append(
                            Decision(
                                "image",
                                f"{candidate.location}: the same picture again; posted once",
                            )
                        )
                        continue
                    pictures.append((candidate, message))
                    if len(pictures) >= wanted:
                        break
                    continue
                if pictures:
                    break
                if media.kind == "video":
                    rendered = self._video(item, source, media, decisions)
                else:
                    rendered = self._file(item, source, media, decisions)
            except MediaError as exc:
                decisions.append(Decision("fallback", f"{kind} {candidate.location}: {exc}"))
                unusable[candidate] = _Unusable(str(exc))
                log.info("%s/%s: %s unusable: %s", item.source, item.key, candidate.location, exc)
                video_unusable = video_unusable or kind == "video"
                continue
            return self._checked_media(rendered, source, [candidate], unusable)
        if pictures:
            rendered = self._pictures_post(item, source, [m for _, m in pictures], decisions)
            return self._checked_media(rendered, source, [c for c, _ in pictures], unusable)
        if video_unusable and item.link:
            return self._checked(self._url_post(item, source, decisions), source)
        return self._text_only(item, source, decisions)

    def _all_candidates(
        self,
        item: Item,
        source: SourceConfig,
        decisions: list[Decision],
        pictures: list[tuple[MediaCandidate, RenderedMessage]],
    ) -> Iterator[MediaCandidate]:
        """The item's candidates, then, when none made a picture and the
        source asks (``enrich = ["image"]``), its article page's pictures."""
        own = self._candidates(item, source)
        yield from own
        if pictures:
            return
        tried = {c.location for c in own}
        for candidate in page_pictures(item, source, self.pages, decisions):
            if candidate.location not in tried:
                yield candidate

    def _checked_media(
        self,
        rendered: RenderedItem,
        source: SourceConfig,
        candidates: list[MediaCandidate],
        unusable: dict[MediaCandidate, _Unusable],
    ) -> RenderedItem:
        """:meth:`_checked`; a media post that breaks a limit makes its
        candidates unusable (for the folder rule)."""
        checked = self._checked(rendered, source)
        if checked is not rendered:
            cause = next(
                (d.detail for d in reversed(checked.decisions) if d.code == "fallback"),
                "the post breaks one of Viber's limits",
            )
            for candidate in candidates:
                unusable[candidate] = _Unusable(cause)
        return checked

    def _require_folder_media(
        self,
        rendered: RenderedItem,
        source: SourceConfig,
        unusable: dict[MediaCandidate, _Unusable],
    ) -> RenderedItem:
        """``rendered``, or a refusal when a folder's picture, video or file
        did not become a media post (see :meth:`render`)."""
        item = rendered.item
        folder_media = [c for c in item.media if c.origin == "folder"]
        if not folder_media or any(m.type in _MEDIA_TYPES for m in rendered.messages):
            return rendered
        candidate = next((c for c in folder_media if c in unusable), folder_media[0])
        problem = unusable.get(candidate)
        if problem is None:
            if _candidate_kind(candidate) == "image" and not source.images:
                problem = _Unusable(
                    f"pictures are turned off for source {source.name!r} (images = false)",
                    config=True,
                )
            else:
                problem = _Unusable("it cannot be posted as a picture, video or file")
        name = candidate.path.name if candidate.path is not None else candidate.location
        cause = problem.cause
        about = cause if cause.startswith(name) else f"{name}: {cause}"
        if problem.config:
            hint = "change the config, then put the file back in the folder"
        else:
            hint = "fix or replace the file and put it back in the folder"
        reason = f"{about}; not posted ({hint})"
        decisions = [d for d in rendered.decisions if d.code != "refused"]
        decisions.append(Decision("refused", reason))
        return RenderedItem(item, (), tuple(decisions), refused=reason)

    def render_url(self, item: Item, source: SourceConfig) -> RenderedItem:
        """A ``url`` post to ``item.link`` with the item's words as its text
        (at most 120); longer words make a text post with the link instead."""
        decisions: list[Decision] = []
        link = (item.link or "").strip()
        problem = _url_problem(link)
        if problem is not None:
            reason = f"cannot post {link[:100]!r} as a link: {problem}"
            decisions.append(Decision("refused", reason))
            return RenderedItem(item, (), tuple(decisions), refused=reason)
        words = "\n\n".join(p for p in (item_title(item), item_body(item)) if p)
        if utf16_len(words) > URL_TEXT_MAX:
            decisions.append(
                Decision(
                    "fallback",
                    f"text of {utf16_len(words)} characters is over the {URL_TEXT_MAX}-character "
                    "limit of a url post: posted as a text post with the link",
                )
            )
            return self._text_only(item, source, decisions)
        payload: dict[str, Any] = {"type": "url", "media": link}
        if words:
            payload["text"] = words
        return self._checked(RenderedItem(item, (RenderedMessage(payload),), ()), source)

    # -- choosing and loading media ---------------------------------------

    def _candidates(self, item: Item, source: SourceConfig) -> list[MediaCandidate]:
        chosen: list[MediaCandidate] = []
        seen: set[str] = set()
        for candidate in item.media:
            kind = _candidate_kind(candidate)
            if kind == "image" and not source.images:
                continue
            if candidate.path is None and kind in ("video", "file"):
                if candidate.origin not in ("enclosure", "media:content"):
                    continue
                if kind == "file":
                    # Feed enclosures that are neither image nor video (podcasts,
                    # PDFs): the text post with the link serves readers better.
                    continue
            if candidate.location in seen:
                continue
            seen.add(candidate.location)
            chosen.append(candidate)
        # Pictures first (in the item's order), then video, then files.
        order = {"image": 0, "video": 1, "file": 2}
        chosen.sort(key=lambda c: order[_candidate_kind(c)])
        return chosen[: _MAX_CANDIDATES + max(1, source.pictures) - 1]

    def _cannot_host(self, candidate: MediaCandidate, kind: str) -> str | None:
        """Why ``candidate`` is useless without downloading it, or None."""
        limit = self.config.fetch.max_bytes
        if candidate.url is not None and candidate.length is not None and candidate.length > limit:
            return (
                f"the source says it is {candidate.length} bytes, over [fetch] max_bytes ({limit})"
            )
        if self.public_url is not None:
            return None
        if kind == "image" and candidate.url is not None and _compliant_picture_url(candidate.url):
            return None  # may be posted from its source URL: fetched to check
        what = "converted picture" if kind == "image" else kind
        return f"no [server] public_url to host the {what}"

    def _load(self, candidate: MediaCandidate) -> _Media:
        limit = self.config.fetch.max_bytes
        if candidate.path is not None:
            return self._load_path(candidate.path, candidate.mime, limit)
        assert candidate.url is not None
        data, mime = self.fetch_media(candidate.url)
        mime = mime or sniff(data)
        name = Path(urlsplit(candidate.url).path).name or "media"
        if _sniffed_kind(mime) not in ("image", "video"):
            mime = picture_type(data) or mime
        if mime and mime.startswith("video/"):
            kind = "video"
        elif mime and mime.startswith("image/") and mime != "image/svg+xml":
            kind = "image"
        else:
            kind = _guess_kind(name, candidate.mime)
        return _Media(kind, data, None, name, len(data), mime)

    @staticmethod
    def _load_path(path: Path, claimed: str | None, limit: int) -> _Media:
        try:
            size = path.stat().st_size
            with path.open("rb") as fh:
                head = fh.read(_SNIFF_BYTES)
        except OSError as exc:
            raise MediaError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
        mime = sniff(head)
        if _sniffed_kind(mime) not in ("image", "video"):
            mime = picture_type(head) or mime
        kind = _sniffed_kind(mime) or _guess_kind(path.name, claimed)
        if kind != "image":
            return _Media(kind, None, path, path.name, size, mime)
        if size > limit:
            raise MediaError(
                f"{path.name} is {size} bytes, over [fetch] max_bytes ({limit}); "
                "make it smaller or raise max_bytes"
            )
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise MediaError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
        return _Media("image", data, path, path.name, len(data), mime)

    # -- message kinds -----------------------------------------------------

    def _caption(self, item: Item, source: SourceConfig) -> CaptionResult:
        return render_caption(
            item,
            source.template,
            overflow=source.caption_overflow,
            caption_limit=_capped(CAPTION_MAX, source),
            text_limit=_capped(TEXT_MAX, source),
            style=text_style(source),
        )

    def _picture(
        self, media: _Media, candidate: MediaCandidate, decisions: list[Decision]
    ) -> RenderedMessage:
        """One picture post without its caption (see :meth:`_pictures_post`)."""
        if self.public_url is None:
            return self._picture_unhosted(media, candidate, decisions)
        data = media.data if media.data is not None else b""
        encoded = self._encoded_picture(data)
        decisions.extend(encoded.decisions)
        payload: dict[str, Any] = {
            "type": "picture",
            "text": "",
            "media": self.store.url(self.public_url, encoded.infos[0].name),
            "thumbnail": self.store.url(self.public_url, encoded.infos[1].name),
        }
        return RenderedMessage(payload, encoded.infos)

    def _encoded_picture(self, data: bytes) -> _Encoded:
        """The picture and thumbnail of ``data``, stored: encoded once, however
        many channels render the item (a route with its own template renders
        it again; the same bytes are not transformed twice)."""
        media = self.config.media
        key = (hashlib.sha256(data).digest(), media.max_side, media.max_pixels, media.thumbnail)
        with self._encoded_lock:
            cached = self._encoded.get(key)
        if cached is not None and all(self.store.exists(i.name) for i in cached.infos):
            return cached  # (a file pruned meanwhile is made again)
        picture = prepare_picture(
            data,
            max_side=media.max_side,
            max_pixels=media.max_pixels,
            max_bytes=PICTURE_MAX_BYTES,
        )
        thumb = make_thumbnail(picture, mode=media.thumbnail)
        picture_name = self.store.put(picture.data, ".jpg")
        thumb_name = self.store.put(thumb.data, ".jpg")
        notes = [
            Decision(
                "image",
                f"{picture.source_format} {picture.source_width}x{picture.source_height} "
                f"{picture.source_size} B → JPEG {picture.width}x{picture.height} "
                f"{len(picture.data)} B q{picture.quality}",
            ),
            *(Decision("image", note) for note in picture.decisions),
        ]
        encoded = _Encoded(
            (picture.media_info(picture_name), thumb.media_info(thumb_name)), tuple(notes)
        )
        with self._encoded_lock:
            self._encoded[key] = encoded
            while len(self._encoded) > ENCODED_CACHE:
                self._encoded.pop(next(iter(self._encoded)))
        return encoded

    def _picture_unhosted(
        self, media: _Media, candidate: MediaCandidate, decisions: list[Decision]
    ) -> RenderedMessage:
        url = candidate.url or ""
        if media.mime != PICTURE_CONTENT_TYPE or media.size > PICTURE_MAX_BYTES:
            what = media.mime or "unknown data"
            raise MediaError(
                f"no [server] public_url to host a converted picture, and the source is "
                f"{what} of {media.size} bytes, not a JPEG under {PICTURE_MAX_BYTES} bytes"
            )
        decisions.append(Decision("image", "posted from its source URL (no public_url)"))
        return RenderedMessage({"type": "picture", "text": "", "media": url})

    def _pictures_post(
        self,
        item: Item,
        source: SourceConfig,
        pictures: list[RenderedMessage],
        decisions: list[Decision],
    ) -> RenderedItem:
        """The picture posts of one item: the caption on the first, its
        follow-up text (``caption_overflow = "split"``) after the last."""
        caption = self._caption(item, source)
        decisions.extend(caption.decisions)
        first = pictures[0]
        messages = [RenderedMessage({**first.payload, "text": caption.caption}, first.media)]
        messages.extend(pictures[1:])
        if source.pictures > 1:
            decisions.append(
                Decision(
                    "pictures",
                    f"{len(pictures)} picture post(s) of at most {source.pictures}, in the "
                    "item's order, posted back to back; the first carries the caption",
                )
            )
        messages.extend(RenderedMessage({"type": "text", "text": t}) for t in caption.follow_up)
        return RenderedItem(item, tuple(messages), tuple(decisions))

    def _video(
        self, item: Item, source: SourceConfig, media: _Media, decisions: list[Decision]
    ) -> RenderedItem:
        assert self.public_url is not None  # _cannot_host said so
        if media.path is not None:
            info = inspect_video(media.path)
        else:
            assert media.data is not None
            info = inspect_video(media.data)
        check_video(info)
        if info.size > VIDEO_MAX_BYTES:
            raise MediaError(f"video is {info.size} bytes, over {VIDEO_MAX_BYTES:,}")
        # Viber wants whole seconds; rounding down would understate the length.
        seconds = math.ceil(info.duration) if info.duration else None
        if seconds is not None and seconds > VIDEO_MAX_SECONDS:
            raise MediaError(
                f"video lasts {info.duration:.2f} s, {seconds} s in whole seconds, over "
                f"Viber's limit of {VIDEO_MAX_SECONDS} s: cut it shorter"
            )
        if media.path is not None:
            try:
                name = self.store.put_file(media.path, ".mp4")
            except OSError as exc:
                raise MediaError(f"cannot store {media.name}: {exc.strerror or exc}") from exc
        else:
            assert media.data is not None
            name = self.store.put(media.data, ".mp4")
        size = _stored_size(media)
        payload: dict[str, Any] = {
            "type": "video",
            "media": self.store.url(self.public_url, name),
            "size": size,
        }
        if seconds is not None:
            payload["duration"] = max(1, seconds)
        infos = [
            MediaInfo(
                kind="video",
                name=name,
                size=size,
                mime="video/mp4",
                width=info.width,
                height=info.height,
                duration=info.duration,
            )
        ]
        thumb_bytes = _video_thumbnail(media, self.config.media.thumbnail)
        if thumb_bytes:
            thumb_name = self.store.put(thumb_bytes, ".jpg")
            payload["thumbnail"] = self.store.url(self.public_url, thumb_name)
            infos.append(
                MediaInfo(kind="image", name=thumb_name, size=len(thumb_bytes), mime="image/jpeg")
            )
        else:
            decisions.append(Decision("video", "no thumbnail: no video decoder installed"))
        decisions.append(Decision("video", f"MP4 {info.codec} {info.duration or 0:.1f} s {size} B"))
        return self._with_text(item, source, RenderedMessage(payload, tuple(infos)), decisions)

    def _file(
        self, item: Item, source: SourceConfig, media: _Media, decisions: list[Decision]
    ) -> RenderedItem:
        assert self.public_url is not None  # _cannot_host said so
        file_name = check_file(media.name, media.size)
        ext = Path(file_name).suffix
        try:
            if media.path is not None:
                name = self.store.put_file(media.path, ext)
            else:
                name = self.store.put(media.data or b"", ext)
        except ValueError as exc:  # an extension the store cannot name
            raise MediaError(f"file {file_name!r}: {exc}") from exc
        except OSError as exc:
            raise MediaError(f"cannot store {media.name}: {exc.strerror or exc}") from exc
        size = _stored_size(media)
        payload = {
            "type": "file",
            "media": self.store.url(self.public_url, name),
            "size": size,
            "file_name": file_name,
        }
        info = MediaInfo(
            kind="file", name=name, size=size, mime=media.mime or "application/octet-stream"
        )
        decisions.append(Decision("file", f"{file_name} {size} B"))
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
            rendered = _text_posts(item, source)
            decisions.extend(rendered.decisions)
            texts = [t for t in rendered.texts if t.strip()]
            if texts and not (len(texts) == 1 and _only_link(texts[0], item, source)):
                messages.extend(RenderedMessage({"type": "text", "text": t}) for t in texts)
        return RenderedItem(item, tuple(messages), tuple(decisions))

    def _url_post(
        self, item: Item, source: SourceConfig, decisions: list[Decision]
    ) -> RenderedItem:
        """The one post of an item whose video is unusable: a url post to its
        link when its words fit one, else its text post with the link (never
        both: they would repeat the title and the link)."""
        link = (item.link or "").strip()
        if _url_problem(link) is not None:
            return self._text_only(item, source, decisions)
        words = "\n\n".join(p for p in (item_title(item), item_body(item)) if p)
        if utf16_len(words) > URL_TEXT_MAX:
            decisions.append(
                Decision(
                    "fallback",
                    "video unusable: posted the text with the link (its words are over the "
                    f"{URL_TEXT_MAX}-character limit of a url post)",
                )
            )
            return self._text_only(item, source, decisions)
        payload: dict[str, Any] = {"type": "url", "media": link}
        if words:
            payload["text"] = words
        decisions.append(Decision("fallback", "video unusable: posted a link to the item instead"))
        return RenderedItem(item, (RenderedMessage(payload),), tuple(decisions))

    def _text_only(
        self, item: Item, source: SourceConfig, decisions: list[Decision]
    ) -> RenderedItem:
        rendered = _text_posts(item, source)
        decisions.extend(rendered.decisions)
        if not any(text.strip() for text in rendered.texts):
            fallbacks = [d.detail for d in decisions if d.code == "fallback"]
            reason = "nothing to post: no text, no link and no usable media"
            if fallbacks:
                reason += " (" + "; ".join(fallbacks) + ")"
            decisions.append(Decision("refused", reason))
            return RenderedItem(item, (), tuple(decisions), refused=reason)
        messages = tuple(RenderedMessage({"type": "text", "text": t}) for t in rendered.texts)
        return RenderedItem(item, messages, tuple(decisions))

    def _checked(self, rendered: RenderedItem, source: SourceConfig) -> RenderedItem:
        """``rendered`` if every payload passes Viber's limits, else the text post."""
        for message in rendered.messages:
            try:
                validate_payload(message.payload)
            except MessageError as exc:
                log.error(
                    "%s/%s: a %s payload breaks a limit (%s); posting the text instead",
                    rendered.item.source,
                    rendered.item.key,
                    message.type,
                    exc,
                )
                decisions = [
                    d
                    for d in rendered.decisions
                    if d.code not in ("image", "video", "file", "split", "pictures")
                ]
                decisions.append(Decision("fallback", f"{message.type} post: {exc}"))
                return self._text_only(rendered.item, source, decisions)
        return rendered


def _stored_size(media: _Media) -> int:
    """The size of what was stored: the file's now (the store checked that its
    content is the name's), or the bytes'."""
    if media.path is not None:
        return media.path.stat().st_size
    return len(media.data or b"")


def _video_thumbnail(media: _Media, mode: Literal["crop", "fit"]) -> bytes | None:
    """A thumbnail from the video's file, or from its bytes through a
    temporary file (the decoder reads files): the media store may be remote."""
    if media.path is not None:
        return video_thumbnail(media.path, mode=mode)
    with tempfile.NamedTemporaryFile(suffix=".mp4") as tmp:
        tmp.write(media.data or b"")
        tmp.flush()
        return video_thumbnail(tmp.name, mode=mode)


def _only_link(text: str, item: Item, source: SourceConfig | None = None) -> bool:
    if not item.link:
        return False
    link = item.link.strip()
    return text.strip() in (link, clean_url(link, source is None or source.clean_links))


def text_style(source: SourceConfig) -> TextStyle:
    """How ``source`` wants its text written."""
    return TextStyle(
        links=source.links,
        clean_links=source.clean_links,
        format=source.format,
        max_hashtags=source.max_hashtags,
    )


def _capped(limit: int, source: SourceConfig) -> int:
    """Viber's ``limit``, or the source's ``max_length`` when that is lower."""
    return limit if source.max_length is None else min(limit, source.max_length)


def _text_posts(item: Item, source: SourceConfig) -> RenderedPosts:
    """The item's text post(s): an excerpt (``max_length``), or the text cut or
    split at Viber's limit (``text_overflow``)."""
    return render_posts(
        item,
        source.template,
        text_style(source),
        overflow=source.text_overflow,
        max_length=source.max_length,
        limit=TEXT_MAX,
    )


def _url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a url post's ``media``, or None."""
    if utf16_len(url) > URL_MAX:
        return f"longer than {URL_MAX} characters"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an http(s) URL"
    return None


def _compliant_picture_url(url: str) -> bool:
    """An https URL whose path ends .jpg/.jpeg (what Viber takes as it is)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme == "https" and parts.path.lower().endswith(PICTURE_URL_EXTENSIONS)


def _sniffed_kind(mime: str | None) -> str | None:
    """The kind sniffed bytes say, or None when they say nothing."""
    if mime is None:
        return None
    if mime.startswith("image/") and mime != "image/svg+xml":
        return "image"
    if mime in _VIDEO_MIMES:
        return "video"
    return "file"


def _candidate_kind(candidate: MediaCandidate) -> str:
    if candidate.kind != "unknown":
        return candidate.kind
    return _guess_kind(candidate.location, candidate.mime)


def _guess_kind(location: str, mime: str | None) -> str:
    if mime:
        if mime.startswith("image/") and mime != "image/svg+xml":
            return "image"
        if mime.startswith("video/"):
            return "video"
    suffix = Path(urlsplit(location).path if "://" in location else location).suffix.lower()
    if suffix in _IMAGE_EXT:
        return "image"
    if suffix in _VIDEO_EXT:
        return "video"
    return "file"


def fetch_media_with(fetcher: Fetcher) -> FetchMedia:
    """Adapt a :class:`publisher.adapters.fetch.Fetcher` to :data:`FetchMedia`: every
    media URL of a feed goes through ``Fetcher.fetch_media`` (timeouts, size
    cap, content sniffing, private addresses refused)."""

    def fetch(url: str) -> tuple[bytes, str | None]:
        try:
            response = fetcher.fetch_media(url)
        except SourceError as exc:
            raise MediaError(str(exc)) from exc
        return response.data, getattr(response, "sniffed_type", None)

    return fetch
