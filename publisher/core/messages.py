"""Viber's rules for a post, in one place: typed builders and payload checks.

Every builder is a frozen dataclass that checks its values against the
documented limits (:mod:`publisher.core.limits`) when it is created and raises
:class:`MessageError` (naming the field, the limit and the value's size)
before any request is made. ``to_payload()`` gives the JSON body without
``auth_token`` and ``from``; the client adds those when it sends.

The rules, in the order :func:`validate_payload` applies them:

1. the payload is a JSON object with a known ``type``, no unknown field and
   every required field (envelope keys ``auth_token``, ``from`` and
   ``min_api_version`` are let through);
2. each field against its limit: lengths in UTF-16 code units
   (:func:`utf16_len`), never fewer than the code points; URLs are http(s)
   and within their length; a picture URL's path ends ``.jpg``/``.jpeg``, a
   video URL's ``.mp4``; sizes and durations are integers within the limits;
   a file name is bare, carries an extension (:func:`file_extension`) that is
   not on Viber's forbidden list;
3. the request as a whole within 30 KB of JSON (:func:`check_request_size`).

What needs the media's bytes (a JPEG really, of at most 1 MB; an MP4 with
H.264) is not checked here: :mod:`publisher.core.media` makes media fit, and
the stand-in's media fetcher checks what it downloads against the same limits.

The stand-in (``publisher.adapters.standin``) refuses a post exactly when
:func:`validate_payload` does, with the same message; the client checks the
same way before it sends. :func:`message_from_payload` turns a payload back
into a builder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from publisher.core.errors import MessageError, MissingField
from publisher.core.limits import (
    CAPTION_MAX,
    CONTACT_NAME_MAX,
    ENVELOPE_RESERVE,
    FILE_MAX_BYTES,
    FILE_NAME_MAX,
    FORBIDDEN_EXTENSIONS,
    LAT_MAX,
    LON_MAX,
    MEDIA_URL_MAX,
    PHONE_MAX,
    PICTURE_URL_EXTENSIONS,
    REQUEST_MAX_BYTES,
    STICKER_ID_MAX,
    TEXT_MAX,
    URL_MAX,
    URL_TEXT_MAX,
    VIDEO_MAX_BYTES,
    VIDEO_MAX_SECONDS,
    VIDEO_URL_EXTENSIONS,
)

MESSAGE_TYPES = ("text", "picture", "video", "file", "url", "contact", "location", "sticker")
#: Keys the client adds to every payload; allowed by :func:`validate_payload`.
ENVELOPE_KEYS = frozenset({"auth_token", "from", "min_api_version"})


def utf16_len(text: str) -> int:
    """The length of ``text`` in UTF-16 code units (an emoji may count 2; a lone
    surrogate counts 1). The one implementation: ``publisher.core.render`` re-exports it."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def payload_json(payload: Mapping[str, Any]) -> bytes:
    """``payload`` as the client sends it: compact JSON, UTF-8, non-ASCII kept."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def payload_size(payload: Mapping[str, Any]) -> int:
    """Bytes ``payload`` takes on the wire (see :func:`payload_json`)."""
    return len(payload_json(payload))


# --------------------------------------------------------------------------
# checks shared by builders and validate_payload


def _units(n: int) -> str:
    return f"{n} UTF-16 unit{'s' if n != 1 else ''}"


def _check_text(field: str, value: object, limit: int, *, required: bool, hint: str = "") -> None:
    if not isinstance(value, str):
        raise MessageError(f"{field}: must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise MessageError(f"{field}: is empty; Viber requires some text")
    size = utf16_len(value)
    if size > limit:
        tail = f"; {hint}" if hint else ""
        raise MessageError(f"{field}: {_units(size)}, more than the limit of {limit}{tail}")


def _check_url(
    field: str, value: object, *, extensions: tuple[str, ...] = (), limit: int = MEDIA_URL_MAX
) -> None:
    if not isinstance(value, str):
        raise MessageError(f"{field}: must be a URL string, got {type(value).__name__}")
    size = utf16_len(value)
    if size > limit:
        raise MessageError(f"{field}: URL of {_units(size)}, more than the limit of {limit}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MessageError(f"{field}: {value[:100]!r} is not an http(s) URL")
    if extensions and not parts.path.lower().endswith(extensions):
        wanted = " or ".join(extensions)
        raise MessageError(
            f"{field}: the URL path {parts.path[-60:]!r} does not end in {wanted}; "
            f"Viber wants the media URL to end in {wanted}"
        )


def _check_int(field: str, value: object, *, minimum: int, maximum: int, unit: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MessageError(f"{field}: must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise MessageError(f"{field}: {value} {unit}, less than the minimum of {minimum}")
    if value > maximum:
        raise MessageError(f"{field}: {value} {unit}, more than the limit of {maximum} {unit}")


def _check_coordinate(field: str, value: object, limit: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MessageError(f"{field}: must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or not -limit <= value <= limit:
        raise MessageError(f"{field}: {value} is outside -{limit}..{limit}")


def file_extension(file_name: str) -> str:
    """The extension Viber reads in ``file_name``, lower case with its dot
    (``"Report.PDF"`` → ``".pdf"``, ``"x. exe"`` → ``".exe"``), or "" when it
    has none (``"report"``, ``".profile"``, ``"report."``)."""
    stem, dot, ext = file_name.rpartition(".")
    ext = ext.strip()
    if not dot or not stem.strip() or not ext:
        return ""
    return "." + ext.lower()


def _check_file_name(field: str, value: object) -> None:
    _check_text(field, value, FILE_NAME_MAX, required=True)
    assert isinstance(value, str)
    if "/" in value or "\\" in value:
        raise MessageError(f"{field}: {value!r} must be a bare file name, without folders")
    ext = file_extension(value)
    if not ext:
        raise MessageError(f"{field}: {value!r} has no extension; Viber wants e.g. report.pdf")
    if ext in FORBIDDEN_EXTENSIONS:
        raise MessageError(f"{field}: the extension {ext} is forbidden by Viber; zip the file")


# --------------------------------------------------------------------------
# the builders


@dataclass(frozen=True)
class Message:
    """Base of every builder; ``type`` is the payload's ``type``."""

    type: ClassVar[str] = ""

    def to_payload(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class TextMessage(Message):
    text: str
    type: ClassVar[str] = "text"

    def __post_init__(self) -> None:
        _check_text(
            "text.text", self.text, TEXT_MAX, required=True, hint="split it into several posts"
        )

    def to_payload(self) -> dict[str, Any]:
        return {"type": "text", "text": self.text}


@dataclass(frozen=True)
class PictureMessage(Message):
    """``media`` a JPEG (≤ 1 MB, path ``.jpg``/``.jpeg``); ``text`` the caption."""

    media: str
    text: str = ""
    thumbnail: str | None = None
    type: ClassVar[str] = "picture"

    def __post_init__(self) -> None:
        _check_text(
            "picture.text",
            self.text,
            CAPTION_MAX,
            required=False,
            hint="send the rest of the caption as a text post",
        )
        _check_url("picture.media", self.media, extensions=PICTURE_URL_EXTENSIONS)
        if self.thumbnail is not None:
            _check_url("picture.thumbnail", self.thumbnail)

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"type": "picture", "text": self.text, "media": self.media}
        if self.thumbnail is not None:
            payload["thumbnail"] = self.thumbnail
        return payload


