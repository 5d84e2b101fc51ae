"""sources.toml: every problem named by its key path, with what to do."""

from __future__ import annotations

import tomllib
from datetime import time, timedelta
from pathlib import Path

import pytest

from publisher.compose import public_url
from publisher.config import config_path, load_config, parse_config, resolve_token
from publisher.core.config import Config, parse_clock, parse_duration, parse_listen, parse_size
from publisher.core.errors import ConfigError
from publisher.core.urls import webhook_url


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads(text))
    return info.value.problems


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("10m", 600),
        ("2h", 7200),
        ("1h30m", 5400),
        ("90d", 90 * 86400),
        ("1w", 604800),
        ("1.5s", 1.5),
        ("250ms", 0.25),
        (" 5M ", 300),
        (45, 45),
    ],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["5 minutes", "", "m", "10x", "-5s", "5s5", True, -1])
def test_bad_durations(text: str | int) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [("20MB", 20_000_000), ("512KiB", 524288), (1000, 1000), ("1.5mb", 1_500_000), ("7", 7)],
)
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["big", "0", "-1MB", 0, "10 parsecs"])
def test_bad_sizes(text: str | int) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("08:00", time(8)), ("22:30", time(22, 30)), ("0:05", time(0, 5))],
)
def test_clock(text: str, expected: time) -> None:
    assert parse_clock(text) == expected


@pytest.mark.parametrize("text", ["8", "25:00", "12:60", "noon"])
def test_bad_clock(text: str) -> None:
    with pytest.raises(ValueError):
        parse_clock(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        (":80", ("0.0.0.0", 80)),
        ("[::1]:9000", ("::1", 9000)),
    ],
)
def test_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


def test_empty_config_has_defaults() -> None:
    config = parse_config({})
    assert config == Config()
    assert config.viber.api_url == "https://chatapi.viber.com/pa"
    assert config.viber.token_env == "VIBER_AUTH_TOKEN"
    assert config.server.listen == "127.0.0.1:8080"
    assert config.server.webhook_path == "/viber/webhook"
    assert config.fetch.allow_private is False
    assert public_url(config) is None


