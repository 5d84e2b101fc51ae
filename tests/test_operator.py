"""Operator-facing behaviour: what cron, the log and the commands tell."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import STANDIN_TOKEN, notes, write_config

from publisher.adapters.standin import ViberStandIn
from publisher.cli import cli


def invoke(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, ["--config", str(config), *args], env={"VIBER_AUTH_TOKEN": STANDIN_TOKEN}
    )
    return result.exit_code, result.output


def test_run_once_exits_1_naming_every_source_that_failed(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    notes(tmp_path / "inbox", "Still posted.")
    config = write_config(
        tmp_path,
        standin.api_url,
        rest=f"""
[[sources]]
name = "good"
type = "folder"
path = "{tmp_path / "inbox"}"

[[sources]]
name = "gone-feed"
type = "rss"
url = "{tmp_path / "missing.xml"}"
""",
    )
    code, output = invoke(config, "run", "--once")
    assert code == 1, output
    assert "1 source(s) failed: gone-feed:" in output
    assert "good" not in output.split("failed:", 1)[1]
    assert [p.payload["text"] for p in standin.posts] == ["Still posted."]


def test_run_once_exits_0_when_every_source_was_polled(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    notes(tmp_path / "inbox", "One.")
    config = write_config(
        tmp_path,
        standin.api_url,
        rest=f'[[sources]]\nname = "good"\ntype = "folder"\npath = "{tmp_path / "inbox"}"\n',
    )
    assert invoke(config, "run", "--once")[0] == 0


def test_the_service_logs_a_final_stopped_line(
    tmp_path: Path, standin: ViberStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(tmp_path, standin.api_url)
    caplog.set_level(logging.INFO)
    assert invoke(config, "run", "--once")[0] == 0
    assert caplog.records[-1].getMessage() == "stopped"


def check(tmp_path: Path, rest: str) -> tuple[int, str]:
    config = write_config(tmp_path, "local", public_url="https://bot.example.org", rest=rest)
    return invoke(config, "check")


def test_check_warns_of_a_missing_folder_a_missing_feed_file_and_no_sources(
    tmp_path: Path,
) -> None:
    code, output = check(
        tmp_path,
        f"""
[[sources]]
name = "inbox"
type = "folder"
path = "{tmp_path / "nowhere"}"

[[sources]]
name = "local-feed"
type = "rss"
url = "feeds/news.xml"

