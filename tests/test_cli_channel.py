"""``account``, ``webhook set|remove`` and ``check --online`` against the stand-in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from helpers import STANDIN_TOKEN as TOKEN

from publisher.adapters.standin import ADMIN_ID, SUPERADMIN_ID, ViberStandIn
from publisher.cli import cli

ENV = "TEST_CHANNEL_TOKEN"


def write_config(tmp_path: Path, api_url: str, extra: str = "") -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(
        f'[viber]\napi_url = "{api_url}"\ntoken_env = "{ENV}"\ntimeout = "5s"\n{extra}\n',
        encoding="utf-8",
    )
    return path


def run(config: Path, *args: str, token: str | None = TOKEN) -> Result:
    env = {ENV: token} if token is not None else {ENV: ""}
    return CliRunner().invoke(cli, ["--config", str(config), *args], env=env)


@pytest.fixture
def config(tmp_path: Path, standin: ViberStandIn) -> Path:
    return write_config(tmp_path, standin.api_url)


def test_account_marks_the_superadmin_as_sender(config: Path, standin: ViberStandIn) -> None:
    result = run(config, "account")
    assert result.exit_code == 0, result.output
    assert "Stand-in Channel" in result.stdout and standin.channel_id in result.stdout
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("  ")}
    assert "superadmin" in lines[SUPERADMIN_ID] and "← sender" in lines[SUPERADMIN_ID]
    assert "admin" in lines[ADMIN_ID] and "← sender" not in lines[ADMIN_ID]


def test_account_with_an_admin_as_sender_id(tmp_path: Path, standin: ViberStandIn) -> None:
    config = write_config(tmp_path, standin.api_url, f'sender_id = "{ADMIN_ID}"')
    result = run(config, "account")
    assert result.exit_code == 2
    assert ADMIN_ID in result.stdout  # the members are still listed
    assert "not a superadmin" in result.stderr and SUPERADMIN_ID in result.stderr


def test_account_with_no_superadmin(config: Path, standin: ViberStandIn) -> None:
    standin.members = [{"id": ADMIN_ID, "name": "Ed", "role": "admin"}]
    result = run(config, "account")
    assert result.exit_code == 3
    assert "no superadmin" in result.stderr


def test_wrong_token_exits_3_and_names_the_env_var(config: Path) -> None:
    result = run(config, "account", token="0000-wrong-0000")
    assert result.exit_code == 3
    assert ENV in result.stderr
    assert "0000-wrong-0000" not in result.output


def test_missing_token_is_a_config_error(config: Path) -> None:
    result = run(config, "account", token=None)
    assert result.exit_code == 2
    assert ENV in result.stderr


def test_unreachable_viber_exits_1(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write_config(tmp_path, f"http://127.0.0.1:{port}/pa")
    result = run(config, "account")
    assert result.exit_code == 1
    assert "could not connect" in result.stderr


def test_webhook_set_and_remove(config: Path, standin: ViberStandIn, webhook_receiver: Any) -> None:
    url = webhook_receiver.url + "/cli"
    result = run(config, "webhook", "set", url)
    assert result.exit_code == 0, result.output
    assert standin.webhook_url == url and url in result.stdout
    assert len(webhook_receiver.calls) == 1
    result = run(config, "webhook", "remove")
    assert result.exit_code == 0, result.output
    assert standin.webhook_url is None


def test_webhook_set_defaults_to_public_url(
    tmp_path: Path, standin: ViberStandIn, webhook_receiver: Any
) -> None:
    base = webhook_receiver.url.removesuffix("/viber/webhook")
    config = write_config(tmp_path, standin.api_url, f'[server]\npublic_url = "{base}"')
    result = run(config, "webhook", "set")
    assert result.exit_code == 0, result.output
    assert standin.webhook_url == base + "/viber/webhook"


def test_webhook_set_without_url_or_public_url_is_a_usage_error(config: Path) -> None:
    result = run(config, "webhook", "set")
    assert result.exit_code == 2
    assert "server.public_url" in result.stderr


def test_webhook_refused_exits_1(config: Path, webhook_receiver: Any) -> None:
    webhook_receiver.status = 404
    result = run(config, "webhook", "set", webhook_receiver.url)
    assert result.exit_code == 1
    assert "public_url" in result.stderr


def test_check_online(config: Path) -> None:
    result = run(config, "check", "--online")
    assert result.exit_code == 0, result.output
    assert "token ok" in result.stdout and SUPERADMIN_ID in result.stdout
    wrong = run(config, "check", "--online", token="bad-token-123")
    assert wrong.exit_code == 3 and ENV in wrong.stderr


def test_local_channel_is_reported(tmp_path: Path) -> None:
    config = write_config(tmp_path, "local")
    for args in (["account"], ["webhook", "set", "https://x.example/h"], ["webhook", "remove"]):
        result = run(config, *args, token=None)
        assert result.exit_code == 0, result.output
        assert "local channel" in result.stdout


@pytest.mark.parametrize(
    "args",
    [["account"], ["webhook"], ["webhook", "set"], ["webhook", "remove"], ["check"]],
)
def test_help(args: list[str]) -> None:
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    assert len(result.stdout.splitlines()) > 3
