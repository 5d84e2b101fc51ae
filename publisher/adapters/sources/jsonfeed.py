"""JSON Feed 1.0 / 1.1 (https://jsonfeed.org/version/1.1), with the standard library.

feedparser 6.0 cannot read JSON Feed, so this module does, following the
spec: top-level ``version``, ``title``, ``home_page_url``, ``feed_url``,
``items``; per item ``id``, ``url``, ``external_url``, ``title``,
``content_html``, ``content_text``, ``summary``, ``image``, ``banner_image``,
``date_published``, ``date_modified``, ``authors`` (1.1) / ``author`` (1.0),
``tags`` and ``attachments``. An item with a field of the wrong type is
skipped with a reason (a feed-level field of the wrong type is ignored with a
warning), never a crash; so is an item with nothing to post, or whose HTML
nests absurdly deep. A number of more than :data:`MAX_DIGITS` digits is
taken as a value of no type (Python refuses to convert such numbers), and
nesting deeper than the parser can follow refuses the document.

Dave Winer's "RSS in JSON" (``{"rss": {"channel": {"item": [...]}}}``) is
read too, since it maps directly onto RSS 2.0. Any other JSON is a
:class:`~publisher.core.errors.SourceError`.
"""

from __future__ import annotations

import email.utils
import json
from datetime import UTC, datetime
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
from publisher.core.identity import content_hash, item_key, usable_guid
from publisher.core.items import Item, MediaCandidate
from publisher.core.render.html import MAX_DEPTH, nesting_depth
from publisher.core.sourceurls import http_url

#: Integers longer than this are kept as :data:`_ABSURD`, never converted.
MAX_DIGITS = 100
VERSION_PREFIXES = ("https://jsonfeed.org/version/", "http://jsonfeed.org/version/")
KNOWN_VERSIONS = ("1", "1.0", "1.1")


class _Absurd:
    """A number too long to convert: of no JSON type a field may have."""

    def __repr__(self) -> str:
        return f"<a number of more than {MAX_DIGITS} digits>"


_ABSURD = _Absurd()


def _integer(digits: str) -> int | _Absurd:
    return int(digits) if len(digits) <= MAX_DIGITS else _ABSURD


def _real(digits: str) -> float | _Absurd:
    return float(digits) if len(digits) <= MAX_DIGITS * 4 else _ABSURD


def parse_json_feed(body: bytes, url: str, source_name: str, now: datetime) -> ParsedFeed:
    """Parse a JSON document that should be a JSON Feed (or RSS-in-JSON)."""
    try:
        data = json.loads(body, parse_int=_integer, parse_float=_real)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        detail = (
            f"{exc.msg} at line {exc.lineno} column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else str(exc)
        )
        raise SourceError(
            f"{url}: the JSON is not valid ({detail}); the document may be cut off; "
            "check the url or tell the site's owner"
        ) from exc
    except RecursionError:
        raise SourceError(
            f"{url}: the JSON is nested too deeply to read (broken or hostile); "
            "check the url or tell the site's owner"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("rss"), dict):
        return _parse_rss_in_json(data["rss"], url, source_name, now)
    if not isinstance(data, dict):
        raise SourceError(f"{url}: returned JSON that is not a JSON Feed; check the url")
    warnings: list[str] = []
    version = data.get("version")
    number = ""
    if isinstance(version, str) and version.startswith(VERSION_PREFIXES):
        number = version.rsplit("/", 1)[1]
        if number not in KNOWN_VERSIONS:
            warnings.append(f"unknown JSON Feed version {version!r}; read as version 1.1")
    elif isinstance(data.get("items"), list):
        warnings.append("no JSON Feed version given; read as version 1.1")
    else:
        raise SourceError(f"{url}: returned JSON that is not a JSON Feed; check the url")
    raw_items = data.get("items")
    if not isinstance(raw_items, list):
        warnings.append('"items" is missing or not a list; the feed has no items')
        raw_items = []

    base = http_url(url, None)
    feed_base = http_url(data.get("feed_url"), base) or base
    home = http_url(data.get("home_page_url"), feed_base)
    title = _string(data, "title", "feed", warnings) or ""
    feed_author = _author(data, "feed", [])

    keys = Keyring()
    items: list[Item] = []
    for index, raw in enumerate(raw_items, start=1):
        where = f"item {index}"
        if not isinstance(raw, dict):
            warnings.append(f"{where}: skipped, it is not an object")
            continue
        try:
            item = _item(raw, feed_base, source_name, now, where, warnings, feed_author)
        except _WrongType as exc:
            warnings.append(f"{where}: skipped, {exc}")
            continue
        except Exception as exc:  # one broken item never spoils the feed
            warnings.append(f"{where}: skipped, it could not be read ({type(exc).__name__}: {exc})")
            continue
        if item is None:
            continue
        claim_key(keys, item, items, where, warnings)
    return ParsedFeed(
        title=html_to_text(title),
        link=home,
        items=items,
        warnings=warnings,
        version=f"json{number or '1.1'}",
    )


