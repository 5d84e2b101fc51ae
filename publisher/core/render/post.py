"""An :class:`~publisher.core.items.Item` as the text of a post or a picture caption.

Pure functions: item (and template, style, limits) in, text and the
decisions taken out. Lengths are UTF-16 code units
(:func:`~publisher.core.render.text.utf16_len`).

The text follows the source's :class:`~publisher.core.render.style.TextStyle`:
links inside the body inline, as footnotes or dropped; tracking parameters
removed from every URL (the item's link too); ``format = "viber"`` puts the
title in bold and maps the body's formatting to Viber's markup.

A template is a :meth:`str.format` string over :data:`TEMPLATE_FIELDS`; a
field may carry a cap, ``{text:280}``: that field is cut at a sentence or
word boundary with an ellipsis to at most 280 characters (links inside are
never cut; ``{link}`` is never cut). Any other format spec is Python's.

What gives way when a post is too long, in order:

1. the body (``{text}`` / ``{summary}``) is cut at a sentence or word
   boundary (never inside a URL; footnotes whose mark was cut go too);
2. the body is left out, then the title is cut;
3. only if the link and the template's own words cannot fit on their own is
   the whole post cut (and the link with it).

The link is otherwise never cut. A text longer than a text post can be is
cut, or split into marked posts (:func:`render_posts`).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from publisher.core.items import Decision, Item
from publisher.core.limits import CAPTION_MAX, TEXT_MAX
from publisher.core.render.html import Body, html_to_body, html_to_text
from publisher.core.render.links import clean_url, hashtags
from publisher.core.render.markup import neutralise
from publisher.core.render.style import TextStyle
from publisher.core.render.text import (
    normalize_blank_lines,
    split_text,
    truncate,
    utf16_len,
)

__all__ = [
    "TEMPLATE_FIELDS",
    "CaptionResult",
    "RenderedPosts",
    "RenderedText",
    "check_template",
    "format_published",
    "item_body",
    "item_title",
    "render_caption",
    "render_posts",
    "render_text",
]

TEMPLATE_FIELDS = (
    "title",
    "text",
    "link",
    "author",
    "published",
    "source",
    "summary",
    "hashtags",
)
_BODY_FIELDS = frozenset({"text", "summary"})
#: A body cut shorter than this (UTF-16 units) says nothing: it is left out instead.
_MIN_BODY = 16
_FORMATTER = string.Formatter()
_FIELD_OF = {"summary": "text"}
_EMPTY = Body("")
_DEFAULT_STYLE = TextStyle()
_FOOTNOTE_MARK = re.compile(r"\[(\d{1,4})\]")
_MARKUP = re.compile("[*_~`\u2060]")


@dataclass(frozen=True)
class RenderedText:
    text: str
    decisions: tuple[Decision, ...] = ()


@dataclass(frozen=True)
class RenderedPosts:
    """The text posts of an item: one, or several parts of a long text."""

    texts: tuple[str, ...]
    decisions: tuple[Decision, ...] = ()


@dataclass(frozen=True)
class CaptionResult:
    #: The picture's ``text`` (may be "").
    caption: str
    #: Text posts to send after the picture, when the caption could not hold
    #: it all: the whole text, split as a text post's is (``(1/2)``...).
    follow_up: tuple[str, ...]
    decisions: tuple[Decision, ...] = ()


def format_published(when: datetime | None) -> str:
    """``2024-05-01 14:00 UTC``; a naive datetime is taken to be UTC; None gives ""."""
    if when is None:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def item_title(item: Item) -> str:
    """The title as one clean line (tags and entities resolved)."""
    return " ".join(html_to_text(item.title).split())


def _item_body(item: Item, style: TextStyle) -> Body:
    link = (item.link or "").strip() or None
    if item.html.strip():
        body = html_to_body(item.html, style, base_url=link, own_link=link)
        if body.text:
            return body
    return html_to_body(item.text, style, base_url=link, own_link=link) if item.text else Body("")


def item_body(item: Item, style: TextStyle | None = None) -> str:
    """The body as clean text: from ``html`` if it yields any text, else
    ``text`` (read as HTML when it plainly holds escaped HTML); plain with
    links dropped unless a ``style`` is given."""
    if style is None:
        style = TextStyle(links="drop")
    return _item_body(item, style).text


def check_template(template: str) -> str | None:
    """What is wrong with ``template``, in words, or None when it is usable."""
    try:
        for _, name, spec, conversion in _FORMATTER.parse(template):
            if name is None:
                continue
            spec = spec or ""
            base = name.split(".", 1)[0].split("[", 1)[0]
            if base not in TEMPLATE_FIELDS:
                fields = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
                return f"{base!r} is not a field; use {fields}"
            # Plain named fields only: {title.upper} would post "<built-in method…>".
            if name != base or conversion:
                shown = name + (f"!{conversion}" if conversion else "")
                return f"{{{shown}}}: only plain fields are allowed; write {{{base}}}"
            if spec and not spec.isdigit():
                return (
                    f"{{{name}:{spec}}}: after the colon only a length cap is allowed, "
                    f"e.g. {{{name}:200}}"
                )
            if spec.isdigit() and int(spec) < 1:
                return f"{{{name}:{spec}}}: a cap must be at least 1 character"
        _apply(template, lambda _name, _cap: "")
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
        return f"it cannot be applied ({type(exc).__name__}: {exc}); write fields as {{title}}"
    return None


@dataclass(frozen=True)
class _Parts:
    title: str
    #: The body as shown now (cut, perhaps); a prefix of ``full.text`` plus an ellipsis.
    body: str
    link: str
    author: str
    published: str
    source: str
    hashtags: str = ""
    #: The whole body, with its footnotes and formatting marks.
    full: Body = _EMPTY
    style: TextStyle = _DEFAULT_STYLE
    #: Leave the title out of the default layout (the body starts with it).
    hide_title: bool = False


def _plain(text: str) -> str:
    return " ".join(_MARKUP.sub("", text).split()).casefold()


def _starts_with(body: str, title: str) -> bool:
    if not title:
        return False
    return _plain(body).startswith(_plain(title))


def _show_title(parts: _Parts, title: str) -> str:
    return f"*{title}*" if title and parts.style.viber else title


def _show_body(full: Body, cut: str) -> str:
    """The body as posted: ``cut`` with a formatting pair it broke undone and
    the footnotes its marks still point at."""
    if not cut:
        return ""
    if cut == full.text:
        kept = len(cut)
    else:
        stem = cut[:-1] if cut.endswith("…") else cut
        kept = len(stem.rstrip())
    text = cut
    for mark in sorted(full.marks, key=lambda m: m.start, reverse=True):
        if mark.start < kept < mark.end + mark.width:
            text = text[: mark.start] + text[mark.start + mark.width :]
    if full.footnotes:
        numbers = [int(n) for n in _FOOTNOTE_MARK.findall(cut[:kept])]
        last = max((n for n in numbers if 1 <= n <= len(full.footnotes)), default=0)
        if last:
            notes = "\n".join(f"[{i}] {url}" for i, url in enumerate(full.footnotes[:last], 1))
            text = f"{text}\n\n{notes}"
    return text


def _cut_to(full: str, cap: int, show: Callable[[str], str]) -> str:
    """The longest cut of ``full`` (by :func:`truncate`) whose shown form fits ``cap``."""
    cut = full
    budget = utf16_len(full)
    while utf16_len(show(cut)) > cap:
        over = utf16_len(show(cut)) - cap
        budget -= max(1, over)
        if budget <= 0:
            return ""
        cut = truncate(full, budget)
    return cut


def _field(parts: _Parts, name: str, cap: int | None) -> str:
    if name == "title":
        title = parts.title
        if cap is not None:
            title = _cut_to(title, cap, lambda t: _show_title(parts, t))
        return _show_title(parts, title)
    if name in _BODY_FIELDS:
        body = parts.body
        if cap is not None and utf16_len(_show_body(parts.full, body)) > cap:
            body = _cut_to(parts.full.text, cap, lambda b: _show_body(parts.full, b))
        return _show_body(parts.full, body)
    if name == "hashtags":
        tags = parts.hashtags.split()
        while cap is not None and tags and utf16_len(" ".join(tags)) > cap:
            tags.pop()
        return " ".join(tags)
    value: str = getattr(parts, name)
    if cap is not None and name != "link":  # a link is never cut
        value = truncate(value, cap)
    return value


def _apply(template: str, value: Callable[[str, int | None], str]) -> str:
    out: list[str] = []
    for literal, name, spec, conversion in _FORMATTER.parse(template):
        out.append(literal)
        if name is None:
            continue
        spec = spec or ""
        base = name.split(".", 1)[0].split("[", 1)[0]
        if base not in TEMPLATE_FIELDS:
            raise KeyError(base)
        if spec.isdigit() and name == base and not conversion:
            out.append(value(base, int(spec)))
            continue
        obj, _ = _FORMATTER.get_field(name, (), {base: value(base, None)})
        obj = _FORMATTER.convert_field(obj, conversion)
        out.append(_FORMATTER.format_field(obj, spec))
    return "".join(out)


def _compose(parts: _Parts, template: str | None) -> str:
    if template is None:
        body = _show_body(parts.full, parts.body)
        hide = parts.hide_title and _starts_with(parts.body, parts.title)
        title = "" if hide else _show_title(parts, parts.title)
        return "\n\n".join(p for p in (title, body, parts.link) if p)
    return normalize_blank_lines(
        _apply(template, lambda name, cap: _field(parts, _FIELD_OF.get(name, name), cap))
    )


def _field_uses(template: str | None) -> dict[str, int]:
    """How many times each field appears in the template (the default: once each)."""
    if template is None:
        return {"title": 1, "text": 1}
    uses: dict[str, int] = {}
    for _, field_name, _, _ in _FORMATTER.parse(template):
        if field_name is None:
            continue
        base = field_name.split(".", 1)[0].split("[", 1)[0]
        key = "text" if base in _BODY_FIELDS else base
        uses[key] = uses.get(key, 0) + 1
    return uses


def _shrink(
    parts: _Parts, template: str | None, limit: int, field: Literal["title", "body"], uses: int
) -> tuple[_Parts, str]:
    """Cut ``field`` until the composed text fits ``limit``, or empty it."""
    original = parts.full.text if field == "body" else getattr(parts, field)
    text = _compose(parts, template)
    budget = utf16_len(getattr(parts, field))
    while utf16_len(text) > limit and budget > 0:
        budget -= max(1, math.ceil((utf16_len(text) - limit) / max(uses, 1)))
        cut = truncate(original, max(budget, 0))
        kept = cut.rstrip("…").strip()
        if not kept or (field == "body" and utf16_len(kept) < _MIN_BODY):
            cut = ""
        elif field == "body" and parts.hide_title and not _starts_with(cut, parts.title):
            cut = ""  # a body cut inside the title it repeats: show the title instead
        parts = replace(parts, title=cut) if field == "title" else replace(parts, body=cut)
        text = _compose(parts, template)
        if not cut:
            break
    return parts, text


def _change(what: str, before: str, after: str, limit: int) -> Decision:
    if after:
        detail = f"{what} cut from {utf16_len(before)} to {utf16_len(after)} characters"
    else:
        detail = f"{what} of {utf16_len(before)} characters left out"
    return Decision("truncated", f"{detail} to fit {limit}")


def _fit(parts: _Parts, template: str | None, limit: int) -> tuple[str, list[Decision]]:
    text = _compose(parts, template)
    if utf16_len(text) <= limit:
        return text, []
    decisions: list[Decision] = []
    uses = _field_uses(template)
    if parts.body and uses.get("text"):
        before = parts.body
        parts, text = _shrink(parts, template, limit, "body", uses["text"])
        decisions.append(_change("text", before, parts.body, limit))
    if utf16_len(text) > limit and parts.title and uses.get("title"):
        before = parts.title
        parts, text = _shrink(parts, template, limit, "title", uses["title"])
        decisions.append(_change("title", before, parts.title, limit))
    if utf16_len(text) > limit:
        full = text
        text = truncate(text, limit)
        decisions.append(
            Decision(
                "truncated",
                f"post cut from {utf16_len(full)} to {utf16_len(text)} characters to fit "
                f"{limit}; the link and the template's fixed text alone are too long",
            )
        )
    return text, decisions


def _parts(item: Item, style: TextStyle) -> tuple[_Parts, list[Decision]]:
    title = neutralise(item_title(item))
    body = _item_body(item, style)
    tags = hashtags(item.categories, style.max_hashtags)
    link = (item.link or "").strip()
    shown_link = clean_url(link, style.clean_links)
    notes = [Decision("text", note) for note in body.notes]
    if shown_link != link:
        notes.append(Decision("links", "tracking parameters removed from the item's link"))
    parts = _Parts(
        title=title,
        body=body.text,
        link=shown_link,
        author=" ".join((item.author or "").split()),
        published=format_published(item.published),
        source=item.source,
        hashtags=tags,
        full=body,
        style=style,
        hide_title=_starts_with(body.text, title),
    )
    return parts, notes


def _render(parts: _Parts, template: str | None, limit: int) -> RenderedText:
    decisions: list[Decision] = []
    if template is not None:
        try:
            _compose(parts, template)
        except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
            decisions.append(
                Decision(
                    "fallback",
                    f"template could not be applied ({type(exc).__name__}: {exc}); "
                    "used the default layout (title, text, link)",
                )
            )
            template = None
    text, cut = _fit(parts, template, limit)
    return RenderedText(text, (*decisions, *cut))


def render_text(
    item: Item,
    template: str | None = None,
    limit: int = TEXT_MAX,
    style: TextStyle | None = None,
) -> RenderedText:
    """The text of a post for ``item``, at most ``limit`` UTF-16 units.

    ``template`` is a :meth:`str.format` string over :data:`TEMPLATE_FIELDS`
    (``summary`` is ``text``; ``published`` reads ``2024-05-01 14:00 UTC``;
    ``hashtags`` are the categories as ``#Tags``), a field may carry a cap
    (``{text:280}``); runs of blank lines it leaves are collapsed. Without
    one: the title (unless the body starts with it), the body and the link,
    separated by blank lines, empty parts left out. A template that fails is
    replaced by the default (decision ``fallback``).
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0, not {limit}")
    parts, notes = _parts(item, style or TextStyle())
    rendered = _render(parts, template, limit)
    return RenderedText(rendered.text, (*notes, *rendered.decisions))


def render_posts(
    item: Item,
    template: str | None = None,
    style: TextStyle | None = None,
    overflow: Literal["split", "truncate"] = "split",
    max_length: int | None = None,
    limit: int = TEXT_MAX,
) -> RenderedPosts:
    """The text post(s) for ``item``.

    With ``max_length`` the post is an excerpt of at most that many
    characters (title and link kept, the body cut). Otherwise a text over
    ``limit`` is cut to it (``overflow = "truncate"``) or split
    (``"split"``) into posts of at most ``limit`` at paragraph or sentence
    boundaries, each marked ``(1/3)``, the link whole and last.
    """
    if overflow not in ("split", "truncate"):
        raise ValueError(f'overflow must be "split" or "truncate", not {overflow!r}')
    style = style or TextStyle()
    if max_length is not None:
        rendered = render_text(item, template, min(limit, max_length), style)
        return RenderedPosts((rendered.text,), rendered.decisions)
    parts, notes = _parts(item, style)
    whole = _render(parts, template, 10 * limit + utf16_len(parts.full.text))
    if utf16_len(whole.text) <= limit or overflow == "truncate" or not whole.text.strip():
        rendered = _render(parts, template, limit)
        return RenderedPosts((rendered.text,), (*notes, *rendered.decisions))
    texts = tuple(split_text(whole.text, limit))
    split = Decision(
        "split",
        f"text of {utf16_len(whole.text)} characters is over the {limit}-character limit "
        f"of a text post: split into {len(texts)} posts, marked (1/{len(texts)})",
    )
    return RenderedPosts(texts, (*notes, *whole.decisions, split))


def render_caption(
    item: Item,
    template: str | None = None,
    overflow: Literal["split", "truncate"] = "split",
    caption_limit: int = CAPTION_MAX,
    text_limit: int = TEXT_MAX,
    style: TextStyle | None = None,
) -> CaptionResult:
    """The caption of a picture post for ``item``, and a follow-up text post if needed.

    When the whole text fits in ``caption_limit`` it is the caption. Otherwise,
    with ``overflow="split"``, the caption is short (the title and the link,
    or without a title the start of the text) and ``follow_up`` carries the
    whole text: one text post, or several of at most ``text_limit`` marked
    ``(1/3)`` as :func:`render_posts` splits; with ``"truncate"`` the caption
    is the text cut to ``caption_limit``, link kept, and nothing follows.
    """
    if overflow not in ("split", "truncate"):
        raise ValueError(f'overflow must be "split" or "truncate", not {overflow!r}')
    style = style or TextStyle()
    parts, notes = _parts(item, style)
    full = _render(parts, template, text_limit)
    if utf16_len(full.text) <= caption_limit:
        return CaptionResult(full.text, (), (*notes, *full.decisions))
    if overflow == "truncate":
        short = _render(parts, template, caption_limit)
        return CaptionResult(short.text, (), (*notes, *short.decisions))
    if parts.title:
        short = _render(replace(parts, body="", hide_title=False), None, caption_limit)
        shown = "the title and the link"
    else:
        short = _render(parts, template, caption_limit)
        shown = "the start of the text"
    posts = render_posts(item, template, style, "split", limit=text_limit)
    length = utf16_len(full.text) if len(posts.texts) == 1 else sum(map(utf16_len, posts.texts))
    follows = "as a text post" if len(posts.texts) == 1 else f"as {len(posts.texts)} text posts"
    split = Decision(
        "split",
        f"text of {length} characters is over the {caption_limit}-character "
        f"caption limit: the picture carries {shown}, the whole text follows {follows}",
    )
    caption_notes = tuple(
        Decision(d.code, f"caption: {d.detail}") for d in short.decisions if d.code != "fallback"
    )
    text_notes = tuple(d for d in posts.decisions if d not in notes)
    return CaptionResult(short.text, posts.texts, (*notes, split, *text_notes, *caption_notes))
