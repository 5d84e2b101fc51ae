"""``viber-publisher status``, and the delivery policy's acceptance tests:

- ``max_per_hour = 2`` with 5 items due: ``run --once`` posts 2 and leaves 3
  queued, and ``status`` says when the next may go;
- with the window closed nothing is posted, and ``status`` shows the next
  opening in the configured timezone.

Real parts: a folder source, ``run --once`` through click, the stand-in of
Viber on 127.0.0.1 as ``api_url``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import helpers
import pytest
from click.testing import CliRunner, Result
from helpers import STANDIN_TOKEN, notes

from publisher.adapters.sqlite import Store
from publisher.adapters.standin import SUPERADMIN_ID, ViberStandIn
from publisher.cli import cli
from publisher.core.config import DAYS, Window
from publisher.core.policy import next_window_opening

BERLIN = ZoneInfo("Europe/Berlin")


def make_notes(folder: Path, count: int) -> None:
    notes(folder, *(f"Note number {i}" for i in range(1, count + 1)))


def write_config(tmp: Path, api_url: str, delivery: str) -> Path:
    return helpers.write_config(
        tmp,
        api_url,
        state="state/publisher.sqlite3",
        media_dir="state/media",
        delivery=f'timezone = "Europe/Berlin"\n{delivery}',
        rest='[[sources]]\nname = "notes"\ntype = "folder"\npath = "inbox"\nevery = "1m"\n',
    )


def invoke(config: Path, *args: str) -> Result:
    runner = CliRunner()
    return runner.invoke(
        cli,
        ["--config", str(config), *args],
        env={"VIBER_AUTH_TOKEN": STANDIN_TOKEN, "PUBLISHER_CONFIG": None},
        catch_exceptions=False,
    )


def status_json(config: Path) -> dict[str, Any]:
    result = invoke(config, "status", "--json")
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def _when(instant: datetime, now: datetime) -> str:
    """How the policy words a time: seconds only when there are any."""
    local = instant.astimezone(BERLIN)
    return local.strftime("%H:%M:%S" if local.second or local.microsecond else "%H:%M")


def test_rate_limit_posts_two_and_status_says_when_the_next_may_go(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    make_notes(tmp_path / "inbox", 5)
    config = write_config(tmp_path, standin.api_url, "max_per_hour = 2")

    result = invoke(config, "run", "--once")
    assert result.exit_code == 0, result.output

    assert [p.payload["text"].strip() for p in standin.posts] == ["Note number 1", "Note number 2"]
    doc = status_json(config)
    (notes,) = doc["sources"]
    assert notes["counts"]["posted"] == 2
    assert notes["counts"]["queued"] == 3
    assert doc["queued"] == 3
    assert [q["item"].split("@")[0] for q in doc["queue"]] == [
        "file:003-note.txt",
        "file:004-note.txt",
        "file:005-note.txt",
    ]
    # The next may go one hour after the first of the two posts.
    with Store.open(tmp_path / "state" / "publisher.sqlite3", read_only=True) as store:
        first = min(row.posted_at for row in store.recent_posts() if row.posted_at)
    expected_at = first + timedelta(hours=1)
    nxt = doc["next_post"]
    assert nxt["state"] == "waiting"
    assert datetime.fromisoformat(nxt["at"]) == expected_at.replace(microsecond=0)
    assert nxt["reason"].startswith("rate limit: 2 per hour reached; next at")
    assert nxt["reason"].endswith(f"{_when(expected_at, first)} Europe/Berlin")

    human = invoke(config, "status")
    assert human.exit_code == 0
    assert "rate limit: 2 per hour reached; next at" in human.stdout
    # whom the posts go out as: the superadmin the service found at start
    assert doc["posting"]["sender"] == f"Stand-in Owner ({SUPERADMIN_ID})"
    assert f"Posts go out as: Stand-in Owner ({SUPERADMIN_ID})" in human.stdout
    assert f"{_when(expected_at, first)} Europe/Berlin" in human.stdout
    # The latest posts show their message tokens; the auth token never appears.
    tokens = {str(p.message_token) for p in standin.posts}
    assert {p["message_token"] for p in doc["recent_posts"]} == tokens
    assert all(token in human.stdout for token in tokens)
    assert STANDIN_TOKEN not in human.stdout + json.dumps(doc)


def test_closed_window_posts_nothing_and_status_shows_the_next_opening(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    now = datetime.now(UTC)
    local = now.astimezone(BERLIN)
    start = (local + timedelta(hours=2)).time().replace(second=0, microsecond=0)
    end = (local + timedelta(hours=3)).time().replace(second=0, microsecond=0)
    days = ", ".join(f'"{d}"' for d in DAYS)
    window = f'window = {{ days = [{days}], start = "{start:%H:%M}", end = "{end:%H:%M}" }}'
    make_notes(tmp_path / "inbox", 3)
    config = write_config(tmp_path, standin.api_url, window)

    result = invoke(config, "run", "--once")
    assert result.exit_code == 0, result.output

    assert standin.posts == []
    doc = status_json(config)
    assert doc["sources"][0]["counts"]["queued"] == 3
    opening = next_window_opening(Window(DAYS, start, end), BERLIN, datetime.now(UTC))
    words = f"outside posting window (opens {opening.astimezone(BERLIN):%a %H:%M} Europe/Berlin)"
    assert doc["next_post"]["reason"] == words
    assert datetime.fromisoformat(doc["next_post"]["at"]) == opening.replace(microsecond=0)
    human = invoke(config, "status")
    assert words in human.stdout


def test_status_before_anything_ran_says_so_and_creates_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path, "local", "")
    result = invoke(config, "status")
    assert result.exit_code == 0
    assert "nothing has run yet" in result.stdout
    doc = json.loads(invoke(config, "status", "--json").stdout)
    assert doc["ran"] is False
    assert not (tmp_path / "state").exists()


def test_status_while_the_service_creates_its_state_says_so(tmp_path: Path) -> None:
    """The file exists but its first set-up has not committed (a service is
    starting): nothing to read yet, not an error."""
    config = write_config(tmp_path, "local", "")
    (tmp_path / "state").mkdir()
    sqlite3.connect(tmp_path / "state" / "publisher.sqlite3").close()  # version 0, no tables
    result = invoke(config, "status")
    assert result.exit_code == 0, result.output
    assert "nothing has run yet: the service is creating its state" in result.stdout
    doc = json.loads(invoke(config, "status", "--json").stdout)
    assert doc["ran"] is False


def test_item_story_tells_seen_queued_posted_and_filtered(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    make_notes(tmp_path / "inbox", 2)
    (tmp_path / "inbox" / "002-note.txt").write_text("Note number 2 with spam\n")
    old = time.time() - 3600
    os.utime(tmp_path / "inbox" / "002-note.txt", (old, old))
    config = write_config(tmp_path, standin.api_url, "")
    text = config.read_text().replace('every = "1m"', 'every = "1m"\nexclude = ["spam"]')
    config.write_text(text)
    state = tmp_path / "state" / "publisher.sqlite3"

    assert invoke(config, "run", "--once").exit_code == 0
    before = state.stat().st_mtime_ns

    posted = json.loads(invoke(config, "status", "--json", "--item", "001-note").stdout)
    assert posted["found"] is True
    assert [e["event"] for e in posted["events"]][:2] == ["seen", "queued"]
    assert posted["events"][-1]["event"] == "posted"
    (post,) = posted["posts"]
    assert post["status"] == "posted"
    assert post["message_token"] == str(standin.posts[0].message_token)

    held = invoke(config, "status", "--item", "002-note", "--source", "notes")
    assert held.exit_code == 0
    assert "filtered" in held.stdout and "spam" in held.stdout

    missing = invoke(config, "status", "--item", "no-such-item")
    assert missing.exit_code == 1
    assert "no events for item" in missing.stdout
    ambiguous = invoke(config, "status", "--item", "note")
    assert ambiguous.exit_code == 1
    # status never writes the state file.
    assert state.stat().st_mtime_ns == before


@pytest.mark.parametrize("args", [["status", "--help"], ["health", "--help"], ["reload", "--help"]])
def test_commands_have_help(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_status_counts_items_and_they_add_up(tmp_path: Path, standin: ViberStandIn) -> None:
    """Per source, every item the source offered is counted once, in one
    state, and the states add up to ``seen``: a picture Viber would refuse is
    ``failed``, a filtered item ``skipped`` (neither ever reaches the outbox);
    the text table shows the same numbers."""
    inbox = tmp_path / "inbox"
    notes(inbox, "Note one", "Note two", "SECRET plans")
    (inbox / "004-broken.jpg").write_bytes(b"this is not a picture")
    old = time.time() - 3600  # settled long ago: taken on the first poll
    os.utime(inbox / "004-broken.jpg", (old, old))
    config = helpers.write_config(
        tmp_path,
        standin.api_url,
        state="state/publisher.sqlite3",
        media_dir="state/media",
        delivery="max_per_hour = 1",
        rest='[[sources]]\nname = "notes"\ntype = "folder"\npath = "inbox"\nexclude = ["SECRET"]\n',
    )
    assert invoke(config, "run", "--once").exit_code == 0

    (source,) = status_json(config)["sources"]
    counts = source["counts"]
    assert counts["seen"] == 4
    assert (counts["posted"], counts["queued"], counts["failed"], counts["skipped"]) == (1, 1, 1, 1)
    assert counts["seen"] == sum(n for state, n in counts.items() if state != "seen")
    human = invoke(config, "status").stdout
    row = next(line for line in human.splitlines() if "notes" in line)
    assert "│ 4 " in row and row.count("│ 1 ") == 4, human


def test_status_shows_the_media_folder_size_and_says_a_bucket_is_not_listed(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    config = write_config(tmp_path, standin.api_url, "")
    notes(tmp_path / "inbox", "Note one")
    assert invoke(config, "run", "--once").exit_code == 0
    media = tmp_path / "state" / "media"
    (media / ("a" * 32 + ".jpg")).write_bytes(b"x" * 1000)
    (media / ("b" * 32 + ".mp4")).write_bytes(b"y" * 2000)
    (media / ".tmp-upload.part").write_bytes(b"z" * 500)  # a write in progress
    (media / "notes.txt").write_bytes(b"not ours")

    doc = status_json(config)["media"]
    assert (doc["store"], doc["files"], doc["bytes"]) == ("folder", 2, 3000)
    assert "Media: 2 files, 2.9 KB in " in invoke(config, "status").stdout

    text = config.read_text(encoding="utf-8").replace(
        "[storage]",
        '[storage]\nmedia_url = "s3://pictures/viber"\n'
        'public_media_url = "https://cdn.example.com/viber"',
        1,
    )
    config.write_text(text, encoding="utf-8")
    doc = status_json(config)["media"]
    assert (doc["store"], doc["files"], doc["bytes"]) == ("bucket", None, None)
    assert "Media: in the bucket s3://pictures/viber (not listed here)" in (
        invoke(config, "status").stdout
    )