def _string(obj: dict[str, Any], name: str, where: str, warnings: list[str]) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    warnings.append(f"{where}: {name!r} is not a string; ignored")
    return None


def _author(obj: dict[str, Any], where: str, warnings: list[str]) -> str | None:
    names: list[str] = []
    authors = obj.get("authors")
    if isinstance(authors, list):
        for author in authors:
            if isinstance(author, dict) and isinstance(author.get("name"), str):
                name = author["name"].strip()
                if name:
                    names.append(name)
    elif authors is not None:
        warnings.append(f"{where}: 'authors' is not a list; ignored")
    if not names:
        legacy = obj.get("author")
        if isinstance(legacy, dict) and isinstance(legacy.get("name"), str):
            name = legacy["name"].strip()
            if name:
                names.append(name)
        elif legacy is not None and not isinstance(legacy, dict):
            warnings.append(f"{where}: 'author' is not an object; ignored")
    return ", ".join(names) or None


def _date(obj: dict[str, Any], name: str, where: str, warnings: list[str]) -> datetime | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        warnings.append(f"{where}: {name!r} is not a string; ignored")
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        warnings.append(f"{where}: {name!r} is not an RFC 3339 date ({value!r}); ignored")
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


class _WrongType(ValueError):
    """An item's field has the wrong JSON type: the item is skipped."""


def _check_types(raw: dict[str, Any]) -> None:
    """Raise :class:`_WrongType` naming the first field of the wrong type."""
    for name in _STRING_FIELDS:
        value = raw.get(name)
        if value is not None and not isinstance(value, str):
            raise _WrongType(f"{name!r} is {_kind(value)}, not a string")
    value = raw.get("id")
    if value is not None and (isinstance(value, bool) or not isinstance(value, str | int | float)):
        raise _WrongType(f"'id' is {_kind(value)}, not a string")
    for name in ("attachments", "authors", "tags"):
        value = raw.get(name)
        if value is not None and not isinstance(value, list):
            raise _WrongType(f"{name!r} is {_kind(value)}, not a list")
    value = raw.get("author")
    if value is not None and not isinstance(value, dict):
        raise _WrongType(f"'author' is {_kind(value)}, not an object")


_STRING_FIELDS = (
    "url",
    "external_url",
    "title",
    "content_html",
    "content_text",
    "summary",
    "image",
    "banner_image",
    "date_published",
    "date_modified",
)


def _kind(value: object) -> str:
    if isinstance(value, _Absurd):
        return f"a number of more than {MAX_DIGITS} digits"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "a string"
    return "null"


def _item(
    raw: dict[str, Any],
    base: str | None,
    source_name: str,
    now: datetime,
    where: str,
    warnings: list[str],
    feed_author: str | None,
) -> Item | None:
    _check_types(raw)
    raw_id = raw.get("id")
    guid: str | None
    if isinstance(raw_id, str):
        guid = raw_id
    elif isinstance(raw_id, int | float) and not isinstance(raw_id, bool):
        guid = str(raw_id)  # JSON Feed 1.0 feeds in the wild use numbers
    else:
        guid = None
        if raw_id is not None:
            warnings.append(f"{where}: 'id' is not a string; ignored")
    title = html_to_text(_string(raw, "title", where, warnings) or "")
    html = (_string(raw, "content_html", where, warnings) or "").strip()
    if html and nesting_depth(html) > MAX_DEPTH:
        raise _WrongType(TOO_DEEP)
    text = (_string(raw, "content_text", where, warnings) or "").strip()
    summary = (_string(raw, "summary", where, warnings) or "").strip()
    if not html and not text and summary:
        text = summary
    link = http_url(raw.get("url"), base) or http_url(raw.get("external_url"), base)
    if raw.get("url") is not None and not isinstance(raw.get("url"), str):
        warnings.append(f"{where}: 'url' is not a string; ignored")

    media: list[MediaCandidate] = []
    seen: set[str] = set()

    def add(candidate: MediaCandidate) -> None:
        if candidate.url and candidate.url not in seen:
            seen.add(candidate.url)
            media.append(candidate)

    attachments = raw.get("attachments")
    if isinstance(attachments, list):
        for attachment in attachments:
            if not isinstance(attachment, dict):
                continue
            url = http_url(attachment.get("url"), base)
            if url is None:
                continue
            mime = (
                attachment.get("mime_type")
                if isinstance(attachment.get("mime_type"), str)
                else None
            )
            add(
                MediaCandidate(
                    url=url,
                    kind=guess_kind(mime, url),
                    mime=mime,
                    length=parse_length(attachment.get("size_in_bytes")),
                    origin="enclosure",
                )
            )
    elif attachments is not None:
        warnings.append(f"{where}: 'attachments' is not a list; ignored")
    for name in ("image", "banner_image"):
        url = http_url(raw.get(name), base)
        if url is not None:
            add(MediaCandidate(url=url, kind="image", origin=name))

    if not (title or html or text or link or media):
        warnings.append(f"{where}: skipped, it has no title, text, link or media")
        return None

    published = _date(raw, "date_published", where, warnings) or _date(
        raw, "date_modified", where, warnings
    )
    published = clamp_future(published, now, where, warnings)
    tags = raw.get("tags")
    categories = (
        tuple(dict.fromkeys(t.strip() for t in tags if isinstance(t, str) and t.strip()))
        if isinstance(tags, list)
        else ()
    )
    body = html or text
    return Item(
        source=source_name,
        key=item_key(usable_guid(guid), link, title, body),
        title=title,
        html=html,
        text=text if not html else "",
        link=link,
        author=_author(raw, where, warnings) or feed_author,
        published=published,
        categories=categories,
        attached=tuple(media),
        body_base=base or "",
        content_hash=content_hash(title, body, link),
    )


