"""Operator-facing behaviour: what cron, the log and the commands tell."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import STANDIN_TOKEN, notes, write_config

from publisher.adapters.standin import ViberStandIn
from publisher.cli import cli


def invoke(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, ["--config", str(config), *args], env={"VIBER_AUTH_TOKEN": STANDIN_TOKEN}
    )
    return result.exit_code, result.output


def test_run_once_exits_1_naming_every_source_that_failed(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    notes(tmp_path / "inbox", "Still posted.")
    config = write_config(
        tmp_path,
        standin.api_url,
        rest=f"""
[[sources]]
name = "good"
type = "folder"
path = "{tmp_path / "inbox"}"

[[sources]]
name = "gone-feed"
type = "rss"
url = "{tmp_path / "missing.xml"}"
""",
    )
    code, output = invoke(config, "run", "--once")
    assert code == 1, output
    assert "1 source(s) failed: gone-feed:" in output
    assert "good" not in output.split("failed:", 1)[1]
    assert [p.payload["text"] for p in standin.posts] == ["Still posted."]


def test_run_once_exits_0_when_every_source_was_polled(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    notes(tmp_path / "inbox", "One.")
    config = write_config(
        tmp_path,
        standin.api_url,
        rest=f'[[sources]]\nname = "good"\ntype = "folder"\npath = "{tmp_path / "inbox"}"\n',
    )
    assert invoke(config, "run", "--once")[0] == 0


def test_the_service_logs_a_final_stopped_line(
    tmp_path: Path, standin: ViberStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(tmp_path, standin.api_url)
    caplog.set_level(logging.INFO)
    assert invoke(config, "run", "--once")[0] == 0
    assert caplog.records[-1].getMessage() == "stopped"