[[sources]]
name = "file-url"
type = "rss"
url = "file://{tmp_path / "gone.xml"}"
""",
    )
    assert code == 0, output
    assert f"sources[1] (inbox).path: {tmp_path / 'nowhere'} does not exist; create" in output
    assert f"sources[2] (local-feed).url: the feed file {tmp_path / 'feeds/news.xml'}" in output
    assert f"sources[3] (file-url).url: the feed file {tmp_path / 'gone.xml'} does" in output
    (tmp_path / "nowhere").mkdir()
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds/news.xml").write_text("<rss/>", encoding="utf-8")
    (tmp_path / "gone.xml").write_text("<rss/>", encoding="utf-8")
    code, output = check(tmp_path, (tmp_path / "sources.toml").read_text().split("[delivery]")[1])
    assert "does not exist" not in output

    code, output = check(tmp_path, "")
    assert code == 0 and "warning: no sources: nothing will be polled" in output


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ('every = "99999999999d"', 'every: "99999999999d" is far too large'),
        ("every = 1e308", "every: 1e+308 is far too large"),
        ("every = inf", "every: inf is far too large"),
        ("every = nan", "every: nan is not a duration"),
        ('every = "3000000d"', 'every: "3000000d" is too long; use at most "3650d"'),
        ("backfill = 9223372036854775807", "backfill: 9223372036854775807 is too large"),
        ('template = "{title.upper}"', "{title.upper}: only plain fields are allowed"),
        ('template = "{link!r}"', "{link!r}: only plain fields are allowed"),
        ('template = "{title[0]}"', "{title[0]}: only plain fields are allowed"),
        ('template = "{title:>40}"', "only a length cap is allowed"),
    ],
)
def test_check_refuses_absurd_numbers_and_templates_beyond_plain_fields(
    tmp_path: Path, line: str, says: str
) -> None:
    (tmp_path / "in").mkdir()
    code, output = check(
        tmp_path, f'[[sources]]\nname = "in"\ntype = "folder"\npath = "in"\n{line}\n'
    )
    assert code == 2, output
    assert says in output and "Traceback" not in output


@pytest.mark.parametrize(
    ("table", "line", "says"),
    [
        ("server", f'max_body = "{"9" * 400}"', "max_body: "),
        ("fetch", "max_bytes = 9223372036854775807", 'is too large; use at most "1000GB"'),
        ("storage", "media_retention = 1e308", "media_retention: 1e+308 is far too large"),
    ],
)
def test_check_refuses_absurd_sizes(tmp_path: Path, table: str, line: str, says: str) -> None:
    config = write_config(tmp_path, "local")
    text = config.read_text(encoding="utf-8")
    if f"[{table}]\n" in text:
        text = text.replace(f"[{table}]\n", f"[{table}]\n{line}\n")
    else:
        text += f"\n[{table}]\n{line}\n"
    config.write_text(text, encoding="utf-8")
    code, output = invoke(config, "check")
    assert code == 2, output
    assert says in output and "9" * 50 not in output


def test_the_longest_every_runs(tmp_path: Path, standin: ViberStandIn) -> None:
    notes(tmp_path / "inbox", "Once a decade.")
    config = write_config(
        tmp_path,
        standin.api_url,
        rest=f'[[sources]]\nname = "in"\ntype = "folder"\npath = "{tmp_path / "inbox"}"\n'
        'every = "3650d"\nremember = "3650d"\n',
    )
    assert invoke(config, "run", "--once")[0] == 0
    assert [p.payload["text"] for p in standin.posts] == ["Once a decade."]


def test_status_shows_the_year_of_a_date_in_another_year() -> None:
    from publisher.cli.status import _local

    now = "2026-11-30T10:00:00+00:00"
    assert _local("2099-01-01T09:00:00+00:00", now) == "Thu 01 Jan 2099 09:00"
    assert _local("2026-12-01T09:00:00+00:00", now) == "Tue 01 Dec 09:00"
    assert _local("2026-11-30T09:00:00+00:00", now) == "09:00:00"


def test_status_item_with_an_unknown_source_says_so(tmp_path: Path, standin: ViberStandIn) -> None:
    notes(tmp_path / "inbox", "One.")
    config = write_config(
        tmp_path,
        standin.api_url,
        rest=f'[[sources]]\nname = "inbox"\ntype = "folder"\npath = "{tmp_path / "inbox"}"\n',
    )
    assert invoke(config, "run", "--once")[0] == 0
    code, output = invoke(config, "status", "--item", "note", "--source", "nope")
    assert code == 2
    assert "'nope' is not a source; the sources are inbox" in output
    assert invoke(config, "status", "--item", "note", "--source", "inbox")[0] == 0


RSS = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>t</title><link>https://example.org/</link>
{items}
</channel></rss>"""


def test_the_first_poll_with_backfill_0_says_what_it_remembered_and_how_to_post(
    tmp_path: Path, standin: ViberStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    items = "".join(
        f"<item><title>T{i}</title><link>https://example.org/{i}</link><guid>g{i}</guid></item>"
        for i in range(3)
    )
    (tmp_path / "feed.xml").write_text(RSS.format(items=items), encoding="utf-8")
    config = write_config(
        tmp_path,
        standin.api_url,
        rest='[[sources]]\nname = "news"\ntype = "rss"\nurl = "feed.xml"\n',
    )
    caplog.set_level(logging.INFO)
    assert invoke(config, "run", "--once")[0] == 0
    assert standin.posts == []
    assert (
        "source news: first poll: remembered 3 existing item(s) without posting them "
        "(backfill = 0" in caplog.text
    )
    assert "viber-publisher post --url LINK" in caplog.text
    caplog.clear()
    assert invoke(config, "run", "--once")[0] == 0
    assert "remembered" not in caplog.text  # only the first poll says it


def test_posted_media_are_kept_a_year_by_default() -> None:
    from datetime import timedelta

    from publisher.config import parse_config

    assert parse_config({}).storage.media_retention == timedelta(days=365)
