"""Feed parsing over the whole corpus in tests/data/feeds, and specific cases."""

from __future__ import annotations

import functools
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from publisher.adapters.sources.feed import ParsedFeed, looks_like_html, parse_feed
from publisher.core.errors import SourceError
from publisher.core.render.html import html_to_text
from publisher.core.render.post import item_body

FEEDS = Path(__file__).parent / "data" / "feeds"
URL = "https://example.org/feeds/feed.xml"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

CORPUS = sorted(
    path.relative_to(FEEDS).as_posix()
    for path in FEEDS.rglob("*")
    if path.is_file()
    and path.suffix not in (".md", ".txt")
    and path.name != "index.json"
    and "LICENSES" not in path.parts
)

#: Documents that are not (usable) feeds: each must be a SourceError.
NOT_FEEDS = {
    "feed-rs/rss2/rss_2.0_invalid_1.xml": "broken before its first entry",
    "feed-rs/xml/xml_sample_1.xml": "not RSS, Atom or JSON Feed",
    "feedparser-encoding/bozo_invalid-bytes-with-bom.xml": "broken",
    "feedparser-illformed/aaa_illformed.xml": "broken",
    "feedparser-illformed/rss_empty_document.xml": "without any content",
    "gofeed/parser/universal/empty_feed.xml": "empty document",
    "gofeed/parser/universal/invalid.json": "JSON is not valid",
    "gofeed/parser/universal/unknown_feed.xml": "not RSS, Atom or JSON Feed",
    "miniflux/xml/iso88591.xml": "not RSS, Atom or JSON Feed",
    "miniflux/xml/iso88591_utf8_mismatch.xml": "not RSS, Atom or JSON Feed",
    "netnewswire/allthis-partial.json": "cut off",
}


@functools.cache
def parsed(name: str) -> ParsedFeed | SourceError:
    """The corpus document ``name`` parsed as served from ``URL`` at ``NOW``:
    its feed, or the SourceError it is. Each is parsed once per run (the
    corpus test and the specific tests below share it); results are read only."""
    try:
        return parse_feed((FEEDS / name).read_bytes(), {}, URL, "test", now=NOW)
    except SourceError as exc:
        return exc


def parse(name: str, url: str = URL, headers: dict[str, str] | None = None) -> ParsedFeed:
    """A corpus feed that must parse (from ``url`` with ``headers``)."""
    if url != URL or headers:
        return parse_feed((FEEDS / name).read_bytes(), headers or {}, url, "test", now=NOW)
    result = parsed(name)
    if isinstance(result, SourceError):
        raise result
    return result


def test_corpus_is_present() -> None:
    assert len(CORPUS) >= 290
    assert set(NOT_FEEDS) <= set(CORPUS)
    assert (FEEDS / "ORIGIN.md").is_file() and (FEEDS / "LICENSES").is_dir()


@pytest.mark.parametrize("name", CORPUS)
def test_every_corpus_feed_parses_or_is_a_source_error(name: str) -> None:
    result = parsed(name)
    if name in NOT_FEEDS:
        assert isinstance(result, SourceError), f"{name} parsed, but is not a feed"
        assert re.search(NOT_FEEDS[name], str(result)), str(result)
        assert URL in str(result)
        return
    assert isinstance(result, ParsedFeed), f"{name}: {result}"
    keys = [item.key for item in result.items]
    assert len(keys) == len(set(keys)), "keys must be unique within a feed"
    for item in result.items:
        assert item.source == "test"
        assert item.key.split(":", 1)[0] in ("id", "link", "hash")
        assert item.title or item.html or item.text or item.link or item.media
        assert "<" not in item.title or ">" not in item.title
        assert re.fullmatch(r"(raw:)?[0-9a-f]{64}", item.content_hash), item.content_hash
        if item.published is not None:
            assert item.published.tzinfo is not None
            assert item.published.utcoffset() == timedelta(0)
            assert item.published <= NOW + timedelta(days=1)
        if item.link is not None:
            assert item.link.startswith(("http://", "https://"))
        for media in item.media:
            assert media.url is not None and media.url.startswith(("http://", "https://"))
            assert media.kind in ("image", "video", "file", "unknown")
            assert media.length is None or media.length > 0


