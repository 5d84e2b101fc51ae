"""Feed parsing: bytes and response headers in, :class:`ParsedFeed` out.

RSS 0.9x/1.0/2.0, RDF and Atom go to feedparser, always as bytes (never a
URL: fetching is :mod:`publisher.adapters.fetch`'s job). JSON documents are told apart
by their content, not by the file extension or Content-Type, and go to
:mod:`publisher.adapters.sources.jsonfeed`.

What counts as what:

- a document that is no feed at all (an HTML page, an empty body, XML of
  another kind, JSON that is not a feed, a feed truncated before its first
  entry) raises :class:`~publisher.core.errors.SourceError` saying what to check;
- a feed that is not well-formed but still yields entries is read, with a
  warning;
- an entry that cannot be used (nothing to post, or broken) is skipped with
  a warning; the other entries are kept.

Per item: the key (guid/id, else the normalised link, else a content hash;
see :func:`publisher.core.identity.item_key`; an id repeated with other content falls
back to the link), the title as text, the link resolved against the
document's URL, the body as HTML (content over summary), the published (or
updated) time as aware UTC (more than a day in the future → the fetch time),
author, categories and media candidates: enclosures, ``media:content``,
``media:thumbnail`` (also inside ``media:group``) and the first real picture
in the body.
"""

from __future__ import annotations

import calendar
import io
import re
import time
import warnings as pywarnings
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

from publisher.adapters.sources._util import (
    TOO_DEEP,
    Keyring,
    ParsedFeed,
    claim_key,
    clamp_future,
    guess_kind,
    html_to_text,
    parse_length,
)
from publisher.core.errors import SourceError
from publisher.core.identity import RAW_BODY, content_hash, item_key, usable_guid
from publisher.core.items import Item, MediaCandidate
from publisher.core.redact import redact_urls
from publisher.core.render.html import MAX_DEPTH, nesting_depth
from publisher.core.sourceurls import http_url

__all__ = ["ParsedFeed", "looks_like_html", "looks_like_json", "parse_feed"]

#: Bozo exceptions that only say the encoding or Content-Type was off.
_HARMLESS_BOZO = ("CharacterEncodingOverride", "NonXMLContentType")
_HEADERS_FOR_FEEDPARSER = ("content-type", "content-language")
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff", b"\xff\xfe", b"\xfe\xff")
_COMMENT = re.compile(rb"<!--.*?(-->|$)", re.DOTALL)
_ELEMENT = re.compile(rb"<([A-Za-z][\w:.-]*)")
_FEED_ROOTS = frozenset({b"rss", b"feed", b"rdf:rdf", b"rdf", b"channel", b"entry", b"item"})
_ROOT_END = re.compile(rb"</(?:[\w.-]+:)?(?:rss|feed|rdf)\s*>", re.IGNORECASE)
_ITEM_TAG = re.compile(rb"<(?:[\w.-]+:)?(?:item|entry)[\s>/]", re.IGNORECASE)


def _head(body: bytes, size: int = 4096) -> bytes:
    """The start of ``body`` as ASCII-compatible bytes, BOM and whitespace removed."""
    head = body[:size]
    for bom in _BOMS:
        if head.startswith(bom):
            head = head[len(bom) :]
            break
    if head[:2].count(b"\x00") == 1 or head[:4].count(b"\x00") == 3:
        # UTF-16/32 without BOM: keep only the ASCII bytes for sniffing
        head = head.replace(b"\x00", b"")
    return head.lstrip()


def looks_like_json(body: bytes) -> bool:
    return _head(body, 64).startswith((b"{", b"["))


def _ascii(body: bytes) -> bytes:
    """``body`` with NUL bytes removed, so UTF-16/32 markup can be searched."""
    return body.replace(b"\x00", b"") if b"\x00" in body[:4] else body


