"""One implementation of Viber's payload rules.

The stand-in (and so the local channel) refuses a post exactly when
``validate_payload`` does, naming the same field in the same words: it has
no rule of its own. Media checks, which need the bytes, are covered in
``test_standin.py``; here the stand-in does not fetch media.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from helpers import STANDIN_TOKEN as TOKEN
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.adapters.standin import SUPERADMIN_ID, ViberStandIn
from publisher.core import limits as L
from publisher.core.errors import MessageError, MissingField
from publisher.core.messages import payload_json, validate_payload

STANDIN = ViberStandIn(TOKEN, require_webhook=False, check_media=False)
HTTP = httpx.Client(transport=httpx.WSGITransport(app=STANDIN.app), base_url="http://standin")

JPG = "https://media.example.org/a/picture.jpg"
MP4 = "https://media.example.org/a/clip.mp4"
PDF = "https://media.example.org/a/report.pdf"


def request(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` as the client sends it: with ``from`` and ``auth_token``."""
    return {"auth_token": TOKEN, "from": SUPERADMIN_ID, **payload}


def core_verdict(body: dict[str, Any]) -> str | None:
    try:
        validate_payload(body)
    except MessageError as exc:
        return str(exc)
    return None


def _status(body: dict[str, Any]) -> tuple[int, str]:
    """Viber's answer to what the core refuses: a missing field is
    ``missingData`` (4), any other broken rule ``badData`` (3)."""
    try:
        validate_payload(body)
    except MissingField:
        return 4, "missingData: "
    except MessageError:
        return 3, "badData: "
    return 0, ""


def standin_verdict(body: dict[str, Any]) -> str | None:
    answer = HTTP.post(
        "/pa/post", content=payload_json(body), headers={"X-Viber-Auth-Token": TOKEN}
    ).json()
    if answer["status"] == 0:
        return None
    status, prefix = _status(body)
    assert answer["status"] == status or status == 0, answer  # 0: a rule of the request's
    message: str = answer["status_message"]
    assert message.startswith(prefix or "badData: "), message
    return message.removeprefix(prefix or "badData: ")


def url_of(length: int, suffix: str) -> str:
    base = "https://e.org/"
    return base + "a" * (length - len(base) - len(suffix)) + suffix


