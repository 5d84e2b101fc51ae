"""Issue 12, the text of posts, end to end: ``run --once`` and ``post`` to the
stand-in, which checks every post as Viber does."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from html import escape
from pathlib import Path
from typing import Any

import helpers
import pytest
from click.testing import CliRunner
from helpers import STANDIN_TOKEN, posted_texts, run_once

from publisher.adapters.httpserver import HTTPServer
from publisher.adapters.standin import ViberStandIn
from publisher.cli import cli
from publisher.core.limits import TEXT_MAX
from publisher.core.messages import utf16_len

ARTICLE = "https://example.org/posts/{n}?utm_source=rss&utm_medium=feed&id={n}"
BODY = (
    "<p>Read the <a href='https://example.org/stalls?utm_campaign=x&amp;fbclid=abc'>full "
    "stall map</a> and the <a href='https://example.org/hours'>opening hours</a> before "
    "you go. {filler}</p><p><a href='javascript:alert(1)'>Never this</a>.</p>"
)
FILLER = "The market has more stalls than ever this year, and the food is better too. " * 6


class _Feed:
    url = ""

    def document(self) -> bytes:
        items = "".join(
            f"<item><title>Market day {n}</title>"
            f"<link>{escape(ARTICLE.format(n=n))}</link>"
            f'<guid isPermaLink="false">market-{n}</guid>'
            f"<category>street food</category><category>Markets!</category>"
            f"<description>{escape(BODY.format(filler=FILLER))}</description></item>"
            for n in (1, 2)
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Markets</title><link>https://example.org/</link>{items}</channel></rss>"
        ).encode()

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = self.document()
        start_response("200 OK", [("Content-Type", "application/rss+xml")])
        return [body]


@pytest.fixture
def feed() -> Iterator[_Feed]:
    site = _Feed()
    with HTTPServer(site.app) as server:
        site.url = server.url + "/feed.xml"
        yield site


def _source(url: str, extra: str = "") -> str:
    return (
        f'[[sources]]\nname = "markets"\ntype = "rss"\nurl = "{url}"\nbackfill = 10\n'
        'template = "{title}\\n\\n{text}\\n\\n{hashtags}\\n\\n{link}"\n' + extra
    )


def test_run_once_keeps_links_without_tracking_and_adds_hashtags(
    tmp_path: Path, standin: ViberStandIn, feed: _Feed
) -> None:
    config = helpers.write_config(tmp_path, standin.api_url, rest=_source(feed.url))
    run_once(config)
    texts = posted_texts(standin)
    assert len(texts) == 2
    for n, text in zip((1, 2), sorted(texts), strict=True):
        assert "full stall map (https://example.org/stalls)" in text
        assert "opening hours (https://example.org/hours)" in text
        assert "utm_" not in text and "fbclid" not in text and "javascript" not in text
        assert "#StreetFood #Markets" in text
        assert text.endswith(f"https://example.org/posts/{n}?id={n}")  # its own link, last


def test_max_length_280_makes_every_post_an_excerpt_with_its_link_whole(
    tmp_path: Path, standin: ViberStandIn, feed: _Feed
) -> None:
    extra = 'max_length = 280\nlinks = "footnotes"\n'
    config = helpers.write_config(tmp_path, standin.api_url, rest=_source(feed.url, extra))
    run_once(config)
    texts = posted_texts(standin)
    assert len(texts) == 2
    for text in texts:
        assert utf16_len(text) <= 280, text
        assert text.startswith("Market day ")
        assert "…" in text  # the body was cut
        link = text.rsplit("\n", 1)[-1]
        assert link.startswith("https://example.org/posts/") and "?id=" in link
        for number, url in (("[1]", "https://example.org/stalls"),):
            if number in text.split("\n\n[1]")[0]:
                assert f"{number} {url}" in text  # a footnote kept with its mark


def test_a_markdown_note_posts_without_markdown_syntax(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    helpers.put(
        inbox,
        "001-weekly.md",
        "# Weekly notes\n\nSome **bold** words and a [link](https://example.org/a?utm_source=x)."
        "\n\n- one\n- two\n",
    )
    source = f'[[sources]]\nname = "notes"\ntype = "folder"\npath = "{inbox}"\nevery = "1s"\n'
    config = helpers.write_config(tmp_path, standin.api_url, rest=source)
    run_once(config)
    (text,) = posted_texts(standin)
    assert "#" not in text and "**" not in text and "](" not in text
    assert text.startswith("Weekly notes")
    assert "bold words and a link (https://example.org/a)." in text
    assert "• one\n• two" in text


def test_post_text_of_12000_characters_ending_in_a_url_posts_every_part_with_it_whole(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    url = "https://example.org/long/article?id=42&utm_source=cli"
    paragraph = "A sentence about the market that goes on for a while. " * 20
    words = "\n\n".join([paragraph.strip()] * 12)
    text = (words[: 12_000 - len(url) - 1] + " " + url)[:12_000]
    assert len(text) == 12_000 and text.endswith(url)
    config = helpers.write_config(tmp_path, standin.api_url)
    result = CliRunner().invoke(
        cli,
        ["--config", str(config), "post", "--text", text],
        env={"VIBER_AUTH_TOKEN": STANDIN_TOKEN},
    )
    assert result.exit_code == 0, result.output
    texts = posted_texts(standin)
    assert len(texts) == 2
    assert [t.split(" ", 1)[0] for t in texts] == ["(1/2)", "(2/2)"]
    assert all(utf16_len(t) <= TEXT_MAX for t in texts)
    assert texts[-1].endswith("https://example.org/long/article?id=42")
    for part in texts:
        for token in part.split():
            if token.startswith("https://"):
                assert token == "https://example.org/long/article?id=42"


def test_post_a_text_file_is_a_text_post(tmp_path: Path, standin: ViberStandIn) -> None:
    note = tmp_path / "note.txt"
    note.write_text("Hello from a file.\n", encoding="utf-8")
    config = helpers.write_config(tmp_path, standin.api_url)
    result = CliRunner().invoke(
        cli, ["--config", str(config), "post", str(note)], env={"VIBER_AUTH_TOKEN": STANDIN_TOKEN}
    )
    assert result.exit_code == 0, result.output
    assert [p.payload["type"] for p in standin.posts] == ["text"]
    assert posted_texts(standin) == ["Hello from a file."]