def test_misnamed_formats() -> None:
    assert parse("netnewswire/DaringFireball.rss").version == "atom10"
    assert parse("netnewswire/allthis.atom").version == "rss20"
    assert parse("feed-rs/rss2/rss_2.0_reddit.xml").version == "atom10"


def test_rss_in_json_is_read_sensibly() -> None:
    feed = parse("netnewswire/ScriptingNews.json")
    assert feed.version == "rss-in-json"
    assert feed.title == "Scripting News"
    assert len(feed.items) == 50


def test_json_that_is_not_a_feed() -> None:
    with pytest.raises(SourceError, match="JSON that is not a JSON Feed"):
        parse_feed(b'{"hello": "world"}', {}, URL, "s")
    with pytest.raises(SourceError, match="JSON that is not a JSON Feed"):
        parse_feed(b"[1, 2, 3]", {"content-type": "application/json"}, URL, "s")


@pytest.mark.parametrize(
    ("name", "title_part"),
    [
        ("netnewswire/kc0011.rss", "建国35周年纪念"),  # gb2312 declared
        ("miniflux/parser/no_encoding_ISO-8859-1.xml", "Perturbateurs endocriniens"),
        ("miniflux/parser/encoding_WINDOWS-1251.xml", None),
        ("netnewswire/donthitsave.xml", None),
    ],
)
def test_encodings(name: str, title_part: str | None) -> None:
    feed = parse(name)
    assert feed.items
    titles = " ".join(item.title for item in feed.items)
    assert "\ufffd" not in titles
    if title_part:
        assert title_part in titles


def test_latin1_without_declaration_decodes_accents() -> None:
    feed = parse("miniflux/parser/no_encoding_ISO-8859-1.xml")
    text = " ".join(i.title + i.html + i.text for i in feed.items)
    assert "é" in text


@pytest.mark.parametrize(
    "name",
    [
        "feedparser-encoding/utf-16le.xml",
        "feedparser-encoding/utf-16be-bom.xml",
        "feedparser-encoding/utf-16le-autodetect.xml",
        "feedparser-encoding/utf-32be-bom.xml",
    ],
)
def test_utf16_and_32(name: str) -> None:
    feed = parse(name)
    assert feed.version.startswith("rss")


def test_utf16_document_with_items() -> None:
    doc = (
        '<?xml version="1.0" encoding="utf-16"?><rss version="2.0"><channel><title>Ü</title>'
        "<item><title>Grüße</title><guid>a</guid></item></channel></rss>"
    )
    feed = parse_feed(doc.encode("utf-16"), {}, URL, "s", now=NOW)
    assert feed.title == "Ü" and feed.items[0].title == "Grüße"


def test_json_feed() -> None:
    feed = parse("reader/full.json", url="https://example.org/feed.json")
    assert feed.version == "json1.1"
    assert feed.title == "My Example Feed"
    first = feed.items[0]
    assert first.key == "id:2"
    assert first.published == datetime(2020, 1, 2, 21, 0, tzinfo=UTC)
    assert first.author == "Joe, Jane"
    assert [m.url for m in first.media][:2] == [
        "http://example.com/downloads/file.m4a",
        "http://example.com/downloads/another.mp3",
    ]
    assert first.media[0].length == 12345678 and first.media[0].kind == "file"


def test_json_feed_spec_fields() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "F",
        "home_page_url": "https://site.example/",
        "items": [
            {
                "id": "a",
                "url": "/posts/a",
                "title": "<b>A</b>",
                "content_text": "plain",
                "image": "/img/a.png",
                "banner_image": "https://site.example/banner.jpg",
                "date_modified": "2024-01-02T03:04:05+02:00",
                "author": {"name": "Old Style"},
                "tags": ["x", "y", 3],
                "attachments": [{"url": "v.mp4", "mime_type": "video/mp4", "size_in_bytes": 9}],
            },
            {"id": "b", "external_url": "https://other.example/b", "summary": "s"},
            {"id": "c"},
            "junk",
        ],
    }
    feed = parse_feed(json.dumps(doc).encode(), {}, "https://site.example/feed.json", "s", NOW)
    a, b = feed.items
    assert a.title == "A" and a.text == "plain" and a.html == ""
    assert a.link == "https://site.example/posts/a"
    assert a.published == datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC)
    assert a.author == "Old Style" and a.categories == ("x", "y")
    assert [(m.origin, m.kind, m.url) for m in a.media] == [
        ("enclosure", "video", "https://site.example/v.mp4"),
        ("image", "image", "https://site.example/img/a.png"),
        ("banner_image", "image", "https://site.example/banner.jpg"),
    ]
    assert b.link == "https://other.example/b" and b.text == "s"
    assert any("item 3: skipped" in w for w in feed.warnings)
    assert any("item 4: skipped" in w for w in feed.warnings)


