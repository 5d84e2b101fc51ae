"""How the stand-in fetches media, as Viber does before it accepts a post.

Viber downloads the picture, thumbnail or video itself, so a post is only as
good as the URL it names: reachable, answering HEAD and GET with HTTP 200,
the right ``Content-Type`` and a ``Content-Length`` that is true, and bytes
that really are what they claim. Every failure raises :class:`MediaRefused`
with a precise message (the stand-in answers it as ``status 3``).

These are the rules only I/O can check; the limits are the core's
(:mod:`publisher.core.limits`), and a video is judged by the core's own
:func:`~publisher.core.media.video.inspect_video` and
:func:`~publisher.core.media.video.check_video`, the ones the publisher
applies before it posts. Everything a payload says on its own is checked by
:func:`publisher.core.messages.validate_payload` before any media is fetched.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from publisher import __version__
from publisher.core.config import is_private_address
from publisher.core.errors import MediaError
from publisher.core.limits import (
    FILE_MAX_BYTES,
    PICTURE_CONTENT_TYPE,
    PICTURE_MAX_BYTES,
    THUMBNAIL_MAX_BYTES,
    VIDEO_CONTENT_TYPE,
    VIDEO_MAX_BYTES,
)

# Pillow and the core's video check (which loads PyAV) are imported where a
# picture or a video is checked, not with the stand-in: ``run --once`` with
# the local channel starts it, and most runs post no media at all.


class MediaRefused(Exception):
    """The media behind a URL would not be accepted by Viber."""


@dataclass
class MediaFetcher:
    client: httpx.Client
    require_https: bool = False
    allow_private: bool = True

    @classmethod
    def create(
        cls, timeout: float = 10.0, *, require_https: bool = False, allow_private: bool = True
    ) -> MediaFetcher:
        client = httpx.Client(
            timeout=timeout,
            follow_redirects=True,
            max_redirects=5,
            headers={
                "User-Agent": f"viber-standin/{__version__}",
                "Accept-Encoding": "identity",
            },
        )
        return cls(client, require_https=require_https, allow_private=allow_private)

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------- checks

    def check_jpeg(self, field: str, url: str, limit: int = PICTURE_MAX_BYTES) -> bytes:
        """A JPEG of at most ``limit`` bytes (picture media, thumbnails)."""
        from PIL import Image, UnidentifiedImageError

        body = self.fetch(field, url, limit, (PICTURE_CONTENT_TYPE,))
        try:
            with Image.open(io.BytesIO(body)) as image:
                kind = image.format
                image.load()
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise MediaRefused(f"{field}: {url} is not a readable image ({exc})") from exc
        if kind != "JPEG":
            raise MediaRefused(f"{field}: {url} is a {kind} image, not a JPEG")
        return body

    def check_thumbnail(self, field: str, url: str) -> bytes:
        return self.check_jpeg(field, url, THUMBNAIL_MAX_BYTES)

    def check_video(self, field: str, url: str, size: int) -> bytes:
        """An MP4 with H.264 of exactly ``size`` bytes, within Viber's limits
        (the core's :func:`~publisher.core.media.video.check_video`)."""
        from publisher.core.media.video import check_video, inspect_video

        body = self.fetch(field, url, VIDEO_MAX_BYTES, (VIDEO_CONTENT_TYPE,), expected_size=size)
        try:
            check_video(inspect_video(body))
        except MediaError as exc:
            raise MediaRefused(f"{field}: {url}: {exc}") from exc
        return body

    def check_file(self, field: str, url: str, size: int) -> bytes:
        """Any file of exactly ``size`` bytes, within Viber's limit."""
        return self.fetch(field, url, FILE_MAX_BYTES, (), expected_size=size)

    # ------------------------------------------------------------- fetching

    def fetch(
        self,
        field: str,
        url: str,
        limit: int,
        types: Iterable[str],
        *,
        expected_size: int | None = None,
    ) -> bytes:
        """HEAD then GET ``url``; the body, or MediaRefused saying what is wrong."""
        types = tuple(types)
        parts = urlsplit(url)
        if self.require_https and parts.scheme != "https":
            raise MediaRefused(f"{field}: {url} is not HTTPS; Viber fetches media over HTTPS only")
        host = parts.hostname or ""
        if not self.allow_private and (host == "localhost" or is_private_address(host)):
            raise MediaRefused(
                f"{field}: {url} is a private address; Viber cannot reach it from the internet"
            )
        head = self._request(field, "HEAD", url)
        head_length = self._headers_ok(field, "HEAD", url, head, types, limit)
        if expected_size is not None and head_length != expected_size:
            raise MediaRefused(
                f"{field}: {url} is {head_length} bytes (HEAD Content-Length), but the post "
                f"says size {expected_size}"
            )
        try:
            with self.client.stream("GET", url) as response:
                length = self._headers_ok(field, "GET", url, response, types, limit)
                body = bytearray()
                for chunk in response.iter_raw():
                    body.extend(chunk)
                    if len(body) > limit:
                        raise MediaRefused(
                            f"{field}: {url} sends more than {limit} bytes, over Viber's limit"
                        )
        except httpx.HTTPError as exc:
            raise MediaRefused(f"{field}: GET {url} failed ({type(exc).__name__}: {exc})") from exc
        if len(body) != length:
            raise MediaRefused(
                f"{field}: GET {url} says Content-Length {length} but sent {len(body)} bytes"
            )
        if head_length != length:
            raise MediaRefused(
                f"{field}: {url} has Content-Length {head_length} for HEAD but {length} for GET"
            )
        return bytes(body)

    def _request(self, field: str, method: str, url: str) -> httpx.Response:
        try:
            return self.client.request(method, url)
        except httpx.HTTPError as exc:
            raise MediaRefused(
                f"{field}: {method} {url} failed ({type(exc).__name__}: {exc}); Viber must be "
                "able to fetch it"
            ) from exc

    @staticmethod
    def _headers_ok(
        field: str,
        method: str,
        url: str,
        response: httpx.Response,
        types: tuple[str, ...],
        limit: int,
    ) -> int:
        if response.status_code != 200:
            raise MediaRefused(
                f"{field}: {method} {url} answered HTTP {response.status_code}; Viber needs 200"
            )
        if types:
            ctype = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype not in types:
                raise MediaRefused(
                    f"{field}: {method} {url} answered Content-Type {ctype or '(none)'!r}; "
                    f"Viber needs {' or '.join(types)}"
                )
        if response.headers.get("Content-Encoding", "identity").lower() != "identity":
            raise MediaRefused(
                f"{field}: {method} {url} is sent with Content-Encoding "
                f"{response.headers['Content-Encoding']}; serve the file as it is"
            )
        raw_length = response.headers.get("Content-Length")
        if raw_length is None or not raw_length.strip().isdigit():
            raise MediaRefused(
                f"{field}: {method} {url} sent no valid Content-Length; Viber needs one"
            )
        length = int(raw_length)
        if length > limit:
            raise MediaRefused(
                f"{field}: {url} is {length} bytes, more than Viber's limit of {limit}"
            )
        return length
