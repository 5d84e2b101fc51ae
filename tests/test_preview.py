"""``viber-publisher preview``: the real pipeline, nothing posted, no state changed.

Golden files live in tests/data/preview/; regenerate them with
``UPDATE_GOLDEN=1 pytest tests/test_preview.py`` and review the diff.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import free_port

from publisher.adapters.sqlite import Store
from publisher.cli import cli
from publisher.compose import build_preview
from publisher.config import load_config
from publisher.ui.preview import json_lines, render_cards, write_html

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "preview"
NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
#: Folder items are keyed by name, size and mtime: pin the mtime.
MTIME = datetime(2026, 11, 1, 10, 0, tzinfo=UTC).timestamp()


def example_copy(tmp: Path, port: int = 8080) -> Path:
    """The README's example (sources.toml, samples, data/inbox) in ``tmp``."""
    shutil.copy(ROOT / "sources.toml", tmp / "sources.toml")
    shutil.copytree(ROOT / "samples", tmp / "samples")
    shutil.copytree(ROOT / "samples" / "inbox", tmp / "data" / "inbox")
    for path in (tmp / "data" / "inbox").iterdir():
        os.utime(path, (MTIME, MTIME))
    text = (tmp / "sources.toml").read_text()
    text = text.replace('listen = "127.0.0.1:8080"', f'listen = "127.0.0.1:{port}"')
    text = text.replace('min_interval = "3s"', 'min_interval = "0s"')
    (tmp / "sources.toml").write_text(text)
    return tmp / "sources.toml"


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        if not os.environ.get("UPDATE_GOLDEN"):
            pytest.fail(f"{path} did not exist; written, check it and run again")
    assert actual == path.read_text(encoding="utf-8"), f"differs from {path}"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(folder: Path) -> list[tuple[str, int, float]]:
    return sorted(
        (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime)
        for p in folder.rglob("*")
        if p.is_file()
    )


