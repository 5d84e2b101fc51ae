"""A real PostgreSQL server for the tests: a throwaway cluster made with
Debian's ``initdb`` in a temporary folder and started with ``pg_ctl`` on a
free port of 127.0.0.1 (its unix socket in that folder too), once per test
session, stopped at the end. Each test gets a database of its own.

Nothing is installed here: ``make postgres`` installs Debian's
``postgresql`` (``make test`` and ``.ci/run`` run it). Where the server
cannot be had, the PostgreSQL tests are skipped saying why.

The cluster asks for a password on TCP (SCRAM), so the tests go through the
same login as a real deployment: :data:`PASSWORD`, given in ``PGPASSWORD``
or ``[storage] password_env``.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

USER = "publisher"
PASSWORD = "test-only-secret"
#: Where Debian puts the server's programs (not on PATH by default).
_CANDIDATES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
_numbers = itertools.count(1)


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    bindir: Path

    def url(self, database: str = "postgres", user: str = USER) -> str:
        """A URL without the password, as ``[storage] url`` holds it."""
        return f"postgresql://{user}@{self.host}:{self.port}/{database}"

    def admin(self, statement: str) -> None:
        """Run one statement as the cluster's superuser (autocommit)."""
        import psycopg

        with psycopg.connect(self.url(), password=PASSWORD, autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = f"test_{os.getpid()}_{next(_numbers)}"
        self.admin(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _bindir() -> Path | None:
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(initdb).resolve().parent
    for candidate in _CANDIDATES:
        if (candidate / "initdb").exists():
            return candidate
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_user() -> list[str]:
    """initdb and the server refuse to run as root: run them as nobody."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root without runuser: cannot start PostgreSQL as nobody")
    return [runuser, "-u", "nobody", "--"]


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(argv[len(_as_user())]).name} failed: {done.stderr.strip()}")


def start_server(base: Path) -> tuple[PostgresServer, Path]:
    """initdb and pg_ctl start in ``base``; returns the server and its data folder."""
    bindir = _bindir()
    if bindir is None:
        raise RuntimeError(
            "no PostgreSQL server (initdb) here: run `make postgres` (as root it installs "
            "Debian's postgresql; elsewhere: sudo apt-get install postgresql)"
        )
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(base, nobody.pw_uid, nobody.pw_gid)
    data = base / "data"
    pwfile = base / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        os.chown(pwfile, pwd.getpwnam("nobody").pw_uid, -1)
    _run(
        [
            *_as_user(),
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]
    )
    port = _free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off"
        " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    _run(
        [
            *_as_user(),
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(base / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        ]
    )
    return PostgresServer("127.0.0.1", port, bindir), data


def stop_server(server: PostgresServer, data: Path) -> None:
    subprocess.run(
        [*_as_user(), str(server.bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server, or the test is skipped saying why."""
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed: pip install -e '.[postgres]' (make does)")
    base = Path(tempfile.mkdtemp(prefix="publisher-pg-"))
    base.chmod(0o755)
    try:
        server, data = start_server(base)
    except (RuntimeError, OSError, subprocess.TimeoutExpired, KeyError) as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    try:
        yield server
    finally:
        stop_server(server, data)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database's URL; its password is in ``PGPASSWORD`` for the test."""
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    return postgres_server.new_database()


StoreOpener = Callable[..., Any]


@pytest.fixture(params=["sqlite", "postgres"])
def store_opener(request: pytest.FixtureRequest, tmp_path: Path) -> StoreOpener:
    """Opens the store under test, on one state, as often as a test asks:
    SQLite (a file) or PostgreSQL (a database of its own). The store
    contract tests take their store from here, so both run them."""
    if request.param == "sqlite":
        from publisher.adapters.sqlite import Store

        path = tmp_path / "state" / "publisher.sqlite3"
        return lambda read_only=False: Store.open(path, read_only=read_only)
    url = request.getfixturevalue("postgres_url")
    from publisher.adapters.postgres import PostgresStore

    return lambda read_only=False: PostgresStore.open(url, read_only=read_only)
