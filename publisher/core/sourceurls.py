"""http(s) URLs as sources give them: resolved against a base, or refused (pure)."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

__all__ = ["http_url"]

#: An absolute http(s) URL that ``urljoin`` and ``urlsplit`` give back as it
#: is: lowercase scheme, an ASCII host (no user, no brackets), printable
#: ASCII only (no white space of any kind), no ``;`` in the path, a query and
#: a fragment that are not empty. Most links are such URLs; they skip both
#: (issue 14).
_PLAIN_HTTP_URL = re.compile(
    r"https?://[A-Za-z0-9.-]+(?::[0-9]*)?"
    r"(?:/[!\x22$-:<->@-Z\\^-~]*)?"  # the path: no # ; ? [ ]
    r"(?:\?[!\x22$-~]+)?"  # the query: no #
    r"(?:#[!-~]+)?"
)


def http_url(value: object, base: str | None) -> str | None:
    """``value`` resolved against ``base`` if it is then an http(s) URL; else None."""
    if not isinstance(value, str):
        return None
    if _PLAIN_HTTP_URL.fullmatch(value):
        return value
    text = value.strip()
    if not text or text.lower().startswith(("data:", "javascript:", "mailto:")):
        return None
    try:
        resolved = urljoin(base, text) if base else text
        parts = urlsplit(resolved)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return resolved