def test_json_feed_wrong_types_skip_the_item_with_a_reason() -> None:
    feed = parse("reader/invalid.json")
    assert "feed: 'title' is not a string; ignored" in feed.warnings
    assert "item 1: skipped, 'url' is a number, not a string" in feed.warnings
    # the "float id" item: its id is fine, its author is a string, not an object
    assert "item 2: skipped, 'author' is a string, not an object" in feed.warnings
    assert feed.items == []


def test_json_feed_unknown_version_is_a_warning() -> None:
    feed = parse("reader/unknown.json")
    assert feed.items == []
    assert any("unknown JSON Feed version" in w for w in feed.warnings)


def test_enclosure_length_zero_is_unknown() -> None:
    feed = parse("netnewswire/macworld.rss")
    assert len(feed.items) == 30
    for item in feed.items:
        enclosure = item.media[0]
        assert enclosure.origin == "enclosure" and enclosure.kind == "image"
        assert enclosure.mime == "image/jpeg" and enclosure.length is None


def test_media_thumbnail_and_group() -> None:
    small = parse("miniflux/parser/small_atom.xml").items[0]
    assert small.media[0].origin == "media:thumbnail" and small.media[0].kind == "image"
    youtube = parse("feed-rs/atom/atom_mediarss_youtube_1.xml").items[0]
    thumbs = [m for m in youtube.media if m.origin == "media:thumbnail"]
    assert thumbs[0].url == "https://i1.ytimg.com/vi/0A1ouV7iD8o/hqdefault.jpg"


def test_media_content_renditions() -> None:
    item = parse("feed-rs/rss2/rss_2.0_ch9.xml").items[0]
    origins = [m.origin for m in item.media]
    assert origins[0] == "enclosure" and origins.count("media:content") >= 2
    assert item.media[0].kind == "video" and item.media[0].length == 126659374


def test_nonstandard_media_namespace() -> None:
    doc = b"""<?xml version="1.0"?>
<rss version="2.0" xmlns:media="http://www.rssboard.org/media-rss"><channel><title>t</title>
<item><title>x</title><guid>1</guid>
<media:group><media:content url="https://ex.org/v.mp4" type="video/mp4" fileSize="123"/>
<media:thumbnail url="/t.jpg"/></media:group></item></channel></rss>"""
    item = parse_feed(doc, {}, "https://ex.org/feed", "s", now=NOW).items[0]
    assert [(m.origin, m.kind, m.url, m.length) for m in item.media] == [
        ("media:content", "video", "https://ex.org/v.mp4", 123),
        ("media:thumbnail", "image", "https://ex.org/t.jpg", None),
    ]
    atp = parse("netnewswire/atp.rss").items[0]
    assert atp.media[0].url == "http://traffic.libsyn.com/atpfm/atp311.mp3"
    assert atp.media[0].kind == "file"


def test_body_image_skips_pixels_and_data_uris() -> None:
    doc = b"""<rss version="2.0"><channel><title>t</title><item><guid>1</guid><title>x</title>
<description>&lt;img src="data:image/gif;base64,AAA"&gt;&lt;img src="/px.gif" width="1"
height="1"&gt;&lt;img src="http://feeds.feedburner.com/~r/x/~4/abc"&gt;
&lt;img src="pics/real.jpg"&gt;&lt;img src="second.jpg"&gt;</description></item></channel></rss>"""
    item = parse_feed(doc, {}, "https://ex.org/blog/feed", "s", now=NOW).items[0]
    # Every real picture, in order (``pictures = N`` may post several).
    assert [(m.origin, m.url) for m in item.media] == [
        ("body", "https://ex.org/blog/pics/real.jpg"),
        ("body", "https://ex.org/blog/second.jpg"),
    ]


