"""Files: a safe ``file_name`` within Viber's limits, or a refusal.

Viber wants ``file_name`` with its extension, at most 256 characters, a
file of at most 50 MB, and refuses a list of executable extensions.
"""

from __future__ import annotations

import re
import unicodedata

from publisher.core.errors import MediaError

__all__ = ["FILE_MAX_BYTES", "FILE_NAME_MAX_CHARS", "FORBIDDEN_EXTENSIONS", "check_file"]

#: 50 MB, read the safe way (decimal megabytes).
FILE_MAX_BYTES = 50_000_000
FILE_NAME_MAX_CHARS = 256

#: Extensions Viber refuses for ``file`` posts (lower case, without the dot).
FORBIDDEN_EXTENSIONS = frozenset(
    [
        "bat",
        "bin",
        "cmd",
        "com",
        "cpl",
        "exe",
        "gadget",
        "inf1",
        "ins",
        "inx",
        "isu",
        "job",
        "jse",
        "lnk",
        "msc",
        "msi",
        "msp",
        "mst",
        "paf",
        "pif",
        "ps1",
        "reg",
        "rgs",
        "sct",
        "shb",
        "shs",
        "u3p",
        "vb",
        "vbe",
        "vbs",
        "vbscript",
        "ws",
        "wsf",
        "action",
        "app",
        "command",
        "csh",
        "osx",
        "workflow",
        "ksh",
        "out",
        "run",
        "apk",
        "ipa",
    ]
)

# Characters some file systems or clients refuse in a name.
_RESERVED = re.compile(r'[<>:"|?*]')


def _clean(name: str) -> str:
    """The last path part of ``name``: no control, bidi, unassigned or reserved characters."""
    name = unicodedata.normalize("NFC", name)
    name = re.split(r"[/\\]", name)[-1]
    kept = []
    for ch in name:
        category = unicodedata.category(ch)
        if ch.isspace() or category.startswith("Z"):
            kept.append(" ")  # tabs, newlines, no-break and other spaces
        elif not category.startswith("C"):  # control, format (bidi), surrogate, unassigned
            kept.append(ch)
    name = _RESERVED.sub("_", "".join(kept))
    name = " ".join(name.split())
    # Windows drops trailing dots and spaces ("x.exe." is x.exe); leading dots hide files.
    return name.strip(" .")


def check_file(name: str, size: int) -> str:
    """A safe ``file_name`` for a Viber ``file`` post, or :class:`MediaError`.

    Keeps the extension; drops path parts and control characters; shortens
    the stem (never the extension) to fit 256 characters. Refuses an empty
    or over-50-MB file, a name without an extension and the forbidden
    extensions (case-insensitive, whatever comes before them: ``x.pdf.exe``).
    """
    if size <= 0:
        raise MediaError(f"file {name!r} is empty: nothing to post")
    if size > FILE_MAX_BYTES:
        raise MediaError(
            f"file {name!r} is {size:,} bytes, over Viber's limit of {FILE_MAX_BYTES:,} bytes"
        )
    clean = _clean(name)
    stem, dot, ext = clean.rpartition(".")
    stem = stem.rstrip(" .")
    if not dot or not stem or not ext.strip():
        raise MediaError(
            f"file name {name!r} has no extension: Viber needs one (rename it, e.g. to .pdf)"
        )
    if ext.strip().lower() in FORBIDDEN_EXTENSIONS:
        raise MediaError(f"file {name!r}: Viber refuses .{ext.strip().lower()} files")
    room = FILE_NAME_MAX_CHARS - len(ext) - 1
    if room < 1:
        raise MediaError(f"file name {name!r} has an extension too long for Viber")
    if len(stem) > room:
        stem = stem[:room].rstrip(" .") or stem[:room]
    return f"{stem}.{ext}"
