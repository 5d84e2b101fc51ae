"""``viber-publisher post``: publish one thing now, through the same pipeline.

The item (source ``cli``) is rendered by :class:`publisher.pipeline.transform.Transformer`
exactly as a feed item would be (caps, JPEG and thumbnail, video and file
checks), queued in the state store, and posted at once by this process:

- the media are served while posting: the built-in web app on ``[server]
  listen``; when that address is taken by a running viber-publisher service
  (it answers ``/healthz`` and serves the same ``media_dir``) the service
  serves them;
- on the local channel (``api_url = "local"``) a temporary local channel is
  mounted on that server, as ``run`` does; when a service is already
  running, the post is handed to it (queued in the shared state store) and
  ``post`` waits for its outcome, since only that service's local channel
  is the one you watch at /channel.

Decisions: media given on the command line must be used, never silently
dropped: when the transformer would fall back to text, ``post`` refuses
instead. What Viber's answer means is the service's table
(:mod:`publisher.core.outcomes`): a passing failure (connection, HTTP 5xx,
status 12 "too many requests") is tried again after the same back-off or
cool-down as the service would wait, while ``--wait`` lasts and up to
``max_attempts``; past that ``post`` says when to try again. A refused token
or account exits 3, a wrong ``api_url`` (or sender) 2. Failures are final
(the post is marked failed, never retried later by the service behind your
back).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import click
import httpx

from publisher.adapters.httpserver import HTTPServer
from publisher.adapters.mediafolder import MediaStore
from publisher.adapters.web import make_app
from publisher.cli import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_VIBER_REFUSED,
    State,
    channel_option,
    choose_channel,
    fail,
    pass_state,
)
from publisher.cli.run import token_for
from publisher.compose import media_base, open_media, open_store, public_url, uses_local_channel
from publisher.core.config import Config, SourceConfig, format_duration, parse_duration
from publisher.core.errors import PublisherError, SenderError
from publisher.core.items import Item, MediaCandidate, RenderedItem
from publisher.core.outcomes import JITTER, Action, Outcome, backoff_delay, outcome_of
from publisher.core.records import OutboxRow, PostResult
from publisher.core.render.markdown import markdown_to_html
from publisher.core.urls import channel_webhook_path, reachable_url, webhook_url
from publisher.pipeline.transform import Transformer
from publisher.ports import Channel, Store
from publisher.ports import MediaStore as MediaPort

log = logging.getLogger("publisher")

#: The source name posts of this command are recorded under (``status`` shows it).
SOURCE = "cli"
_FINISHED = ("posted", "failed", "skipped", "unknown")


@dataclass
class _Serving:
    """Who serves the media: this process (``server``) or a running service."""

    server: HTTPServer | None
    local: Any = None
    local_token: str | None = None

    @property
    def running_service(self) -> bool:
        return self.server is None


@click.command()
@click.argument(
    "path",
    required=False,
    type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path),
)
@click.option("--text", "text", metavar="TEXT", help="A text post (or a url post's words).")
@click.option("--caption", metavar="TEXT", help="The words that go with PATH.")
@click.option("--url", "url", metavar="URL", help="A url post to URL (--text: its words).")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the exact payload(s) as JSON and the media that would be served; "
    "post nothing, contact no channel, write no state.",
)
@click.option(
    "--wait",
    "wait_for",
    default="60s",
    show_default=True,
    metavar="DURATION",
    help="How long to wait: for a running service that was handed the post, or to "
    "try again when Viber asks to wait (too many requests, a passing failure).",
)
@channel_option
@pass_state
def post(
    state: State,
    path: Path | None,
    text: str | None,
    caption: str | None,
    url: str | None,
    dry_run: bool,
    wait_for: str,
    channel: str | None,
) -> None:
    """Publish one thing now: `post --text "..."`, `post PATH [--caption "..."]`
    (a picture, video or file, by its sniffed type) or `post --url URL [--text "..."]`.

    A .txt or .md PATH is a text post (Markdown converted, as in a folder). A
    URL ending --text is the post's link: kept whole and last. A text over
    Viber's 7,000 characters is split into marked posts (1/3), (2/3)...

    It goes through the same pipeline as feed items (caps, JPEG and thumbnail,
    video and file checks) and is recorded in the state store as source "cli",
    so `status` shows it. Media are served on [server] listen while posting; if
    a running service holds that address, it serves them (same media_dir). On
    the local channel with a service running, the post is handed to the service
    and this command waits for it (--wait). Media that cannot be used are a
    refusal, never a silent text-only post.

    Exit codes: 0 posted, 1 failed or refused (with the reason, Viber's message
    included), 2 usage or config error, 3 Viber refused the token or account.
    """
    _check_usage(path, text, caption, url)
    try:
        wait_seconds = parse_duration(wait_for).total_seconds()
    except ValueError as exc:
        raise click.BadParameter(f"{wait_for!r} is not a duration: {exc}") from exc
    config = _one_channel(state.load(), channel)
    note: Path | None = None
    if path is not None and path.suffix.lower() in _NOTE_SUFFIXES:
        note, path = path, None  # a note is a text post, not a file
    if path is not None and media_base(config, public_url(config)) is None:
        fail(
            "posting a file needs [server] public_url: Viber fetches the media from there "
            "(an HTTPS address that reaches [server] listen)",
            EXIT_CONFIG,
        )
    now = datetime.now(UTC)
    item = _item(now, path, text, caption, url, note)
    source = SourceConfig(name=SOURCE, type="folder")
    if dry_run:
        _dry_run(config, item, source, url is not None)
        return
    token = token_for(config)
    media = open_media(config)
    with _serve(config, media, token) as serving:
        served_at = serving.server.url if serving.server is not None else None
        transformer = Transformer(
            config, media, _no_fetch, public_url=media_base(config, public_url(config, served_at))
        )
        rendered = _render(transformer, item, source, url is not None)
        _refuse_unusable(rendered, path)
        if serving.running_service and rendered_media(rendered):
            _check_served(config, rendered)
        with open_store(config) as store:
            ids = store.queue_item(rendered, now, channel=config.channels[0].name)
            if uses_local_channel(config) and serving.running_service:
                click.echo(f"handed to the running service as #{', #'.join(map(str, ids))}")
                _wait(store, ids, wait_seconds)
                return
            _post_now(config, store, ids, token, serving, wait_seconds)
            if not serving.running_service and rendered_media(rendered):
                _warn_unserved(config)


# --------------------------------------------------------------------------
# the item


def _one_channel(config: Config, name: str | None) -> Config:
    """The config as this command sees it: only the channel it posts to
    (``--channel``, or the only one), with that channel's webhook path."""
    lane = choose_channel(config, name)
    path = channel_webhook_path(config.server.webhook_path, lane.name, len(config.channels) > 1)
    return dataclasses.replace(
        config,
        channels=(lane,),
        server=dataclasses.replace(config.server, webhook_path=path),
    )


