"""Every command has help, the README names every command, and ``check``
reports each config problem on one line with exit code 2."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from publisher.cli import COMMANDS as LAZY
from publisher.cli import cli

ROOT = Path(__file__).parent.parent


def _walk(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path, loading the lazily registered commands."""
    ctx = click.Context(group)
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, f"{name} is listed but cannot be loaded"
        path = (*prefix, name)
        found.append(path)
        if isinstance(command, click.Group):
            found.extend(_walk(command, path))
    return found


COMMANDS = _walk(cli)


def test_the_expected_commands_exist() -> None:
    top = {path[0] for path in COMMANDS}
    assert {
        "check",
        "account",
        "webhook",
        "run",
        "post",
        "preview",
        "status",
        "retry",
        "skip",
        "health",
        "reload",
        "import-opml",
    } <= top


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: cli {' '.join(path)}" in result.output or "Usage:" in result.output
    # A summary line, not just the usage.
    body = result.output.split("\n\n", 2)
    assert len(body) >= 2 and body[1].strip(), result.output


@pytest.mark.parametrize("name", sorted(LAZY))
def test_the_summary_in_the_table_is_the_commands_own(name: str) -> None:
    """``--help`` lists each command from :data:`publisher.cli.COMMANDS` without
    importing it: that summary must be the first sentence of its docstring."""
    command = LAZY[name].load()
    assert command.name == name
    stand_in = click.Command(name, help=LAZY[name].summary)
    for limit in (40, 80, 1000):
        assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit)


def test_top_level_help_lists_the_commands_as_an_eager_group_would() -> None:
    """The lazy listing is byte for byte what click prints with every command loaded."""
    eager = click.Group("cli", commands=[LAZY[name].load() for name in LAZY])
    expected = CliRunner().invoke(eager, ["--help"], terminal_width=80).output
    result = CliRunner().invoke(cli, ["--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    assert result.output.split("Commands:\n", 1)[1] == expected.split("Commands:\n", 1)[1]


@pytest.mark.parametrize("path", [p for p in COMMANDS if len(p) == 1], ids=" ".join)
def test_readme_names_every_command(path: tuple[str, ...]) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"`{path[0]}" in readme, f"README.md does not document `{path[0]}`"


def _check(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    config = tmp_path / "sources.toml"
    config.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["--config", str(config), "check"], env={"VIBER_AUTH_TOKEN": "", **(env or {})}
    )
    return result.exit_code, result.output


def test_check_prints_one_precise_line_per_problem(tmp_path: Path) -> None:
    code, output = _check(
        tmp_path,
        """
[viber]
token_env = "MY_CHANNEL_TOKEN"

[[sources]]
name = "blog"
type = "rss"
url = "https://example.org/feed"
every = "5 minutes"
evrey = "5m"

[[sources]]
name = "blog"
type = "folder"
path = "inbox"
""",
    )
    assert code == 2
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert errors == [
        'error: sources[1].every: "5 minutes" is not a duration; use e.g. "30s", "10m", '
        '"2h" or "7d"',
        'error: sources[1].evrey: unknown key; did you mean "every"?',
        'error: sources[2].name: "blog" is already the name of sources[1]; '
        "source names must be unique",
    ]


def test_check_reports_a_missing_token(tmp_path: Path) -> None:
    code, output = _check(tmp_path, '[viber]\ntoken_env = "MY_CHANNEL_TOKEN"\n')
    assert code == 2
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "MY_CHANNEL_TOKEN" in errors[0]


def test_check_passes_a_good_config(tmp_path: Path) -> None:
    code, output = _check(
        tmp_path,
        '[server]\npublic_url = "https://bot.example.org"\n'
        '[[sources]]\nname = "blog"\ntype = "rss"\nurl = "https://example.org/feed"\n',
        env={"VIBER_AUTH_TOKEN": "some-token"},
    )
    assert code == 0, output
    assert "ok, 1 source(s)" in output
    assert "some-token" not in output


def test_check_warns_without_public_url(tmp_path: Path) -> None:
    code, output = _check(tmp_path, "", env={"VIBER_AUTH_TOKEN": "t0ken"})
    assert code == 0
    assert "server.public_url is not set" in output


def test_the_example_config_checks_clean() -> None:
    result = CliRunner().invoke(cli, ["--config", str(ROOT / "sources.toml"), "check"])
    assert result.exit_code == 0, result.output