@dataclass(frozen=True)
class VideoMessage(Message):
    """An MP4 at ``media`` (path ``.mp4``) of ``size`` bytes; ``duration`` in whole
    seconds (round up with ``math.ceil``)."""

    media: str
    size: int
    duration: int | None = None
    thumbnail: str | None = None
    type: ClassVar[str] = "video"

    def __post_init__(self) -> None:
        _check_url("video.media", self.media, extensions=VIDEO_URL_EXTENSIONS)
        _check_int("video.size", self.size, minimum=1, maximum=VIDEO_MAX_BYTES, unit="bytes")
        if self.duration is not None:
            _check_int(
                "video.duration",
                self.duration,
                minimum=0,
                maximum=VIDEO_MAX_SECONDS,
                unit="seconds",
            )
        if self.thumbnail is not None:
            _check_url("video.thumbnail", self.thumbnail)

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"type": "video", "media": self.media, "size": self.size}
        if self.duration is not None:
            payload["duration"] = self.duration
        if self.thumbnail is not None:
            payload["thumbnail"] = self.thumbnail
        return payload


@dataclass(frozen=True)
class FileMessage(Message):
    media: str
    size: int
    file_name: str
    type: ClassVar[str] = "file"

    def __post_init__(self) -> None:
        _check_url("file.media", self.media)
        _check_int("file.size", self.size, minimum=1, maximum=FILE_MAX_BYTES, unit="bytes")
        _check_file_name("file.file_name", self.file_name)

    def to_payload(self) -> dict[str, Any]:
        return {
            "type": "file",
            "media": self.media,
            "size": self.size,
            "file_name": self.file_name,
        }


@dataclass(frozen=True)
class UrlMessage(Message):
    media: str
    text: str | None = None
    type: ClassVar[str] = "url"

    def __post_init__(self) -> None:
        _check_url("url.media", self.media, limit=URL_MAX)
        if self.text is not None:
            _check_text("url.text", self.text, URL_TEXT_MAX, required=False)

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"type": "url", "media": self.media}
        if self.text is not None:
            payload["text"] = self.text
        return payload


@dataclass(frozen=True)
class ContactMessage(Message):
    name: str
    phone_number: str
    type: ClassVar[str] = "contact"

    def __post_init__(self) -> None:
        _check_text("contact.name", self.name, CONTACT_NAME_MAX, required=True)
        _check_text("contact.phone_number", self.phone_number, PHONE_MAX, required=True)

    def to_payload(self) -> dict[str, Any]:
        return {
            "type": "contact",
            "contact": {"name": self.name, "phone_number": self.phone_number},
        }


