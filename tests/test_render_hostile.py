"""Feed bodies reach the renderer as the feed gave them (feedparser's
sanitiser is not run, issue 14): every reader of HTML takes whatever a
hostile feed sends (broken declarations, lone surrogates, stray entities)
and raises nothing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.core.bodypictures import body_picture_urls
from publisher.core.items import Item
from publisher.core.render.html import html_to_body, html_to_text, image_urls, nesting_depth
from publisher.core.render.post import item_body
from publisher.core.render.style import TextStyle

PIECES = [
    "<", ">", "</", "<!", "<![", "<![CDATA[", "]]>", "<!--", "-->", "<?", "?>", "<!DOCTYPE",
    "<p>", "</p>", "<a href=", '"', "'", "=", " ", "<img src=x>", "<script>", "</script>",
    "<style>", "<table>", "<tr>", "<td>", "<li>", "<ul>", "<pre>", "</pre>", "<b>", "</i>",
    "&", "&#", "&#x", ";", "&amp;", "&#0;", "&#xD800;", "\x00", "\ud800", "<br/>", "<![if",
    "<![endif]>", "<![foo[", "<!x", "<math>", "<svg>", "<template>", "<textarea>", "<title>",
    "<plaintext>", "<xmp>", "a", "\n", "\u202e", "<h1>", "*", "_", "~", "`",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=30).map("".join))
def test_every_html_reader_takes_hostile_markup(markup: str) -> None:
    html_to_text(markup)
    html_to_body(markup, TextStyle())
    image_urls(markup, "https://e.org/")
    assert nesting_depth(markup) >= 0
    body_picture_urls(markup, "https://e.org/")
    item_body(Item(source="s", key="k", html=markup, link="https://e.org/1"))