# --------------------------------------------------------------------------
# RSS in JSON (http://cyber.harvard.edu/rss/rss.html mapped to JSON)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _parse_rss_in_json(
    rss: dict[str, Any], url: str, source_name: str, now: datetime
) -> ParsedFeed:
    channel = rss.get("channel")
    if not isinstance(channel, dict):
        raise SourceError(f"{url}: RSS-in-JSON without a channel; not a feed; check the url")
    warnings: list[str] = []
    base = http_url(url, None)
    raw_items = channel.get("item")
    if isinstance(raw_items, dict):
        raw_items = [raw_items]
    if not isinstance(raw_items, list):
        raw_items = []
    keys = Keyring()
    items: list[Item] = []
    for index, raw in enumerate(raw_items, start=1):
        where = f"item {index}"
        if not isinstance(raw, dict):
            warnings.append(f"{where}: skipped, it is not an object")
            continue
        title = html_to_text(_text(raw.get("title")))
        html = _text(raw.get("description")).strip()
        if html and nesting_depth(html) > MAX_DEPTH:
            warnings.append(f"{where}: skipped, {TOO_DEEP}")
            continue
        link = http_url(raw.get("link"), base)
        guid_raw = raw.get("guid")
        guid = guid_raw.get("#value") if isinstance(guid_raw, dict) else guid_raw
        media: list[MediaCandidate] = []
        enclosure = raw.get("enclosure")
        if isinstance(enclosure, dict):
            enc_url = http_url(enclosure.get("url"), base)
            if enc_url:
                mime = _text(enclosure.get("type")) or None
                media.append(
                    MediaCandidate(
                        url=enc_url,
                        kind=guess_kind(mime, enc_url),
                        mime=mime,
                        length=parse_length(enclosure.get("length")),
                        origin="enclosure",
                    )
                )
        if not (title or html or link or media):
            warnings.append(f"{where}: skipped, it has no title, text, link or media")
            continue
        published: datetime | None = None
        date_text = _text(raw.get("pubDate"))
        if date_text:
            try:
                published = email.utils.parsedate_to_datetime(date_text)
            except (TypeError, ValueError, IndexError):
                warnings.append(f"{where}: pubDate {date_text!r} is not a date; ignored")
            else:
                if published.tzinfo is None:
                    published = published.replace(tzinfo=UTC)
                published = published.astimezone(UTC)
        published = clamp_future(published, now, where, warnings)
        categories_raw = raw.get("category")
        if isinstance(categories_raw, str | dict):
            categories_raw = [categories_raw]
        categories = tuple(
            _text(c.get("#value") if isinstance(c, dict) else c).strip()
            for c in (categories_raw if isinstance(categories_raw, list) else [])
        )
        item = Item(
            source=source_name,
            key=item_key(usable_guid(guid if isinstance(guid, str) else None), link, title, html),
            title=title,
            html=html,
            link=link,
            author=_text(raw.get("author")) or None,
            published=published,
            categories=tuple(c for c in categories if c),
            attached=tuple(media),
            body_base=base or "",
            content_hash=content_hash(title, html, link),
        )
        claim_key(keys, item, items, where, warnings)
    return ParsedFeed(
        title=html_to_text(_text(channel.get("title"))),
        link=http_url(channel.get("link"), base),
        items=items,
        warnings=warnings,
        version="rss-in-json",
    )