def _check_usage(path: Path | None, text: str | None, caption: str | None, url: str | None) -> None:
    if path is not None and path.suffix.lower() in _NOTE_SUFFIXES and caption is not None:
        raise click.UsageError(f"{path.name} is a text post of its own; it takes no --caption")
    if path is not None and url is not None:
        raise click.UsageError("give either PATH or --url, not both")
    if path is not None and text is not None:
        raise click.UsageError("with PATH, give its words with --caption")
    if caption is not None and path is None:
        raise click.UsageError("--caption goes with PATH; use --text otherwise")
    if path is None and url is None and not (text and text.strip()):
        raise click.UsageError('nothing to post: give --text "...", PATH or --url URL')


#: Files posted as text posts, as a folder posts them (``.md`` is Markdown).
_NOTE_SUFFIXES = (".txt", ".md")
#: A URL ending a text: the post's link (kept whole, last).
_TRAILING_URL = re.compile(r"(?:^|\s)(https?://\S+)\s*\Z", re.IGNORECASE)


def _read_note(note: Path) -> str:
    try:
        raw = note.read_bytes()
    except OSError as exc:
        fail(f"cannot read {note}: {exc.strerror or exc}", EXIT_FAILURE)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        fail(f"{note.name} is not UTF-8 text; save it as UTF-8", EXIT_FAILURE)
    if not text.strip():
        fail(f"{note.name} is empty: nothing to post", EXIT_FAILURE)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _item(
    now: datetime,
    path: Path | None,
    text: str | None,
    caption: str | None,
    url: str | None,
    note: Path | None = None,
) -> Item:
    words = (caption if path is not None else text) or ""
    markdown = ""
    if note is not None:
        words = _read_note(note)
        if note.suffix.lower() == ".md":
            markdown = markdown_to_html(words)
    if url is None and path is None and not markdown:
        match = _TRAILING_URL.search(words)
        if match is not None:
            url, words = match.group(1), words[: match.start()].rstrip()
    media: tuple[MediaCandidate, ...] = ()
    if path is not None:
        media = (MediaCandidate(path=path.resolve(), origin="cli"),)
    digest = hashlib.sha256(f"{words}\0{path}\0{url}".encode()).hexdigest()[:32]
    return Item(
        source=SOURCE,
        key=f"{now:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}",
        text=words,
        html=markdown,
        link=url,
        published=now,
        attached=media,
        content_hash=digest,
    )


