"""The pictures an HTML body offers: each ``<img>`` that is a real picture,
not a pixel, an icon or a tracker (pure).

Found when an item is rendered, not when its feed is read: most items of a
poll are only remembered (see :attr:`publisher.core.items.Item.media`).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

from publisher.core.sourceurls import http_url

__all__ = ["MAX_BODY_IMAGES", "body_picture_urls"]

_TRACKERS = re.compile(
    r"(feeds\.feedburner\.com/~r|/~ff/|feedsportal|doubleclick|pixel|beacon|tracking|tracker"
    r"|spacer\.gif|blank\.gif|/1x1|stats\.wordpress\.com|/b\.gif|gravatar\.com/avatar"
    r"|s\.w\.org/images/core/emoji)",
    re.IGNORECASE,
)


def _dimension_is_tiny(value: object) -> bool:
    if not isinstance(value, str):
        return False
    text = value.strip().lower().removesuffix("px")
    return text.isdigit() and int(text) <= 2


#: Pictures taken from one HTML body, at most (``pictures`` is at most 10).
MAX_BODY_IMAGES = 10


class _ImageTags(HTMLParser):
    """The attributes of each ``<img>`` of an HTML fragment, in order.

    The tokenizer BeautifulSoup's ``html.parser`` builder uses, without the
    tree: the same tags are found (nothing inside a comment, ``<script>`` or
    ``<style>``, nor in an attribute's value), with the same attributes (a
    repeated one keeps its last value, one without a value is ``""``), at an
    eighth of the cost.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.images: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append({key: value or "" for key, value in attrs})


def body_picture_urls(markup: str, base: str | None, limit: int = MAX_BODY_IMAGES) -> list[str]:
    """The URLs of the real pictures in an HTML body, in order (for
    ``pictures = N``), resolved against ``base``: not a data: URI, not a 1x1
    or tracking pixel, not an SVG icon."""
    found: list[str] = []
    if "<img" not in markup.lower():
        return found
    tags = _ImageTags()
    try:
        tags.feed(markup)
        tags.close()
    except (AssertionError, ValueError):
        # html.parser gives up on a few broken declarations (``<![foo[``):
        # the pictures before it are kept, the rest of the body is text
        pass
    for img in tags.images:
        if len(found) >= limit:
            break
        src = img.get("src") or img.get("data-src")
        if not src:
            continue
        if _dimension_is_tiny(img.get("width")) or _dimension_is_tiny(img.get("height")):
            continue
        url = http_url(src, base)
        if url is None or _TRACKERS.search(url):
            continue
        if urlsplit(url).path.lower().endswith(".svg"):
            continue
        if url not in found:
            found.append(url)
    return found
