"""Links in posted text, and hashtags (pure).

- :func:`clean_url`: a posted URL without its tracking parameters (the list
  is :data:`publisher.core.identity.TRACKING_PARAMS`, one list for both).
- :func:`web_url`: an ``href`` made absolute, or None unless it is http(s)
  (``javascript:``, ``data:``, ``mailto:`` and the like are never posted).
- :data:`URL_IN_TEXT` finds URLs written in text: they are never cut.
- :func:`hashtags`: ``#Word`` tags from an item's categories.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urljoin, urlsplit

from publisher.core.identity import strip_tracking

__all__ = ["URL_IN_TEXT", "clean_url", "clean_urls_in_text", "hashtags", "web_url"]

#: A URL written in text, without the punctuation that usually ends a sentence.
URL_IN_TEXT = re.compile(r"https?://[^\s<>\"'\u2060]*[^\s<>\"'.,;:!?)\]}»”’\u2060]", re.IGNORECASE)


def clean_url(url: str, clean: bool = True) -> str:
    """``url`` without tracking parameters (``utm_*``, ``fbclid``...) when ``clean``."""
    return strip_tracking(url) if clean else url


def clean_urls_in_text(text: str, clean: bool = True) -> str:
    """Every http(s) URL written in ``text`` without its tracking parameters."""
    if not clean or "://" not in text:
        return text
    return URL_IN_TEXT.sub(lambda m: strip_tracking(m.group()), text)


def web_url(href: str, base: str | None) -> str | None:
    """``href`` resolved against ``base``; None unless it is an http(s) URL with a host."""
    href = "".join(ch for ch in href.strip() if ch >= " ")
    if not href or href.startswith("#"):
        return None
    try:
        url = urljoin(base, href) if base else href
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


def _tag(category: str) -> str:
    words = [w for w in re.split(r"[\W_]+", unicodedata.normalize("NFC", category)) if w]
    if len(words) == 1:
        return words[0]
    return "".join(w[:1].upper() + w[1:] for w in words)


def hashtags(categories: tuple[str, ...] | list[str], limit: int = 5) -> str:
    """``#Word`` for each category, spaces and punctuation removed, repeats
    (ignoring case) and purely numeric tags left out, at most ``limit``;
    joined by spaces. ``"open source"`` → ``#OpenSource``."""
    seen: set[str] = set()
    tags: list[str] = []
    for category in categories:
        tag = _tag(category)
        if not tag or tag.isdigit() or tag.casefold() in seen:
            continue
        seen.add(tag.casefold())
        tags.append("#" + tag)
        if len(tags) >= limit:
            break
    return " ".join(tags)
