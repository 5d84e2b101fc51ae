"""Planning one poll: which items are new, filtered, held back by the
first-run backfill, or edited; pure, tested with tables of cases.

- :func:`matches_filters` applies a source's ``include``/``exclude`` patterns.
- :func:`select_backfill` chooses which items a brand-new source posts.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from publisher.core.config import SourceConfig
from publisher.core.identity import comparable
from publisher.core.items import Decision, Item

# --------------------------------------------------------------------------
# filters


@lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """``re:<regex>`` is a regular expression (case-insensitive); anything
    else is a word or phrase matched case-insensitively on word boundaries.

    Raises ``re.error`` for a bad regular expression (the config check
    should call this to report it).
    """
    if pattern.startswith("re:"):
        return re.compile(pattern[3:], re.IGNORECASE)
    words = pattern.strip()
    escaped = r"\s+".join(re.escape(word) for word in words.split())
    return re.compile(rf"(?<!\w){escaped}(?!\w)", re.IGNORECASE)


def _haystack(item: Item) -> str:
    text = item.text
    if item.html:
        text += "\n" + _strip_tags(item.html)
    return "\n".join((item.title, text, *item.categories))


_TAG = re.compile(r"<[^>]*>")


def _strip_tags(markup: str) -> str:
    return html.unescape(_TAG.sub(" ", markup))


def _first_match(patterns: Iterable[str], haystack: str) -> str | None:
    for pattern in patterns:
        try:
            regex = compile_pattern(pattern)
        except re.error:
            continue
        if regex.search(haystack):
            return pattern
    return None


def matches_filters(item: Item, include: Sequence[str], exclude: Sequence[str]) -> Decision | None:
    """None when ``item`` passes the source's filters, else a ``filtered`` decision.

    Patterns are searched in the title, the text (HTML tags stripped) and the
    categories. With ``include`` patterns at least one must match; no
    ``exclude`` pattern may match. A bad ``re:`` pattern never matches (the
    config check reports it).
    """
    haystack = _haystack(item)
    if include and _first_match(include, haystack) is None:
        shown = ", ".join(repr(p) for p in include)
        return Decision("filtered", f"matches none of include = [{shown}]")
    hit = _first_match(exclude, haystack)
    if hit is not None:
        return Decision("filtered", f"matches exclude pattern {hit!r}")
    return None


# --------------------------------------------------------------------------
# first run


def select_backfill(items: Sequence[Item], n: int) -> tuple[list[Item], list[Item]]:
    """On a source's first poll: ``(to_queue, to_mark_seen)``.

    ``to_queue`` is the newest ``n`` items, oldest first, ready to post in
    that order. Newest means by published time; undated items rank after
    dated ones, and among themselves by feed order (feeds list newest first),
    so when no item has a date the first ``n`` in feed order are taken. ``to_mark_seen``
    is everything else, in feed order, to remember without posting.
    """
    if n <= 0:
        return [], list(items)
    indexed = list(enumerate(items))

    def rank(pair: tuple[int, Item]) -> tuple[int, float, int]:
        index, item = pair
        if item.published is None:
            # Undated items rank after dated ones, in feed order.
            return (1, 0.0, index)
        return (0, -item.published.timestamp(), index)

    ranked = sorted(indexed, key=rank)
    chosen = ranked[:n]
    chosen_ids = {index for index, _ in chosen}
    # oldest first: by date ascending; undated by reversed feed order
    to_queue = [item for _, item in reversed(chosen)]
    to_mark_seen = [item for index, item in indexed if index not in chosen_ids]
    return to_queue, to_mark_seen


# --------------------------------------------------------------------------
# the planning decision for one poll


@dataclass(frozen=True)
class Planned:
    """What to do with one item of a poll.

    ``action``: ``queue`` (render and post it), ``update`` (an edited item
    reposted under ``on_update = "repost"``), ``seen`` (already known: nothing
    to do), ``filtered`` or ``backfill`` (remember it as seen, do not post).
    """

    item: Item
    action: str
    detail: str = ""


def plan_items(
    items: Sequence[Item],
    known_hash: Callable[[str], str | None],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    backfill: int | None = None,
    on_update: str = "ignore",
) -> list[Planned]:
    """Decide, for every item of one poll, whether it is posted.

    ``known_hash(key)`` gives the content hash of an item already seen (""
    when unknown), or None for a new item. ``backfill`` is set only on a
    feed's very first poll: just the newest ``backfill`` new items are
    queued, the rest remembered. Pure: the caller records the outcome.
    """
    planned: list[Planned] = []
    fresh: list[Item] = []
    for item in items:
        previous = known_hash(item.key)
        if previous is not None:
            edited = bool(
                item.content_hash
                and previous
                and comparable(previous, item.content_hash)
                and previous != item.content_hash
            )
            if edited and on_update == "repost":
                planned.append(Planned(item, "update", "edited since it was posted; reposted"))
            else:
                planned.append(Planned(item, "seen", "already seen"))
            continue
        held = matches_filters(item, include, exclude)
        if held is not None:
            planned.append(Planned(item, "filtered", held.detail))
            continue
        fresh.append(item)
    if backfill is not None:
        to_queue, to_skip = select_backfill(fresh, backfill)
        for item in to_skip:
            planned.append(
                Planned(
                    item,
                    "backfill",
                    f"first poll: only the newest {backfill} item(s) are posted (backfill)",
                )
            )
        fresh = list(to_queue)
    planned.extend(Planned(item, "queue") for item in fresh)
    return planned


def plan_source(
    source: SourceConfig,
    items: Sequence[Item],
    known_hash: Callable[[str], str | None],
    *,
    first_run: bool,
) -> list[Planned]:
    """:func:`plan_items` with a source's settings. Backfill applies on a
    source's very first poll only, when its read says so (feeds; a folder is
    an inbox, all of it is new)."""
    return plan_items(
        items,
        known_hash,
        include=source.include,
        exclude=source.exclude,
        backfill=source.backfill if first_run else None,
        on_update=source.on_update,
    )