@dataclass(frozen=True)
class LocationMessage(Message):
    lat: float
    lon: float
    type: ClassVar[str] = "location"

    def __post_init__(self) -> None:
        _check_coordinate("location.lat", self.lat, LAT_MAX)
        _check_coordinate("location.lon", self.lon, LON_MAX)

    def to_payload(self) -> dict[str, Any]:
        return {"type": "location", "location": {"lat": self.lat, "lon": self.lon}}


@dataclass(frozen=True)
class StickerMessage(Message):
    sticker_id: int
    type: ClassVar[str] = "sticker"

    def __post_init__(self) -> None:
        _check_int(
            "sticker.sticker_id", self.sticker_id, minimum=1, maximum=STICKER_ID_MAX, unit="(id)"
        )

    def to_payload(self) -> dict[str, Any]:
        return {"type": "sticker", "sticker_id": self.sticker_id}


AnyMessage = (
    TextMessage
    | PictureMessage
    | VideoMessage
    | FileMessage
    | UrlMessage
    | ContactMessage
    | LocationMessage
    | StickerMessage
)

_BUILDERS: dict[str, type[Message]] = {
    "text": TextMessage,
    "picture": PictureMessage,
    "video": VideoMessage,
    "file": FileMessage,
    "url": UrlMessage,
    "contact": ContactMessage,
    "location": LocationMessage,
    "sticker": StickerMessage,
}

# Fields each type takes: name → required.
_FIELDS: dict[str, dict[str, bool]] = {
    "text": {"text": True},
    "picture": {"text": True, "media": True, "thumbnail": False},
    "video": {"media": True, "size": True, "duration": False, "thumbnail": False},
    "file": {"media": True, "size": True, "file_name": True},
    "url": {"media": True, "text": False},
    "contact": {"contact": True},
    "location": {"location": True},
    "sticker": {"sticker_id": True},
}
_NESTED: dict[str, tuple[str, ...]] = {
    "contact": ("name", "phone_number"),
    "location": ("lat", "lon"),
}


def message_from_payload(payload: Mapping[str, Any]) -> Message:
    """Build the message a payload describes; MessageError if it breaks a limit.

    Envelope keys (``auth_token``, ``from``, ``min_api_version``) are ignored;
    any other unknown key is refused.
    """
    if not isinstance(payload, Mapping):
        raise MessageError(f"payload: must be a JSON object, got {type(payload).__name__}")
    kind = payload.get("type")
    if kind is None:
        raise MissingField(f"type: missing; use one of {', '.join(MESSAGE_TYPES)}")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise MessageError(f"type: {kind!r} is not one of {', '.join(MESSAGE_TYPES)}")
    fields = _FIELDS[kind]
    for key in payload:
        if key != "type" and key not in fields and key not in ENVELOPE_KEYS:
            raise MessageError(
                f"{kind}.{key}: unknown field; a {kind} message takes {', '.join(fields)}"
            )
    for key, required in fields.items():
        if required and key not in payload:
            raise MissingField(f"{kind}.{key}: missing; a {kind} message requires it")
    args: dict[str, Any] = {k: payload[k] for k in fields if k in payload}
    if kind in _NESTED:
        inner = args.pop(kind)
        if not isinstance(inner, Mapping):
            raise MessageError(f"{kind}.{kind}: must be an object with {', '.join(_NESTED[kind])}")
        for key in inner:
            if key not in _NESTED[kind]:
                raise MessageError(f"{kind}.{kind}.{key}: unknown field")
        for key in _NESTED[kind]:
            if key not in inner:
                raise MissingField(f"{kind}.{kind}.{key}: missing; a {kind} message requires it")
            args[key] = inner[key]
    if kind == "url" and args.get("text") is None:
        args.pop("text", None)
    return _BUILDERS[kind](**args)


def check_request_size(size: int, *, note: str = "") -> None:
    """MessageError when a request of ``size`` bytes of JSON is over Viber's 30 KB.

    ``note`` says how the size was counted (shown in the message)."""
    if size > REQUEST_MAX_BYTES:
        raise MessageError(
            f"request: {size} bytes of JSON{note}, more than the limit of "
            f"{REQUEST_MAX_BYTES} (30 KB); shorten the text"
        )


def validate_payload(payload: Mapping[str, Any], *, wire_size: int | None = None) -> None:
    """Check a raw payload against every documented limit; MessageError if not.

    The message first (:func:`message_from_payload`), then the 30 KB request
    cap. ``wire_size`` is the size of the request as it was received (the
    stand-in passes its body's length); without it the payload is measured as
    the client sends it (:func:`payload_json`), and a payload without
    ``auth_token`` (as the outbox stores it) must leave
    :data:`~publisher.core.limits.ENVELOPE_RESERVE` bytes for the
    ``auth_token`` and ``from`` the client adds.
    """
    message_from_payload(payload)
    if wire_size is not None:
        check_request_size(wire_size)
    elif "auth_token" in payload:
        check_request_size(payload_size(payload))
    else:
        check_request_size(
            payload_size(payload) + ENVELOPE_RESERVE,
            note=f" (with {ENVELOPE_RESERVE} kept for auth_token and from)",
        )
