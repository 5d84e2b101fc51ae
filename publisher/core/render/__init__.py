"""Render stage: an item's words made to fit Viber (pure functions, no I/O).

- :mod:`publisher.core.render.html`: feed HTML to clean plain text; the images it offers.
- :mod:`publisher.core.render.text`: UTF-16 length, grapheme clusters, truncation.
- :mod:`publisher.core.render.post`: the text of a post or a picture caption, from an
  item and an optional ``str.format`` template, within Viber's limits
  (``TEXT_MAX`` for text, ``CAPTION_MAX`` for a caption, from
  :mod:`publisher.core.limits`), the link kept intact; long texts split.
- :mod:`publisher.core.render.style`: a source's text settings (links, format, hashtags).
- :mod:`publisher.core.render.links`: clean URLs, http(s) only, hashtags.
- :mod:`publisher.core.render.markup`: Viber's ``*bold*`` markup: made, neutralised, shown.
- :mod:`publisher.core.render.markdown`: Markdown notes as HTML (markdown-it-py).
"""

from __future__ import annotations

from publisher.core.render.html import first_image_url, html_to_text, image_urls, looks_like_html
from publisher.core.render.markdown import markdown_to_html
from publisher.core.render.post import (
    TEMPLATE_FIELDS,
    CaptionResult,
    RenderedPosts,
    RenderedText,
    check_template,
    format_published,
    item_body,
    item_title,
    render_caption,
    render_posts,
    render_text,
)
from publisher.core.render.style import TextStyle
from publisher.core.render.text import (
    clean_plain_text,
    grapheme_boundaries,
    graphemes,
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
    "TextStyle",
    "check_template",
    "clean_plain_text",
    "first_image_url",
    "format_published",
    "grapheme_boundaries",
    "graphemes",
    "html_to_text",
    "image_urls",
    "item_body",
    "item_title",
    "looks_like_html",
    "markdown_to_html",
    "normalize_blank_lines",
    "render_caption",
    "render_posts",
    "render_text",
    "split_text",
    "truncate",
    "utf16_len",
]
