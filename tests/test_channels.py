"""Several channels from one service: each with its own token, policy and
lane; one channel's trouble never holds up another."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import names, notes, put

from publisher.adapters.standin import ViberStandIn
from publisher.cli.status import status_document
from publisher.config import load_config, parse_config
from publisher.core.errors import ConfigError
from publisher.service.probes import readiness
from publisher.service.runner import Service

NEWS_TOKEN = "11111111aaaaaaaa-news-token-0000000000000001"
SPORT_TOKEN = "22222222bbbbbbbb-sport-token-000000000000002"


@pytest.fixture
def stand_ins() -> Iterator[tuple[ViberStandIn, ViberStandIn]]:
    with (
        ViberStandIn(NEWS_TOKEN, channel_name="News").serve() as news,
        ViberStandIn(SPORT_TOKEN, channel_name="Sport").serve() as sport,
    ):
        # As if each channel's webhook had been set by an earlier run.
        news.preset_webhook("https://news.example.org/viber/webhook/news")
        sport.preset_webhook("https://sport.example.org/viber/webhook/sport")
        yield news, sport


def _config(tmp_path: Path, news: ViberStandIn, sport: ViberStandIn, extra: str = "") -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(
        f"""
[server]
listen = "127.0.0.1:0"

[storage]
path = "state.sqlite3"
media_dir = "media"

[[channels]]
name = "news"
api_url = "{news.api_url}"
token_env = "NEWS_TOKEN"
[channels.delivery]
min_interval = "0s"
{extra}

[[channels]]
name = "sport"
api_url = "{sport.api_url}"
token_env = "SPORT_TOKEN"
[channels.delivery]
min_interval = "0s"

[[sources]]
name = "a"
type = "folder"
path = "a"
channels = ["news", "sport"]
routes = [{{ channel = "sport", template = "SPORT {{text}}" }}]

[[sources]]
name = "b"
type = "folder"
path = "b"
channels = ["sport"]
""",
        encoding="utf-8",
    )
    return path


def _service(path: Path) -> Service:
    service = Service(
        load_config(path), tokens={"news": NEWS_TOKEN, "sport": SPORT_TOKEN}, serve=False
    )
    service.start()
    return service


def _texts(stand_in: ViberStandIn) -> list[str]:
    return [str(p.payload.get("text")) for p in stand_in.posts]


def test_items_go_where_they_are_routed_once_each(
    tmp_path: Path, stand_ins: tuple[ViberStandIn, ViberStandIn]
) -> None:
    news, sport = stand_ins
    path = _config(tmp_path, news, sport)
    notes(tmp_path / "a", "first of a", "second of a")
    put(tmp_path / "b", "001-b.txt", "only b\n")
    service = _service(path)
    try:
        service.run_once()
        assert sorted(_texts(news)) == ["first of a", "second of a"]
        assert sorted(_texts(sport)) == ["SPORT first of a", "SPORT second of a", "only b"]
        # a's files move once both channels have posted them
        assert names(tmp_path / "a" / "posted") == ["001-note.txt", "002-note.txt"]
        service.run_once()
        assert len(news.posts) == 2 and len(sport.posts) == 3, "nothing twice"
        tokens = {row.message_token for row in service.store.outbox("posted", limit=10)}
        assert len(tokens) == 5, "each post has its own message token"
    finally:
        service.close()


def test_a_revoked_token_stops_one_channel_and_not_the_other(
    tmp_path: Path, stand_ins: tuple[ViberStandIn, ViberStandIn]
) -> None:
    news, sport = stand_ins
    path = _config(tmp_path, news, sport)
    service = _service(path)
    try:
        news.token = "revoked"  # Viber answers status 2 from now on
        notes(tmp_path / "a", "after the revocation")
        service.run_once()
        assert _texts(sport) == ["SPORT after the revocation"]
        assert news.posts == []
        doc = status_document(service.config, service.store, service.clock())
        lanes = {lane["name"]: lane for lane in doc["channels"]}
        assert lanes["news"]["posting"]["stopped"]
        assert lanes["sport"]["posting"]["stopped"] is None
        assert lanes["news"]["queued"] == 1, "the news post waits, never lost"
        ok, details = readiness(service)
        assert not ok
        assert details["channels"]["news"]["posting"].startswith("stopped: ")
        assert details["channels"]["sport"]["posting"] == "ok"
    finally:
        service.close()


def test_one_channels_rate_limit_does_not_slow_the_other(
    tmp_path: Path, stand_ins: tuple[ViberStandIn, ViberStandIn]
) -> None:
    news, sport = stand_ins
    path = _config(tmp_path, news, sport, extra="max_per_hour = 1")
    notes(tmp_path / "a", "one", "two", "three")
    service = _service(path)
    try:
        service.run_once()
        assert len(news.posts) == 1, "news: one an hour"
        assert len(sport.posts) == 3, "sport: all of them"
    finally:
        service.close()


def test_two_channels_cannot_share_where_the_token_is_read() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {
                "channels": [
                    {"name": "news", "token_env": "T"},
                    {"name": "sport", "token_env": "T"},
                ]
            }
        )
    assert any("cannot share a token" in line for line in caught.value.problems)


def test_with_several_channels_a_source_must_say_where_it_goes() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {
                "channels": [
                    {"name": "news", "api_url": "local"},
                    {"name": "sport", "api_url": "local"},
                ],
                "sources": [{"name": "blog", "type": "rss", "url": "https://x.org/feed"}],
            }
        )
    (line,) = caught.value.problems
    assert line.startswith("sources[1].channels: missing") and '"news", "sport"' in line


def test_a_state_file_of_the_single_channel_release_upgrades_without_a_repost(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    """The state file of the release before channels (schema 1): its queue
    and seen items belong to the only channel, nothing is posted again."""
    state = tmp_path / "state.sqlite3"
    notes(tmp_path / "a", "already seen")
    _schema_1_state(state, tmp_path / "a")
    path = tmp_path / "sources.toml"
    path.write_text(
        f"""
