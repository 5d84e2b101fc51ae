"""One service per state file: a second ``run`` exits 1 at once naming the
first, before it touches anything; the other commands work beside it; and
queuing an item checks again, inside its transaction, that it is not queued."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import helpers
import pytest
from helpers import free_port, put, run_cli, running_service, wait_for

from publisher.adapters.sqlite import Store
from publisher.adapters.sqlite.lock import StateLock, lock_path
from publisher.config import load_config
from publisher.core.errors import StoreError
from publisher.core.items import Item, RenderedItem, RenderedMessage
from publisher.service.reload import pid_path
from publisher.service.runner import Service

NOW = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)

FOLDER = """
[[sources]]
name = "notes"
type = "folder"
path = "inbox"
every = "1h"
"""


def write_config(tmp: Path, **options: str) -> Path:
    return helpers.write_config(
        tmp,
        "local",
        listen=f"127.0.0.1:{free_port()}",
        state="state/publisher.sqlite3",
        media_dir="state/media",
        rest=FOLDER,
        **options,
    )


def test_the_lock_names_its_holder_and_is_free_once_released(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    held = StateLock.acquire(state)
    assert lock_path(state).read_text().strip() == str(os.getpid())
    in_use = f"in use by another viber-publisher run \\(pid {os.getpid()}\\)"
    with pytest.raises(StoreError, match=in_use):
        StateLock.acquire(state)
    assert not state.exists()  # the state file itself is never opened
    held.release()
    StateLock.acquire(state).release()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from publisher.adapters.sqlite.lock import StateLock; "
            f"StateLock.acquire({str(state)!r}); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match=f"pid {holder.pid}"):
            StateLock.acquire(state)
    finally:
        holder.kill()
        holder.wait()
    StateLock.acquire(state).release()


def test_a_second_service_object_is_refused_before_it_opens_the_store(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    first = Service(config, serve=False)
    try:
        with pytest.raises(StoreError, match="in use by another viber-publisher run"):
            Service(config, serve=False)
    finally:
        first.close()
    Service(config, serve=False).close()  # closing released it


@pytest.mark.slow
def test_a_second_run_exits_1_naming_the_first_and_status_works_beside_it(
    tmp_path: Path,
) -> None:
    put(tmp_path / "inbox", "001-hello.txt", "Hello\n")
    write_config(tmp_path)
    config = load_config(tmp_path / "sources.toml")
    with running_service(tmp_path) as process:
        pid_file = pid_path(config)
        wait_for(
            lambda: pid_file.exists() and pid_file.read_text().strip() == str(process.pid),
            "the service's pid file",
            tmp_path / "run.log",
        )
        wait_for(
            lambda: "posted" in run_cli(tmp_path, "status").stdout,
            "the note posted",
            tmp_path / "run.log",
        )
        before = (tmp_path / "run.log").read_text()
        for args in (("run", "--once"), ("run",)):
            second = run_cli(tmp_path, *args)
            assert second.returncode == 1, second.stderr
            assert f"(pid {process.pid})" in second.stderr
            assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
        # The first keeps its pid file and its post; nothing was recovered or re-set.
        assert pid_file.read_text().strip() == str(process.pid)
        assert process.poll() is None
        status = run_cli(tmp_path, "status")
        assert status.returncode == 0, status.stderr
        preview = run_cli(tmp_path, "preview")
        assert preview.returncode == 0, preview.stderr
        assert (tmp_path / "run.log").read_text().startswith(before)
        with Store.open(config.storage.path, read_only=True) as store:
            assert [r.status for r in store.outbox()] == ["posted"]


def _rendered(key: str, text: str = "hello") -> RenderedItem:
    item = Item(source="news", key=key, title=key, content_hash="h-" + key)
    return RenderedItem(item, (RenderedMessage({"type": "text", "text": text}),))


def test_queuing_an_item_queued_already_queues_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with Store.open(path) as first, Store.open(path) as second:
        # Both planned on a snapshot where the item was new; the first queues it.
        assert first.queue_item(_rendered("a"), NOW) != []
        assert second.queue_item(_rendered("a"), NOW) == []
        assert second.queue_routes({"main": _rendered("a"), "other": _rendered("a")}, NOW) == {
            "other": [2]
        }
        assert [(r.channel, r.item_key) for r in second.outbox(newest_first=False)] == [
            ("main", "a"),
            ("other", "a"),
        ]


def test_an_edited_item_is_still_queued_again(tmp_path: Path) -> None:
    with Store.open(tmp_path / "state.sqlite3") as store:
        store.queue_item(_rendered("a"), NOW)
        edited = _rendered("a", "edited")
        edited = RenderedItem(
            Item(source="news", key="a", title="a", content_hash="h-a-2"), edited.messages
        )
        assert store.queue_item(edited, NOW) != []
        assert len(store.outbox()) == 2
