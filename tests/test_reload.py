"""Reloading sources.toml: SIGHUP and ``viber-publisher reload`` on a real
``run`` subprocess, and the plan of a reload (pure)."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import config_text, notes, run_cli, running_service, wait_for

from publisher.adapters.sqlite import Store
from publisher.config import parse_config
from publisher.service.reload import plan_reload

HEAD = config_text(
    "local",
    state="state/publisher.sqlite3",
    media_dir="state/media",
    delivery="max_per_hour = 1",
)


def source(name: str, every: str = "1s") -> str:
    return f'\n[[sources]]\nname = "{name}"\ntype = "folder"\npath = "{name}"\nevery = "{every}"\n'


def status(tmp: Path) -> dict[str, Any]:
    result = run_cli(tmp, "status", "--json")
    assert result.returncode == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def source_state(tmp: Path, name: str) -> dict[str, Any] | None:
    for entry in status(tmp).get("sources", []):
        if entry["name"] == name:
            found: dict[str, Any] = entry
            return found
    return None


def last_poll(tmp: Path, name: str) -> datetime | None:
    with Store.open(tmp / "state" / "publisher.sqlite3", read_only=True) as store:
        return store.get_source(name).last_poll


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    notes(tmp_path / "a", "A one", "A two", "A three")
    (tmp_path / "sources.toml").write_text(HEAD + source("a"), encoding="utf-8")
    with running_service(tmp_path) as process:
        yield tmp_path, process


@pytest.mark.slow
def test_sighup_with_a_broken_config_keeps_running_then_a_good_one_adds_a_source(
    service: tuple[Path, subprocess.Popen[str]],
) -> None:
    tmp, process = service
    config = tmp / "sources.toml"
    log = tmp / "run.log"

    def a_settled() -> dict[str, Any] | None:
        a = source_state(tmp, "a")
        return a if a and a["counts"]["posted"] == 1 and a["counts"]["queued"] == 2 else None

    wait_for(a_settled, "one post of a, two queued (max_per_hour = 1)")
    wait_for(lambda: status(tmp)["service"]["running"], "the pid file")

    # A broken file: the service keeps its config, says why, one line per problem.
    polled_before = last_poll(tmp, "a")
    config.write_text(
        HEAD.replace('min_interval = "0s"', 'min_interval = "soon"')
        + source("a", every="5 minutes"),
        encoding="utf-8",
    )
    process.send_signal(signal.SIGHUP)
    wait_for(lambda: "keeping the running config" in log.read_text(), "the reload error")
    problems = [
        line for line in log.read_text().splitlines() if "keeping the running config" in line
    ]
    assert len(problems) == 2
    assert any("delivery.min_interval" in line for line in problems)
    assert any("sources[1].every" in line for line in problems)
    assert process.poll() is None
    # Still polling a every second, with the old config (read the state file:
    # `status` needs a good config).
    wait_for(lambda: last_poll(tmp, "a") != polled_before, "a polled again")
    # `reload` checks the file first and sends nothing when it is broken.
    refused = run_cli(tmp, "reload")
    assert refused.returncode == 2
    assert "not reloaded" in refused.stderr

    # A good file adding source b, through `viber-publisher reload`.
    notes(tmp / "b", "B one")
    config.write_text(HEAD + source("a") + source("b"), encoding="utf-8")
    sent = run_cli(tmp, "reload")
    assert sent.returncode == 0, sent.stderr
    assert f"pid {process.pid}" in sent.stdout
    b = wait_for(
        lambda: (s := source_state(tmp, "b")) and s["last_poll"] and s, "b polled after reload"
    )
    assert b["configured"] is True
    assert b["counts"]["queued"] == 1  # the channel's max_per_hour holds it
    a = source_state(tmp, "a")
    assert a is not None and a["counts"]["posted"] == 1 and a["counts"]["queued"] == 2
    # (b's poll may beat the main loop's log line by a moment)
    wait_for(lambda: "added b" in log.read_text(), "the reload logged")

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    gone = run_cli(tmp, "reload")
    assert gone.returncode == 1
    assert "no service is running" in gone.stderr


def test_reload_without_a_running_service_says_so(tmp_path: Path) -> None:
    (tmp_path / "sources.toml").write_text(HEAD + source("a"), encoding="utf-8")
    result = run_cli(tmp_path, "reload")
    assert result.returncode == 1
    assert "no service is running" in result.stderr


def _config(text: str) -> Any:
    import tomllib

    return parse_config(tomllib.loads(text), Path("/srv/sources.toml"))


def test_plan_reload_names_what_changes_and_keeps_what_needs_a_restart() -> None:
    old = _config(HEAD + source("a") + source("b") + source("c"))
    new_text = (
        HEAD.replace("127.0.0.1:0", "127.0.0.1:9999").replace(
            "max_per_hour = 1", "max_per_hour = 5"
        )
        + source("a")
        + source("b", every="10m")
        + source("d")
    )
    plan = plan_reload(old, _config(new_text))
    assert plan.added == ["d"]
    assert plan.removed == ["c"]
    assert plan.changed == ["b"] and plan.rescheduled == ["b"]
    assert plan.restart_needed == ["server"]
    assert plan.config.server == old.server  # the running server stays
    assert plan.config.delivery.policy.max_per_hour == 5  # limits apply at once
    assert plan.config.source("b").every == timedelta(minutes=10)
    assert plan.summary() == "added d; removed c; changed b"
