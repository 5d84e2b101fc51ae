"""``viber-publisher account`` and ``viber-publisher webhook set|remove``, and
the online part of ``check --online``.

Exit codes: 0 ok; 1 Viber could not be reached or refused a request;
2 config or usage error (no token, a sender_id that is not a superadmin);
3 Viber refused the token or the account is blocked.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import click

from publisher.adapters.viber.client import ChannelClient
from publisher.cli import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_VIBER_REFUSED,
    State,
    channel_option,
    choose_channel,
    fail,
    fail_config,
    pass_state,
)
from publisher.compose import no_account
from publisher.core.config import ChannelConfig, Config
from publisher.core.errors import (
    ConfigError,
    SenderError,
    ViberError,
    ViberFatalError,
    WebhookRefusedError,
)
from publisher.core.records import AccountInfo, Member
from publisher.core.urls import channel_webhook_path, webhook_url


def _local(config: Config, lane: ChannelConfig) -> bool:
    """On a local channel there is no Viber account: say so."""
    note = no_account(config, lane.name)
    if note is not None:
        click.echo(note)
        return True
    return False


@contextmanager
def _viber(lane: ChannelConfig) -> Iterator[ChannelClient]:
    """A client of one channel; every failure becomes a message and an exit code."""
    try:
        client = ChannelClient.from_config(lane.viber)
    except ConfigError as exc:
        fail_config(exc)
    try:
        with client:
            yield client
    except ConfigError as exc:
        fail_config(exc)
    except ViberFatalError as exc:
        _fail_fatal(lane, exc)
    except SenderError as exc:
        fail(str(exc), EXIT_CONFIG if lane.viber.sender_id else EXIT_VIBER_REFUSED)
    except WebhookRefusedError as exc:
        fail(str(exc), EXIT_FAILURE)
    except ViberError as exc:
        fail(f"{exc} (api_url = {lane.viber.api_url})", EXIT_FAILURE)


def _fail_fatal(lane: ChannelConfig, exc: ViberFatalError) -> NoReturn:
    click.echo(f"error: {exc}", err=True)
    source = lane.viber.token_source()
    if source not in str(exc):
        click.echo(f"error: the token is read from {source}", err=True)
    sys.exit(EXIT_VIBER_REFUSED)


def _sender_or_none(client: ChannelClient, info: AccountInfo) -> tuple[Member | None, str]:
    try:
        return client.superadmin(info), ""
    except SenderError as exc:
        return None, str(exc)


def _describe(info: AccountInfo, sender: Member | None) -> list[str]:
    lines = [f"Channel: {info.name or '(no name)'}  id {info.id or '(none)'}"]
    if info.uri:
        lines.append(f"URI:     {info.uri}")
    lines.append(f"Members ({len(info.members)}):")
    width = max((len(m.id) for m in info.members), default=0)
    for member in info.members:
        mark = "  ← sender" if sender is not None and member.id == sender.id else ""
        lines.append(f"  {member.id:<{width}}  {member.role or '-':<10}  {member.name}{mark}")
    if not info.members:
        lines.append("  (none listed)")
    return lines


@click.command()
@channel_option
@pass_state
def account(state: State, channel: str | None) -> None:
    """Show the channel: name, id, members with their roles, and the sender.

    Posts are sent from viber.sender_id, which must be a superadmin; without
    it, from the first superadmin listed (marked "← sender").
    """
    config = state.load()
    lane = choose_channel(config, channel)
    if _local(config, lane):
        sys.exit(EXIT_OK)
    with _viber(lane) as client:
        info = client.get_account_info()
        sender, problem = _sender_or_none(client, info)
        for line in _describe(info, sender):
            click.echo(line)
        if sender is None:
            fail(problem, EXIT_CONFIG if lane.viber.sender_id else EXIT_VIBER_REFUSED)
    sys.exit(EXIT_OK)


@click.group()
def webhook() -> None:
    """Set or remove the channel's webhook (Viber wants one before any post)."""


@webhook.command("set")
@click.argument("url", required=False)
@channel_option
@pass_state
def webhook_set(state: State, url: str | None, channel: str | None) -> None:
    """Point the channel's webhook at URL (default: server.public_url + webhook_path,
    + /NAME with several channels).

    Viber calls the URL at once and needs HTTP 200 back, so the service must be
    running and reachable over HTTPS at that address.
    """
    config = state.load()
    lane = choose_channel(config, channel)
    if _local(config, lane):
        sys.exit(EXIT_OK)
    path = channel_webhook_path(config.server.webhook_path, lane.name, len(config.channels) > 1)
    target = url or webhook_url(config.server.public_url, path)
    if not target:
        raise click.UsageError(
            "no URL given and server.public_url is not set; pass the URL "
            "(e.g. https://bot.example.org/viber/webhook) or set server.public_url in "
            f"{state.config_path}"
        )
    with _viber(lane) as client:
        client.set_webhook(target)
    click.echo(f"webhook set: {target}")
    sys.exit(EXIT_OK)


@webhook.command("remove")
@channel_option
@pass_state
def webhook_remove(state: State, channel: str | None) -> None:
    """Remove the channel's webhook (Viber then refuses posts until one is set)."""
    config = state.load()
    lane = choose_channel(config, channel)
    if _local(config, lane):
        sys.exit(EXIT_OK)
    with _viber(lane) as client:
        client.remove_webhook()
    click.echo("webhook removed")
    sys.exit(EXIT_OK)


def online_check(config: Config, channel: str | None = None) -> None:
    """For ``check --online``: each channel's token (or the one named) is
    valid and a superadmin sender exists.

    Prints one line a channel on success; on failure prints why and exits (1, 2 or 3).
    """
    lanes = [choose_channel(config, channel)] if channel else list(config.channels)
    several = len(config.channels) > 1
    for lane in lanes:
        label = f"channel {lane.name}" if several else "viber"
        if no_account(config, lane.name) is not None:
            click.echo(f"{label}: a local channel; nothing to check online")
            continue
        with _viber(lane) as client:
            info = client.get_account_info()
            sender = client.superadmin(info)
        click.echo(
            f"{label}: token ok, channel {info.name!r} ({info.id}), sender {sender.name} "
            f"({sender.id}, superadmin)"
        )
