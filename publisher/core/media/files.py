"""Files: a safe ``file_name`` within Viber's limits, or a refusal.

Viber wants ``file_name`` with its extension, at most
:data:`~publisher.core.limits.FILE_NAME_MAX` characters (UTF-16 units), a
file of at most :data:`~publisher.core.limits.FILE_MAX_BYTES`, and refuses
the extensions in :data:`~publisher.core.limits.FORBIDDEN_EXTENSIONS`. The
extension is read the way :func:`publisher.core.messages.file_extension`
reads it, so a name made here passes the payload checks.
"""

from __future__ import annotations

import re
import unicodedata

from publisher.core.errors import MediaError
from publisher.core.limits import FILE_MAX_BYTES, FILE_NAME_MAX, FORBIDDEN_EXTENSIONS
from publisher.core.messages import file_extension, utf16_len
from publisher.core.render.text import grapheme_boundaries

__all__ = ["check_file"]

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
    extension = file_extension(f"{stem}.{ext}") if dot and stem else ""
    if not extension:
        raise MediaError(
            f"file name {name!r} has no extension: Viber needs one (rename it, e.g. to .pdf)"
        )
    if extension in FORBIDDEN_EXTENSIONS:
        raise MediaError(f"file {name!r}: Viber refuses {extension} files")
    room = FILE_NAME_MAX - utf16_len(ext) - 1
    if room < 1:
        raise MediaError(f"file name {name!r} has an extension too long for Viber")
    if utf16_len(stem) > room:
        cut = _prefix_within(stem, room)
        stem = cut.rstrip(" .") or cut
        if not stem:
            raise MediaError(f"file name {name!r} cannot be shortened to fit Viber's limit")
    return f"{stem}.{ext}"


def _prefix_within(text: str, units: int) -> str:
    """The longest prefix of ``text`` of at most ``units`` UTF-16 units that
    does not split a user-perceived character (may be "")."""
    best = 0
    # units + 1 code points hold every boundary that can fit (each is >= 1 unit).
    for bound in grapheme_boundaries(text[: units + 1]):
        if utf16_len(text[:bound]) > units:
            break
        best = bound
    return text[:best]