def _no_fetch(url: str) -> tuple[bytes, str | None]:  # pragma: no cover - never called
    raise AssertionError("post has no media URLs to fetch")


def _render(
    transformer: Transformer, item: Item, source: SourceConfig, is_url: bool
) -> RenderedItem:
    if is_url:
        return transformer.render_url(item, source)
    return transformer.render(item, source)


def rendered_media(rendered: RenderedItem) -> list[Any]:
    return [info for message in rendered.messages for info in message.media]


def _refuse_unusable(rendered: RenderedItem, path: Path | None) -> None:
    if rendered.refused is not None:
        fail(f"refused: {rendered.refused}", EXIT_FAILURE)
    if path is not None and not rendered_media(rendered):
        reasons = "; ".join(d.detail for d in rendered.decisions if d.code == "fallback")
        fail(f"refused: {path.name} cannot be posted: {reasons or 'unusable'}", EXIT_FAILURE)


# --------------------------------------------------------------------------
# --dry-run


def _dry_run(config: Config, item: Item, source: SourceConfig, is_url: bool) -> None:
    """Render into a throw-away media store: names are content hashes, so they
    are the names a real post would serve."""
    with tempfile.TemporaryDirectory(prefix="viber-post-") as tmp:
        transformer = Transformer(config, MediaStore(Path(tmp)), _no_fetch, public_url(config))
        rendered = _render(transformer, item, source, is_url)
        _refuse_unusable(rendered, item.media[0].path if item.media else None)
        public = transformer.public_url
        media = [
            {
                "name": info.name,
                "url": MediaStore.url(public, info.name) if public else None,
                "kind": info.kind,
                "mime": info.mime,
                "size": info.size,
                **{
                    k: v
                    for k, v in (
                        ("width", info.width),
                        ("height", info.height),
                        ("quality", info.quality),
                        ("duration", info.duration),
                    )
                    if v is not None
                },
            }
            for info in rendered_media(rendered)
        ]
    out = {
        "posts": [message.payload for message in rendered.messages],
        "media": media,
        "decisions": [str(d) for d in rendered.decisions],
    }
    click.echo(json.dumps(out, indent=2, ensure_ascii=False))


# --------------------------------------------------------------------------
# serving the media


def _local_base(config: Config) -> str:
    return reachable_url(config.server.host, config.server.port)


def _is_service(config: Config) -> bool:
    """Whether a viber-publisher service answers on [server] listen."""
    try:
        # A service on loopback answers in milliseconds; anything else is not one.
        answer = httpx.get(_local_base(config) + "/healthz", timeout=1)
        body = answer.json()
    except (httpx.HTTPError, ValueError):
        return False
    return answer.status_code in (200, 503) and isinstance(body, dict) and "ok" in body


