"""Hardening: hostile feeds, media URLs pointing inside the network, and the
token never leaking (logs, errors, the state file, ``status``)."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from helpers import STANDIN_TOKEN, put, write_config

from publisher.adapters.fetch import Fetcher
from publisher.adapters.sqlite import Store
from publisher.adapters.standin import ViberStandIn
from publisher.config import parse_config
from publisher.core.config import FetchConfig
from publisher.core.errors import MediaError
from publisher.service.runner import Service

BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n <!ENTITY lol "lol">\n'
    + b"".join(
        b' <!ENTITY lol%d "%s">\n' % (n, (b"&lol%d;" % (n - 1) if n > 1 else b"&lol;") * 10)
        for n in range(1, 10)
    )
    + b"]>\n"
    b'<rss version="2.0"><channel><title>Laughs</title><link>http://127.0.0.1/</link>'
    b"<item><title>&lol9;</title><guid>bomb-1</guid><description>&lol9;</description></item>"
    b"<item><title>harmless</title><guid>ok-1</guid><description>fine</description></item>"
    b"</channel></rss>\n"
)


def feed_config(tmp_path: Path, url: str, *, allow_private: bool = False) -> Any:
    return parse_config(
        {
            "server": {"public_url": "http://127.0.0.1:9"},
            "storage": {
                "path": str(tmp_path / "state.sqlite3"),
                "media_dir": str(tmp_path / "media"),
            },
            "fetch": {"allow_private": allow_private},
            "sources": [{"name": "feed", "type": "rss", "url": url, "backfill": 10}],
        }
    )


def poll(config: Any) -> tuple[Any, list[Any]]:
    service = Service(config, token=STANDIN_TOKEN, serve=False)
    try:
        outcome = service.poll_source(config.sources[0])
        rows = service.store.outbox(limit=1000)
    finally:
        service.close()
    return outcome, rows


def test_an_entity_expansion_bomb_is_not_expanded(tmp_path: Path, media_host: Any) -> None:
    url = media_host.add("/bomb.xml", BILLION_LAUGHS, "application/rss+xml")
    config = feed_config(tmp_path, url)
    tracemalloc.start()
    try:
        outcome, rows = poll(config)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 10**9 "lol"s would be 3 GB; a generous bound shows nothing was expanded.
    assert peak < 150 * 1024 * 1024
    if outcome.ok:
        for row in rows:
            assert row.payload.get("text", "").count("lol") < 100
    else:
        assert outcome.error


def media_feed(image_url: str) -> bytes:
    return (
        '<?xml version="1.0"?><rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/">'
        "<channel><title>Pictures</title><link>http://127.0.0.1/</link>"
        "<item><title>A picture</title><guid>pic-1</guid><description>Look.</description>"
        f'<enclosure url="{image_url}" type="image/jpeg" length="1000"/></item>'
        "</channel></rss>"
    ).encode()


@pytest.mark.parametrize("allow_private", [False, True])
def test_media_in_private_networks_is_held_to_allow_private(
    tmp_path: Path, media_host: Any, jpeg_bytes: bytes, allow_private: bool
) -> None:
    image = media_host.add("/pic.jpg", jpeg_bytes, "image/jpeg")
    url = media_host.add("/feed.xml", media_feed(image), "application/rss+xml")
    outcome, rows = poll(feed_config(tmp_path, url, allow_private=allow_private))
    assert outcome.ok and outcome.queued == 1
    [row] = rows
    fetched = ("GET", "/pic.jpg") in media_host.hits
    if allow_private:
        assert row.payload["type"] == "picture"
        assert fetched
    else:
        assert row.payload["type"] == "text"
        assert not fetched
        fallbacks = [detail for code, detail in row.decisions if code == "fallback"]
        assert fallbacks and "allow_private" in fallbacks[0]


def test_a_redirect_into_the_private_network_is_refused(media_host: Any, jpeg_bytes: bytes) -> None:
    private = media_host.add("/pic.jpg", jpeg_bytes, "image/jpeg")
    asked: list[str] = []

    def public_web(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        if request.url.path == "/to-private.jpg":
            return httpx.Response(302, headers={"Location": private})
        if request.url.path == "/to-public.jpg":
            return httpx.Response(302, headers={"Location": "http://cdn.example/pic.jpg"})
        return httpx.Response(200, content=jpeg_bytes, headers={"Content-Type": "image/jpeg"})

    fetcher = Fetcher(
        FetchConfig(allow_private=False),
        transport=httpx.MockTransport(public_web),
        resolve=lambda host, port: ["93.184.216.34"],  # a public address for every name
    )
    with fetcher:
        assert fetcher.fetch_media("http://news.example/to-public.jpg").data == jpeg_bytes
        with pytest.raises(MediaError, match="private or local address"):
            fetcher.fetch_media("http://news.example/to-private.jpg")
    assert asked[-1] == "http://news.example/to-private.jpg"  # the hop before was asked...
    assert media_host.hits == []  # ...the private one never


# --------------------------------------------------------------------------
# the token never leaks


WRONG_TOKEN = "0ddba11c0ffee000-1234567890abcdef-fedcba0987654321"


def _run(config: Path, token: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, VIBER_AUTH_TOKEN=token)
    command = [sys.executable, "-m", "publisher", "--config", str(config), *args]
    return subprocess.run(command, cwd=config.parent, env=env, capture_output=True, timeout=90)


@pytest.mark.slow
def test_the_token_never_appears_in_output_state_or_status(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    inbox = tmp_path / "inbox"
    for name in ("001-refused.txt", "002-unknown.txt", "003-retried.txt", "004-ok.txt"):
        put(inbox, name, f"note {name}\n")
    config = write_config(
        tmp_path,
        standin.api_url,
        viber='timeout = "1s"',
        # Long enough that the retried post stays queued through both runs: with
        # a short back-off it was sent again, or not, depending on how fast the
        # machine was, and when it was the second run found nothing to post.
        delivery='retry_backoff = "1h"',
        rest='[[sources]]\nname = "inbox"\ntype = "folder"\npath = "inbox"\n',
    )
    outputs: list[bytes] = []
    # One post is refused, one is sent without an answer, one waits for a retry,
    # one goes.
    standin.fail_next("status", status=3, status_message="badData: refused for the test")
    standin.fail_next("drop_after")
    # (Viber status 99, not an HTTP 500: an outage answer holds the whole
    # channel so that no later post overtakes the retried one.)
    standin.fail_next("status", status=99)
    run = _run(config, STANDIN_TOKEN, "--log-level", "debug", "run", "--once")
    outputs += [run.stdout, run.stderr]
    assert run.returncode == 0, run.stderr.decode()
    with Store.open(tmp_path / "state.sqlite3", read_only=True) as store:
        rows = {row.item_key.split(":", 1)[1].split("@")[0]: row for row in store.outbox()}
    assert {name: row.status for name, row in rows.items()} == {
        "001-refused.txt": "failed",
        "002-unknown.txt": "unknown",
        "003-retried.txt": "queued",
        "004-ok.txt": "posted",
    }
    assert rows["003-retried.txt"].attempts == 1

    # A refused token: posting stops, exit 3, and the message says where to look.
    # A new note, so that this run has something to post and must ask Viber.
    put(inbox, "005-after.txt", "note 005-after.txt\n")
    refused = _run(
        config, WRONG_TOKEN, "--log-format", "json", "--log-level", "debug", "run", "--once"
    )
    outputs += [refused.stdout, refused.stderr]
    assert refused.returncode == 3, refused.stderr.decode()
    assert b"VIBER_AUTH_TOKEN" in refused.stderr

    from publisher.cli import cli

    for args in (["status"], ["status", "--json"]):
        shown = CliRunner().invoke(
            cli, ["--config", str(config), *args], env={"VIBER_AUTH_TOKEN": STANDIN_TOKEN}
        )
        assert shown.exception is None or isinstance(shown.exception, SystemExit), shown.output
        assert shown.output.strip()
        outputs.append(shown.output.encode())

    state = b"".join(p.read_bytes() for p in tmp_path.glob("state.sqlite3*"))
    assert b"refused for the test" in state  # the state file was really searched
    for token in (STANDIN_TOKEN, WRONG_TOKEN):
        for output in outputs:
            assert token.encode() not in output
        assert token.encode() not in state
