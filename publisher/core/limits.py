"""Every documented limit of Viber's Channels Post API, written once.

The source is ``docs/viber-api.md`` ("Message types and their limits",
"Request size", forbidden extensions). Every module that needs one of these
numbers imports it from here; a test fails when a module writes its own
(``tests/test_limits.py``).

Readings taken where the documents are vague (the safe side each time):

- "characters" are counted in UTF-16 code units (an emoji outside the BMP
  counts as two), never fewer than the code points;
- "1 MB" is 1,000,000 bytes, "100 KB" 100,000, "50 MB" 50,000,000 and
  "30 KB" 30,000: decimal units, never the larger binary ones.

Who applies them: :mod:`publisher.core.messages` checks payloads (lengths,
URLs, sizes declared in the payload, the request size);
:mod:`publisher.core.media` makes media fit (bytes, seconds, file names); the
stand-in's media fetcher checks what it downloads against the byte limits.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CAPTION_MAX",
    "CONTACT_NAME_MAX",
    "ENVELOPE_RESERVE",
    "FILE_MAX_BYTES",
    "FILE_NAME_MAX",
    "FORBIDDEN_EXTENSIONS",
    "LAT_MAX",
    "LON_MAX",
    "MEDIA_URL_MAX",
    "PHONE_MAX",
    "PICTURE_CONTENT_TYPE",
    "PICTURE_MAX_BYTES",
    "PICTURE_URL_EXTENSIONS",
    "REQUEST_MAX_BYTES",
    "STICKER_ID_MAX",
    "TEXT_MAX",
    "THUMBNAIL_MAX_BYTES",
    "THUMBNAIL_SIZE",
    "URL_MAX",
    "URL_TEXT_MAX",
    "VIDEO_CONTENT_TYPE",
    "VIDEO_MAX_BYTES",
    "VIDEO_MAX_SECONDS",
    "VIDEO_URL_EXTENSIONS",
]

# ------------------------------------------------------------------ text

#: ``text`` of a text post: at most 7000 characters (UTF-16 units).
TEXT_MAX: Final = 7000
#: ``text`` of a picture post (its caption): at most 768 characters.
CAPTION_MAX: Final = 768
#: ``text`` of a url post: at most 120 characters.
URL_TEXT_MAX: Final = 120

# ------------------------------------------------------------------ URLs

#: ``media`` of a url post: a URL of at most 2000 characters.
URL_MAX: Final = 2000
#: ``media``/``thumbnail`` URLs of picture, video and file posts: held to the url post's limit.
MEDIA_URL_MAX: Final = URL_MAX

# ------------------------------------------------------------------ pictures

#: A picture is a JPEG of at most 1 MB ("1 MB" read as 1,000,000 bytes).
PICTURE_MAX_BYTES: Final = 1_000_000
#: The ``Content-Type`` a picture (and a thumbnail) must be served with: JPEG only.
PICTURE_CONTENT_TYPE: Final = "image/jpeg"
#: A picture URL's path must end in one of these (case-insensitive).
PICTURE_URL_EXTENSIONS: Final = (".jpg", ".jpeg")
#: A ``thumbnail`` is a JPEG of at most 100 KB (100,000 bytes).
THUMBNAIL_MAX_BYTES: Final = 100_000
#: A thumbnail's recommended side: 400x400 pixels.
THUMBNAIL_SIZE: Final = 400

# ------------------------------------------------------------------ videos

#: A video is an MP4 (H.264) of at most 50 MB (50,000,000 bytes).
VIDEO_MAX_BYTES: Final = 50_000_000
#: A video's ``duration``: whole seconds, at most 180.
VIDEO_MAX_SECONDS: Final = 180
#: The ``Content-Type`` a video must be served with.
VIDEO_CONTENT_TYPE: Final = "video/mp4"
#: A video URL's path must end in one of these (the bot API wants ``.mp4``).
VIDEO_URL_EXTENSIONS: Final = (".mp4",)

# ------------------------------------------------------------------ files

#: A file post's file: at most 50 MB (50,000,000 bytes).
FILE_MAX_BYTES: Final = 50_000_000
#: ``file_name``: at most 256 characters (UTF-16 units), extension included.
FILE_NAME_MAX: Final = 256
#: Extensions Viber refuses in ``file_name`` (lower case, with the dot).
FORBIDDEN_EXTENSIONS: Final = frozenset(
    {
        ".bat",
        ".bin",
        ".cmd",
        ".com",
        ".cpl",
        ".exe",
        ".gadget",
        ".inf1",
        ".ins",
        ".inx",
        ".isu",
        ".job",
        ".jse",
        ".lnk",
        ".msc",
        ".msi",
        ".msp",
        ".mst",
        ".paf",
        ".pif",
        ".ps1",
        ".reg",
        ".rgs",
        ".sct",
        ".shb",
        ".shs",
        ".u3p",
        ".vb",
        ".vbe",
        ".vbs",
        ".vbscript",
        ".ws",
        ".wsf",
        ".action",
        ".app",
        ".command",
        ".csh",
        ".osx",
        ".workflow",
        ".ksh",
        ".out",
        ".run",
        ".apk",
        ".ipa",
    }
)

# ------------------------------------------------------------------ contact, location, sticker

#: ``contact.name``: at most 28 characters.
CONTACT_NAME_MAX: Final = 28
#: ``contact.phone_number``: at most 18 characters.
PHONE_MAX: Final = 18
#: ``location.lat`` lies within -90..90 degrees.
LAT_MAX: Final = 90
#: ``location.lon`` lies within -180..180 degrees.
LON_MAX: Final = 180
#: ``sticker_id`` is a positive int64 (Viber's ids are 64-bit).
STICKER_ID_MAX: Final = 2**63 - 1

# ------------------------------------------------------------------ requests

#: One request carries at most 30 KB of JSON (read as 30,000 bytes).
REQUEST_MAX_BYTES: Final = 30_000
#: Room a bare payload keeps for the ``auth_token`` and ``from`` the client adds.
ENVELOPE_RESERVE: Final = 256