@contextmanager
def _serve(config: Config, media: MediaPort, token: str | None) -> Iterator[_Serving]:
    from publisher.compose import make_local_channel, remount, uses_local_channel

    local = None
    local_token = None
    extra: dict[str, Any] = {}
    if uses_local_channel(config):
        local_token = secrets.token_hex(24)
        local = make_local_channel(local_token)
        extra["/pa"] = remount(local.app)
    app = make_app(
        media=media,
        webhook_path=config.server.webhook_path,
        # Viber's test call when post sets the webhook is signed with the token.
        token_provider=lambda: local_token or token,
        max_body=config.server.max_body,
        extra=extra,
    )
    try:
        server = HTTPServer(app, host=config.server.host, port=config.server.port).start()
    except OSError as exc:
        if not _is_service(config):
            fail(
                f"cannot listen on {config.server.listen}: {exc}; and no viber-publisher "
                "service answers there. Free the address or change [server] listen",
                EXIT_FAILURE,
            )
        log.info("a service runs on %s: it serves the media", config.server.listen)
        yield _Serving(None)
        return
    try:
        if local is not None:
            local.preset_webhook(server.url + config.server.webhook_path)
        yield _Serving(server, local, local_token)
    finally:
        server.stop()
        if local is not None:
            local.stop()


def _warn_unserved(config: Config) -> None:
    """The media were served by this command only while it ran: say so
    (one line on stderr) unless a bucket serves them."""
    if config.storage.media_bucket is not None:
        return
    click.echo(
        "warning: Viber (or subscribers' apps) may fetch this post's media later, and "
        f"they are served from {config.storage.media_dir} only while `viber-publisher run` "
        f"runs on [server] listen ({config.server.listen}): start the service, or keep "
        "media in a bucket ([storage] media_url)",
        err=True,
    )


def _check_served(config: Config, rendered: RenderedItem) -> None:
    """The running service must serve what we stored (the same media_dir)."""
    base = _local_base(config)
    for info in rendered_media(rendered):
        try:
            answer = httpx.head(f"{base}/media/{info.name}", timeout=10)
        except httpx.HTTPError as exc:
            fail(f"the service on {config.server.listen} did not answer: {exc}", EXIT_FAILURE)
        if answer.status_code != 200:
            fail(
                f"the service on {config.server.listen} does not serve {info.name} "
                f"(HTTP {answer.status_code}): does it use the same [storage] media_dir "
                f"({config.storage.media_dir})?",
                EXIT_FAILURE,
            )


# --------------------------------------------------------------------------
# posting


def _post_now(
    config: Config,
    store: Store,
    ids: list[int],
    token: str | None,
    serving: _Serving,
    wait_seconds: float,
) -> None:
    from publisher.adapters.viber.client import ChannelClient

    if serving.local is not None:
        assert serving.server is not None and serving.local_token is not None
        client = ChannelClient(
            serving.local_token,
            api_url=serving.server.url + "/pa",
            timeout=config.viber.timeout.total_seconds(),
            sender_id=config.viber.sender_id,
        )
    else:
        assert token is not None
        client = ChannelClient(
            token,
            api_url=config.viber.api_url,
            timeout=config.viber.timeout.total_seconds(),
            sender_id=config.viber.sender_id,
            token_source=config.viber.token_source(),
        )
    with client:
        poster = _Poster(config, store, client, time.monotonic() + wait_seconds)
        sender = poster.sender(ids)
        for outbox_id in ids:
            row = store.get(outbox_id)
            assert row is not None
            result = poster.send(row, sender)
            if result is None:
                # A running service took it first: its outcome is the outcome.
                _wait(store, [i for i in ids if i >= outbox_id], wait_seconds)
                return
            click.echo(
                f"posted #{outbox_id} ({row.payload.get('type')}) token={result.message_token}"
            )


