"""OPML subscription lists (Feedly, Inoreader, NetNewsWire, ...) → ``[[sources]]``.

:func:`parse_opml` reads the feeds out of an OPML 1.0 or 2.0 document:
outlines with an ``xmlUrl`` (any case; ``url`` on ``type="rss"`` outlines of
old exporters), at any depth, the category taken from the enclosing
outlines (``Tech/Linux``) or else from OPML 2.0's ``category`` attribute.

The XML is read with the standard library's expat parser, which refuses any
``<!DOCTYPE`` or ``<!ENTITY`` declaration at once: an OPML file never needs
one, and refusing them rules out entity-expansion bombs ("billion laughs")
and external entities, whatever the file's encoding.

:func:`append_sources` turns feeds into ``[[sources]]`` tables *appended* to
the text of an existing sources.toml, so the user's comments and layout stay
as they were. Names are slugs of the titles, made unique; feeds whose URL is
already configured (or appears twice in the OPML) are skipped.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element, TreeBuilder
from xml.parsers import expat

from publisher.core.config import parse_duration
from publisher.core.errors import PublisherError

#: OPML files larger than this are refused (the largest real ones are ~1 MB).
MAX_BYTES = 10 * 1024 * 1024
#: Names derived from titles are cut to this many characters.
MAX_NAME = 40


class OPMLError(PublisherError, ValueError):
    """The file is not a usable OPML subscription list."""


@dataclass(frozen=True)
class OPMLFeed:
    title: str
    xml_url: str
    html_url: str | None = None
    #: ``"Tech"``, ``"Tech/Linux"`` for nested folders; None when uncategorised.
    category: str | None = None


# --------------------------------------------------------------------------
# reading


class _Refused(Exception):
    pass


def _refuse_doctype(*args: Any) -> None:
    raise _Refused("DOCTYPE")


def _refuse_entity(*args: Any) -> None:
    raise _Refused("ENTITY")


def _refuse_external(*args: Any) -> int:
    raise _Refused("external ENTITY")


def _parse_xml(data: bytes) -> Element:
    builder = TreeBuilder()
    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_entity
    parser.UnparsedEntityDeclHandler = _refuse_entity
    parser.ExternalEntityRefHandler = _refuse_external
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    try:
        parser.Parse(data, True)
    except _Refused as exc:
        raise OPMLError(
            f"the file declares a {exc}; OPML never needs one, and it is refused so that "
            "entity bombs cannot be fed in. Export the OPML again from your feed reader"
        ) from None
    except expat.ExpatError as exc:
        raise OPMLError(
            f"is not well-formed XML ({expat.errors.messages[exc.code]} at line {exc.lineno}, "
            f"column {exc.offset}); export the OPML again from your feed reader"
        ) from None
    return builder.close()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1].lower()


def _attrs(element: Element) -> dict[str, str]:
    """Attribute names lower-cased, values stripped (exporters disagree on case)."""
    return {_local(k): v.strip() for k, v in element.attrib.items()}


def _clean(text: str) -> str:
    return " ".join(text.split())


def _feed_url(attrs: dict[str, str]) -> str | None:
    url = attrs.get("xmlurl")
    if not url and attrs.get("type", "").lower() in ("rss", "atom", "feed") and "url" in attrs:
        url = attrs["url"]
    return url or None


def parse_opml(data: bytes) -> list[OPMLFeed]:
    """The feeds of an OPML document, in document order; raises :class:`OPMLError`.

    Outlines whose URL is not http(s) are left out (:func:`read_opml` says which).
    """
    return read_opml(data)[0]


def read_opml(data: bytes) -> tuple[list[OPMLFeed], list[tuple[str, str]]]:
    """``(feeds, skipped)``: the feeds of an OPML document in document order,
    and each outline left out as ``(what it is called, why)``; raises
    :class:`OPMLError` when the document is not usable at all."""
    if len(data) > MAX_BYTES:
        raise OPMLError(f"is larger than {MAX_BYTES // (1024 * 1024)} MB; not an OPML export")
    root = _parse_xml(data)
    if _local(root.tag) != "opml":
        raise OPMLError(
            f"is XML but not OPML (its root element is <{root.tag}>, not <opml>); "
            "export the subscriptions as OPML from your feed reader"
        )
    body = next((child for child in root if _local(child.tag) == "body"), root)
    feeds: list[OPMLFeed] = []
    skipped: list[tuple[str, str]] = []
    _walk(body, (), feeds, skipped)
    return feeds, skipped


def _walk(
    element: Element,
    folders: tuple[str, ...],
    feeds: list[OPMLFeed],
    skipped: list[tuple[str, str]],
) -> None:
    for child in element:
        if _local(child.tag) != "outline":
            continue
        attrs = _attrs(child)
        label = _clean(attrs.get("title") or attrs.get("text") or "")
        url = _feed_url(attrs)
        if url is None:
            if not any(_local(c.tag) == "outline" for c in child):
                page = attrs.get("htmlurl") or attrs.get("url")
                what = "a link to a web page, not a feed" if page else "no feed address"
                skipped.append(
                    (label or page or "(an outline without a title)", f"{what} (no xmlUrl)")
                )
                continue
            # A folder: its outlines belong to this category.
            _walk(child, (*folders, label) if label else folders, feeds, skipped)
            continue
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            skipped.append(
                (
                    label or url,
                    f"its address {url} is not http(s)"
                    + (f" ({scheme}: feeds cannot be fetched)" if scheme else ""),
                )
            )
            continue
        category = "/".join(folders) or _category_attribute(attrs.get("category", ""))
        feeds.append(
            OPMLFeed(
                title=label or urlsplit(url).netloc,
                xml_url=url,
                html_url=attrs.get("htmlurl") or None,
                category=category or None,
            )
        )
        # Some exporters nest outlines under a feed; they are read too.
        _walk(child, folders, feeds, skipped)


def _category_attribute(value: str) -> str:
    """OPML 2.0: ``category="/Tech/Linux,/Other"`` → ``Tech/Linux``."""
    first = value.split(",", 1)[0].strip().strip("/")
    return "/".join(part.strip() for part in first.split("/") if part.strip())


# --------------------------------------------------------------------------
# writing


def slug(text: str) -> str:
    """``"Ars Technica — All"`` → ``"ars-technica-all"``; "" when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(words) > MAX_NAME:
        words = words[:MAX_NAME].rsplit("-", 1)[0] if "-" in words[:MAX_NAME] else words[:MAX_NAME]
    return words.strip("-")


