"""Article enrichment (``enrich`` per source): what a feed item left out,
taken from its article page, during the render stage.

- ``enrich = ["image"]``: an item that ends up without a usable picture gets
  the picture its article page names for sharing (``og:image``,
  ``twitter:image``, ``<link rel="image_src">``; :func:`page_pictures`);
- ``enrich = ["text"]``: an item whose feed body is only a summary (at most
  1,000 characters, or cut off with ``…`` / "Read more") gets the article's
  main text instead, when that says more (:func:`enrich_text`).

The page is fetched through the same safe fetcher as media
(``Fetcher.fetch_page``: timeouts, ``max_bytes``, private addresses refused
unless ``[fetch] allow_private``), at most once per item: :class:`Pages`
keeps what each link gave (or why it failed) while the process runs. When it
fails, the item is posted from the feed's own content and a ``fallback``
decision says why (shown by preview and ``status --item``); what was taken
is an ``enrich`` decision.

The HTML is read by the pure :mod:`publisher.core.render.page`.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from publisher.core.config import SourceConfig
from publisher.core.errors import MediaError, SourceError
from publisher.core.items import Decision, Item, MediaCandidate
from publisher.core.records import PageResponse
from publisher.core.render import html_to_text, item_body
from publisher.core.render.page import (
    longer_text,
    looks_like_summary,
    main_text_html,
    page_images,
)

log = logging.getLogger(__name__)

#: Reads an article page; raises MediaError.
FetchPage = Callable[[str], PageResponse]
#: Links remembered at most (the oldest are forgotten first).
CACHE_SIZE = 512
#: Pictures taken from one page, at most.
MAX_PAGE_PICTURES = 3


@dataclass(frozen=True)
class ArticlePage:
    """What one article page gave: its pictures and (when asked) its text, or
    why it could not be read (``error``)."""

    link: str
    final_url: str = ""
    pictures: tuple[str, ...] = ()
    #: The main text as simple HTML; None when none was found (or not asked).
    text_html: str | None = None
    text_read: bool = False
    error: str | None = None


class Pages:
    """Article pages by link, each fetched once (failures too); thread-safe.

    ``fetch_page`` None: enrichment is unavailable (every page "fails").
    """

    def __init__(self, fetch_page: FetchPage | None, size: int = CACHE_SIZE) -> None:
        self.fetch_page = fetch_page
        self.size = size
        self.fetches = 0
        self._pages: OrderedDict[str, ArticlePage] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, link: str, *, text: bool = False, title: str = "") -> ArticlePage:
        """The page at ``link``; its main text is extracted when ``text``."""
        with self._lock:
            page = self._pages.get(link)
            if page is not None:
                self._pages.move_to_end(link)
                if page.error is not None or page.text_read or not text:
                    return page
        page = self._read(link, text=text, title=title)
        with self._lock:
            self._pages[link] = page
            self._pages.move_to_end(link)
            while len(self._pages) > self.size:
                self._pages.popitem(last=False)
        return page

    def _read(self, link: str, *, text: bool, title: str) -> ArticlePage:
        if self.fetch_page is None:
            return ArticlePage(link, error="no page fetcher")
        self.fetches += 1
        try:
            response = self.fetch_page(link)
        except MediaError as exc:
            log.info("article page %s: %s", link, exc)
            return ArticlePage(link, error=str(exc))
        url = response.final_url or link
        pictures = tuple(page_images(response.html, url)[:MAX_PAGE_PICTURES])
        text_html = main_text_html(response.html, url, title) if text else None
        return ArticlePage(link, url, pictures, text_html, text_read=text)


def wants(source: SourceConfig, what: str) -> bool:
    """Whether ``source`` asks for ``enrich`` ``what`` (``"image"``, ``"text"``)."""
    return what in source.enrich


def enrich_text(item: Item, source: SourceConfig, pages: Pages) -> tuple[Item, list[Decision]]:
    """``item`` with its article's main text when the feed carries only a
    summary (``enrich = ["text"]``), and what was decided."""
    if not wants(source, "text") or not item.link:
        return item, []
    summary = item_body(item)
    if not looks_like_summary(summary):
        return item, []
    page = pages.get(item.link, text=True, title=item.title)
    if page.error is not None:
        return item, [
            Decision(
                "fallback",
                f"article text: {page.error}; posted the feed's own text",
            )
        ]
    if page.text_html is None:
        return item, [
            Decision(
                "fallback",
                f"article text: no article text found on {page.final_url}; "
                "posted the feed's own text",
            )
        ]
    article = html_to_text(page.text_html)
    if not longer_text(article, summary):
        return item, [
            Decision(
                "enrich",
                f"article text: {page.final_url} says no more than the feed "
                f"({len(article)} characters); posted the feed's own text",
            )
        ]
    decision = Decision(
        "enrich",
        f"article text: the main text of {page.final_url} ({len(article)} characters) "
        f"instead of the feed's summary ({len(summary)})",
    )
    # the feed body's pictures stay the item's, not the article text's
    enriched = replace(item, html=page.text_html, text="", attached=item.media, body_base=None)
    return enriched, [decision]


def page_pictures(
    item: Item, source: SourceConfig, pages: Pages, decisions: list[Decision]
) -> list[MediaCandidate]:
    """The pictures of ``item``'s article page, as media candidates (origin
    ``page``), when the source asks (``enrich = ["image"]``); why there are
    none goes into ``decisions``."""
    if not wants(source, "image") or not source.images or not item.link:
        return []
    page = pages.get(item.link, text=wants(source, "text"), title=item.title)
    if page.error is not None:
        decisions.append(
            Decision("fallback", f"article picture: {page.error}; posted without a picture")
        )
        return []
    if not page.pictures:
        decisions.append(
            Decision(
                "fallback",
                f"article picture: {page.final_url} names no picture (og:image, "
                "twitter:image, image_src); posted without a picture",
            )
        )
        return []
    decisions.append(
        Decision("enrich", f"article picture: {page.pictures[0]} from {page.final_url}")
    )
    return [MediaCandidate(url=url, kind="image", origin="page") for url in page.pictures]


def fetch_page_with(fetcher: Any) -> FetchPage:
    """Adapt a :class:`publisher.adapters.fetch.Fetcher` to :data:`FetchPage`
    (``Fetcher.fetch_page``: the fetch rules of media)."""

    def fetch(url: str) -> PageResponse:
        try:
            response: PageResponse = fetcher.fetch_page(url)
        except SourceError as exc:
            raise MediaError(str(exc)) from exc
        return response

    return fetch