def test_body_pictures_are_found_when_asked_for_after_what_the_entry_names() -> None:
    """Reading a feed does not look for pictures in the bodies (most items
    are only remembered); an item that is rendered finds them then, after
    its enclosures, without repeating one."""
    doc = b"""<rss version="2.0"><channel><title>t</title><item><guid>1</guid><title>x</title>
<enclosure url="https://ex.org/a.jpg" type="image/jpeg" length="10"/>
<description>&lt;img src="a.jpg"&gt;&lt;img src="b.jpg"&gt;</description></item></channel></rss>"""
    item = parse_feed(doc, {}, "https://ex.org/feed", "s", now=NOW).items[0]
    assert [m.url for m in item.attached] == ["https://ex.org/a.jpg"]
    assert "media" not in vars(item)  # not looked for yet
    assert [(m.origin, m.url) for m in item.media] == [
        ("enclosure", "https://ex.org/a.jpg"),
        ("body", "https://ex.org/b.jpg"),
    ]


def test_body_images_in_real_feed() -> None:
    items = parse("netnewswire/dcrainmaker.xml").items
    assert all(any(m.origin == "body" for m in item.media) for item in items)


def test_relative_links_resolved() -> None:
    rss = parse("reader/relative.rss", url="https://example.org/file.xml")
    assert rss.items[0].link == "https://example.org/blog/post/1"
    assert rss.items[0].media[0].url == "https://example.org/enclosure?q=a#fragment"
    atom = parse("reader/relative.atom", url="https://example.org/file.xml")
    assert atom.items[0].link == "https://example.org/entries/entry.html"
    rel = parse("feed-rs/rss2/rss_2.0_relurl_2.xml", url="https://kryogenix.org/feed.xml")
    assert rel.items[0].media[0].url == ("https://kryogenix.org/images/me/hackergotchi-simpler.png")


def test_xml_base() -> None:
    doc = b"""<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://base.example/dir/">
<title>t</title><entry xml:base="sub/"><id>urn:x</id><title>e</title>
<link href="page.html"/></entry></feed>"""
    item = parse_feed(doc, {}, "https://other.example/feed", "s", now=NOW).items[0]
    assert item.link == "https://base.example/dir/sub/page.html"


def test_future_dates_clamped_and_missing_dates_none() -> None:
    doc = b"""<rss version="2.0"><channel><title>t</title>
<item><guid>f</guid><title>future</title><pubDate>Mon, 01 Jan 2035 00:00:00 GMT</pubDate></item>
<item><guid>s</guid><title>soon</title><pubDate>Sun, 01 Nov 2026 20:00:00 GMT</pubDate></item>
<item><guid>n</guid><title>none</title></item></channel></rss>"""
    feed = parse_feed(doc, {}, URL, "s", now=NOW)
    future, soon, none = feed.items
    assert future.published == NOW
    assert soon.published == datetime(2026, 11, 1, 20, 0, tzinfo=UTC)
    assert none.published is None
    assert any("in the future" in w for w in feed.warnings)


def test_missing_fields_skip_only_that_entry() -> None:
    doc = b"""<rss version="2.0"><channel><title>t</title>
<item><guid>1</guid><title>ok</title></item><item></item>
<item><guid isPermaLink="false">3</guid></item>
<item><link>https://example.org/4?utm_source=x</link></item></channel></rss>"""
    feed = parse_feed(doc, {}, URL, "s", now=NOW)
    assert [item.key for item in feed.items] == ["id:1", "link:https://example.org/4"]
    assert sum("skipped" in w for w in feed.warnings) == 2


def test_titles_are_text_and_body_prefers_content() -> None:
    doc = b"""<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel><title>t</title><item><guid>1</guid><title>A &lt;b&gt;bold&lt;/b&gt; move</title>
<description>short</description><content:encoded><![CDATA[<p>long</p><script>x()</script>]]>
</content:encoded><category>News</category><category>news</category><author>a@b.c (Ann)</author>
</item></channel></rss>"""
    item = parse_feed(doc, {}, URL, "s", now=NOW).items[0]
    assert item.title == "A bold move"
    assert "<p>long</p>" in item.html
    # the body is kept as the feed gave it; scripts never reach a post
    assert html_to_text(item.html) == "long"
    assert "x()" not in item_body(item)
    assert item.categories == ("News", "news")
    assert item.author is not None and "Ann" in item.author