def _host_slug(url: str) -> str:
    host = urlsplit(url).hostname or ""
    host = host.removeprefix("www.").removeprefix("feeds.")
    return slug(host.replace(".", "-"))


def feed_key(url: str) -> str:
    """What makes two feed URLs the same feed: case of the host, the scheme
    (http and https), a trailing slash and a fragment do not count."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if parts.port and parts.port not in (80, 443):
        host = f"{host}:{parts.port}"
    path = parts.path.rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    return f"{host}{path}{query}"


def _toml_string(value: str) -> str:
    out = []
    for char in value:
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _comment(text: str) -> str:
    return _clean("".join(c if c.isprintable() else " " for c in text))


def _unique(base: str, taken: set[str]) -> str:
    name = base
    n = 2
    while name in taken:
        name = f"{base}-{n}"
        n += 1
    taken.add(name)
    return name


def append_sources(
    toml_text: str,
    feeds: Iterable[OPMLFeed],
    existing_names: Iterable[str] = (),
    every: str = "30m",
    channels: Iterable[str] = (),
) -> tuple[str, list[tuple[str, OPMLFeed]], list[tuple[OPMLFeed, str]]]:
    """Append a ``[[sources]]`` table per new feed to ``toml_text``.

    Returns ``(new_text, added, skipped)``: ``added`` holds ``(name, feed)``,
    ``skipped`` holds ``(feed, reason)``. The existing text is kept byte for
    byte; names and URLs already in it (and ``existing_names``) are not reused.
    Raises :class:`OPMLError` when ``toml_text`` is not TOML or ``every`` is
    not a duration. ``channels`` become each new source's ``channels`` key.
    """
    routed = list(channels)
    try:
        parse_duration(every)
    except ValueError:
        raise OPMLError(f'--every {every!r} is not a duration; use e.g. "30m" or "2h"') from None
    try:
        current = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as exc:
        raise OPMLError(f"the config is not valid TOML ({exc}); fix it first") from None
    names = set(existing_names)
    urls: dict[str, str] = {}
    raw_sources = current.get("sources")
    for source in raw_sources if isinstance(raw_sources, list) else ():
        if not isinstance(source, dict):
            continue
        if isinstance(source.get("name"), str):
            names.add(source["name"])
        if isinstance(source.get("url"), str):
            urls[feed_key(source["url"])] = f"already configured as {source.get('name')!r}"

    added: list[tuple[str, OPMLFeed]] = []
    skipped: list[tuple[OPMLFeed, str]] = []
    blocks: list[str] = []
    for feed in feeds:
        key = feed_key(feed.xml_url)
        if key in urls:
            skipped.append((feed, urls[key]))
            continue
        name = _unique(slug(feed.title) or _host_slug(feed.xml_url) or "feed", names)
        urls[key] = f"already in this import as {name!r}"
        added.append((name, feed))
        lines = []
        about = _comment(feed.title)
        if feed.category:
            about += f" [{_comment(feed.category)}]"
        if about:
            lines.append(f"# {about}")
        if feed.html_url:
            lines.append(f"# {_comment(feed.html_url)}")
        lines += [
            "[[sources]]",
            f"name = {_toml_string(name)}",
            'type = "rss"',
            f"url = {_toml_string(feed.xml_url)}",
            f"every = {_toml_string(every)}",
        ]
        if routed:
            lines.append(f"channels = [{', '.join(_toml_string(c) for c in routed)}]")
        blocks.append("\n".join(lines))

    if not blocks:
        return toml_text, added, skipped
    newline = "\r\n" if "\r\n" in toml_text else "\n"
    head = toml_text
    if head and not head.endswith("\n"):
        head += newline
    if head.strip():
        head += newline
    text = f"# Imported from OPML: {len(blocks)} feed(s)\n\n" + "\n\n".join(blocks) + "\n"
    return head + text.replace("\n", newline), added, skipped