def _first_element(head: bytes) -> bytes | None:
    """The name of the first element in ``head`` (comments, prolog and
    doctype skipped), lowercased; None when there is none."""
    cleaned = _COMMENT.sub(b"", head)
    match = _ELEMENT.search(cleaned)
    return match.group(1).lower() if match else None


def looks_like_html(body: bytes, headers: Mapping[str, str] | None = None) -> bool:
    """True when ``body`` is an HTML page rather than a feed."""
    head = _head(body)
    first = _first_element(head)
    content_type = _header(headers or {}, "content-type").lower()
    if first in (b"html", b"head", b"body"):
        return True
    if first is None:
        return b"<!doctype html" in head.lower() or "text/html" in content_type
    if first in _FEED_ROOTS:
        return False
    return "text/html" in content_type


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""


def parse_feed(
    body: bytes,
    headers: Mapping[str, str],
    url: str,
    source_name: str,
    now: datetime | None = None,
) -> ParsedFeed:
    """Parse a feed document; raise SourceError when it is not a feed at all.

    ``headers`` are the HTTP response headers (the charset in Content-Type
    matters); ``url`` is the document's final URL, the base for relative
    links; ``now`` is the fetch time (future dates are clamped to it). Error
    messages show ``url`` without its user and password.
    """
    try:
        return _parse_feed(body, headers, url, source_name, now or datetime.now(UTC))
    except SourceError as exc:
        shown = redact_urls(str(exc))
        if shown == str(exc):
            raise
        raise SourceError(shown) from exc.__cause__
    except RecursionError:  # a parser recursing on absurd nesting
        raise SourceError(
            f"{redact_urls(url)}: the document is nested too deeply to read; "
            "check the url or tell the site's owner"
        ) from None


def _parse_feed(
    body: bytes, headers: Mapping[str, str], url: str, source_name: str, now: datetime
) -> ParsedFeed:
    if not body.strip(b" \t\r\n\x00\xef\xbb\xbf\xff\xfe"):
        raise SourceError(f"{url} returned an empty document, not a feed; check the url")
    if body.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")):
        # never inflated here: a gzip inside the server's gzip is a compression bomb
        raise SourceError(
            f"{url} returned compressed data (gzip, bzip2, xz or zstd), not a feed; the server "
            "compresses it twice or serves a compressed file; tell the site's owner"
        )
    if looks_like_json(body):
        from publisher.adapters.sources.jsonfeed import parse_json_feed

        return parse_json_feed(body, url, source_name, now)
    if looks_like_html(body, headers):
        raise SourceError(f"{url} returned an HTML page, not a feed; check the url")
    return _parse_xml(body, headers, url, source_name, now)


