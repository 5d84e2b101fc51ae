"""The command line starts fast: ``--help`` and ``health`` (the container's
health check, every 30 s) load no command they do not run, and none of the
heavy libraries. The real CLI runs in a subprocess under ``-X importtime``,
which lists every module it imports.

And ``health`` itself, in-process against real servers on 127.0.0.1: the
answer of the probe, an error status with its details, a silent server.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import clean_env, free_port, write_config

from publisher.adapters.httpserver import HTTPServer
from publisher.cli import cli

#: Never imported by ``--help`` or ``health``.
HEAVY = ("PIL", "av", "bs4", "feedparser", "httpx", "rich", "sqlite3", "publisher.service")


def imported_modules(
    tmp: Path, *args: str, python: tuple[str, ...] = ("-m", "publisher")
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``python -X importtime -m publisher ARGS`` in ``tmp``; its result
    and the names of every module it imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *python, *args],
        cwd=tmp,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    modules = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                modules.add(name)
    assert "publisher.cli" in modules, result.stderr[-2000:]
    return result, modules


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_help_imports_nothing_heavy(tmp_path: Path) -> None:
    result, modules = imported_modules(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    assert "health " in result.stdout and "preview " in result.stdout
    assert heavy(modules) == []


def test_health_help_imports_nothing_heavy(tmp_path: Path) -> None:
    result, modules = imported_modules(tmp_path, "health", "--help")
    assert result.returncode == 0, result.stderr
    assert "--ready" in result.stdout
    assert heavy(modules) == []


def test_health_against_a_closed_port_imports_nothing_heavy(tmp_path: Path) -> None:
    write_config(tmp_path, "local", listen=f"127.0.0.1:{free_port()}")
    result, modules = imported_modules(tmp_path, "--config", "sources.toml", "health")
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("not healthy: no answer from http://127.0.0.1:")
    assert result.stdout.count("\n") == 1
    assert heavy(modules) == []


def test_the_check_sees_what_is_imported_at_any_depth(tmp_path: Path) -> None:
    """The check is real: modules imported directly or by another are listed."""
    code = "import publisher.cli, json, PIL.Image, bs4, feedparser"
    _, modules = imported_modules(tmp_path, python=("-c", code))
    assert {"PIL", "PIL.Image", "bs4", "bs4.element", "feedparser"} <= set(heavy(modules))


# --------------------------------------------------------------------------
# health in-process, against real servers


@pytest.fixture
def probe(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``probe(status, body)``: serve that on 127.0.0.1 for every path, point
    sources.toml at it, and return ``health``'s (exit code, output, paths asked)."""
    servers: list[HTTPServer] = []
    asked: list[str] = []

    def run(status: str, body: bytes, *args: str) -> tuple[int, str, list[str]]:
        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            asked.append(environ["PATH_INFO"])
            start_response(status, [("Content-Type", "application/json")])
            return [body]

        server = HTTPServer(app).start()
        servers.append(server)
        config = write_config(tmp_path, "local", listen=f"127.0.0.1:{server.port}")
        result = CliRunner().invoke(cli, ["--config", str(config), "health", *args])
        return result.exit_code, result.output, asked

    yield run
    for server in servers:
        server.stop()


def test_health_says_healthy_on_200(probe: Callable[..., Any]) -> None:
    code, output, asked = probe("200 OK", b'{"ok": true}')
    assert code == 0
    assert output.startswith("healthy: http://127.0.0.1:") and output.endswith("/healthz\n")
    assert asked == ["/healthz"]


def test_health_ready_asks_readyz_and_shows_why_not_in_one_line(
    probe: Callable[..., Any],
) -> None:
    body = json.dumps({"ok": False, "checks": {"token": "refused"}}).encode()
    code, output, asked = probe("503 Service Unavailable", body, "--ready")
    assert code == 1
    assert asked == ["/readyz"]
    assert output.count("\n") == 1
    assert output.startswith("not ready: http://127.0.0.1:")
    assert output.endswith('/readyz answered 503: {"checks":{"token":"refused"}}\n')


def test_health_gives_up_on_a_silent_server(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        config = write_config(tmp_path, "local", listen=f"127.0.0.1:{port}")
        result = CliRunner().invoke(cli, ["--config", str(config), "health", "--timeout", "0.2"])
    assert result.exit_code == 1
    assert (
        result.output == f"not healthy: no answer from http://127.0.0.1:{port}/healthz: timed out\n"
    )
