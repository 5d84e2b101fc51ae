"""The ``viber-publisher`` command line.

Each command lives in a module of its own in this package, listed in
:data:`COMMANDS` with the one-line summary that ``--help`` shows. A module
is imported only when its command runs (or its own ``--help`` is asked for),
so ``--help`` and ``health`` (the container's health check, every 30 s)
start without loading Pillow, PyAV, BeautifulSoup, feedparser or the service;
``tests/test_cli_startup.py`` holds that. Exit codes everywhere: 0 ok,
1 failure, 2 config or usage error, 3 Viber refused the token or the account.

To add a command: write it in a module here, then add a line to
:data:`COMMANDS` (``tests/test_cli_help.py`` checks the summary matches the
command's docstring, and that the README names it).
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import click

from publisher import __version__
from publisher.config import config_path, load_config
from publisher.core.config import ChannelConfig, Config
from publisher.core.errors import ConfigError, PublisherError
from publisher.logs import setup_logging

# httpx imports its own command-line client (rich, pygments: 40 ms of every
# start) whenever those are installed, as they are here, and nothing here runs
# it; its import failing is a case httpx provides for (the `httpx` command
# then says what is missing). Only in this command's process.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_VIBER_REFUSED = 3


@dataclass(frozen=True)
class LazyCommand:
    """Where a command lives (``module:attribute``) and its summary for ``--help``."""

    target: str
    #: The first sentence of the command's docstring, as ``--help`` lists it.
    summary: str

    def load(self) -> click.Command:
        module_name, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):  # pragma: no cover - a wrong table entry
            raise TypeError(f"{self.target} is not a click command")
        return command


#: Every command by name (``--help`` lists them sorted by name).
COMMANDS: dict[str, LazyCommand] = {
    "account": LazyCommand(
        "publisher.cli.channel:account",
        "Show the channel: name, id, members with their roles, and the sender.",
    ),
    "backup": LazyCommand(
        "publisher.cli.backup:backup",
        "Copy the state file to PATH while the service runs (a consistent snapshot).",
    ),
    "check": LazyCommand(
        "publisher.cli.check:check",
        "Check sources.toml: print one line per problem, exit 2 if any.",
    ),
    "health": LazyCommand(
        "publisher.cli.health:health",
        "Ask the running service whether it is healthy (exit 0) or not (exit 1).",
    ),
    "import-opml": LazyCommand(
        "publisher.cli.opml:import_opml",
        "Add the feeds of an OPML export (Feedly, Inoreader, NetNewsWire, ...) to sources.toml.",
    ),
    "migrate-state": LazyCommand(
        "publisher.cli.migrate_state:migrate_state",
        "Move the SQLite state into the PostgreSQL database of [storage] url, nothing re-posted.",
    ),
    "post": LazyCommand(
        "publisher.cli.post:post",
        'Publish one thing now: `post --text "..."`, `post PATH [--caption "..."]` (a picture, '
        'video or file, by its sniffed type) or `post --url URL [--text "..."]`.',
    ),
    "preview": LazyCommand(
        "publisher.cli.preview:preview",
        "Show what the next poll would post, without posting or changing anything.",
    ),
    "reload": LazyCommand(
        "publisher.cli.reload:reload",
        "Re-read sources.toml in the running service (sends it SIGHUP).",
    ),
    "retry": LazyCommand(
        "publisher.cli.outbox:retry",
        "Queue post ID again: one whose fate is unknown or that failed.",
    ),
    "run": LazyCommand(
        "publisher.cli.run:run",
        "Run the service: poll sources, queue new items, post them.",
    ),
    "skip": LazyCommand(
        "publisher.cli.outbox:skip",
        "Drop post ID: it will not be sent (queued, unknown or failed posts).",
    ),
    "status": LazyCommand(
        "publisher.cli.status:status",
        "Show sources, the queue, when the next post may go and why, and the latest posts; "
        "or one item's story (--item KEY).",
    ),
    "webhook": LazyCommand(
        "publisher.cli.channel:webhook",
        "Set or remove the channel's webhook (Viber wants one before any post).",
    ),
}


class LazyGroup(click.Group):
    """A group whose commands (``name → LazyCommand``) are imported on first use.

    ``--help`` lists them from their summaries without importing them.
    """

    def __init__(self, *args: Any, lazy: Mapping[str, LazyCommand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(self.lazy[cmd_name].load(), cmd_name)
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; an error it did not handle itself (a state file
        found damaged in the middle of ``status``, say) is one line, never a
        traceback: exit 2 for the config, 1 for anything else."""
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            fail_config(exc)
        except PublisherError as exc:
            fail(str(exc))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            # A command not loaded yet is shown by a stand-in with its summary,
            # shortened by click exactly as the real docstring would be.
            command = self.commands.get(name) or click.Command(name, help=self.lazy[name].summary)
            if not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


log = logging.getLogger("publisher")


class State:
    """What the group options give every command (``ctx.obj``)."""

    def __init__(self, config: str | None, log_format: str, log_level: str) -> None:
        self.config_arg = config
        self.log_format = log_format
        self.log_level = log_level
        self._config: Config | None = None

    @property
    def config_path(self) -> Any:
        return config_path(self.config_arg)

    def load(self) -> Config:
        """The config, or print every problem on stderr and exit 2."""
        if self._config is None:
            try:
                self._config = load_config(self.config_path)
            except ConfigError as exc:
                fail_config(exc)
        return self._config


def fail_config(exc: ConfigError) -> NoReturn:
    for line in exc.problems:
        click.echo(f"error: {line}", err=True)
    sys.exit(EXIT_CONFIG)


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


pass_state = click.make_pass_decorator(State)

#: ``--channel NAME`` for the commands that concern one channel.
channel_option = click.option(
    "--channel",
    "channel",
    metavar="NAME",
    help="The channel (from [[channels]]); required when there are several.",
)


def choose_channel(config: Config, name: str | None) -> ChannelConfig:
    """The channel ``--channel`` names, or the only one; exit 2 otherwise."""
    names = ", ".join(c.name for c in config.channels)
    if name is None:
        if len(config.channels) == 1:
            return config.channels[0]
        fail(f"there are several channels ({names}); say which with --channel NAME", EXIT_CONFIG)
    try:
        return config.channel(name)
    except KeyError:
        fail(f"{name!r} is not a channel; the channels are {names}", EXIT_CONFIG)


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--config",
    "config",
    metavar="PATH",
    envvar="PUBLISHER_CONFIG",
    default=None,
    help="The sources.toml to use (default ./sources.toml, or $PUBLISHER_CONFIG).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    envvar="PUBLISHER_LOG_FORMAT",
    show_default=True,
    help="One line per event, as text or as JSON.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    envvar="PUBLISHER_LOG_LEVEL",
    show_default=True,
    help="The least important events to log.",
)
@click.version_option(__version__, prog_name="viber-publisher")
@click.pass_context
def cli(ctx: click.Context, config: str | None, log_format: str, log_level: str) -> None:
    """Publish feeds and folders to a Viber Channel.

    Every item is made to fit the Channels Post API (text caps, JPEG under
    1 MB, 400x400 thumbnails) and posted once, in order, within the delivery
    policy of sources.toml.
    """
    setup_logging(log_format, log_level)
    ctx.obj = State(config, log_format, log_level)


def main() -> None:
    cli(prog_name="viber-publisher")