def invoke(*args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


# --------------------------------------------------------------------------
# help


def test_preview_help_names_every_option() -> None:
    code, out, _ = invoke("preview", "--help")
    assert code == 0
    for option in ("--source", "--limit", "--new-only", "--json", "--html"):
        assert option in out
    assert "without posting or changing anything" in out
    code, out, _ = invoke("--help")
    assert "preview" in out


def test_unknown_source_is_a_usage_error(tmp_path: Path) -> None:
    config = example_copy(tmp_path)
    code, _, err = invoke("--config", str(config), "preview", "--source", "nope")
    assert code == 2
    assert "no such source" in err


# --------------------------------------------------------------------------
# the example config: nothing posted, nothing changed


def add_new_items(tmp: Path) -> None:
    note = tmp / "data" / "inbox" / "005-new-note.txt"
    note.write_text("A note added after the first run.\n", encoding="utf-8")
    os.utime(note, (MTIME, MTIME))
    feed = tmp / "samples" / "feed.xml"
    text = feed.read_text(encoding="utf-8")
    extra = """
    <item>
      <title>Added later</title>
      <link>https://example.org/posts/later</link>
      <guid isPermaLink="false">sample-later</guid>
      <pubDate>Sat, 07 Nov 2026 09:00:00 +0000</pubDate>
      <description>An item that appeared after the first poll.</description>
    </item>
  </channel>"""
    feed.write_text(text.replace("</channel>", extra, 1), encoding="utf-8")


def test_preview_posts_nothing_and_changes_no_state(tmp_path: Path, standin: object) -> None:
    port = free_port()
    config = example_copy(tmp_path, port)
    code, _, err = invoke("--config", str(config), "run", "--once")
    assert code == 0, err
    state = tmp_path / "data" / "publisher.sqlite3"
    with Store.open(state, read_only=True) as store:
        posted_before = len(store.outbox("posted"))
    assert posted_before > 0
    add_new_items(tmp_path)

    # Preview against the stand-in as if it were Viber: it must hear nothing.
    live = config.read_text().replace('api_url = "local"', f'api_url = "{standin.api_url}"')  # type: ignore[attr-defined]
    live_config = tmp_path / "live.toml"
    live_config.write_text(live)
    before = (digest(state), listing(tmp_path / "data" / "inbox"), listing(tmp_path / "data"))

    code, cards, err = invoke("--config", str(live_config), "preview", "--width", "100")
    assert code == 0, err
    code, lines, err = invoke("--config", str(live_config), "preview", "--json")
    assert code == 0, err

    assert standin.requests == []  # type: ignore[attr-defined]
    assert (digest(state), listing(tmp_path / "data" / "inbox")) == before[:2]
    # Only SQLite's own -wal/-shm of a read-only open may appear.
    after = {name for name, _, _ in listing(tmp_path / "data")}
    assert {name for name, _, _ in before[2]} <= after
    assert not any(name.startswith("media/") for name in after - {n for n, *_ in before[2]})

    records = [json.loads(line) for line in lines.splitlines()]
    new = {(r["source"], r["item_key"]) for r in records if r["will_post"]}
    assert new == {
        ("sample-feed", "id:sample-later"),
        ("samples", next(r["item_key"] for r in records if "005-new-note" in r["item_key"])),
    }
    for record in records:
        if record["will_post"]:
            assert record["payload"]["type"] == "text"
            assert "auth_token" not in record["payload"] and "from" not in record["payload"]
            assert record["delivery"]["state"] in ("now", "later")
        else:
            assert record["reason"]
    reasons = {r["item_key"]: r["reason"] for r in records}
    assert reasons["id:sample-welcome"].startswith("already seen")
    assert "Added later" in cards and "A note added after the first run." in cards
    assert "already seen" in cards and "Nothing was posted" in cards

    # --new-only leaves the rest out.
    code, lines, _ = invoke("--config", str(live_config), "preview", "--json", "--new-only")
    assert {json.loads(line)["item_key"] for line in lines.splitlines()} == {k for _, k in new}

    # A later run behaves as if preview never ran: it posts exactly the new items.
    code, _, err = invoke("--config", str(config), "run", "--once")
    assert code == 0, err
    with Store.open(state, read_only=True) as store:
        posted = store.outbox("posted")
    assert len(posted) == posted_before + 2
    assert {(r.source, r.item_key) for r in posted[:2]} == new


# --------------------------------------------------------------------------
# golden files


def corpus_config(tmp: Path, feed: str, extra: str = "") -> Path:
    shutil.copy(DATA / "feeds" / feed, tmp / Path(feed).name)
    config = tmp / "sources.toml"
    config.write_text(
        f"""
[viber]
api_url = "local"
[storage]
path = "state/publisher.sqlite3"
media_dir = "state/media"
[[sources]]
name = "corpus"
type = "rss"
url = "{Path(feed).name}"
{extra}
"""
    )
    return config


GOLDEN_CASES = {
    # RSS with typed and untyped enclosures; images off so nothing is fetched.
    "reader-full-rss": ("reader/full.rss", "images = false\nbackfill = 1"),
    # JSON Feed with HTML and text content, a filter.
    "feedparser-json": ("feedparser-json/example.json", 'backfill = 10\nexclude = ["second"]'),
    # Atom with an entry that has no date.
    "reader-full-atom": ("reader/full.atom", "images = false\nbackfill = 10"),
}


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_corpus(name: str, tmp_path: Path) -> None:
    feed, extra = GOLDEN_CASES[name]
    config = load_config(corpus_config(tmp_path, feed, extra))
    media = tmp_path / "preview-media"
    media.mkdir()
    preview = build_preview(config, media, now=NOW)
    assert preview.errors == []
    check_golden(f"{name}.jsonl", _portable(json_lines(preview), tmp_path))
    check_golden(f"{name}.txt", _portable(render_cards(preview, width=100), tmp_path))
    assert not (tmp_path / "state").exists()


def test_golden_example_with_pictures(tmp_path: Path) -> None:
    config = load_config(example_copy(tmp_path))
    media = tmp_path / "preview-media"
    media.mkdir()
    preview = build_preview(config, media, now=NOW)
    assert preview.errors == []
    check_golden("example.jsonl", json_lines(preview))
    check_golden("example.txt", render_cards(preview, width=100))
    pictures = [e for e in preview.entries if any(m.type == "picture" for m in e.messages)]
    assert len(pictures) == 3
    # Media went to the temporary folder only.
    assert not (tmp_path / "data" / "media").exists()
    assert not (tmp_path / "data" / "publisher.sqlite3").exists()
    assert len(list(media.iterdir())) == 6


def _portable(text: str, tmp: Path) -> str:
    return text.replace(str(tmp), "<tmp>")


def test_cli_json_matches_library_output(tmp_path: Path) -> None:
    config = example_copy(tmp_path)
    code, out, err = invoke(
        "--config", str(config), "preview", "--json", "--now", "2026-11-10T12:00:00Z"
    )
    assert code == 0, err
    assert out == (GOLDEN / "example.jsonl").read_text(encoding="utf-8")


def test_limit_and_source(tmp_path: Path) -> None:
    config = example_copy(tmp_path)
    code, out, _ = invoke(
        "--config", str(config), "preview", "--json", "--source", "sample-feed", "--limit", "2"
    )
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["source"] for r in records] == ["sample-feed", "sample-feed"]


