"""Message builders and validate_payload: every documented limit, both sides."""

from __future__ import annotations

import re
from typing import Any

import pytest

from publisher.core import limits as L
from publisher.core import messages as m
from publisher.core.errors import MessageError
from publisher.core.messages import (
    ContactMessage,
    FileMessage,
    LocationMessage,
    Message,
    PictureMessage,
    StickerMessage,
    TextMessage,
    UrlMessage,
    VideoMessage,
    message_from_payload,
    utf16_len,
    validate_payload,
)

JPG = "https://media.example.org/a/picture.jpg"
MP4 = "https://media.example.org/a/clip.mp4"
PDF = "https://media.example.org/a/report.pdf"


def url_of_length(n: int, suffix: str = ".jpg") -> str:
    base = "https://e.org/"
    return base + "a" * (n - len(base) - len(suffix)) + suffix


def test_utf16_len_counts_astral_characters_twice() -> None:
    assert utf16_len("") == 0
    assert utf16_len("abc") == 3
    assert utf16_len("ж") == 1
    assert utf16_len("😀") == 2
    assert utf16_len("a😀b") == 4


def test_constants_match_the_api_sheet() -> None:
    assert (L.TEXT_MAX, L.CAPTION_MAX, L.URL_MAX, L.URL_TEXT_MAX) == (7000, 768, 2000, 120)
    assert (L.PICTURE_MAX_BYTES, L.THUMBNAIL_MAX_BYTES, L.THUMBNAIL_SIZE) == (
        1_000_000,
        100_000,
        400,
    )
    assert (L.VIDEO_MAX_BYTES, L.FILE_MAX_BYTES, L.VIDEO_MAX_SECONDS) == (
        50_000_000,
        50_000_000,
        180,
    )
    assert (L.FILE_NAME_MAX, L.CONTACT_NAME_MAX, L.PHONE_MAX) == (256, 28, 18)
    assert (L.LAT_MAX, L.LON_MAX) == (90, 180)
    assert L.REQUEST_MAX_BYTES == 30_000
    assert (L.PICTURE_CONTENT_TYPE, L.VIDEO_CONTENT_TYPE) == ("image/jpeg", "video/mp4")
    assert (L.PICTURE_URL_EXTENSIONS, L.VIDEO_URL_EXTENSIONS) == ((".jpg", ".jpeg"), (".mp4",))
    assert len(L.FORBIDDEN_EXTENSIONS) == 44
    assert {".exe", ".apk", ".vbscript", ".inf1"} <= L.FORBIDDEN_EXTENSIONS


# (id, builder, arguments at the limit, arguments one past it, field named in the error)
BOUNDARIES: list[tuple[str, type[Message], dict[str, Any], dict[str, Any], str]] = [
    ("text", TextMessage, {"text": "a" * 7000}, {"text": "a" * 7001}, "text.text"),
    ("text-astral", TextMessage, {"text": "😀" * 3500}, {"text": "😀" * 3500 + "a"}, "text.text"),
    (
        "caption",
        PictureMessage,
        {"media": JPG, "text": "c" * 768},
        {"media": JPG, "text": "c" * 769},
        "picture.text",
    ),
    (
        "picture-url",
        PictureMessage,
        {"media": url_of_length(2000)},
        {"media": url_of_length(2001)},
        "picture.media",
    ),
    (
        "video-size",
        VideoMessage,
        {"media": MP4, "size": 50_000_000},
        {"media": MP4, "size": 50_000_001},
        "video.size",
    ),
    (
        "video-size-min",
        VideoMessage,
        {"media": MP4, "size": 1},
        {"media": MP4, "size": 0},
        "video.size",
    ),
    (
        "video-duration",
        VideoMessage,
        {"media": MP4, "size": 10, "duration": 180},
        {"media": MP4, "size": 10, "duration": 181},
        "video.duration",
    ),
    (
        "file-size",
        FileMessage,
        {"media": PDF, "size": 50_000_000, "file_name": "r.pdf"},
        {"media": PDF, "size": 50_000_001, "file_name": "r.pdf"},
        "file.size",
    ),
    (
        "file-name",
        FileMessage,
        {"media": PDF, "size": 1, "file_name": "n" * 252 + ".pdf"},
        {"media": PDF, "size": 1, "file_name": "n" * 253 + ".pdf"},
        "file.file_name",
    ),
    (
        "url",
        UrlMessage,
        {"media": url_of_length(2000, "")},
        {"media": url_of_length(2001, "")},
        "url.media",
    ),
    (
        "url-text",
        UrlMessage,
        {"media": JPG, "text": "t" * 120},
        {"media": JPG, "text": "t" * 121},
        "url.text",
    ),
    (
        "contact-name",
        ContactMessage,
        {"name": "n" * 28, "phone_number": "+1"},
        {"name": "n" * 29, "phone_number": "+1"},
        "contact.name",
    ),
    (
        "contact-phone",
        ContactMessage,
        {"name": "Ann", "phone_number": "1" * 18},
        {"name": "Ann", "phone_number": "1" * 19},
        "contact.phone_number",
    ),
    ("lat", LocationMessage, {"lat": 90, "lon": 0}, {"lat": 90.0001, "lon": 0}, "location.lat"),
    ("lat-neg", LocationMessage, {"lat": -90, "lon": 0}, {"lat": -90.01, "lon": 0}, "location.lat"),
    ("lon", LocationMessage, {"lat": 0, "lon": 180}, {"lat": 0, "lon": 180.5}, "location.lon"),
    ("lon-neg", LocationMessage, {"lat": 0, "lon": -180}, {"lat": 0, "lon": -181}, "location.lon"),
    ("sticker", StickerMessage, {"sticker_id": 1}, {"sticker_id": 0}, "sticker.sticker_id"),
]
IDS = [b[0] for b in BOUNDARIES]
CASES = [b[1:] for b in BOUNDARIES]


