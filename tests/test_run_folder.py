"""Acceptance: a folder of pictures and notes becomes posts in name order, and
its files move to ``posted/`` (or ``failed/`` with the reason). The real CLI,
the stand-in channel fetching the pictures from the service's own server."""

from __future__ import annotations

import io
import os
import time
import tomllib
from pathlib import Path

import helpers
from helpers import free_port, names, put, run_once
from PIL import Image

from publisher.adapters.standin import ViberStandIn


def picture(fmt: str, colour: tuple[int, int, int], size: tuple[int, int] = (640, 480)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, fmt)
    return out.getvalue()


def write_config(tmp_path: Path, standin: ViberStandIn, folder: Path) -> Path:
    port = free_port()
    return helpers.write_config(
        tmp_path,
        standin.api_url,
        listen=f"127.0.0.1:{port}",
        public_url=f"http://127.0.0.1:{port}",
        rest=f'[[sources]]\nname = "inbox"\ntype = "folder"\npath = "{folder}"\n',
    )


def config_url(config: Path) -> str:
    return str(tomllib.loads(config.read_text(encoding="utf-8"))["server"]["public_url"])


def test_pictures_text_and_caption_are_posted_in_name_order_and_moved(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    put(inbox, "10-sea.jpg", picture("JPEG", (20, 60, 200)))
    put(inbox, "2-field.png", picture("PNG", (40, 200, 40), (300, 900)))
    put(inbox, "1-sunrise.jpg", picture("JPEG", (250, 180, 40)))
    put(inbox, "1-sunrise.txt", "Sunrise over the hills.\n")
    put(inbox, "3-note.txt", "A note for the channel.\n")
    config = write_config(tmp_path, standin, inbox)

    run_once(config)

    posts = [post.payload for post in standin.posts]
    assert [p["type"] for p in posts] == ["picture", "picture", "text", "picture"]
    assert posts[0]["text"] == "Sunrise over the hills."
    assert posts[1].get("text", "") == ""
    assert posts[2]["text"] == "A note for the channel."
    # the pictures were hosted by the service (the stand-in fetched and
    # checked them) and are JPEGs in the media dir
    for payload in (posts[0], posts[1], posts[3]):
        assert payload["media"].startswith(config_url(config) + "/media/")
        stored = tmp_path / "media" / payload["media"].rsplit("/", 1)[1]
        assert stored.read_bytes()[:3] == b"\xff\xd8\xff"
    assert names(inbox / "posted") == [
        "1-sunrise.jpg",
        "1-sunrise.txt",
        "10-sea.jpg",
        "2-field.png",
        "3-note.txt",
    ]
    assert [p.name for p in inbox.iterdir() if p.is_file()] == []
    assert not (inbox / "failed").exists()

    run_once(config)  # nothing left: nothing posted again
    assert len(standin.posts) == 4


def test_a_corrupt_picture_goes_to_failed_with_its_reason_the_rest_are_posted(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    put(inbox, "1-good.jpg", picture("JPEG", (200, 40, 40)))
    put(inbox, "2-broken.jpg", b"\xff\xd8\xff\xe0 this is not really a JPEG" + b"\x00" * 200)
    put(inbox, "3-truncated.png", picture("PNG", (0, 0, 0))[:60])
    put(inbox, "3-truncated.txt", "A caption for a picture that cannot be read.")
    put(inbox, "4-good.png", picture("PNG", (40, 40, 200)))
    config = write_config(tmp_path, standin, inbox)

    run_once(config)

    posts = [post.payload for post in standin.posts]
    # the caption of an unusable picture is not posted on its own: the
    # operator put a picture there, and it goes to failed/ for them to fix
    assert [p["type"] for p in posts] == ["picture", "picture"]
    assert names(inbox / "posted") == ["1-good.jpg", "4-good.png"]
    assert names(inbox / "failed") == [
        "2-broken.jpg",
        "2-broken.jpg.reason.txt",
        "3-truncated.png",
        "3-truncated.png.reason.txt",
        "3-truncated.txt",
    ]
    reason = (inbox / "failed" / "2-broken.jpg.reason.txt").read_text(encoding="utf-8")
    assert "2-broken.jpg" in reason
    assert len(reason.strip()) > 20
    reason = (inbox / "failed" / "3-truncated.png.reason.txt").read_text(encoding="utf-8")
    assert "3-truncated.png" in reason
    assert [p.name for p in inbox.iterdir() if p.is_file()] == []

    run_once(config)
    assert len(standin.posts) == 2


def test_a_non_utf8_file_name_goes_to_failed_and_the_rest_of_the_folder_is_posted(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    inbox = tmp_path / "inbox"
    put(inbox, "1-first.txt", "First.\n")
    bad = os.fsdecode(b"2-caf\xe9.txt")
    put(inbox, bad, "Never posted.\n")
    put(inbox, "3-last.txt", "Last.\n")
    config = write_config(tmp_path, standin, inbox)

    run_once(config)

    assert [post.payload["text"] for post in standin.posts] == ["First.", "Last."]
    assert names(inbox / "failed") == sorted([bad, bad + ".reason.txt"])
    reason = (inbox / "failed" / (bad + ".reason.txt")).read_text(encoding="utf-8")
    assert "2-caf\\xe9.txt is not valid UTF-8" in reason and "rename it" in reason


def test_files_older_than_settle_go_out_on_the_first_run_once(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    ten_seconds_ago = time.time() - 10
    for name, text in (("1-a.txt", "A.\n"), ("2-b.txt", "B.\n")):
        (inbox / name).write_text(text, encoding="utf-8")
        os.utime(inbox / name, (ten_seconds_ago, ten_seconds_ago))
    config = write_config(tmp_path, standin, inbox)
    slow = config.read_text(encoding="utf-8") + 'settle = "1m"\n'
    config.write_text(slow, encoding="utf-8")

    run_once(config)  # settle = 1m: still settling
    assert standin.posts == []

    config.write_text(slow.replace('settle = "1m"', 'settle = "5s"'), encoding="utf-8")
    run_once(config)
    assert [post.payload["text"] for post in standin.posts] == ["A.", "B."]
