"""The local channel's page and posts.json, over a real socket, across a restart."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
from helpers import config_text

from publisher.adapters.localchannel import FILE_NAME, ChannelLog
from publisher.config import load_config
from publisher.service.runner import Service

MTIME = 1_790_000_000.0


def make_config(tmp: Path) -> Path:
    inbox = tmp / "inbox"
    inbox.mkdir()
    (inbox / "001-hello.txt").write_text("Hello <channel> & friends\n", encoding="utf-8")
    (inbox / "002-second.txt").write_text("The second post\n", encoding="utf-8")
    for path in inbox.iterdir():
        os.utime(path, (MTIME, MTIME))
    config = tmp / "sources.toml"
    config.write_text(
        config_text(
            "local",
            state="state/publisher.sqlite3",
            media_dir="state/media",
            rest='[[sources]]\nname = "inbox"\ntype = "folder"\npath = "inbox"\n',
        )
    )
    return config


def test_page_and_posts_json_survive_a_restart(tmp_path: Path) -> None:
    config = load_config(make_config(tmp_path))
    service = Service(config)
    service.start()
    try:
        service.run_once()
        url = service.server.url
        page = httpx.get(url + "/channel/", timeout=10)
        data = httpx.get(url + "/channel/posts.json", timeout=10).json()
        redirect = httpx.get(url + "/channel", timeout=10)
        missing = httpx.get(url + "/channel/nope", timeout=10)
    finally:
        service.close()
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Hello &lt;channel&gt; &amp; friends" in page.text  # escaped, never raw HTML
    assert page.text.index("The second post") < page.text.index("Hello &lt;channel")  # newest first
    assert "/channel/posts.json" in page.text  # the refresh poll, with the mount prefix
    assert redirect.status_code == 308 and redirect.headers["location"] == "/channel/"
    assert missing.status_code == 404
    assert data["count"] == 2
    assert [p["payload"]["text"] for p in data["posts"]] == [
        "The second post",
        "Hello <channel> & friends",
    ]
    assert all("auth_token" not in p["payload"] for p in data["posts"])
    stored = tmp_path / "state" / FILE_NAME
    assert len(stored.read_text(encoding="utf-8").splitlines()) == 2

    # A new process: the stand-in starts empty, the page does not.
    again = Service(load_config(tmp_path / "sources.toml"))
    again.start()
    try:
        assert again.local_channel.posts == []
        after = httpx.get(again.server.url + "/channel/posts.json", timeout=10).json()
        page_after = httpx.get(again.server.url + "/channel/", timeout=10).text
    finally:
        again.close()
    assert after == data
    assert 'data-count="2"' in page_after


def test_picture_posts_show_the_media_url(tmp_path: Path, jpeg_bytes: bytes) -> None:
    config_path = make_config(tmp_path)
    picture = tmp_path / "inbox" / "003-photo.jpg"
    picture.write_bytes(jpeg_bytes)
    os.utime(picture, (MTIME, MTIME))
    service = Service(load_config(config_path))
    service.start()
    try:
        service.run_once()
        url = service.server.url
        data = httpx.get(url + "/channel/posts.json", timeout=10).json()
        page = httpx.get(url + "/channel/", timeout=10).text
        picture_post = next(p for p in data["posts"] if p["payload"]["type"] == "picture")
        media = httpx.get(picture_post["payload"]["media"], timeout=10)
    finally:
        service.close()
    assert picture_post["payload"]["media"].startswith(url + "/media/")
    assert f'<img src="{picture_post["payload"]["media"]}"' in page
    assert media.status_code == 200 and media.content[:2] == b"\xff\xd8"


def test_channel_log_skips_damaged_lines(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    good = {"message_token": 1, "time": "2026-01-01T00:00:00Z", "payload": {"type": "text"}}
    path.write_text(json.dumps(good) + "\n{not json\n\n", encoding="utf-8")
    log = ChannelLog(path)
    assert log.posts() == [good]
    log.append({"message_token": 2, "payload": {"type": "text", "text": "ü"}})
    assert [p["message_token"] for p in ChannelLog(path).posts()] == [1, 2]
