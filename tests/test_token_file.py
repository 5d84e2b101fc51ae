"""The token never appears in any output, whatever the shape of its file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import write_config

from publisher.cli import cli
from publisher.config import parse_config, resolve_token
from publisher.core.errors import ConfigError

TOKEN = "4a5f6e7d8c9b0a1f-2e3d4c5b6a7f8e9d-0a1b2c3d4e5f6a7b"


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(TOKEN.encode(), id="plain"),
        pytest.param(TOKEN.encode() + b"\n", id="newline"),
        pytest.param(TOKEN.encode() + b"  \t\n", id="trailing-spaces"),
        pytest.param(b"\xef\xbb\xbf" + TOKEN.encode() + b"\r\n", id="bom-crlf"),
        pytest.param(b"\n  " + TOKEN.encode() + b"\r\n\r\n", id="blank-lines-around"),
    ],
)
def test_a_token_file_with_spaces_bom_or_crlf_around_gives_the_token(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "token"
    path.write_bytes(content)
    config = parse_config({"viber": {"token_file": str(path)}})
    assert resolve_token(config.viber) == TOKEN


@pytest.mark.parametrize(
    ("content", "says"),
    [
        pytest.param(TOKEN.encode() + b"\n" + TOKEN.encode(), "more than one line", id="two"),
        pytest.param(TOKEN.encode() + b"\r\nsecond", "more than one line", id="two-crlf"),
        pytest.param(b"# my token\n" + TOKEN.encode(), "more than one line", id="comment"),
        pytest.param(b"token = " + TOKEN.encode(), "spaces inside", id="assignment"),
        pytest.param(TOKEN.encode() + "\u00e9".encode(), "characters", id="non-ascii"),
        pytest.param(TOKEN.encode() + b"\x00", "characters", id="nul"),
        pytest.param(b"", "is empty", id="empty"),
        pytest.param(b" \r\n\t", "is empty", id="blank"),
        pytest.param(b"\xff\xfe" + TOKEN.encode("utf-16-le"), "not UTF-8", id="utf16"),
        pytest.param(TOKEN.encode() * 1000, "too large", id="huge"),
    ],
)
def test_an_odd_token_file_is_refused_without_showing_the_token(
    tmp_path: Path, content: bytes, says: str
) -> None:
    path = tmp_path / "token"
    path.write_bytes(content)
    config = parse_config({"viber": {"token_file": str(path)}})
    with pytest.raises(ConfigError) as caught:
        resolve_token(config.viber)
    message = str(caught.value)
    assert says in message and str(path) in message
    assert TOKEN not in message and TOKEN[:16] not in message and "second" not in message


def test_an_odd_token_in_the_environment_is_refused_without_showing_it() -> None:
    config = parse_config({})
    with pytest.raises(ConfigError) as caught:
        resolve_token(config.viber, {"VIBER_AUTH_TOKEN": TOKEN + "\n" + TOKEN})
    assert "VIBER_AUTH_TOKEN holds more than one line" in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_check_online_with_a_two_line_token_file_never_prints_the_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n" + TOKEN + "\n", encoding="utf-8")
    config = write_config(tmp_path, "http://127.0.0.1:9", viber=f'token_file = "{path}"')
    result = CliRunner().invoke(cli, ["--config", str(config), "check", "--online"])
    assert result.exit_code == 2, result.output  # a configuration problem
    assert "more than one line" in result.output
    assert TOKEN[:16] not in result.output
