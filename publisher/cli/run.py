"""``viber-publisher run``: the service (or one pass of it with ``--once``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import click

from publisher.cli import EXIT_FAILURE, EXIT_VIBER_REFUSED, State, fail, fail_config, pass_state
from publisher.core.config import Config
from publisher.core.errors import ConfigError, PublisherError
from publisher.logs import register_secret

if TYPE_CHECKING:
    from publisher.pipeline.poll import PollOutcome

log = logging.getLogger("publisher")


def tokens_for(config: Config) -> dict[str, str | None]:
    """Every channel's token (registered as secrets); exit 2 naming what is
    missing, or two channels given the same token."""
    from publisher.compose import channel_tokens

    try:
        tokens = channel_tokens(config)
    except ConfigError as exc:
        fail_config(exc)
    for token in tokens.values():
        if token is not None:
            register_secret(token)
    return tokens


def token_for(config: Config) -> str | None:
    """The channel's token (registered as a secret), or None when the channel
    makes its own (the local channel); exit 2 if it is missing."""
    from publisher.compose import channel_token

    try:
        token = channel_token(config)
    except ConfigError as exc:
        fail_config(exc)
    if token is not None:
        register_secret(token)
    return token


def lost_state(config: Config) -> str | None:
    """Why starting would be wrong when the SQLite state file is missing or
    empty (0 bytes) while the media folder holds files of earlier posts: the
    state was lost, and a new one would post every source's backfill again."""
    from publisher.adapters.mediafolder import NAME_RE

    path = Path(config.storage.path)
    if config.storage.url is not None or str(path) == ":memory:":
        return None
    if getattr(config.storage, "media_url", None):
        return None  # media in a bucket: nothing local to look at
    try:
        if path.exists() and path.stat().st_size > 0:
            return None
        media = Path(config.storage.media_dir)
        stored = (
            sum(1 for p in media.iterdir() if NAME_RE.fullmatch(p.name)) if media.is_dir() else 0
        )
    except OSError:
        return None  # opening the store says what is wrong
    if not stored:
        return None
    what = "is empty (0 bytes)" if path.exists() else "does not exist"
    return (
        f"the state file {path} {what}, but the media folder {media} holds {stored} file(s) "
        "of earlier posts: the state was lost, and a new one would post every source's "
        "backfill again; restore it from a backup (`viber-publisher backup PATH` makes one), "
        "or start afresh on purpose with `viber-publisher run --new-state`"
    )


@click.command()
@click.option(
    "--once",
    is_flag=True,
    help="Poll every source once, post everything that is due now, and exit (for cron and tests).",
)
@click.option(
    "--new-state",
    is_flag=True,
    help="Start with a new state file even though the media folder shows earlier posts "
    "(a lost state file is otherwise refused: its backfill would be posted again).",
)
@pass_state
def run(state: State, once: bool, new_state: bool) -> None:
    """Run the service: poll sources, queue new items, post them.

    Serves media, the webhook, /healthz, /readyz and /metrics on [server]
    listen (and the local channel at /channel with api_url = "local").
    SIGINT and SIGTERM stop it after the post in flight.
    """
    from publisher.service.runner import Service

    config = state.load()
    lost = None if new_state else lost_state(config)
    if lost is not None:
        fail(lost, EXIT_FAILURE)
    try:
        service = Service(config, tokens=tokens_for(config))
    except PublisherError as exc:
        fail(str(exc), EXIT_FAILURE)
    try:
        try:
            service.start()
        except OSError as exc:
            fail(
                f"cannot listen on {config.server.listen}: {exc.strerror or exc}; "
                "is another instance running? change [server] listen",
                EXIT_FAILURE,
            )
        except ConfigError as exc:
            fail_config(exc)
        except PublisherError as exc:  # the state file (read-only, full, damaged)
            fail(str(exc), EXIT_FAILURE)
        try:
            if once:
                failed = [o for o in service.run_once() if not o.ok]
            else:
                service.run()
        except ConfigError as exc:
            fail_config(exc)
        except PublisherError as exc:
            fail(str(exc), EXIT_FAILURE)
    finally:
        service.close()
    outages = [d.outage for d in service.deliverers.values() if d.outage is not None]
    stopped = service.stopped_reason
    if outages and stopped:
        # Viber is out of reach: the posts stay queued for the next run.
        fail(f"posting is stopped: {stopped}", EXIT_FAILURE)
    if stopped:
        fail(f"posting is stopped: {stopped}", EXIT_VIBER_REFUSED)
    if once:
        _fail_sources(failed)


def _fail_sources(failed: list[PollOutcome]) -> None:
    """``run --once`` exits 1 naming every source whose poll failed (for cron)."""
    if failed:
        named = "; ".join(f"{o.source}: {o.error}" for o in failed)
        fail(f"{len(failed)} source(s) failed: {named}; see `status`", EXIT_FAILURE)
