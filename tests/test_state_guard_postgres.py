"""One service per database, with the state in PostgreSQL: a second ``run``
(here, or on another machine) exits 1 at once naming the first's pid and
host, before it touches anything; the lock goes when the holder's session
ends; the other commands work beside it. Against the real PostgreSQL server
the tests start (tests/postgres.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import helpers
import pytest
from helpers import free_port, run_cli

from publisher.config import load_config
from publisher.core.errors import StoreError

psycopg = pytest.importorskip("psycopg")

from publisher.adapters.postgres import PostgresStore  # noqa: E402
from publisher.adapters.postgres.lock import ServiceLock  # noqa: E402

FOLDER = """
[[sources]]
name = "notes"
type = "folder"
path = "inbox"
every = "1h"
"""

IN_USE = "is in use by another viber-publisher run"


def write_config(tmp: Path, url: str) -> Path:
    path = helpers.write_config(
        tmp,
        "local",
        listen=f"127.0.0.1:{free_port()}",
        state="state/publisher.sqlite3",
        media_dir="state/media",
        rest=FOLDER,
    )
    text = path.read_text(encoding="utf-8").replace("[storage]\n", f'[storage]\nurl = "{url}"\n')
    path.write_text(text, encoding="utf-8")
    return path


def me() -> str:
    return f"pid {os.getpid()} on host {socket.gethostname()}"


def test_a_second_guard_is_refused_naming_the_first_until_it_is_released(
    postgres_url: str,
) -> None:
    held = ServiceLock.acquire(postgres_url)
    try:
        with pytest.raises(StoreError, match=IN_USE) as caught:
            ServiceLock.acquire(postgres_url)
        line = str(caught.value)
        assert f"({me()}, since " in line and "\n" not in line
        assert "stop that one first" in line
    finally:
        held.release()
    assert not held.held
    ServiceLock.acquire(postgres_url).release()  # the closed session freed it


def test_the_lock_is_one_per_database(postgres_server: object, postgres_url: str) -> None:
    other = postgres_server.new_database()  # type: ignore[attr-defined]
    with_lock = ServiceLock.acquire(postgres_url)
    try:
        ServiceLock.acquire(other).release()
    finally:
        with_lock.release()


def test_a_killed_holder_leaves_no_stale_lock(postgres_url: str) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from publisher.adapters.postgres.lock import ServiceLock; "
            f"lock = ServiceLock.acquire({postgres_url!r}); "
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match=f"pid {holder.pid} on host {socket.gethostname()}"):
            ServiceLock.acquire(postgres_url)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    deadline = time.monotonic() + 15
    while True:  # the server notices the closed socket and ends the session
        try:
            ServiceLock.acquire(postgres_url).release()
            break
        except StoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_compose_chooses_the_lock_by_the_store(postgres_url: str, tmp_path: Path) -> None:
    from publisher.adapters.sqlite.lock import StateLock
    from publisher.compose import lock_state

    config = load_config(write_config(tmp_path, postgres_url))
    lock = lock_state(config)
    try:
        assert isinstance(lock, ServiceLock)
        assert not (tmp_path / "state" / "publisher.sqlite3.lock").exists()
    finally:
        assert lock is not None
        lock.release()
    helpers.write_config(tmp_path, "local", state="state/publisher.sqlite3")
    sqlite = lock_state(load_config(tmp_path / "sources.toml"))
    assert isinstance(sqlite, StateLock)
    sqlite.release()


def test_a_second_service_object_is_refused_before_it_opens_the_store(
    postgres_url: str, tmp_path: Path
) -> None:
    from publisher.service.runner import Service

    config = load_config(write_config(tmp_path, postgres_url))
    first = Service(config, serve=False)
    try:
        with pytest.raises(StoreError, match=IN_USE):
            Service(config, serve=False)
    finally:
        first.close()
    Service(config, serve=False).close()  # closing released it


def test_a_second_run_exits_1_naming_the_holder_and_touches_nothing(
    postgres_url: str, tmp_path: Path
) -> None:
    helpers.put(tmp_path / "inbox", "001-hello.txt", "Hello\n")
    write_config(tmp_path, postgres_url)
    held = ServiceLock.acquire(postgres_url)
    try:
        for args in (("run", "--once"), ("run",)):
            second = run_cli(tmp_path, *args)
            assert second.returncode == 1, second.stderr
            assert f"({me()}, since " in second.stderr
            assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
        with psycopg.connect(postgres_url) as conn:  # no migration, nothing written
            assert conn.execute("SELECT to_regclass('outbox')").fetchone() == (None,)
        assert not (tmp_path / "state").exists()  # no pid file, no media
    finally:
        held.release()


def test_status_and_preview_work_beside_the_running_service(
    postgres_url: str, tmp_path: Path
) -> None:
    helpers.put(tmp_path / "inbox", "001-hello.txt", "Hello\n")
    write_config(tmp_path, postgres_url)
    PostgresStore.open(postgres_url).close()  # a state exists
    held = ServiceLock.acquire(postgres_url)
    try:
        for args in (("status",), ("preview",)):
            done = run_cli(tmp_path, *args)
            assert done.returncode == 0, done.stderr
    finally:
        held.release()