class _Poster:
    """One post's attempts, by the table of :mod:`publisher.core.outcomes`;
    each failure either waits and tries again, or exits with one clear line."""

    def __init__(self, config: Config, store: Store, client: Channel, deadline: float) -> None:
        self.config = config
        self.store = store
        self.client = client
        #: ``time.monotonic()`` past which no more waiting: ``--wait``.
        self.deadline = deadline
        self.rng = random.Random()

    def sender(self, ids: list[int]) -> str:
        """Whom posts come from (asks Viber); nothing is sent yet."""
        attempts = 0
        while True:
            attempts += 1
            try:
                return str(self.client.sender())
            except PublisherError as exc:
                outcome = outcome_of(exc)
                if outcome.action is Action.STOP:
                    _give_up(self.store, ids, outcome.reason, self._stop_code(exc, outcome))
                if outcome.reraise:
                    raise
                reason = f"{outcome.reason} (viber.api_url = {self.config.viber.api_url})"
                if outcome.action is Action.FAIL:
                    _give_up(self.store, ids, reason, EXIT_FAILURE)
                delay = self._delay(outcome, attempts)
                if attempts >= self.config.delivery.max_attempts or not self._fits(delay):
                    _give_up(self.store, ids, reason + _try_again(delay), EXIT_FAILURE)
                self._pause(reason, delay, attempts, lambda: self._give_up_all(ids))

    def send(self, row: OutboxRow, sender: str) -> PostResult | None:
        """Post ``row``; None when a running service claimed it first."""
        webhook_set = False
        while True:
            if not self.store.claim(row.id, _now()):
                return None
            try:
                result: PostResult = self.client.post(row.payload, sender=sender)
            except BaseException as exc:
                outcome = outcome_of(exc, on_unknown=self.config.delivery.on_unknown)
                if outcome.reraise:  # a bug, or Ctrl-C mid-request: the post may be out
                    self.store.mark_unknown(row.id, outcome_of(exc).reason, _now())
                    raise
                if outcome.action is Action.SET_WEBHOOK and not webhook_set:
                    webhook_set = True
                    self._set_webhook(row, outcome)
                    continue
                if outcome.action is Action.SET_WEBHOOK:  # again 10: as a passing failure
                    outcome = replace(outcome, action=Action.RETRY, counts=True)
                self._failed(row, exc, outcome)
                continue
            self.store.mark_posted(row.id, result.message_token, _now())
            return result

    # ------------------------------------------------------------ failures

    def _failed(self, row: OutboxRow, exc: BaseException, outcome: Outcome) -> None:
        """``row`` is ``sending`` and failed: exit, or wait until it may go again."""
        action = outcome.action
        if action is Action.HOLD:
            self.store.mark_unknown(row.id, outcome.reason, _now())
            fail(
                f"post #{row.id}: {outcome.reason}; check the channel, then "
                f"`viber-publisher retry {row.id}` or `skip {row.id}`",
                EXIT_FAILURE,
            )
        if action is Action.FAIL:
            _fail_row(self.store, row.id, outcome.reason, EXIT_FAILURE)
        if action is Action.STOP:
            _not_sent(self.store, row.id, outcome.reason, self._stop_code(exc, outcome))
        assert action in (Action.RETRY, Action.COOL_DOWN), outcome
        current = self.store.get(row.id)
        attempts = current.attempts if current is not None else row.attempts + 1
        if attempts >= self.config.delivery.max_attempts:
            reason = f"gave up after {attempts} attempts: {outcome.reason}"
            _fail_row(self.store, row.id, reason, EXIT_FAILURE)
        delay = self._delay(outcome, attempts)
        if not self._fits(delay):
            reason = outcome.reason
            if outcome.maybe_sent:
                reason += " (the last attempt may have reached Viber: check the channel)"
            _not_sent(self.store, row.id, reason + _try_again(delay), EXIT_FAILURE)
        now = _now()
        self.store.mark_retry(row.id, outcome.reason, now + delay, now)
        self._pause(
            f"post #{row.id}: {outcome.reason}",
            delay,
            attempts,
            lambda: _not_sent(self.store, row.id, "interrupted while waiting", EXIT_FAILURE),
        )

    def _set_webhook(self, row: OutboxRow, outcome: Outcome) -> None:
        """Status 10: set the webhook once, then the post goes again at once."""
        webhook = webhook_url(self.config.server.public_url, self.config.server.webhook_path)
        if webhook is None:
            reason = f"{outcome.reason}; set [server] public_url so it can be set"
            _not_sent(self.store, row.id, reason, EXIT_FAILURE)
        try:
            self.client.set_webhook(webhook)
        except PublisherError as exc:
            hook = outcome_of(exc)
            code = self._stop_code(exc, hook) if hook.action is Action.STOP else EXIT_FAILURE
            _not_sent(self.store, row.id, f"{outcome.reason}; setting it: {hook.reason}", code)
        self.store.channel(self.config.channels[0].name).set_webhook_url(webhook)
        now = _now()
        self.store.mark_retry(row.id, outcome.reason, now, now, refund=not outcome.counts)

    def _delay(self, outcome: Outcome, attempts: int) -> timedelta:
        """How long the service would wait before the next attempt."""
        delivery = self.config.delivery
        delay = backoff_delay(attempts, delivery.retry_backoff, self.rng.uniform(*JITTER))
        if outcome.action is Action.COOL_DOWN:
            delay = max(delay, delivery.rate_limit_cooldown)
        return delay

    def _fits(self, delay: timedelta) -> bool:
        """Whether waiting ``delay`` stays within ``--wait``."""
        return time.monotonic() + delay.total_seconds() <= self.deadline

    def _pause(
        self, reason: str, delay: timedelta, attempts: int, on_interrupt: Callable[[], Any]
    ) -> None:
        seconds = delay.total_seconds()
        click.echo(
            f"{reason}; trying again in {seconds:.0f} s "
            f"(attempt {attempts + 1} of {self.config.delivery.max_attempts})",
            err=True,
        )
        try:
            time.sleep(seconds)
        except KeyboardInterrupt:
            on_interrupt()
            raise

    def _give_up_all(self, ids: list[int]) -> None:
        _give_up(self.store, ids, "interrupted while waiting", EXIT_FAILURE)

    def _stop_code(self, exc: BaseException, outcome: Outcome) -> int:
        """Exit code of a STOP: 2 when the configuration must change, else 3."""
        if outcome.config:
            return EXIT_CONFIG
        if isinstance(exc, SenderError) and self.config.viber.sender_id:
            return EXIT_CONFIG
        return EXIT_VIBER_REFUSED


