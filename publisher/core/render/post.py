"""An :class:`~publisher.core.items.Item` as the text of a post or a picture caption.

Pure functions: item (and template, limits) in, text and the decisions taken
out. Lengths are UTF-16 code units (:func:`~publisher.core.render.text.utf16_len`).

What gives way when a post is too long, in order:

1. the body (``{text}`` / ``{summary}``) is cut at a sentence or word boundary;
2. the body is left out, then the title is cut;
3. only if the link and the template's own words cannot fit on their own is
   the whole post cut (and the link with it).

The link is otherwise never cut.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from publisher.core.items import Decision, Item
from publisher.core.limits import CAPTION_MAX, TEXT_MAX
from publisher.core.render.html import html_to_text
from publisher.core.render.text import clean_plain_text, normalize_blank_lines, truncate, utf16_len

__all__ = [
    "TEMPLATE_FIELDS",
    "CaptionResult",
    "RenderedText",
    "format_published",
    "item_body",
    "item_title",
    "render_caption",
    "render_text",
]

TEMPLATE_FIELDS = ("title", "text", "link", "author", "published", "source", "summary")
_BODY_FIELDS = frozenset({"text", "summary"})
#: A body cut shorter than this (UTF-16 units) says nothing: it is left out instead.
_MIN_BODY = 16


@dataclass(frozen=True)
class RenderedText:
    text: str
    decisions: tuple[Decision, ...] = ()


@dataclass(frozen=True)
class CaptionResult:
    #: The picture's ``text`` (may be "").
    caption: str
    #: A text post to send after the picture, when the caption could not hold it all.
    follow_up: str | None
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


def item_body(item: Item) -> str:
    """The body as clean plain text: from ``html`` if it yields any text, else ``text``."""
    if item.html.strip():
        body = html_to_text(item.html)
        if body:
            return body
    return clean_plain_text(item.text)


@dataclass(frozen=True)
class _Parts:
    title: str
    body: str
    link: str
    author: str
    published: str
    source: str
    #: Leave the title out of the default layout (the body starts with it).
    hide_title: bool = False


def _starts_with(body: str, title: str) -> bool:
    if not title:
        return False
    return " ".join(body.split()).casefold().startswith(title.casefold())


def _compose(parts: _Parts, template: str | None) -> str:
    if template is None:
        title = "" if parts.hide_title and _starts_with(parts.body, parts.title) else parts.title
        return "\n\n".join(p for p in (title, parts.body, parts.link) if p)
    text = template.format(
        title=parts.title,
        text=parts.body,
        summary=parts.body,
        link=parts.link,
        author=parts.author,
        published=parts.published,
        source=parts.source,
    )
    return normalize_blank_lines(text)


def _field_uses(template: str | None) -> dict[str, int]:
    """How many times each field appears in the template (the default: once each)."""
    if template is None:
        return {"title": 1, "text": 1}
    uses: dict[str, int] = {}
    for _, field_name, _, _ in string.Formatter().parse(template):
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
    original = getattr(parts, field)
    text = _compose(parts, template)
    budget = utf16_len(original)
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


def _parts(item: Item) -> _Parts:
    title = item_title(item)
    body = item_body(item)
    return _Parts(
        title=title,
        body=body,
        link=(item.link or "").strip(),
        author=" ".join((item.author or "").split()),
        published=format_published(item.published),
        source=item.source,
        hide_title=_starts_with(body, title),
    )


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


def render_text(item: Item, template: str | None = None, limit: int = TEXT_MAX) -> RenderedText:
    """The text of a post for ``item``, at most ``limit`` UTF-16 units.

    ``template`` is a :meth:`str.format` string over ``title``, ``text``
    (alias ``summary``), ``link``, ``author``, ``published``
    (``2024-05-01 14:00 UTC``) and ``source``; runs of blank lines it leaves
    are collapsed. Without one: the title (unless the body starts with it),
    the body and the link, separated by blank lines, empty parts left out. A
    template that fails is replaced by the default (decision ``fallback``).
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0, not {limit}")
    return _render(_parts(item), template, limit)


def render_caption(
    item: Item,
    template: str | None = None,
    overflow: Literal["split", "truncate"] = "split",
    caption_limit: int = CAPTION_MAX,
    text_limit: int = TEXT_MAX,
) -> CaptionResult:
    """The caption of a picture post for ``item``, and a follow-up text post if needed.

    When the whole text fits in ``caption_limit`` it is the caption. Otherwise,
    with ``overflow="split"``, the caption is short (the title and the link,
    or without a title the start of the text) and ``follow_up`` carries the
    whole text (itself capped at ``text_limit``); with ``"truncate"`` the
    caption is the text cut to ``caption_limit``, link kept, and nothing follows.
    """
    if overflow not in ("split", "truncate"):
        raise ValueError(f'overflow must be "split" or "truncate", not {overflow!r}')
    parts = _parts(item)
    full = _render(parts, template, text_limit)
    if utf16_len(full.text) <= caption_limit:
        return CaptionResult(full.text, None, full.decisions)
    if overflow == "truncate":
        short = _render(parts, template, caption_limit)
        return CaptionResult(short.text, None, short.decisions)
    if parts.title:
        short = _render(replace(parts, body="", hide_title=False), None, caption_limit)
        shown = "the title and the link"
    else:
        short = _render(parts, template, caption_limit)
        shown = "the start of the text"
    split = Decision(
        "split",
        f"text of {utf16_len(full.text)} characters is over the {caption_limit}-character "
        f"caption limit: the picture carries {shown}, the whole text follows as a text post",
    )
    caption_notes = tuple(
        Decision(d.code, f"caption: {d.detail}") for d in short.decisions if d.code != "fallback"
    )
    return CaptionResult(short.text, full.text, (split, *full.decisions, *caption_notes))