def _parse_xml(
    body: bytes, headers: Mapping[str, str], url: str, source_name: str, now: datetime
) -> ParsedFeed:
    response_headers = {
        name: value for name in _HEADERS_FOR_FEEDPARSER if (value := _header(headers, name))
    }
    # No content-location for feedparser: it would resolve relative guids
    # against the feed URL, and a feed that moves would re-key every item.
    # Links, media and bodies are resolved against ``base`` here instead.
    base = http_url(url, None)
    # feedparser's own pass over each body's URIs is skipped where it would
    # only trim them: it resolves against xml:base alone (it gets no URL),
    # so without a ``base`` attribute anywhere it has nothing to resolve
    # against; :func:`_body` trims and resolves in the one pass it makes
    # anyway. A fifth of feedparser's work on a blog's feed.
    own_pass = base is not None and not _BASE_ATTRIBUTE.search(body)
    # Nor is its sanitiser run (a third of its work): every body is made
    # plain text by :mod:`publisher.core.render.html`, which drops scripts,
    # styles and the rest itself, and nothing here writes a body out as
    # HTML. Only item keys made from a body (no id, no link) are made from
    # the sanitised body, as they were before (see :func:`_key_body`).
    import feedparser  # here: a run whose feeds did not change never loads it

    try:
        parsed: Any = feedparser.parse(
            io.BytesIO(body),
            response_headers=response_headers,
            resolve_relative_uris=not own_pass,
            sanitize_html=False,
        )
    except Exception as exc:  # feedparser bugs on hostile input must not crash a poll
        raise SourceError(
            f"{url}: the feed could not be parsed ({type(exc).__name__}: {exc}); "
            "check the url or tell the site's owner"
        ) from exc
    entries = list(parsed.get("entries") or [])
    version = str(parsed.get("version") or "")
    problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
    problem_name = type(problem).__name__ if problem is not None else ""
    serious = problem is not None and problem_name not in _HARMLESS_BOZO
    feed_info = parsed.get("feed") or {}

    if not entries:
        if not version and not feed_info.get("title"):
            if looks_like_html(body, headers):
                raise SourceError(f"{url} returned an HTML page, not a feed; check the url")
            if _first_element(_head(body)) is None:
                raise SourceError(
                    f"{url} returned a document without any content, not a feed; check the url"
                )
            if serious:
                raise SourceError(
                    f"{url}: not a readable feed ({_describe(problem)}); check the url"
                )
            raise SourceError(f"{url}: the document is not RSS, Atom or JSON Feed; check the url")
        if serious and (_ITEM_TAG.search(_ascii(body)) or not _ROOT_END.search(_ascii(body))):
            raise SourceError(
                f"{url}: the feed is broken before its first entry ({_describe(problem)}); "
                "it may have been cut off; it will be retried, tell the site's owner if it lasts"
            )

    warnings: list[str] = []
    if problem is not None and problem_name != "NonXMLContentType":
        if serious:
            warnings.append(
                f"the feed is not well-formed ({_describe(problem)}); read what could be"
            )
        else:
            warnings.append(f"the feed's encoding is wrong or missing ({_describe(problem)})")

    keys = Keyring()
    items: list[Item] = []
    for index, entry in enumerate(entries, start=1):
        where = f"entry {index}"
        try:
            item = _entry_to_item(entry, base, source_name, now, where, warnings, own_pass)
        except Exception as exc:  # one broken entry never spoils the feed
            warnings.append(f"{where}: skipped, it could not be read ({type(exc).__name__}: {exc})")
            continue
        if item is None:
            continue
        claim_key(
            keys,
            item,
            items,
            where,
            warnings,
            noun="entry",
            key_body=partial(_key_body, entry, base, own_pass),
        )

    title = html_to_text(str(feed_info.get("title") or ""))
    link = http_url(feed_info.get("link"), base)
    return ParsedFeed(title=title, link=link, items=items, warnings=warnings, version=version)


def _describe(problem: object) -> str:
    text = str(problem).strip().splitlines()[0] if str(problem).strip() else ""
    name = type(problem).__name__
    return f"{name}: {text}" if text else name


def _entry_to_item(
    entry: Any,
    base: str | None,
    source_name: str,
    now: datetime,
    where: str,
    warnings: list[str],
    trim: bool = False,
) -> Item | None:
    title = _title(entry)
    html, text = _body(entry, base, trim)
    if html and nesting_depth(html) > MAX_DEPTH:
        warnings.append(f"{where}: skipped, {TOO_DEEP}")
        return None
    link = http_url(entry.get("link"), base)
    media = _media(entry, base)
    if not (title or html.strip() or text.strip() or link or media):
        warnings.append(f"{where}: skipped, it has no title, text, link or media")
        return None
    published = _date(entry)
    published = clamp_future(published, now, where, warnings)
    author = html_to_text(str(entry.get("author") or "")) or None
    categories = _categories(entry)
    body = html or text
    guid = entry.get("id")
    if not isinstance(guid, str):
        guid = None
    usable = usable_guid(guid)
    key_body = body if usable or link or not html else _key_body(entry, base, trim)
    key = item_key(usable, link, title, key_body)
    return Item(
        source=source_name,
        key=key,
        title=title,
        html=html,
        text=text,
        link=link,
        author=author,
        published=published,
        categories=categories,
        attached=media,
        body_base=base or "",
        content_hash=RAW_BODY + content_hash(title, body, link),
    )


