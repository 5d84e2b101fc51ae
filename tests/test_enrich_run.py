"""The service end to end with ``enrich = ["image"]`` and ``pictures = 3``:
a feed file, article pages and pictures on a real server on 127.0.0.1, the
stand-in as the channel, the service's own server hosting the pictures.

- an item whose article page names an ``og:image`` becomes a picture post;
  one whose page is unreachable becomes a text post and ``status --item``
  says why;
- an item with three images makes three picture posts in order, once each,
  across SIGKILLs and restarts (the pattern of tests/test_crash.py).
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import helpers
import pytest
from click.testing import CliRunner
from conftest import MediaHost
from helpers import STANDIN_TOKEN, load_bench, run_once
from PIL import Image

from publisher.adapters.sqlite import Store
from publisher.adapters.standin import ViberStandIn
from publisher.cli import cli

COLOURS = [(220, 20, 20), (20, 200, 20), (20, 20, 220)]


def png(colour: tuple[int, int, int], width: int = 80) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, 60), colour).save(out, "PNG")
    return out.getvalue()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_feed(path: Path, items: list[tuple[str, str, str]]) -> None:
    """An RSS file of (guid, link, description HTML) items."""
    entries = "".join(
        f"<item><title>Item {guid}</title><guid>{guid}</guid><link>{link}</link>"
        f"<description><![CDATA[{body}]]></description></item>"
        for guid, link, body in items
    )
    path.write_text(
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
        f"<link>https://example.org/</link>{entries}</channel></rss>",
        encoding="utf-8",
    )


def write_config(tmp_path: Path, standin: ViberStandIn, source: str) -> Path:
    port = load_bench().free_port()
    return helpers.write_config(
        tmp_path,
        standin.api_url,
        listen=f"127.0.0.1:{port}",
        public_url=f"http://127.0.0.1:{port}",
        rest=f"""
[fetch]
allow_private = true

[[sources]]
name = "news"
type = "rss"
url = "feed.xml"
every = "1s"
backfill = 10
{source}
""",
    )


def test_enrich_image_posts_the_og_image_and_says_why_when_it_cannot(
    tmp_path: Path, standin: ViberStandIn, media_host: MediaHost
) -> None:
    media_host.add("/og.png", png(COLOURS[1]), "image/png")
    article = media_host.add(
        "/article",
        b'<html><head><meta property="og:image" content="/og.png"></head><body></body></html>',
        "text/html",
    )
    gone = f"http://127.0.0.1:{closed_port()}/article"
    write_feed(
        tmp_path / "feed.xml",
        [("a", article, "<p>Words of a.</p>"), ("b", gone, "<p>Words of b.</p>")],
    )
    config = write_config(tmp_path, standin, 'enrich = ["image"]')
    preview = CliRunner().invoke(
        cli,
        ["--config", str(config), "preview"],
        env={"VIBER_AUTH_TOKEN": STANDIN_TOKEN, "PUBLISHER_CONFIG": None},
        catch_exceptions=False,
    )
    assert preview.exit_code == 0, preview.output
    assert "article picture" in preview.output and "connection refused" in preview.output
    run_once(config)
    kinds = {
        str(p.payload.get("text", "")).splitlines()[0]: p.payload["type"] for p in standin.posts
    }
    assert kinds == {"Item a": "picture", "Item b": "text"}
    story = CliRunner().invoke(
        cli,
        ["--config", str(config), "status", "--item", "b"],
        env={"VIBER_AUTH_TOKEN": STANDIN_TOKEN, "PUBLISHER_CONFIG": None},
        catch_exceptions=False,
    )
    assert story.exit_code == 0, story.output
    assert "article picture" in story.output and "connection refused" in story.output


@pytest.mark.slow
def test_three_pictures_post_in_order_once_each_across_kills(
    tmp_path: Path, standin: ViberStandIn, media_host: MediaHost
) -> None:
    items = []
    for n in range(3):
        imgs = "".join(
            f'<img src="{media_host.add(f"/i{n}-{k}.png", png(c, 80 + n), "image/png")}">'
            for k, c in enumerate(COLOURS)
        )
        items.append((f"g{n}", f"https://example.org/{n}", f"<p>Words {n}.</p>{imgs}"))
    write_feed(tmp_path / "feed.xml", items)
    config = write_config(tmp_path, standin, "pictures = 3")
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace(
            'min_interval = "0s"',
            'min_interval = "0s"\nrate_limit_cooldown = "3s"\nretry_backoff = "1s"',
        ),
        encoding="utf-8",
    )
    env = dict(os.environ, VIBER_AUTH_TOKEN=STANDIN_TOKEN, PYTHONUNBUFFERED="1")
    env.pop("PUBLISHER_CONFIG", None)
    command = [sys.executable, "-m", "publisher", "--config", str(config), "--log-level", "warning"]

    def run_until(posts: int, then: float = 0.0) -> None:
        """``run`` until the stand-in holds ``posts`` posts, then ``then`` s more; SIGKILL."""
        process = subprocess.Popen(
            [*command, "run"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while len(standin.posts) < posts and time.monotonic() < deadline:
                assert process.poll() is None, "the service stopped"
                time.sleep(0.01)
            time.sleep(then)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()

    # The first picture goes; at the second Viber says "too many requests": the
    # rest of the group waits out the cool-down, and the service is killed then.
    standin.fail_next("slow", 1, delay=0.01)
    standin.fail_next("status12", 1)
    run_until(1, then=1.0)
    assert len(standin.posts) == 1
    assert len(standin.requests) >= 2  # the refused second picture was asked for
    first = str(standin.posts[0].payload["media"])
    # Restarted, it finishes the group (after the cool-down) and posts the rest.
    run_until(9, then=0.5)
    sent = [str(p.payload["media"]) for p in standin.posts]
    assert len(sent) == 9

    with Store.open(tmp_path / "state.sqlite3", read_only=True) as store:
        rows = store.outbox()
    assert {row.status for row in rows} == {"posted"}, [(r.id, r.status, r.reason) for r in rows]
    by_item: dict[str, list[str]] = {}
    for row in sorted(rows, key=lambda r: (r.item_key, r.seq)):
        assert row.payload["type"] == "picture"
        by_item.setdefault(row.item_key, []).append(str(row.payload["media"]))
    assert sorted(by_item) == ["id:g0", "id:g1", "id:g2"]
    for key, urls in by_item.items():
        for url, colour in zip(urls, COLOURS, strict=True):  # in the item's order
            with Image.open(tmp_path / "media" / url.rsplit("/", 1)[1]) as im:
                pixel = im.convert("RGB").getpixel((40, 30))
            assert isinstance(pixel, tuple)
            assert all(abs(a - b) < 30 for a, b in zip(pixel, colour, strict=True)), (key, url)
        # once each, back to back and in order at the channel
        assert [sent.count(url) for url in urls] == [1, 1, 1], key
        start = sent.index(urls[0])
        assert sent[start : start + 3] == urls, key
    interrupted = next(urls for urls in by_item.values() if urls[0] == first)
    assert sent[:3] == interrupted  # the group cut by the kill was finished first