[server]
listen = "127.0.0.1:0"
[storage]
path = "state.sqlite3"
media_dir = "media"
[[channels]]
name = "news"
api_url = "{standin.api_url}"
[channels.delivery]
min_interval = "0s"
[[sources]]
name = "a"
type = "folder"
path = "a"
""",
        encoding="utf-8",
    )
    from helpers import STANDIN_TOKEN

    service = Service(load_config(path), token=STANDIN_TOKEN, serve=False)
    try:
        service.start()
        service.run_once()
        texts = [str(p.payload.get("text")) for p in standin.posts]
        assert texts == ["queued before the upgrade"], "the old queue goes out, nothing else"
        (row,) = service.store.outbox("posted", limit=10)
        assert row.channel == "news"
    finally:
        service.close()


def _schema_1_state(path: Path, folder: Path) -> None:
    """A state file as the single-channel release wrote it: one queued post,
    and the note in ``folder`` already seen."""
    from datetime import UTC, datetime

    from publisher.adapters.sources.folder_source import FolderSource
    from publisher.adapters.sqlite.schema import MIGRATIONS
    from publisher.core.config import SourceConfig
    from publisher.core.records import SourceState

    read = FolderSource(SourceConfig("a", "folder", path=folder)).read(
        SourceState("a"), datetime.now(UTC)
    )
    (item,) = read.items

    db = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[0](db)
    db.execute("PRAGMA user_version = 1")
    now = "2026-11-01T09:00:00.000000Z"
    db.execute("INSERT INTO sources (name, first_poll_done) VALUES ('a', 1)")
    db.execute(
        "INSERT INTO outbox (source, item_key, seq, group_id, payload, status, created_at)"
        " VALUES ('a', 'old', 0, 1, ?, 'queued', ?)",
        ('{"type": "text", "text": "queued before the upgrade"}', now),
    )
    db.execute(
        "INSERT INTO seen (source, key, first_seen, last_seen, content_hash, outcome)"
        " VALUES ('a', ?, ?, ?, ?, 'queued')",
        (item.key, now, now, item.content_hash),
    )
    db.close()


def test_a_picture_routed_to_two_channels_with_two_templates_is_encoded_once(
    tmp_path: Path, jpeg_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Media are shared between channels: content-addressed, transformed once."""
    from dataclasses import replace

    from publisher.adapters.mediafolder import MediaStore
    from publisher.core.config import Config, ServerConfig, SourceConfig
    from publisher.core.items import Item, MediaCandidate
    from publisher.pipeline import transform as transform_module
    from publisher.pipeline.transform import Transformer

    encodes: list[int] = []
    real = transform_module.prepare_picture

    def counting(*args: Any, **kwargs: Any) -> Any:
        encodes.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(transform_module, "prepare_picture", counting)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg_bytes)
    item = Item(
        source="a",
        key="k",
        title="A photo",
        attached=(MediaCandidate(path=photo, kind="image", origin="folder"),),
    )
    public = "https://p.example.org"
    config = Config(server=ServerConfig(public_url=public))
    transformer = Transformer(
        config, MediaStore(tmp_path / "media"), lambda url: (b"", None), public
    )
    source = SourceConfig("a", "folder", path=tmp_path)
    news = transformer.render(item, source)
    sport = transformer.render(item, replace(source, template="SPORT {title}"))
    assert news.messages[0].payload["media"] == sport.messages[0].payload["media"]
    assert news.messages[0].payload["text"] != sport.messages[0].payload["text"]
    assert len(encodes) == 1
