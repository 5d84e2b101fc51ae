"""The state file as an operator meets it: ``check`` finds a damaged one,
``run`` refuses a lost one (missing or empty beside media of earlier posts)
unless ``--new-state``, and ``backup`` copies it while the service runs."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import STANDIN_TOKEN

from publisher.adapters.sqlite import Store
from publisher.adapters.sqlite.db import quick_check
from publisher.cli import cli
from publisher.core.items import Item, RenderedItem, RenderedMessage

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MEDIA_NAME = "0123456789abcdef0123456789abcdef.jpg"


def rendered(key: str, text: str = "hello") -> RenderedItem:
    item = Item(source="blog", key=key, title=key, content_hash=key)
    return RenderedItem(item, (RenderedMessage({"type": "text", "text": text}),))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(
        '[viber]\napi_url = "local"\n[server]\nlisten = "127.0.0.1:0"\n'
        f'[storage]\npath = "{tmp_path / "state.sqlite3"}"\nmedia_dir = "{tmp_path / "media"}"\n',
        encoding="utf-8",
    )
    return path


def invoke(config: Path, *args: str) -> Result:
    return CliRunner().invoke(
        cli, ["--config", str(config), *args], env={"VIBER_AUTH_TOKEN": STANDIN_TOKEN}
    )


def one_line(result: Result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return lines[0]


def damage(path: Path) -> None:
    with Store.open(path) as store:
        for i in range(200):
            store.queue_item(rendered(f"k{i}", "x" * 500), T0)
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    data = bytearray(path.read_bytes())
    for start in range(2 * 4096, len(data), 4096):  # keep the header page, break the rest
        data[start : start + 64] = b"\xa5" * 64
    path.write_bytes(bytes(data))


# ---- check


def test_check_says_ok_for_a_sound_state_file(config: Path, tmp_path: Path) -> None:
    with Store.open(tmp_path / "state.sqlite3") as store:
        store.queue_item(rendered("a"), T0)
    result = invoke(config, "check")
    assert result.exit_code == 0, result.output
    assert "state.sqlite3: ok (integrity checked)" in result.output


def test_check_reports_a_damaged_state_file(config: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    damage(state)
    before = state.read_bytes()
    result = invoke(config, "check")
    assert result.exit_code == 1
    line = one_line(result)
    assert "is damaged" in line and "restore it from a backup" in line
    assert state.read_bytes() == before  # read-only
    assert quick_check(state) != []


def test_check_warns_about_a_lost_state_file(config: Path, tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / MEDIA_NAME).write_bytes(b"jpeg")
    result = invoke(config, "check")
    assert result.exit_code == 0
    assert "warning: the state file" in result.output and "does not exist" in result.output


# ---- a lost state file


@pytest.mark.parametrize("empty", [True, False], ids=["empty", "missing"])
def test_run_refuses_a_lost_state_file_unless_new_state(
    config: Path, tmp_path: Path, empty: bool
) -> None:
    state = tmp_path / "state.sqlite3"
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / MEDIA_NAME).write_bytes(b"jpeg")
    if empty:
        state.write_bytes(b"")
    result = invoke(config, "run", "--once")
    assert result.exit_code == 1
    line = one_line(result)
    assert ("is empty (0 bytes)" if empty else "does not exist") in line
    assert "backfill" in line and "run --new-state" in line and "backup PATH" in line
    assert state.exists() == empty and (not empty or state.stat().st_size == 0)

    started = invoke(config, "run", "--once", "--new-state")
    assert started.exit_code == 0, started.output
    assert state.stat().st_size > 0
    # Once there is a state again, no flag is needed.
    assert invoke(config, "run", "--once").exit_code == 0


def test_a_first_run_needs_no_flag(config: Path, tmp_path: Path) -> None:
    result = invoke(config, "run", "--once")
    assert result.exit_code == 0, result.output


# ---- backup


def test_backup_copies_the_state_while_it_is_in_use(config: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    with Store.open(state) as store:  # held open: its writes are in the WAL
        ids = store.queue_item(rendered("a"), T0)
        result = invoke(config, "backup", str(tmp_path / "copy.sqlite3"))
        assert result.exit_code == 0, result.output
        assert "integrity checked" in result.output
        store.queue_item(rendered("b"), T0)  # the service goes on writing
    with Store.open(tmp_path / "copy.sqlite3", read_only=True) as copy:
        assert [r.id for r in copy.outbox()] == ids
    assert quick_check(tmp_path / "copy.sqlite3") == []

    again = invoke(config, "backup", str(tmp_path / "copy.sqlite3"))
    assert again.exit_code == 1 and "--force" in one_line(again)
    assert invoke(config, "backup", str(tmp_path / "copy.sqlite3"), "--force").exit_code == 0
    (tmp_path / "backups").mkdir()
    into = invoke(config, "backup", str(tmp_path / "backups"))
    assert into.exit_code == 0, into.output
    assert [p.name.startswith("publisher-") for p in (tmp_path / "backups").iterdir()] == [True]


def test_backup_says_what_is_wrong(config: Path, tmp_path: Path) -> None:
    missing = invoke(config, "backup", str(tmp_path / "copy.sqlite3"))
    assert missing.exit_code == 1 and "no state file yet" in one_line(missing)
    Store.open(tmp_path / "state.sqlite3").close()
    nowhere = invoke(config, "backup", str(tmp_path / "no" / "such" / "copy.sqlite3"))
    assert nowhere.exit_code == 1 and "cannot be written" in one_line(nowhere)


def test_backup_of_a_damaged_file_says_so(config: Path, tmp_path: Path) -> None:
    damage(tmp_path / "state.sqlite3")
    result = invoke(config, "backup", str(tmp_path / "copy.sqlite3"))
    assert result.exit_code == 1
    assert "damaged" in one_line(result)
