"""A fault found in the middle of a command is one line, never a traceback."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import write_config

from publisher.adapters.sqlite import Store
from publisher.cli import cli
from publisher.core.items import Item, RenderedItem, RenderedMessage

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _damaged_state(path: Path) -> None:
    """A state file whose header is fine and whose other pages are not."""
    with Store.open(path) as store:
        for i in range(200):
            item = Item(source="blog", key=f"k{i}", title="t", content_hash=f"h{i}")
            message = RenderedMessage({"type": "text", "text": "x" * 500})
            store.queue_item(RenderedItem(item, (message,), ()), T0)
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    data = bytearray(path.read_bytes())
    for start in range(2 * 4096, len(data), 4096):
        data[start : start + 64] = b"\xa5" * 64
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["retry", "3"]])
def test_a_damaged_state_file_is_one_line_that_says_what_to_do(
    tmp_path: Path, command: list[str]
) -> None:
    config = write_config(tmp_path, "local")
    _damaged_state(tmp_path / "state.sqlite3")
    result = CliRunner().invoke(cli, ["--config", str(config), *command])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, sqlite3.Error)
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    assert "damaged" in lines[0] and "backup" in lines[0]
