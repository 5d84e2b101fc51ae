"""OPML import: real exports, bombs refused, sources appended without rewriting."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from publisher.adapters.opml import OPMLError, OPMLFeed, append_sources, feed_key, parse_opml, slug
from publisher.cli import COMMANDS, State
from publisher.cli.opml import import_opml
from publisher.config import load_config, parse_config

DATA = Path(__file__).parent / "data" / "opml"


def read(name: str) -> bytes:
    return (DATA / name).read_bytes()


# -- parse_opml ----------------------------------------------------------


def test_feedly_export_with_folders() -> None:
    feeds = parse_opml(read("feedly.opml"))
    assert [(f.title, f.category) for f in feeds] == [
        ("Ars Technica", "Tech"),
        ("Hacker News: Front Page", "Tech"),
        ("LWN.net", "Tech"),
        ("BBC News - World", "News & Politics"),
        ("Українська правда", "News & Politics"),
        ("Ars Technica", "News & Politics"),
        ("Smitten Kitchen", "Cooking"),
        ("Serious Eats", "Cooking"),
    ]
    assert feeds[0] == OPMLFeed(
        title="Ars Technica",
        xml_url="https://feeds.arstechnica.com/arstechnica/index",
        html_url="https://arstechnica.com",
        category="Tech",
    )


def test_netnewswire_export_nested_folders_and_top_level_feeds() -> None:
    feeds = parse_opml(read("netnewswire.opml"))
    assert [(f.title, f.xml_url, f.category) for f in feeds] == [
        ("Daring Fireball", "https://daringfireball.net/feeds/main", None),
        ("inessential", "https://inessential.com/feed.json", None),
        ("Six Colors", "https://sixcolors.com/feed/", "Apple"),
        ("Accidental Tech Podcast", "https://atp.fm/episodes?format=rss", "Apple/Podcasts"),
    ]  # the file: URL is left out


def test_opml2_variants_category_attribute_and_attribute_case() -> None:
    feeds = parse_opml(read("opml2-category.opml"))
    assert feeds == [
        OPMLFeed("Scripting News", "http://www.scripting.com/rss.xml", None, "Harvard/Berkman"),
        OPMLFeed(
            "Café Babel", "https://example.org/cafe.rss", "https://example.org/cafe", None
        ),  # ISO-8859-1 with a character reference; old-style url= on a type="rss" outline
        OPMLFeed("untitled.example.net", "https://untitled.example.net/feed.xml", None, None),
    ]


def test_utf16_document() -> None:
    text = '<?xml version="1.0" encoding="UTF-16"?><opml version="2.0"><body>'
    text += '<outline text="Новини" xmlUrl="https://example.org/uk.xml"/></body></opml>'
    assert parse_opml(text.encode("utf-16")) == [OPMLFeed("Новини", "https://example.org/uk.xml")]


@pytest.mark.parametrize("name", ["bomb.opml", "external-entity.opml"])
def test_doctype_and_entities_are_refused(name: str) -> None:
    with pytest.raises(OPMLError, match="declares a DOCTYPE"):
        parse_opml(read(name))


def test_doctype_hidden_in_utf16_is_refused_too() -> None:
    bomb = read("bomb.opml").decode("utf-8").replace('<?xml version="1.0"?>', "")
    with pytest.raises(OPMLError, match="DOCTYPE"):
        parse_opml(bomb.encode("utf-16"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not well-formed"),
        (b"<opml><body><outline></body></opml>", "not well-formed"),
        (b"<rss><channel/></rss>", "not OPML"),
        (b"\x89PNG\r\n\x1a\n", "not well-formed"),
    ],
)
def test_not_opml(data: bytes, message: str) -> None:
    with pytest.raises(OPMLError, match=message):
        parse_opml(data)


# -- names and URLs --------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Ars Technica", "ars-technica"),
        ("LWN.net", "lwn-net"),
        ("  Hacker News: Front Page!  ", "hacker-news-front-page"),
        ("Café Babel", "cafe-babel"),
        ("Українська правда", ""),
        ("A" * 50, "a" * 40),
        (
            "The Quite Long Title Of A Blog That Goes On And On",
            "the-quite-long-title-of-a-blog-that",
        ),
    ],
)
def test_slug(title: str, expected: str) -> None:
    assert slug(title) == expected
    assert len(slug(title)) <= 40


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("http://HNRSS.org/frontpage/", "https://hnrss.org/frontpage", True),
        ("https://example.org/feed#x", "https://example.org/feed", True),
        ("https://example.org:443/feed", "https://example.org/feed", True),
        ("https://example.org/feed?tag=a", "https://example.org/feed?tag=b", False),
        ("https://example.org/Feed", "https://example.org/feed", False),
        ("https://example.org:8443/feed", "https://example.org/feed", False),
    ],
)
def test_feed_key(a: str, b: str, same: bool) -> None:
    assert (feed_key(a) == feed_key(b)) is same


# -- append_sources --------------------------------------------------------


def test_append_to_a_commented_config_golden() -> None:
    old = (DATA / "sources.toml").read_text(encoding="utf-8")
    new, added, skipped = append_sources(old, parse_opml(read("feedly.opml")))
    assert new == (DATA / "feedly-expected.toml").read_text(encoding="utf-8")
    assert new.startswith(old)  # the user's text is kept byte for byte
    assert [name for name, _ in added] == [
        "ars-technica-2",  # "ars-technica" is taken by a source with another URL
        "lwn-net",
        "bbc-news-world",
        "pravda-com-ua",  # no Latin letters in the title: named after the host
        "smitten-kitchen",
        "serious-eats",
    ]
    assert [(f.title, reason) for f, reason in skipped] == [
        ("Hacker News: Front Page", "already configured as 'hacker-news'"),
        ("Ars Technica", "already in this import as 'ars-technica-2'"),
    ]
    config = parse_config(tomllib.loads(new))
    assert [s.name for s in config.sources][:2] == ["hacker-news", "ars-technica"]
    assert config.source("lwn-net").every.total_seconds() == 1800
    assert config.delivery.policy.max_per_hour == 10


def test_running_the_import_twice_adds_nothing() -> None:
    feeds = parse_opml(read("feedly.opml"))
    once, added, _ = append_sources("", feeds, every="1h")
    assert len(added) == 7
    twice, added_again, skipped = append_sources(once, feeds)
    assert twice == once
    assert added_again == []
    assert len(skipped) == 8


def test_names_given_elsewhere_are_not_reused() -> None:
    feeds = [OPMLFeed("Blog", "https://a.example/feed"), OPMLFeed("Blog", "https://b.example/f")]
    _, added, _ = append_sources("", feeds, existing_names=["blog"])
    assert [name for name, _ in added] == ["blog-2", "blog-3"]


def test_awkward_titles_and_urls_stay_valid_toml() -> None:
    feeds = [
        OPMLFeed('Quotes " and \\ back\nslash', 'https://example.org/a"b\\c'),
        OPMLFeed("Tab\tand\x07bell", "https://example.org/t", "https://x.example/\n[evil]", "C\nD"),
    ]
    text, added, _ = append_sources("", feeds)
    data = tomllib.loads(text)
    assert [s["url"] for s in data["sources"]] == [f.xml_url for f in feeds]
    assert [s["name"] for s in data["sources"]] == [name for name, _ in added]
    assert "[evil]" not in [line.strip() for line in text.splitlines()]


def test_crlf_files_stay_crlf_and_a_missing_final_newline_is_added() -> None:
    old = '[viber]\r\ntoken_env = "TOKEN"'
    new, _, _ = append_sources(old, [OPMLFeed("Blog", "https://example.org/feed")])
    assert new.startswith(old + "\r\n\r\n")
    assert "\n" not in new.replace("\r\n", "")
    assert tomllib.loads(new)["sources"][0]["name"] == "blog"


@pytest.mark.parametrize(
    ("text", "every", "message"),
    [("[viber\n", "30m", "not valid TOML"), ("", "half an hour", "not a duration")],
)
def test_append_refuses(text: str, every: str, message: str) -> None:
    with pytest.raises(OPMLError, match=message):
        append_sources(text, [OPMLFeed("Blog", "https://example.org/feed")], every=every)


# -- the command -----------------------------------------------------------


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(import_opml, list(args), obj=State(str(config), "text", "info"))


def test_command_is_exported_with_help() -> None:
    assert COMMANDS["import-opml"].load() is import_opml
    assert import_opml.name == "import-opml"
    result = CliRunner().invoke(import_opml, ["--help"])
    assert result.exit_code == 0
    assert "--dry-run" in result.output
    assert "OPML" in result.output


def test_command_writes_the_config(tmp_path: Path) -> None:
    config = tmp_path / "sources.toml"
    config.write_bytes(read("sources.toml"))
    config.chmod(0o640)
    result = run(config, str(DATA / "feedly.opml"))
    assert result.exit_code == 0, result.output
    assert config.read_bytes() == read("feedly-expected.toml")
    assert config.stat().st_mode & 0o777 == 0o640
    assert "added lwn-net: https://lwn.net/headlines/rss" in result.stderr
    assert "skipped Hacker News: Front Page" in result.stderr
    assert "6 source(s) added, 2 skipped" in result.stderr
    assert len(load_config(config).sources) == 8
    assert [p.name for p in tmp_path.iterdir()] == ["sources.toml"]  # no temp file left


def test_command_dry_run_changes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "sources.toml"
    config.write_bytes(read("sources.toml"))
    result = run(config, "--dry-run", "--every", "2h", str(DATA / "netnewswire.opml"))
    assert result.exit_code == 0, result.output
    assert config.read_bytes() == read("sources.toml")
    assert result.stdout.startswith("\n# Imported from OPML: 4 feed(s)\n")
    assert 'every = "2h"' in result.stdout
    assert "would add daring-fireball" in result.stderr


def test_command_creates_a_missing_config(tmp_path: Path) -> None:
    config = tmp_path / "sources.toml"
    result = run(config, str(DATA / "netnewswire.opml"))
    assert result.exit_code == 0, result.output
    assert len(load_config(config).sources) == 4


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        ('[viber]\ntokn_env = "X"\n', "tokn_env: unknown key"),
        ("sources = []\n", "would not be valid"),
    ],
)
def test_command_refuses_to_write_an_invalid_config(
    tmp_path: Path, existing: str, expected: str
) -> None:
    config = tmp_path / "sources.toml"
    config.write_text(existing)
    result = run(config, str(DATA / "feedly.opml"))
    assert result.exit_code == 2
    assert expected in result.stderr
    assert config.read_text() == existing


def test_command_refuses_a_bomb(tmp_path: Path) -> None:
    config = tmp_path / "sources.toml"
    config.write_text("")
    result = run(config, str(DATA / "bomb.opml"))
    assert result.exit_code == 1
    assert "DOCTYPE" in result.stderr
    assert config.read_text() == ""


def test_command_reads_stdin(tmp_path: Path) -> None:
    config = tmp_path / "sources.toml"
    result = CliRunner().invoke(
        import_opml,
        ["-"],
        input=read("opml2-category.opml"),
        obj=State(str(config), "text", "info"),
    )
    assert result.exit_code == 0, result.output
    assert [s.name for s in load_config(config).sources] == [
        "scripting-news",
        "cafe-babel",
        "untitled-example-net",
    ]


def test_each_outline_left_out_is_printed_with_why(tmp_path: Path) -> None:
    opml = tmp_path / "subs.opml"
    opml.write_text(
        """<?xml version="1.0"?>
<opml version="2.0"><body>
  <outline text="Good" xmlUrl="https://example.org/feed"/>
  <outline text="Gopher" xmlUrl="gopher://example.org/feed"/>
  <outline text="Local" xmlUrl="file:///etc/passwd"/>
  <outline text="Homepage" htmlUrl="https://example.org/"/>
  <outline text="Empty"/>
  <outline text="Folder"><outline text="Inner" xmlUrl="https://example.net/rss"/></outline>
</body></opml>""",
        encoding="utf-8",
    )
    result = run(tmp_path / "sources.toml", str(opml))
    assert result.exit_code == 0, result.output
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped outline")]
    assert skipped == [
        "skipped outline Gopher: its address gopher://example.org/feed is not http(s) "
        "(gopher: feeds cannot be fetched)",
        "skipped outline Local: its address file:///etc/passwd is not http(s) "
        "(file: feeds cannot be fetched)",
        "skipped outline Homepage: a link to a web page, not a feed (no xmlUrl)",
        "skipped outline Empty: no feed address (no xmlUrl)",
    ]
    assert "2 source(s) added" in result.stderr