def _now() -> datetime:
    return datetime.now(UTC)


def _fail_row(store: Store, outbox_id: int, reason: str, code: int) -> NoReturn:
    store.mark_failed(outbox_id, reason, _now())
    fail(f"post #{outbox_id} failed: {reason}", code)


def _not_sent(store: Store, outbox_id: int, reason: str, code: int) -> NoReturn:
    """``outbox_id`` did not go out (and is not sent later): failed, with the reason."""
    store.mark_failed(outbox_id, f"not sent: {reason}", _now())
    fail(f"post #{outbox_id} not sent: {reason}", code)


def _try_again(delay: timedelta) -> str:
    """When to try again, for a passing failure that ``--wait`` does not cover."""
    wait = format_duration(delay + timedelta(seconds=1))
    return (
        f"; try again after {_now() + delay:%H:%M:%S} UTC (in {wait}; "
        f"with --wait {wait} post waits by itself)"
    )


def _give_up(store: Store, ids: list[int], reason: str, code: int) -> NoReturn:
    """Nothing was sent: mark the first post failed (the rest are skipped with it)."""
    store.mark_failed(ids[0], f"not sent: {reason}", _now())
    fail(reason, code)


def _wait(store: Store, ids: list[int], seconds: float) -> None:
    """Wait for a running service to finish ``ids``; exit 1 unless all are posted."""
    deadline = time.monotonic() + seconds
    while True:
        rows = [store.get(i) for i in ids]
        if all(r is not None and r.status in _FINISHED for r in rows):
            break
        if time.monotonic() >= deadline:
            fail(
                f"not posted within {seconds:g} s: #{', #'.join(map(str, ids))} stay queued "
                "for the running service (see `status`)",
                EXIT_FAILURE,
            )
        time.sleep(0.2)
    for row in rows:
        assert row is not None
        if row.status != "posted":
            fail(f"post #{row.id} {row.status}: {row.reason}", EXIT_FAILURE)
        click.echo(f"posted #{row.id} ({row.payload.get('type')}) token={row.message_token}")
    sys.stdout.flush()