def test_delivery_policy_window_and_expiry(tmp_path: Path) -> None:
    config_path = example_copy(tmp_path)
    text = config_path.read_text()
    text = text.replace(
        '# window = { days = ["mon", "tue", "wed", "thu", "fri"], start = "08:00", end = "22:30" }',
        'window = { days = ["mon", "tue", "wed", "thu", "fri"], start = "08:00", end = "22:30" }',
    )
    text = text.replace('# max_age = "3d"', 'max_age = "7d"')
    config_path.write_text(text)
    config = load_config(config_path)
    media = tmp_path / "m"
    media.mkdir()
    # Saturday 2026-11-14 12:00 UTC: the window is closed until Monday 08:00.
    preview = build_preview(config, media, now=datetime(2026, 11, 14, 12, 0, tzinfo=UTC))
    by_key = {e.item.key: e for e in preview.entries}
    expired = by_key["id:sample-welcome"]  # published 2 Nov: older than 7 days by Monday
    assert not expired.will_post and expired.action == "expired"
    assert "max_age" in expired.reason
    waiting = [e for e in preview.entries if e.will_post]
    assert waiting
    far = datetime.max.replace(tzinfo=UTC)
    first = min(waiting, key=lambda e: (e.delivery.at if e.delivery else None) or far)
    assert first.delivery is not None and first.delivery.state == "later"
    assert "outside posting window" in first.delivery.reason
    assert first.delivery.at == datetime(2026, 11, 16, 8, 0, tzinfo=UTC)
    cards = render_cards(preview, width=120)
    assert "outside posting window" in cards and "expired" in cards


# --------------------------------------------------------------------------
# the page, in a real browser


@pytest.fixture(scope="session")
def chromium() -> str:
    """The headless browser; tests install nothing (``make browser`` does)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip(
            "no chromium on PATH: run `make browser` (as root it installs Debian's "
            "chromium with apt-get), or install Chromium yourself"
        )
    return found


def dump_dom(browser: str, url: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=5000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.browser
def test_html_page_in_headless_chromium(tmp_path: Path, chromium: str) -> None:
    config = load_config(example_copy(tmp_path))
    media = tmp_path / "preview-media"
    media.mkdir()
    preview = build_preview(config, media, now=NOW)
    out = tmp_path / "page"
    page = write_html(preview, out)
    dom = dump_dom(chromium, page.as_uri())
    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None
    loaded = re.search(r'data-loaded="(\d+)"', body.group(1))
    total = re.search(r'data-images="(\d+)"', body.group(1))
    assert loaded and total, body.group(0)
    assert int(total.group(1)) == 3  # the three pictures of the example
    assert loaded.group(1) == total.group(1)
    shown = re.findall(r'data-post="([^"]+)"', dom)
    assert sorted(shown) == sorted(f"{e.source}/{e.item.key}" for e in preview.entries)
    assert dom.count('data-will-post="false"') == sum(1 for e in preview.entries if not e.will_post)
    assert "sponsored" in dom.lower()  # the filtered item, greyed with its reason
    # Self-contained: every image is a file beside the page.
    for src in re.findall(r'<img[^>]* src="([^"]+)"', dom):
        assert (out / src).is_file(), src


def test_cli_html_option_writes_the_page(tmp_path: Path) -> None:
    config = example_copy(tmp_path)
    out = tmp_path / "html"
    code, _, err = invoke("--config", str(config), "preview", "--html", str(out), "--new-only")
    assert code == 0, err
    assert (out / "index.html").is_file()
    assert len(list((out / "media").iterdir())) == 6
