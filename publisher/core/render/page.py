"""An article page, read for what a feed item left out (``enrich``): the
picture the page names for sharing, and its main text. Pure: HTML in, facts out.

- :func:`page_images`: ``<meta property="og:image">`` (and its
  ``og:image:secure_url`` / ``og:image:url``), ``<meta name="twitter:image">``
  (or ``twitter:image:src``), ``<link rel="image_src">``, in that order,
  resolved against the page's address; only http(s), no repeats, no tracking
  pixels.
- :func:`main_text_html`: the article's main text as simple HTML (paragraphs,
  headings, lists, links, emphasis), extracted by trafilatura, without the
  page's menus, footers and comments, and without a first heading that only
  repeats the item's title; None when the page has no article text.
- :func:`looks_like_summary`: whether a feed body is only a summary, so that
  the article's text is worth fetching.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from publisher.core.render.html import html_to_text, image_urls, parse_html

# bs4 is imported where a page is read (most runs read none; see render.html)
if TYPE_CHECKING:
    from bs4.element import Tag

#: A feed body at most this long (in characters of plain text) is a summary.
SUMMARY_MAX = 1000
#: The article's text replaces the feed's only when it is longer by this factor.
LONGER_BY = 1.2
#: Most of a page's head is read for its pictures (bytes of HTML; the head
#: comes first, and a page that puts og:image beyond this is broken anyway).
HEAD_BYTES = 512 * 1024

_META_IMAGE = ("og:image", "og:image:secure_url", "og:image:url")
_TWITTER_IMAGE = ("twitter:image", "twitter:image:src")
_TRUNCATED = re.compile(
    r"(…|\.\.\.|\[…\]|\[\.\.\.\]|\b(read more|continue reading)\W*)\s*$", re.IGNORECASE
)


def _attr(tag: Tag, name: str) -> str:
    value = tag.get(name)
    if isinstance(value, list):
        return " ".join(value)
    return value.strip() if isinstance(value, str) else ""


def page_images(html: str, page_url: str) -> list[str]:
    """The pictures the page names for sharing, best first (see the module doc)."""
    if not html or "<" not in html:
        return []
    from bs4 import SoupStrainer
    from bs4.element import Tag

    soup = parse_html(html[:HEAD_BYTES], parse_only=SoupStrainer(["meta", "link"]))
    og: list[str] = []
    twitter: list[str] = []
    linked: list[str] = []
    for tag in soup.find_all(["meta", "link"]):
        if not isinstance(tag, Tag):
            continue
        if tag.name == "meta":
            key = (_attr(tag, "property") or _attr(tag, "name")).lower()
            content = _attr(tag, "content")
            if key in _META_IMAGE:
                og.append(content)
            elif key in _TWITTER_IMAGE:
                twitter.append(content)
        elif "image_src" in _attr(tag, "rel").lower().split():
            linked.append(_attr(tag, "href"))
    # image_urls resolves, keeps http(s) only, drops trackers and repeats.
    markup = "".join(f'<img src="{_escape(src)}">' for src in (*og, *twitter, *linked) if src)
    return image_urls(markup, page_url)


def _escape(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def main_text_html(html: str, page_url: str, title: str = "") -> str | None:
    """The article's main text as simple HTML, or None (see the module doc)."""
    if not html or "<" not in html:
        return None
    import trafilatura  # imported on use: only sources with enrich = ["text"] need it

    extracted = trafilatura.extract(
        html,
        url=page_url,
        output_format="html",
        include_links=True,
        include_formatting=True,
        include_images=False,
        include_comments=False,
        include_tables=True,
        favor_precision=True,
    )
    if not extracted or not extracted.strip():
        return None
    from bs4.element import Tag

    soup = parse_html(extracted)
    body = soup.body or soup
    first = next((c for c in body.children if isinstance(c, Tag)), None)
    if (
        first is not None
        and first.name in ("h1", "h2", "h3")
        and title
        and _same_words(first.get_text(" "), title)
    ):
        first.decompose()
    inner = "".join(str(c) for c in body.children).strip()
    if not html_to_text(inner).strip():
        return None
    return inner


def _same_words(a: str, b: str) -> bool:
    def words(s: str) -> list[str]:
        return re.findall(r"\w+", s.lower())

    return words(a) == words(b)


def looks_like_summary(body_text: str) -> bool:
    """A feed body that is only a summary: short, or cut off (``…``, ``[...]``,
    "Read more")."""
    text = body_text.strip()
    return len(text) <= SUMMARY_MAX or bool(_TRUNCATED.search(text))


def longer_text(article_text: str, feed_text: str) -> bool:
    """Whether the article's text says more than the feed's (worth replacing it)."""
    return len(article_text.strip()) > LONGER_BY * len(feed_text.strip())
