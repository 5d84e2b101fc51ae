"""Markdown notes (``.md`` in a folder, ``post note.md``) as HTML (pure).

Converted with markdown-it-py (CommonMark, the library ``rich`` already
uses), raw HTML in the note left as text; strikethrough (``~~x~~``) and
tables are on. The HTML then goes the way of every feed body
(:func:`publisher.core.render.html.html_to_body`): headings, emphasis,
lists, links and code become Viber's markup or plain text per the source's
``format``, so no ``#``, ``**`` or ``[text](url)`` reaches a post.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

__all__ = ["markdown_to_html"]


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # imported with the first note read: a run without Markdown never loads it
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(
        ["strikethrough", "table"]
    )


def markdown_to_html(text: str) -> str:
    """The HTML of a Markdown ``text``."""
    html: str = _parser().render(text)
    return html