VALID: list[dict[str, Any]] = [
    {"type": "text", "text": "a" * L.TEXT_MAX},
    {"type": "text", "text": "😀" * (L.TEXT_MAX // 2)},
    {"type": "picture", "text": "", "media": JPG},
    {"type": "picture", "text": "c" * L.CAPTION_MAX, "media": url_of(L.MEDIA_URL_MAX, ".JPEG")},
    {"type": "picture", "text": "c", "media": JPG, "thumbnail": JPG},
    {"type": "video", "media": MP4, "size": L.VIDEO_MAX_BYTES, "duration": L.VIDEO_MAX_SECONDS},
    {"type": "video", "media": MP4, "size": 1, "thumbnail": JPG},
    {"type": "file", "media": PDF, "size": L.FILE_MAX_BYTES, "file_name": "r.pdf"},
    {
        "type": "file",
        "media": PDF,
        "size": 1,
        "file_name": "n" * (L.FILE_NAME_MAX - 4) + ".pdf",
    },
    {"type": "url", "media": url_of(L.URL_MAX, "")},
    {"type": "url", "media": PDF, "text": "t" * L.URL_TEXT_MAX},
    {"type": "contact", "contact": {"name": "n" * L.CONTACT_NAME_MAX, "phone_number": "1" * 18}},
    {"type": "location", "location": {"lat": -L.LAT_MAX, "lon": L.LON_MAX}},
    {"type": "sticker", "sticker_id": 40133},
]

# (id, payload, the field the refusal names)
INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("no-type", {"text": "hi"}, "type"),
    ("unknown-type", {"type": "poll"}, "type"),
    ("type-not-string", {"type": 7}, "type"),
    ("text-missing", {"type": "text"}, "text.text"),
    ("text-empty", {"type": "text", "text": "  "}, "text.text"),
    ("text-long", {"type": "text", "text": "a" * (L.TEXT_MAX + 1)}, "text.text"),
    ("text-astral", {"type": "text", "text": "😀" * (L.TEXT_MAX // 2) + "a"}, "text.text"),
    ("text-number", {"type": "text", "text": 5}, "text.text"),
    ("text-extra-field", {"type": "text", "text": "a", "keyboard": {}}, "text.keyboard"),
    ("caption-missing", {"type": "picture", "media": JPG}, "picture.text"),
    (
        "caption-long",
        {"type": "picture", "text": "c" * (L.CAPTION_MAX + 1), "media": JPG},
        "picture.text",
    ),
    (
        "picture-png",
        {"type": "picture", "text": "", "media": "https://e.org/a.png"},
        "picture.media",
    ),
    ("picture-ftp", {"type": "picture", "text": "", "media": "ftp://e.org/a.jpg"}, "picture.media"),
    (
        "picture-url-long",
        {"type": "picture", "text": "", "media": url_of(L.MEDIA_URL_MAX + 1, ".jpg")},
        "picture.media",
    ),
    (
        "thumbnail-not-url",
        {"type": "picture", "text": "", "media": JPG, "thumbnail": "nope"},
        "picture.thumbnail",
    ),
    ("video-mov", {"type": "video", "media": "https://e.org/a.mov", "size": 1}, "video.media"),
    ("video-no-size", {"type": "video", "media": MP4}, "video.size"),
    ("video-size-0", {"type": "video", "media": MP4, "size": 0}, "video.size"),
    (
        "video-size-big",
        {"type": "video", "media": MP4, "size": L.VIDEO_MAX_BYTES + 1},
        "video.size",
    ),
    ("video-size-string", {"type": "video", "media": MP4, "size": "10"}, "video.size"),
    (
        "video-long",
        {"type": "video", "media": MP4, "size": 1, "duration": L.VIDEO_MAX_SECONDS + 1},
        "video.duration",
    ),
    (
        "video-duration-float",
        {"type": "video", "media": MP4, "size": 1, "duration": 2.5},
        "video.duration",
    ),
    ("file-no-name", {"type": "file", "media": PDF, "size": 1}, "file.file_name"),
    (
        "file-big",
        {"type": "file", "media": PDF, "size": L.FILE_MAX_BYTES + 1, "file_name": "r.pdf"},
        "file.size",
    ),
    (
        "file-exe",
        {"type": "file", "media": PDF, "size": 1, "file_name": "setup.EXE"},
        "file.file_name",
    ),
    (
        "file-no-ext",
        {"type": "file", "media": PDF, "size": 1, "file_name": "report"},
        "file.file_name",
    ),
    (
        "file-folder",
        {"type": "file", "media": PDF, "size": 1, "file_name": "a/b.pdf"},
        "file.file_name",
    ),
    (
        "file-name-long",
        {"type": "file", "media": PDF, "size": 1, "file_name": "n" * L.FILE_NAME_MAX + ".pdf"},
        "file.file_name",
    ),
    ("url-long", {"type": "url", "media": url_of(L.URL_MAX + 1, "")}, "url.media"),
    (
        "url-text-long",
        {"type": "url", "media": PDF, "text": "t" * (L.URL_TEXT_MAX + 1)},
        "url.text",
    ),
    ("contact-not-object", {"type": "contact", "contact": "Ann"}, "contact.contact"),
    (
        "contact-no-phone",
        {"type": "contact", "contact": {"name": "Ann"}},
        "contact.contact.phone_number",
    ),
    (
        "contact-name-long",
        {
            "type": "contact",
            "contact": {"name": "n" * (L.CONTACT_NAME_MAX + 1), "phone_number": "1"},
        },
        "contact.name",
    ),
    (
        "contact-phone-long",
        {"type": "contact", "contact": {"name": "Ann", "phone_number": "1" * (L.PHONE_MAX + 1)}},
        "contact.phone_number",
    ),
    ("lat", {"type": "location", "location": {"lat": L.LAT_MAX + 0.5, "lon": 0}}, "location.lat"),
    ("lon", {"type": "location", "location": {"lat": 0, "lon": -L.LON_MAX - 1}}, "location.lon"),
    (
        "location-extra",
        {"type": "location", "location": {"lat": 0, "lon": 0, "alt": 1}},
        "location.location.alt",
    ),
    ("sticker-0", {"type": "sticker", "sticker_id": 0}, "sticker.sticker_id"),
    ("sticker-string", {"type": "sticker", "sticker_id": "40133"}, "sticker.sticker_id"),
    # control characters take 6 bytes of JSON each: within TEXT_MAX, over 30 KB
    ("request-30kb", {"type": "text", "text": "\x01" * 6000}, "request"),
]


@pytest.mark.parametrize("payload", VALID, ids=[p["type"] for p in VALID])
def test_both_accept(payload: dict[str, Any]) -> None:
    body = request(payload)
    assert core_verdict(body) is None
    assert standin_verdict(body) is None


@pytest.mark.parametrize(
    ("payload", "field"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_both_refuse_naming_the_same_field(payload: dict[str, Any], field: str) -> None:
    body = request(payload)
    refusal = core_verdict(body)
    assert refusal is not None and refusal.startswith(field + ":"), refusal
    assert standin_verdict(body) == refusal


def test_request_cap_is_the_same_rule() -> None:
    # The largest text that fits in 30 KB of JSON is accepted by both; one more byte, by neither.
    room = L.REQUEST_MAX_BYTES - len(payload_json(request({"type": "text", "text": ""})))
    text = "\x01" * (room // 6) + "a" * (room % 6)
    assert core_verdict(request({"type": "text", "text": text})) is None
    assert standin_verdict(request({"type": "text", "text": text})) is None
    over = request({"type": "text", "text": text + "a"})
    assert core_verdict(over) == standin_verdict(over)
    assert (core_verdict(over) or "").startswith(f"request: {L.REQUEST_MAX_BYTES + 1} bytes")


def test_other_endpoints_have_the_same_request_cap() -> None:
    body = payload_json({"auth_token": TOKEN, "url": "https://e.org/" + "a" * L.REQUEST_MAX_BYTES})
    answer = HTTP.post("/pa/set_webhook", content=body).json()
    assert answer["status"] == 3
    assert answer["status_message"].startswith(f"badData: request: {len(body)} bytes of JSON")


# --------------------------------------------------------------------------
# any payload: the two verdicts agree

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from([JPG, MP4, PDF, "report.pdf", "x.exe", "😀", "", "https://e.org/a.png"]),
)
_VALUES = st.one_of(
    _SCALARS,
    st.dictionaries(
        st.sampled_from(["name", "phone_number", "lat", "lon", "x"]), _SCALARS, max_size=3
    ),
)
_KEYS = st.sampled_from(
    [
        "type",
        "text",
        "media",
        "thumbnail",
        "size",
        "duration",
        "file_name",
        "contact",
        "location",
        "sticker_id",
        "keyboard",
    ]
)


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    """A valid payload, then some fields replaced, removed or added."""
    payload = dict(draw(st.sampled_from(VALID)))
    for key, value in draw(st.dictionaries(_KEYS, _VALUES, max_size=3)).items():
        payload[key] = value
    for key in draw(st.lists(_KEYS, max_size=2)):
        payload.pop(key, None)
    return payload


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads())
def test_any_payload_gets_the_same_verdict(payload: dict[str, Any]) -> None:
    body = request(payload)
    assert standin_verdict(body) == core_verdict(body)
