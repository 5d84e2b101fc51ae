"""The ``viber-publisher`` command line.

Each command lives in a module of its own in this package and is registered
below. Exit codes everywhere: 0 ok, 1 failure, 2 config or usage error,
3 Viber refused the token or the account.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any, NoReturn

import click

from publisher import __version__
from publisher.config import config_path, load_config
from publisher.core.config import Config
from publisher.core.errors import ConfigError
from publisher.logs import setup_logging

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_VIBER_REFUSED = 3

#: Modules that each define one or more click commands; every ``click.Command``
#: they export in ``COMMANDS`` is added to the group.
COMMAND_MODULES = (
    "publisher.cli.check",
    "publisher.cli.channel",
    "publisher.cli.run",
    "publisher.cli.opml",
    "publisher.cli.post",
    "publisher.cli.status",
    "publisher.cli.health",
    "publisher.cli.reload",
    "publisher.cli.preview",
    "publisher.cli.outbox",
)

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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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


def _register() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        for command in getattr(module, "COMMANDS", ()):
            cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="viber-publisher")