def _key_body(entry: Any, base: str | None, trim: bool) -> str:
    """The body item keys are made from when the entry has neither id nor
    link: as feedparser's sanitiser leaves it, as every such key was made
    before the sanitiser was left out (a state keeps them for ``remember``)."""
    html, text = _body(entry, base, trim, sanitize=True)
    return html or text


def _title(entry: Any) -> str:
    raw = entry.get("title")
    if not isinstance(raw, str):
        return ""
    detail = entry.get("title_detail") or {}
    kind = str(detail.get("type") or "")
    if "html" in kind or "<" in raw or "&" in raw:
        return html_to_text(raw)
    return " ".join(raw.split())


#: The attributes feedparser's resolver rewrites.
_URI_NAMES = frozenset(
    [
        "href",
        "src",
        "cite",
        "background",
        "action",
        "longdesc",
        "profile",
        "usemap",
        "classid",
        "codebase",
        "data",
        "poster",
    ]
)
_EQUALS = re.compile(r"=\s*")
_SCHEME = re.compile(r"\s*[a-zA-Z][a-zA-Z0-9+.-]*:")


def _uri_attributes(html: str) -> tuple[bool, bool]:
    """``(relative, padded)``: whether one of the attributes feedparser's
    resolver rewrites has a value that is not absolute (no ``scheme:``), and
    one a quoted value that starts or ends with white space (its pass trims
    those). feedparser resolved a body's URIs against its xml:base only (it
    is given no document URL, see :func:`_parse_xml`): a body with neither
    is not parsed a second time.

    One scan for ``=`` (a few in a body), the name before each looked at
    only then: a pattern starting with the twelve names cost 50 µs a body.
    """
    relative = padded = False
    for match in _EQUALS.finditer(html):
        if not _uri_name_before(html, match.start()):
            continue
        at = match.end()
        quote = html[at : at + 1]
        if quote in ('"', "'"):
            close = html.find(quote, at + 1)
            inner = html[at + 1 :] if close < 0 else html[at + 1 : close]
            if inner[:1].isspace() or (close >= 0 and inner[-1:].isspace()):
                padded = True
            at += 1
        if not _SCHEME.match(html, at):
            relative = True
        if relative and padded:
            break
    return relative, padded


def _uri_name_before(html: str, equals: int) -> bool:
    """Whether the word before ``html[equals]`` (``=``; white space between
    allowed) is one of :data:`_URI_NAMES`, as a whole word: ``data-src`` is
    ``src``, ``datasrc`` is nothing."""
    end = equals
    while end > 0 and html[end - 1].isspace():
        end -= 1
    start = end
    while start > 0 and html[start - 1].isalpha() and end - start <= 10:
        start -= 1
    if start > 0 and (html[start - 1].isalnum() or html[start - 1] == "_"):
        return False
    return html[start:end].lower() in _URI_NAMES


#: An ``xml:base`` (or ``base``) attribute, which feedparser resolves against.
_BASE_ATTRIBUTE = re.compile(rb"base\s*=", re.IGNORECASE)