def unchecked_payload(cls: type[Message], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The payload a builder would give for ``kwargs``, skipping its checks."""
    message = object.__new__(cls)
    for name, spec in cls.__dataclass_fields__.items():
        value = kwargs.get(name, spec.default)
        object.__setattr__(message, name, value)
    return message.to_payload()


@pytest.mark.parametrize(("cls", "ok", "too_far", "field"), CASES, ids=IDS)
def test_builders_on_both_sides_of_each_limit(
    cls: type[Message], ok: dict[str, Any], too_far: dict[str, Any], field: str
) -> None:
    message = cls(**ok)
    assert message_from_payload(message.to_payload()) == message
    with pytest.raises(MessageError) as info:
        cls(**too_far)
    assert str(info.value).startswith(field + ":")


@pytest.mark.parametrize(("cls", "ok", "too_far", "field"), CASES, ids=IDS)
def test_validate_payload_on_both_sides_of_each_limit(
    cls: type[Message], ok: dict[str, Any], too_far: dict[str, Any], field: str
) -> None:
    validate_payload(unchecked_payload(cls, ok))
    with pytest.raises(MessageError) as info:
        validate_payload(unchecked_payload(cls, too_far))
    assert str(info.value).startswith(field + ":")


@pytest.mark.parametrize(
    ("factory", "words"),
    [
        (lambda: TextMessage(""), "empty"),
        (lambda: TextMessage("   "), "empty"),
        (lambda: PictureMessage("https://e.org/a.png"), "does not end in .jpg or .jpeg"),
        (lambda: PictureMessage("ftp://e.org/a.jpg"), "not an http(s) URL"),
        (lambda: PictureMessage(JPG, thumbnail="nope"), "not an http(s) URL"),
        (lambda: VideoMessage("https://e.org/a.mov", 10), "does not end in .mp4"),
        (lambda: VideoMessage(MP4, True), "integer"),  # type: ignore[arg-type]
        (lambda: VideoMessage(MP4, 10, duration=12.5), "integer"),  # type: ignore[arg-type]
        (lambda: FileMessage(PDF, 10, "report"), "no extension"),
        (lambda: FileMessage(PDF, 10, ".profile"), "no extension"),
        (lambda: FileMessage(PDF, 10, "setup.EXE"), "forbidden"),
        (lambda: FileMessage(PDF, 10, "x.vbscript"), "forbidden"),
        (lambda: FileMessage(PDF, 10, "a/b.pdf"), "bare file name"),
        (lambda: ContactMessage("", "+1"), "empty"),
        (lambda: LocationMessage(float("nan"), 0), "outside"),
        (lambda: LocationMessage("1", 0), "number"),  # type: ignore[arg-type]
        (lambda: StickerMessage("40133"), "integer"),  # type: ignore[arg-type]
    ],
)
def test_other_refusals(factory: Any, words: str) -> None:
    with pytest.raises(MessageError, match=re.escape(words)):
        factory()


def test_error_names_field_limit_and_size() -> None:
    with pytest.raises(MessageError) as info:
        PictureMessage(JPG, "😀" * 400)
    text = str(info.value)
    assert "picture.text" in text and "800" in text and "768" in text
    assert isinstance(info.value, ValueError)


def test_payloads_have_no_envelope() -> None:
    payloads = [
        TextMessage("hi").to_payload(),
        PictureMessage(JPG, "", thumbnail=JPG).to_payload(),
        VideoMessage(MP4, 10, 5, JPG).to_payload(),
        FileMessage(PDF, 10, "r.pdf").to_payload(),
        UrlMessage(PDF).to_payload(),
        ContactMessage("Ann", "+1").to_payload(),
        LocationMessage(1.5, 2.5).to_payload(),
        StickerMessage(40133).to_payload(),
    ]
    assert [p["type"] for p in payloads] == list(m.MESSAGE_TYPES)
    for payload in payloads:
        assert "auth_token" not in payload and "from" not in payload
        validate_payload(payload)
        assert message_from_payload(payload).to_payload() == payload
    assert payloads[1] == {"type": "picture", "text": "", "media": JPG, "thumbnail": JPG}
    assert payloads[5]["contact"] == {"name": "Ann", "phone_number": "+1"}
    assert payloads[6]["location"] == {"lat": 1.5, "lon": 2.5}


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({}, "type: missing"),
        ({"type": "poll"}, "not one of"),
        ({"type": "text"}, "text.text: missing"),
        ({"type": "picture", "media": JPG}, "picture.text: missing"),
        ({"type": "text", "text": "a", "keyboard": {}}, "unknown field"),
        ({"type": "contact", "contact": "Ann"}, "must be an object"),
        ({"type": "contact", "contact": {"name": "Ann"}}, "phone_number: missing"),
        ({"type": "location", "location": {"lat": 1, "lon": 2, "alt": 3}}, "unknown field"),
        ({"type": "text", "text": 5}, "must be a string"),
        ({"type": "video", "media": MP4, "size": "10"}, "integer"),
    ],
)
def test_validate_payload_shape(payload: dict[str, Any], words: str) -> None:
    with pytest.raises(MessageError, match=words):
        validate_payload(payload)


def test_envelope_keys_are_allowed() -> None:
    validate_payload({"type": "text", "text": "hi", "auth_token": "t", "from": "x"})


def test_request_cap_keeps_room_for_the_envelope() -> None:
    # control characters take 6 bytes of JSON each (\u0001): within TEXT_MAX, over 30 KB
    TextMessage("\x01" * 7000)  # the text limit alone allows it
    with pytest.raises(MessageError, match=r"request: .* more than the limit of 30000"):
        validate_payload({"type": "text", "text": "\x01" * 7000})
    # a bare payload must leave ENVELOPE_RESERVE bytes free
    room = L.REQUEST_MAX_BYTES - L.ENVELOPE_RESERVE - m.payload_size({"type": "text", "text": ""})
    text = "\x01" * (room // 6) + "a" * (room % 6)
    validate_payload({"type": "text", "text": text})
    with pytest.raises(MessageError, match="request"):
        validate_payload({"type": "text", "text": text + "a"})
    # a whole request (with auth_token) is measured as it is
    validate_payload({"type": "text", "text": text + "a" * 200, "auth_token": "t"})


def test_request_measured_as_received() -> None:
    payload = {"type": "text", "text": "hi", "from": "x"}
    validate_payload(payload, wire_size=L.REQUEST_MAX_BYTES)
    with pytest.raises(MessageError, match=r"^request: 30001 bytes of JSON, .* \(30 KB\)"):
        validate_payload(payload, wire_size=L.REQUEST_MAX_BYTES + 1)
    # the message is judged first: its field is named, not the size
    with pytest.raises(MessageError, match=r"^text\.text: missing"):
        validate_payload({"type": "text"}, wire_size=10**6)


@pytest.mark.parametrize(
    ("name", "extension"),
    [
        ("report.pdf", ".pdf"),
        ("Report.PDF", ".pdf"),
        ("archive.tar.gz", ".gz"),
        ("x. exe", ".exe"),
        ("report", ""),
        (".profile", ""),
        ("report.", ""),
        ("report. ", ""),
        ("", ""),
    ],
)
def test_file_extension(name: str, extension: str) -> None:
    assert m.file_extension(name) == extension


def test_forbidden_extension_behind_a_space_is_refused() -> None:
    with pytest.raises(MessageError, match="forbidden"):
        FileMessage(PDF, 10, "setup. exe")
