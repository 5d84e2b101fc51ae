"""HTML from feeds to clean plain text, and the images an HTML body offers.

Parsed with BeautifulSoup's ``html.parser`` (no lxml), walked once:
paragraphs and headings become blocks separated by a blank line, ``<br>`` a
line break, list items ``• `` or ``1. `` lines (nested lists indented),
blockquotes ``> `` lines, ``<pre>`` is kept as it is, data tables become
``a | b`` rows. Scripts, styles, forms, iframes, comments, hidden elements and
every image produce no text. Input without any HTML tag is taken as plain
text and keeps its line breaks; plain text that holds escaped HTML
(``&lt;p&gt;Hello&lt;br&gt;``) is read as the HTML it plainly is.

:func:`html_to_body` follows a :class:`~publisher.core.render.style.TextStyle`:
links (http(s) only) become ``text (URL)``, ``text [1]`` with a numbered list
kept apart (:attr:`Body.footnotes`), or text only; tracking parameters are
removed from every URL; with ``format = "viber"`` ``<b>``/``<strong>``,
``<i>``/``<em>``, ``<s>``/``<del>``/``<strike>``, ``<code>``/``<pre>`` and
headings become Viber's markup (:mod:`publisher.core.render.markup`). Runs of
feed text Viber would format by accident are neutralised in both formats.
:func:`html_to_text` is the plain reading (links keep their text only).
Bidirectional override and isolate characters (U+202A-U+202E,
U+2066-U+2069) are removed: they can make a post read differently from
what it says.
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from publisher.core.render import markup
from publisher.core.render.links import clean_url, clean_urls_in_text, web_url
from publisher.core.render.style import TextStyle
from publisher.core.render.text import clean_plain_text, normalize_blank_lines

# BeautifulSoup (with soupsieve, a tenth of a second) is imported by the first
# parse, not with this module: a poll that finds nothing new renders nothing.
if TYPE_CHECKING:
    from bs4 import BeautifulSoup
    from bs4.element import NavigableString, PreformattedString, Tag


def parse_html(markup_text: str, parse_only: Any = None) -> BeautifulSoup:
    """``markup_text`` parsed by ``html.parser``, whatever it holds: a
    declaration the parser rejects (``<![foo[``, an unknown marked section)
    is read as text, markup it still rejects as text altogether, a lone
    surrogate as U+FFFD (bs4 encodes short markup to UTF-8). The
    first call imports bs4 (and binds this module's names for its classes,
    which the walk uses). ``parse_only``: a ``SoupStrainer``."""
    global BeautifulSoup, NavigableString, PreformattedString, Tag
    from bs4 import BeautifulSoup
    from bs4.element import NavigableString, PreformattedString, Tag
    from bs4.exceptions import ParserRejectedMarkup

    text = markup_text
    for _ in range(3):
        try:
            return BeautifulSoup(text, "html.parser", parse_only=parse_only)
        except ParserRejectedMarkup:
            text = text.replace("<![", "&lt;![") if "<![" in text else htmllib.escape(text)
        except UnicodeError:  # a lone surrogate (JSON can carry one) as U+FFFD
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return BeautifulSoup("", "html.parser")


__all__ = [
    "Body",
    "first_image_url",
    "html_to_body",
    "html_to_text",
    "image_urls",
    "looks_like_html",
    "nesting_depth",
    "parse_html",
    "plain_to_body",
]

#: Elements nested deeper than this are absurd (real pages stay under 40): the
#: feed parsers skip such an item with a reason, and the renderers here give
#: its text flat rather than walk it (the walk recurses once per level).
MAX_DEPTH = 100

_TAG_NAMES = (
    "a|abbr|address|article|aside|audio|b|big|blockquote|body|br|button|canvas|caption|center|"
    "cite|code|col|colgroup|dd|del|details|dfn|div|dl|dt|em|embed|figcaption|figure|font|footer|"
    "form|h[1-6]|head|header|hr|html|i|iframe|img|input|ins|kbd|label|li|link|main|mark|meta|"
    "nav|noscript|object|ol|option|p|picture|pre|q|s|samp|script|section|select|small|source|"
    "span|strike|strong|style|sub|summary|sup|svg|table|tbody|td|template|textarea|tfoot|th|"
    "thead|time|title|tr|tt|u|ul|var|video|wbr"
)
_HTML_HINT = re.compile(rf"<(?:!--|!doctype\b|/?(?:{_TAG_NAMES})(?:\s[^<>]*)?/?>)", re.IGNORECASE)
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


def _words(spaced: str) -> frozenset[str]:
    return frozenset(spaced.split())


#: Elements whose content is never text for a reader.
_DROP = _words(
    """
    script style noscript iframe frame frameset form template svg canvas object embed
    video audio head title meta link button input select option textarea map math img
    picture source
    """
)
#: Blocks separated from their neighbours by a blank line.
_PARAGRAPH = _words(
    """
    p h1 h2 h3 h4 h5 h6 figure address details dl hr
    """
)
#: Blocks that only start a new line.
_LINE = _words(
    """
    div section article header footer main aside nav figcaption dt dd summary center
    fieldset legend caption tr
    """
)
_BLOCKISH = _PARAGRAPH | _LINE | frozenset({"br", "ul", "ol", "li", "blockquote", "pre", "table"})

_LAYOUT_HINT = sorted(_BLOCKISH - {"tr", "caption"})

_WHITESPACE = re.compile("[ \t\n\r\f\v\u00a0\u2000-\u200a\u202f\u205f]+")
_INVISIBLE = re.compile("[\u200b\u2060\ufeff\u00ad\u180e\u202a-\u202e\u2066-\u2069]")
_DISPLAY_NONE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)(?:\s[^<>]*?)?(/?)>")
_VOID = _words("area base br col embed hr img input link meta param source track wbr")


def nesting_depth(text: str) -> int:
    """How deep the elements of the HTML ``text`` nest (0 for plain text).

    A scan of the tags first; only what that scan finds deeper than
    :data:`MAX_DEPTH` is parsed to be sure (unclosed tags make the scan
    over-count). Never recursive.
    """
    depth = deepest = 0
    for match in _TAG.finditer(text):
        closing, name, self_closing = match.groups()
        if closing:
            depth = max(0, depth - 1)
        elif not self_closing and name.lower() not in _VOID:
            depth += 1
            deepest = max(deepest, depth)
    if deepest <= MAX_DEPTH:
        return deepest
    return _parsed_depth(parse_html(text))


def _parsed_depth(root: Tag) -> int:
    deepest = 0
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.contents if isinstance(child, Tag))
    return deepest


def _flat(soup: BeautifulSoup) -> str:
    """The text of absurdly nested HTML, without walking it."""
    return clean_plain_text(_WHITESPACE.sub(" ", soup.get_text(" ")).strip())


def looks_like_html(s: str) -> bool:
    """True when ``s`` contains a known HTML tag, a comment or a doctype
    (``a < b`` or ``x<y`` do not count)."""
    return _HTML_HINT.search(s) is not None


# --------------------------------------------------------------------------
# HTML to text


class _Writer:
    """Collects inline text, collapsing whitespace, with line breaks owed
    between blocks (at most one blank line)."""

    def __init__(self, keep_newlines: bool) -> None:
        self.parts: list[str] = []
        self.breaks = 0
        self.space = False
        self.keep_newlines = keep_newlines
        #: Opening formatting sentinels owed to the next text emitted.
        self.pending = ""

    def text(self, s: str) -> None:
        s = _INVISIBLE.sub("", s)
        if self.keep_newlines and "\n" in s:
            for i, piece in enumerate(s.replace("\r\n", "\n").split("\n")):
                if i:
                    self.br()
                self._inline(piece)
        else:
            self._inline(s)

    def _inline(self, s: str) -> None:
        s = _WHITESPACE.sub(" ", s)
        if not s:
            return
        if s[0] == " ":
            self.space = True
        trailing = s[-1] == " "
        s = s.strip(" ")
        if s:
            self.emit(s)
        if trailing:
            self.space = True

    def emit(self, s: str) -> None:
        if self.parts:
            if self.breaks:
                self.parts.append("\n" * self.breaks)
            elif self.space:
                self.parts.append(" ")
        self.parts.append(self.pending + s)
        self.pending = ""
        self.breaks = 0
        self.space = False

    def open_mark(self, sentinel: str) -> None:
        self.pending += sentinel

    def close_mark(self, opener: str, closer: str) -> None:
        if self.pending.endswith(opener):  # nothing was written inside
            self.pending = self.pending[: -len(opener)]
        elif self.parts:
            self.parts.append(closer)

    def suffix(self, s: str) -> None:
        """Text glued to what was just written (a link's URL after its text)."""
        if self.parts:
            self.parts.append(s)

    def block(self, level: int) -> None:
        if self.parts:
            self.breaks = max(self.breaks, level)

    def br(self) -> None:
        if self.parts:
            self.breaks = min(self.breaks + 1, 2)

    def raw(self, s: str, level: int) -> None:
        self.block(level)
        if s:
            self.emit(s)
        self.block(level)

    def result(self) -> str:
        return "".join(self.parts)


_PLAIN = TextStyle(links="drop")


@dataclass(frozen=True)
class _Context:
    keep_newlines: bool = False
    #: Nesting depth of lists (a nested list is not set off by blank lines).
    depth: int = 0
    #: Tags to skip while rendering (a cell's nested cells, an item's nested items:
    #: html.parser nests unclosed ``<li>``/``<td>`` instead of closing them).
    skip: frozenset[str] = frozenset()
    style: TextStyle = _PLAIN
    #: The links found so far (shared by every context of one document).
    links: _Links | None = None
    #: Inside a formatting run already (runs do not nest).
    formatted: bool = False


@dataclass
class _Links:
    base: str | None
    #: The item's own link: a link to it is not repeated in the text.
    own: str | None
    footnotes: list[str]
    #: Links whose URL was written into the text.
    shown: int = 0


_FORMATS = {
    "b": markup.BOLD,
    "strong": markup.BOLD,
    "i": markup.ITALIC,
    "em": markup.ITALIC,
    "s": markup.STRIKE,
    "del": markup.STRIKE,
    "strike": markup.STRIKE,
    "code": markup.MONO,
    "kbd": markup.MONO,
    "tt": markup.MONO,
    "samp": markup.MONO,
}
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})


def _hidden(tag: Tag) -> bool:
    if tag.has_attr("hidden"):
        return True
    style = tag.get("style")
    return isinstance(style, str) and _DISPLAY_NONE.search(style) is not None


def _render(node: Tag, ctx: _Context) -> str:
    writer = _Writer(ctx.keep_newlines)
    _walk(node, writer, ctx)
    return normalize_blank_lines(writer.result())


def _walk(node: Tag, w: _Writer, ctx: _Context) -> None:
    for child in node.children:
        if isinstance(child, Tag):
            if child.name not in ctx.skip:
                _element(child, w, replace(ctx, skip=frozenset()))
        elif isinstance(child, NavigableString) and not isinstance(child, PreformattedString):
            w.text(str(child))


def _element(tag: Tag, w: _Writer, ctx: _Context) -> None:
    name = tag.name.lower()
    if name in _DROP or _hidden(tag):
        return
    # Inside a list item, paragraphs only start a new line: lists stay compact.
    paragraph = 2 if ctx.depth == 0 else 1
    if name == "br":
        w.br()
    elif name == "a" and ctx.links is not None:
        _link(tag, w, ctx, ctx.links)
    elif name in _FORMATS and ctx.style.viber and not ctx.formatted:
        _formatted(tag, w, ctx, _FORMATS[name])
    elif name in _HEADINGS and ctx.style.viber and not ctx.formatted:
        w.block(paragraph)
        _formatted(tag, w, ctx, markup.BOLD)
        w.block(paragraph)
    elif name in ("ul", "ol", "li"):
        w.raw(_list(tag, ctx), paragraph)
    elif name == "blockquote":
        inner = _render(tag, replace(ctx, depth=0))
        quoted = "\n".join(f"> {line}" if line else ">" for line in inner.split("\n"))
        w.raw(quoted if inner else "", paragraph)
    elif name == "pre":
        text = _preformatted(tag)
        if text and ctx.style.viber and not ctx.formatted:
            text = markup.MONO[0] + text + markup.MONO[1]
        w.raw(text, paragraph)
    elif name == "table":
        _table(tag, w, ctx)
    elif name in _PARAGRAPH or name in _LINE:
        level = paragraph if name in _PARAGRAPH else 1
        w.block(level)
        _walk(tag, w, ctx)
        w.block(level)
    else:
        _walk(tag, w, ctx)


def _formatted(tag: Tag, w: _Writer, ctx: _Context, pair: tuple[str, str]) -> None:
    """``tag``'s content inside a formatting run, when it stays within one block."""
    if tag.find(list(_BLOCKISH)) is not None:
        _walk(tag, w, ctx)
        return
    w.open_mark(pair[0])
    _walk(tag, w, replace(ctx, formatted=True))
    w.close_mark(*pair)


def _bare(url: str) -> str:
    lower = url.casefold().rstrip("/")
    for prefix in ("https://", "http://", "www."):
        lower = lower.removeprefix(prefix)
    return lower


def _link(tag: Tag, w: _Writer, ctx: _Context, links: _Links) -> None:
    """A link as the style says: ``text (URL)``, ``text [n]`` or the text alone."""
    url = web_url(_attr(tag, "href"), links.base)
    if url is None or ctx.style.links == "drop":
        _walk(tag, w, ctx)
        return
    from publisher.core.identity import normalise_link

    shown = clean_url(url, ctx.style.clean_links)
    words = " ".join(tag.get_text().split())
    if words and _bare(words) in (_bare(url), _bare(shown)):
        w.text(shown)  # the text is the URL already
        return
    _walk(tag, w, ctx)
    if not words or (links.own and normalise_link(url) == normalise_link(links.own)):
        return  # a picture's link, or "read more" to the item itself (posted last anyway)
    links.shown += 1
    if ctx.style.links == "inline":
        w.suffix(f" ({shown})")
        return
    if shown not in links.footnotes:
        links.footnotes.append(shown)
    w.suffix(f" [{links.footnotes.index(shown) + 1}]")


def _list_items(tag: Tag) -> Iterator[Tag]:
    """The items of a list, with unclosed ``<li>`` (nested by html.parser) flattened."""
    children = [tag] if tag.name == "li" else list(tag.children)
    for child in children:
        if isinstance(child, Tag) and child.name == "li":
            yield child
            yield from (
                item
                for nested in child.find_all("li", recursive=False)
                for item in _list_items(nested)
            )


def _list(tag: Tag, ctx: _Context) -> str:
    ordered = tag.name == "ol" or (
        tag.name == "li" and isinstance(tag.parent, Tag) and tag.parent.name == "ol"
    )
    start = tag.get("start")
    number = int(start) if isinstance(start, str) and start.strip().isdigit() else 1
    inner = replace(ctx, depth=ctx.depth + 1, skip=frozenset({"li"}))
    lines: list[str] = []
    for item in _list_items(tag):
        content = _render_item(item, inner)
        marker = f"{number}. " if ordered else "• "
        number += 1
        if not content:
            continue
        first, *rest = content.split("\n")
        lines.append(marker + first)
        pad = " " * len(marker)
        lines.extend(pad + line if line else "" for line in rest)
    return "\n".join(lines)


def _render_item(item: Tag, ctx: _Context) -> str:
    writer = _Writer(ctx.keep_newlines)
    for child in item.children:
        if isinstance(child, Tag):
            if child.name != "li":
                _element(child, writer, replace(ctx, skip=frozenset()))
        elif isinstance(child, NavigableString) and not isinstance(child, PreformattedString):
            writer.text(str(child))
    return normalize_blank_lines(writer.result())


def _preformatted(tag: Tag) -> str:
    text = _INVISIBLE.sub("", tag.get_text()).replace("\r\n", "\n").expandtabs(4)
    text = text.replace("\u00a0", " ")
    return normalize_blank_lines(text)


def _table(tag: Tag, w: _Writer, ctx: _Context) -> None:
    cells = [
        cell
        for cell in tag.find_all(["td", "th"])
        if isinstance(cell, Tag) and cell.find_parent("table") is tag
    ]
    level = 2 if ctx.depth == 0 else 1
    layout = any(cell.find(_LAYOUT_HINT) is not None for cell in cells)
    if layout:
        # A table used for page layout: its cells are just blocks in a row.
        w.block(level)
        for cell in cells:
            w.raw(_render(cell, replace(ctx, skip=frozenset({"td", "th", "tr"}))), level)
        w.block(level)
        return
    rows: list[str] = []
    for row in tag.find_all("tr"):
        if not isinstance(row, Tag) or row.find_parent("table") is not tag:
            continue
        texts = []
        for cell in row.find_all(["td", "th"]):
            if isinstance(cell, Tag) and cell.find_parent("tr") is row:
                text = _render(cell, replace(ctx, skip=frozenset({"td", "th", "tr"})))
                if text:
                    texts.append(" ".join(text.split()))
        if texts:
            rows.append(" | ".join(texts))
    if not rows:  # cells without rows
        _walk(tag, w, ctx)
        return
    w.raw("\n".join(rows), level)


def _decode_entities(text: str) -> str:
    return _ENTITY.sub(lambda m: htmllib.unescape(m.group()), text)


#: Escaped markup of a known tag (``&lt;br&gt;``, ``&lt;p class="x"&gt;``).
_ESCAPED_TAG = re.compile(rf"&lt;/?(?:{_TAG_NAMES})(?:\s[^<>]*?)?/?&gt;", re.IGNORECASE)


def escaped_html(text: str) -> str | None:
    """The HTML that plain ``text`` plainly holds escaped (``&lt;p&gt;Hi&lt;/p&gt;``):
    at least one escaped known tag and no real one; else None."""
    if "&lt;" not in text or looks_like_html(text) or not _ESCAPED_TAG.search(text):
        return None
    decoded = _decode_entities(text)
    return decoded if looks_like_html(decoded) else None


@dataclass(frozen=True)
class Body:
    """An item's body as it is posted."""

    text: str
    #: The links of ``footnotes`` mode, numbered from 1 in ``text`` (``[1]``).
    footnotes: tuple[str, ...] = ()
    #: Where the formatting symbols in ``text`` are (``format = "viber"``).
    marks: tuple[markup.Mark, ...] = ()
    #: What was done on the way, for the item's decisions.
    notes: tuple[str, ...] = ()


_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def _finish(
    text: str, style: TextStyle, footnotes: tuple[str, ...] = (), notes: tuple[str, ...] = ()
) -> Body:
    cleaned = clean_urls_in_text(text, style.clean_links)
    said = list(notes)
    if cleaned != text:
        said.append("tracking parameters removed from the links in the text")
    neutral = markup.neutralise(cleaned)
    inert = neutral.count(markup.WORD_JOINER) - cleaned.count(markup.WORD_JOINER)
    if inert:
        said.append(f"{inert} run(s) of *, _, ~ or ``` in the text made inert (not formatting)")
    finished, marks = markup.finish(neutral, style.viber)
    if marks:
        said.append(f"{len(marks)} run(s) of Viber formatting (bold, italic, strike, monospace)")
    return Body(finished, footnotes, marks, tuple(said))


def _bidi_note(text: str) -> tuple[str, ...]:
    found = len(_BIDI.findall(text))
    if not found:
        return ()
    return (f"{found} bidirectional override character(s) removed",)


def plain_to_body(text: str, style: TextStyle) -> Body:
    """Plain text as a body: tidied, URLs cleaned, accidental formatting neutralised."""
    return _finish(markup.strip_sentinels(clean_plain_text(text)), style, notes=_bidi_note(text))


def html_to_body(
    markup_text: str, style: TextStyle, base_url: str | None = None, own_link: str | None = None
) -> Body:
    """An HTML fragment (or plain text) as a body written the way ``style`` says.

    Relative links are resolved against ``base_url``; a link to ``own_link``
    (the item's link, posted last anyway) keeps its text only.
    """
    if not markup_text:
        return Body("")
    markup_text = markup.strip_sentinels(markup_text)
    notes = list(_bidi_note(markup_text))
    if not looks_like_html(markup_text):
        unescaped = escaped_html(markup_text)
        if unescaped is None:
            return plain_to_body(_decode_entities(markup_text), style)
        markup_text = unescaped
        notes.append("plain text holding escaped HTML read as HTML")
    soup = parse_html(markup_text)
    if _parsed_depth(soup) > MAX_DEPTH:
        notes.append(f"HTML nested more than {MAX_DEPTH} levels deep: its text kept flat")
        return _finish(markup.strip_sentinels(_flat(soup)), style, notes=tuple(notes))
    keep_newlines = "\n" in markup_text and soup.find(list(_BLOCKISH)) is None
    links = _Links(base_url, own_link, [])
    text = _render(soup, _Context(keep_newlines=keep_newlines, style=style, links=links))
    if links.shown:
        how = "as footnotes" if style.links == "footnotes" else "inline"
        notes.append(f"{links.shown} link(s) in the text kept {how}")
    return _finish(text, style, tuple(links.footnotes), tuple(notes))


def html_to_text(markup_text: str) -> str:
    """Clean plain text from an HTML fragment or document.

    Text without any HTML tag is treated as plain text: its line breaks are
    kept and only well-formed entities (``&amp;``, ``&#8217;``) are decoded
    (unless it plainly holds escaped HTML, which is read as HTML). HTML that
    has no block elements and no ``<br>`` but does have newlines (common in
    feeds made from chat posts) keeps those newlines too. Links keep their
    text only; nothing is neutralised.
    """
    if not markup_text:
        return ""
    if not looks_like_html(markup_text):
        unescaped = escaped_html(markup_text)
        if unescaped is None:
            return clean_plain_text(_decode_entities(markup_text))
        markup_text = unescaped
    soup = parse_html(markup_text)
    if _parsed_depth(soup) > MAX_DEPTH:
        return _flat(soup)
    keep_newlines = "\n" in markup_text and soup.find(list(_BLOCKISH)) is None
    return _render(soup, _Context(keep_newlines=keep_newlines))


# --------------------------------------------------------------------------
# Images

#: Hosts that serve tracking pixels, counters or feed decorations, never content.
_TRACKER_HOSTS = _words(
    """
    feeds.feedburner.com feedproxy.google.com pixel.wp.com stats.wordpress.com
    www.google-analytics.com google-analytics.com ssl.google-analytics.com
    stats.g.doubleclick.net ad.doubleclick.net pixel.quantserve.com
    sb.scorecardresearch.com b.scorecardresearch.com pi.feedsportal.com
    da.feedsportal.com feeds.feedblitz.com mc.yandex.ru counter.yadro.ru
    top-fwz1.mail.ru www.assoc-amazon.com ir-na.amazon-adsystem.com pixel.mathtag.com
    bat.bing.com analytics.twitter.com feeds.wordpress.com rss.buysellads.com
    www.facebook.com certify.alexametrics.com
    """
)
_TRACKER_PATH = re.compile(
    r"/~(?:r|ff)/|/__utm\.gif|/_/stat\b|/images/core/emoji/|/avatar/|"
    r"/(?:pixel|tracking|track|tracker|beacon|spacer|blank|1x1|transparent|open)\.(?:gif|png)$",
    re.IGNORECASE,
)
_TINY = re.compile(r"^\s*[0-2](?:\.0*)?\s*(?:px)?\s*$")
_STYLE_TINY = re.compile(r"(?:^|;)\s*(?:width|height)\s*:\s*[0-2](?:\.0*)?px", re.IGNORECASE)
_LAZY_ATTRS = ("data-src", "data-lazy-src", "data-original", "data-orig-file", "data-url")


def _attr(tag: Tag, name: str) -> str:
    value = tag.get(name)
    if isinstance(value, list):
        return " ".join(value)
    return value.strip() if isinstance(value, str) else ""


def _largest_in_srcset(srcset: str) -> str:
    best, best_size = "", -1.0
    for candidate in srcset.split(","):
        parts = candidate.split()
        if not parts:
            continue
        size = 1.0
        if len(parts) > 1 and parts[1][:-1].replace(".", "", 1).isdigit():
            size = float(parts[1][:-1])
        if size > best_size:
            best, best_size = parts[0], size
    return best


def _is_decoration(img: Tag) -> bool:
    if _hidden(img):
        return True
    if _TINY.match(_attr(img, "width")) or _TINY.match(_attr(img, "height")):
        return True
    if _STYLE_TINY.search(_attr(img, "style")):
        return True
    classes = _attr(img, "class").lower()
    return "emoji" in classes or "wp-smiley" in classes


def _resolve(src: str, base_url: str | None) -> str | None:
    src = src.strip()
    if not src or src.lower().startswith(("data:", "javascript:", "blob:", "about:")):
        return None
    if base_url:
        src = urljoin(base_url, src)
    elif src.startswith("//"):
        src = "https:" + src
    parts = urlsplit(src)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if parts.hostname.lower() in _TRACKER_HOSTS or _TRACKER_PATH.search(parts.path):
        return None
    return src


def _image_src(img: Tag, base_url: str | None) -> str | None:
    candidates = [_attr(img, "src"), *(_attr(img, a) for a in _LAZY_ATTRS)]
    for attr in ("srcset", "data-srcset"):
        srcset = _attr(img, attr)
        if srcset:
            candidates.append(_largest_in_srcset(srcset))
    for candidate in candidates:
        url = _resolve(htmllib.unescape(candidate), base_url) if candidate else None
        if url:
            return url
    return None


def image_urls(markup: str, base_url: str | None = None) -> list[str]:
    """Absolute http(s) URLs of the real images in ``markup``, in order, without
    repeats: ``<img src>`` (or its lazy-loading ``data-src``/``srcset``),
    resolved against ``base_url``; tracking pixels (1x1, known counters),
    ``data:`` URIs, emoji and avatar images are skipped."""
    if not markup or "<" not in markup:
        return []
    soup = parse_html(markup)
    found: list[str] = []
    for img in soup.find_all("img"):
        if not isinstance(img, Tag) or _is_decoration(img):
            continue
        url = _image_src(img, base_url)
        if url and url not in found:
            found.append(url)
    return found


def first_image_url(markup: str, base_url: str | None = None) -> str | None:
    """The first real image of ``markup`` (see :func:`image_urls`), or None."""
    urls = image_urls(markup, base_url)
    return urls[0] if urls else None