def _body(
    entry: Any, base: str | None, trim: bool = False, sanitize: bool = False
) -> tuple[str, str]:
    """``(html, text)``: the entry's content, else its summary; relative URLs
    in HTML resolved against the entry's xml:base and the document URL.
    ``trim``: feedparser did not trim the URLs (see :func:`_parse_xml`);
    ``sanitize``: the HTML as feedparser's sanitiser leaves it (see
    :func:`_key_body`)."""
    candidates: list[tuple[str, str, str]] = []
    for content in entry.get("content") or []:
        value = content.get("value")
        if isinstance(value, str) and value.strip():
            kind = str(content.get("type") or "text/html")
            candidates.append((kind, value, str(content.get("base") or "")))
    # prefer HTML content over a plain-text alternative
    candidates.sort(key=lambda triple: "html" not in triple[0])
    if not candidates:
        summary = entry.get("summary")
        if isinstance(summary, str) and summary.strip():
            detail = entry.get("summary_detail") or {}
            kind = str(detail.get("type") or "text/html")
            candidates.append((kind, summary, str(detail.get("base") or "")))
    if not candidates:
        return "", ""
    kind, value, own_base = candidates[0]
    if "html" not in kind:
        return "", value.strip()
    from feedparser.urls import resolve_relative_uris

    if sanitize:
        from feedparser.sanitizer import _sanitize_html

        value = _sanitize_html(value, "utf-8", kind)
    full_base = http_url(own_base, base) if own_base else base
    relative, padded = _uri_attributes(value) if "=" in value else (False, False)
    if trim and padded:
        # feedparser's own pass, as it would have run (no base: it trims)
        value = resolve_relative_uris(value, "", "utf-8", "text/html")
        relative = _uri_attributes(value)[0]
    if full_base and relative:
        value = resolve_relative_uris(value, full_base, "utf-8", "text/html")
    return value.strip(), ""


_DATE_FIELDS = ("published_parsed", "updated_parsed", "created_parsed")


def _date(entry: Any) -> datetime | None:
    for name in _DATE_FIELDS:
        if isinstance(entry, dict):
            # The stored value itself: feedparser's own ``get`` maps a missing
            # updated_parsed to published_parsed (tried just before) with a
            # DeprecationWarning, which cost a catch_warnings per entry.
            value = dict.get(entry, name)
        else:
            with pywarnings.catch_warnings():
                pywarnings.simplefilter("ignore", DeprecationWarning)
                value = entry.get(name)
        if isinstance(value, time.struct_time | tuple) and len(value) >= 6:
            try:
                return datetime.fromtimestamp(calendar.timegm(tuple(value)), UTC)
            except (OverflowError, ValueError, OSError):
                continue
    return None


def _categories(entry: Any) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for tag in entry.get("tags") or []:
        term = tag.get("term") or tag.get("label")
        if isinstance(term, str):
            text = html_to_text(term)
            if text:
                seen.setdefault(text, None)
    return tuple(seen)


def _media(entry: Any, base: str | None) -> tuple[MediaCandidate, ...]:
    """The media the entry names (its body's pictures are found only when it
    is rendered: see :attr:`publisher.core.items.Item.media`)."""
    found: list[MediaCandidate] = []
    seen: set[str] = set()

    def add(candidate: MediaCandidate) -> None:
        if candidate.url and candidate.url not in seen:
            seen.add(candidate.url)
            found.append(candidate)

    for enclosure in entry.get("enclosures") or []:
        url = http_url(enclosure.get("href") or enclosure.get("url"), base)
        if url is None:
            continue
        mime = enclosure.get("type") or None
        add(
            MediaCandidate(
                url=url,
                kind=guess_kind(mime, url),
                mime=mime,
                length=parse_length(enclosure.get("length")),
                origin="enclosure",
            )
        )
    for content in entry.get("media_content") or []:
        url = http_url(content.get("url"), base)
        if url is None:
            continue
        mime = content.get("type") or None
        add(
            MediaCandidate(
                url=url,
                kind=guess_kind(mime, url, content.get("medium")),
                mime=mime,
                length=parse_length(content.get("filesize") or content.get("fileSize")),
                origin="media:content",
            )
        )
    for thumbnail in entry.get("media_thumbnail") or []:
        url = http_url(thumbnail.get("url"), base)
        if url is None:
            continue
        add(MediaCandidate(url=url, kind="image", origin="media:thumbnail"))
    return tuple(found)