def test_content_hash_notices_edits() -> None:
    def one(title: str) -> str:
        doc = f'<rss version="2.0"><channel><item><guid>1</guid><title>{title}</title></item>'
        doc += "</channel></rss>"
        return parse_feed(doc.encode(), {}, URL, "s", now=NOW).items[0].content_hash

    assert one("a") == one("a") != one("b")


def test_duplicate_guids() -> None:
    feed = parse("netnewswire/scriptingNews.rss")
    keys = [item.key for item in feed.items]
    assert len(keys) == len(set(keys)) == 50
    assert any("used twice" in w for w in feed.warnings)


def test_identical_duplicate_entry_dropped() -> None:
    entry = b"<item><guid>1</guid><title>same</title></item>"
    doc = b'<rss version="2.0"><channel>' + entry + entry + b"</channel></rss>"
    feed = parse_feed(doc, {}, URL, "s", now=NOW)
    assert len(feed.items) == 1 and "repeats" in feed.warnings[0]


def test_bozo_with_entries_is_a_warning() -> None:
    feed = parse("feed-rs/rss2/rss_2.0_dbengines.xml")
    assert feed.items and any("not well-formed" in w for w in feed.warnings)


def test_truncated_feed_keeps_complete_entries() -> None:
    whole = (FEEDS / "netnewswire/manton.rss").read_bytes()
    cut = whole[: len(whole) * 2 // 3]
    feed = parse_feed(cut, {}, URL, "s", now=NOW)
    assert 0 < len(feed.items) < len(parse_feed(whole, {}, URL, "s", now=NOW).items)


@pytest.mark.parametrize(
    ("body", "headers", "html"),
    [
        (b"<!DOCTYPE html><html><body>x</body></html>", {}, True),
        (b"\n\n  <html lang=en><p>x", {}, True),
        (b'<?xml version="1.0"?><!DOCTYPE html><rss version="2.0"></rss>', {}, False),
        (b"<div>fragment</div>", {"Content-Type": "text/html"}, True),
        (b'<rss version="2.0"></rss>', {"Content-Type": "text/html"}, False),
        (b"<!-- c --><feed xmlns='http://www.w3.org/2005/Atom'/>", {}, False),
    ],
)
def test_looks_like_html(body: bytes, headers: dict[str, str], html: bool) -> None:
    assert looks_like_html(body, headers) is html


def test_not_a_feed_messages() -> None:
    with pytest.raises(SourceError, match=r"^https://x/ returned an HTML page, not a feed"):
        parse_feed(b"<html><body>hi</body></html>", {}, "https://x/", "s")
    with pytest.raises(SourceError, match="empty document"):
        parse_feed(b"  \n ", {}, "https://x/", "s")


def test_body_is_never_opened_as_a_path(tmp_path: Path) -> None:
    # feedparser opens a str/bytes argument as a file name if it can: we pass a stream.
    target = tmp_path / "secret.xml"
    target.write_bytes(
        b'<rss version="2.0"><channel><item><title>secret</title></item></channel></rss>'
    )
    with pytest.raises(SourceError):
        parse_feed(str(target).encode(), {}, URL, "s")


def test_a_body_html_parser_gives_up_on_keeps_its_item_and_the_pictures_before() -> None:
    """``<![foo[`` makes html.parser raise (an unknown marked section): the
    item is kept, posted with the pictures found before it."""
    doc = b"""<rss version="2.0"><channel><title>t</title><item><guid>1</guid><title>x</title>
<description>&lt;img src="https://ex.org/a.jpg"&gt; &lt;![foo[ &lt;img src="https://ex.org/b.jpg"&gt;</description>
</item></channel></rss>"""
    (item,) = parse_feed(doc, {}, "https://ex.org/feed", "s", now=NOW).items
    assert [m.url for m in item.media] == ["https://ex.org/a.jpg"]