def test_full_config_round_trip(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    path = tmp_path / "sources.toml"
    path.write_text(
        """
[viber]
token_file = "secret/token"
sender_id = "abc=="

[server]
listen = "0.0.0.0:9000"
public_url = "https://bot.example.org/"

[storage]
path = "state.sqlite3"

[fetch]
timeout = "5s"
max_bytes = "2MB"
allow_private = true

[delivery]
max_per_hour = 4
min_interval = "1m"
window = { days = ["mon", "tue"], start = "22:00", end = "06:00" }
timezone = "Europe/Berlin"
on_unknown = "retry"

[[sources]]
name = "blog"
type = "rss"
url = "https://example.org/feed.xml"
every = "15m"
backfill = 3
include = ["python", "re:^Release"]
max_per_day = 2

[[sources]]
name = "photos"
type = "folder"
path = "inbox"
caption_overflow = "truncate"
""",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.viber.token_file == tmp_path / "secret/token"
    assert config.server.public_url == "https://bot.example.org"
    assert webhook_url(public_url(config), config.server.webhook_path) == (
        "https://bot.example.org/viber/webhook"
    )
    assert config.storage.path == tmp_path / "state.sqlite3"
    assert config.fetch.max_bytes == 2_000_000
    policy = config.delivery.policy
    assert policy.max_per_hour == 4
    assert policy.min_interval == timedelta(minutes=1)
    assert policy.window is not None
    assert policy.window.days == ("mon", "tue")
    assert (policy.window.start, policy.window.end) == (time(22), time(6))
    assert policy.timezone == "Europe/Berlin"
    assert config.delivery.on_unknown == "retry"
    blog = config.source("blog")
    assert blog.every == timedelta(minutes=15)
    assert blog.backfill == 3
    assert blog.include == ("python", "re:^Release")
    assert blog.policy.max_per_day == 2
    assert config.source("photos").path == tmp_path / "inbox"
    assert config.source("photos").caption_overflow == "truncate"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[sources]]\nname = "a"\ntype = "rss"\nurl = "https://x/f"\nevery = "5 minutes"\n',
            'sources[1].every: "5 minutes" is not a duration; use e.g. "30s", "10m", "2h" or "7d"',
        ),
        (
            '[[sources]]\nname = "a"\ntype = "rss"\nurl = "https://x/f"\nevrey = "5m"\n',
            'sources[1].evrey: unknown key; did you mean "every"?',
        ),
        (
            '[[sources]]\nname = "a"\ntype = "rss"\nurl = "https://x/f"\n'
            '[[sources]]\nname = "a"\ntype = "folder"\npath = "x"\n',
            'sources[2].name: "a" is already the name of sources[1]; source names must be unique',
        ),
        ('[viber]\ntoken = "x"\n', "viber.token: unknown key; the token is never written"),
        ('[server]\npublic_url = "ftp://x"\n', 'server.public_url: "ftp://x" is not an http(s)'),
        ('[delivery]\ntimezone = "Mars/Olympus"\n', 'delivery.timezone: "Mars/Olympus" is not'),
        ("[delivery]\nmax_per_hour = 0\n", "delivery.max_per_hour: 0 is too small"),
        ('[delivery]\nwindow = { start = "9" }\n', 'delivery.window.start: "9" is not a time'),
        ('[delivery]\nwindow = { days = ["funday"] }\n', 'delivery.window.days: "funday"'),
        ('[[sources]]\nname = "a"\ntype = "ftp"\n', 'sources[1].type: "ftp" is not one of'),
        ('[[sources]]\nname = "a"\ntype = "rss"\n', "sources[1].url: missing"),
        ('[[sources]]\nname = "a"\ntype = "folder"\n', "sources[1].path: missing"),
        ('[[sources]]\ntype = "folder"\npath = "x"\n', "sources[1].name: missing"),
        (
            '[[sources]]\nname = "a"\ntype = "rss"\nurl = "https://x"\ninclude = ["re:("]\n',
            'sources[1].include: "re:(" is not a valid regular expression',
        ),
        (
            '[[sources]]\nname = "a"\ntype = "rss"\nurl = "https://x"\ntemplate = "{titel}"\n',
            "sources[1].template: 'titel' is not a field",
        ),
        ('[[source]]\nname = "a"\n', "source: unknown key; write sources as [[sources]]"),
        ("[fetch]\nallow_private = 1\n", "fetch.allow_private: 1 is not valid; use true or false"),
        ("[mystery]\n", "mystery: unknown key; remove it"),
    ],
)
def test_one_precise_line_per_problem(text: str, expected: str) -> None:
    found = problems(text)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found[0]


def test_every_problem_reported_at_once() -> None:
    found = problems(
        '[viber]\ntoken = "x"\n[[sources]]\nname = "a"\ntype = "rss"\nurl = "https://x"\n'
        'every = "soon"\n[[sources]]\nname = "a"\ntype = "rss"\nurl = "https://y"\n'
    )
    assert [line.split(":")[0] for line in found] == [
        "viber.token",
        "sources[1].every",
        "sources[2].name",
    ]


def test_public_url_not_https_is_a_warning() -> None:
    config = parse_config({"server": {"public_url": "http://bot.example.org"}})
    assert any("not HTTPS" in w for w in config.warnings)


def test_local_channel_public_url_defaults_to_listen_address() -> None:
    config = parse_config({"viber": {"api_url": "local"}, "server": {"listen": "0.0.0.0:9090"}})
    assert config.viber.is_local
    assert public_url(config) == "http://127.0.0.1:9090"


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file; pass --config"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[viber\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(bad)


def test_config_path_precedence() -> None:
    assert config_path("a.toml", {"PUBLISHER_CONFIG": "b.toml"}) == Path("a.toml")
    assert config_path(None, {"PUBLISHER_CONFIG": "b.toml"}) == Path("b.toml")
    assert config_path(None, {}) == Path("sources.toml")


def test_token_from_env_and_file(tmp_path: Path) -> None:
    config = parse_config({"viber": {"token_env": "MY_TOKEN"}})
    assert resolve_token(config.viber, {"MY_TOKEN": " secret-1 \n"}) == "secret-1"
    with pytest.raises(ConfigError) as info:
        resolve_token(config.viber, {})
    assert "MY_TOKEN" in str(info.value)
    token_file = tmp_path / "token"
    token_file.write_text("secret-2\n", encoding="utf-8")
    config = parse_config({"viber": {"token_file": str(token_file)}})
    assert resolve_token(config.viber, {}) == "secret-2"
    token_file.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="is empty"):
        resolve_token(config.viber, {})
