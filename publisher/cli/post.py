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
instead. Failures are final (the post is marked failed, never retried
later by the service behind your back).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
import httpx

from publisher.adapters.httpserver import HTTPServer
from publisher.adapters.mediafolder import MediaStore
from publisher.adapters.sqlite import Store
from publisher.cli import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_VIBER_REFUSED,
    State,
    fail,
    pass_state,
)
from publisher.cli.run import token_for
from publisher.core.config import Config, SourceConfig, parse_duration
from publisher.core.errors import (
    MessageError,
    SenderError,
    ViberAmbiguousError,
    ViberError,
    ViberFatalError,
    WebhookNotSetError,
)
from publisher.core.items import Item, MediaCandidate, RenderedItem
from publisher.pipeline.transform import Transformer
from publisher.service.web import make_app

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
    help="How long to wait for a running service that was handed the post.",
)
@pass_state
def post(
    state: State,
    path: Path | None,
    text: str | None,
    caption: str | None,
    url: str | None,
    dry_run: bool,
    wait_for: str,
) -> None:
    """Publish one thing now: `post --text "..."`, `post PATH [--caption "..."]`
    (a picture, video or file, by its sniffed type) or `post --url URL [--text "..."]`.

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
    config = state.load()
    if path is not None and not config.viber.is_local and config.public_url is None:
        fail(
            "posting a file needs [server] public_url: Viber fetches the media from there "
            "(an HTTPS address that reaches [server] listen)",
            EXIT_CONFIG,
        )
    now = datetime.now(UTC)
    item = _item(now, path, text, caption, url)
    source = SourceConfig(name=SOURCE, type="folder")
    if dry_run:
        _dry_run(config, item, source, url is not None)
        return
    token = token_for(config)
    media = MediaStore(config.storage.media_dir)
    with _serve(config, media) as serving:
        public_url = config.server.public_url
        if public_url is None and serving.server is not None:
            public_url = serving.server.url  # the local channel fetches from us
        if public_url is None:
            public_url = config.public_url
        transformer = Transformer(config, media, _no_fetch, public_url=public_url)
        rendered = _render(transformer, item, source, url is not None)
        _refuse_unusable(rendered, path)
        if serving.running_service and rendered_media(rendered):
            _check_served(config, rendered)
        with Store.open(config.storage.path) as store:
            ids = store.queue_item(rendered, now)
            if config.viber.is_local and serving.running_service:
                click.echo(f"handed to the running service as #{', #'.join(map(str, ids))}")
                _wait(store, ids, wait_seconds)
                return
            _post_now(config, store, ids, token, serving)


COMMANDS = [post]


# --------------------------------------------------------------------------
# the item


def _check_usage(path: Path | None, text: str | None, caption: str | None, url: str | None) -> None:
    if path is not None and url is not None:
        raise click.UsageError("give either PATH or --url, not both")
    if path is not None and text is not None:
        raise click.UsageError("with PATH, give its words with --caption")
    if caption is not None and path is None:
        raise click.UsageError("--caption goes with PATH; use --text otherwise")
    if path is None and url is None and not (text and text.strip()):
        raise click.UsageError('nothing to post: give --text "...", PATH or --url URL')


def _item(
    now: datetime, path: Path | None, text: str | None, caption: str | None, url: str | None
) -> Item:
    words = (caption if path is not None else text) or ""
    media: tuple[MediaCandidate, ...] = ()
    if path is not None:
        media = (MediaCandidate(path=path.resolve(), origin="cli"),)
    digest = hashlib.sha256(f"{words}\0{path}\0{url}".encode()).hexdigest()[:32]
    return Item(
        source=SOURCE,
        key=f"{now:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}",
        text=words,
        link=url,
        published=now,
        media=media,
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
        transformer = Transformer(config, MediaStore(Path(tmp)), _no_fetch)
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
    host, port = config.server.host, config.server.port
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _is_service(config: Config) -> bool:
    """Whether a viber-publisher service answers on [server] listen."""
    try:
        answer = httpx.get(_local_base(config) + "/healthz", timeout=5)
        body = answer.json()
    except (httpx.HTTPError, ValueError):
        return False
    return answer.status_code in (200, 503) and isinstance(body, dict) and "ok" in body


@contextmanager
def _serve(config: Config, media: MediaStore) -> Iterator[_Serving]:
    from publisher.adapters.standin.server import ViberStandIn
    from publisher.service.parts import _remount

    local = None
    local_token = None
    extra: dict[str, Any] = {}
    if config.viber.is_local:
        local_token = secrets.token_hex(24)
        local = ViberStandIn(
            local_token,
            channel_name="Local channel",
            require_https=False,
            allow_private_media=True,
        )
        extra["/pa"] = _remount(local.app)
    app = make_app(
        media=media,
        webhook_path=config.server.webhook_path,
        token_provider=lambda: local_token,
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
    config: Config, store: Store, ids: list[int], token: str | None, serving: _Serving
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
        try:
            sender = client.sender()
        except ViberFatalError as exc:
            _give_up(store, ids, str(exc), EXIT_VIBER_REFUSED)
        except SenderError as exc:
            code = EXIT_CONFIG if config.viber.sender_id else EXIT_VIBER_REFUSED
            _give_up(store, ids, str(exc), code)
        except ViberError as exc:
            _give_up(store, ids, f"{exc} (viber.api_url = {config.viber.api_url})", EXIT_FAILURE)
        for outbox_id in ids:
            row = store.get(outbox_id)
            assert row is not None
            if not store.claim(outbox_id, _now()):
                # A running service took it first: its outcome is the outcome.
                _wait(store, [i for i in ids if i >= outbox_id], 60.0)
                return
            webhook_tried = False
            while True:
                try:
                    result = client.post(row.payload, sender=sender)
                except WebhookNotSetError as exc:
                    webhook = config.server.webhook_url
                    if webhook is None or webhook_tried:
                        _fail_row(store, outbox_id, f"{exc}", EXIT_FAILURE)
                    webhook_tried = True
                    try:
                        client.set_webhook(webhook)
                    except ViberError as hook_exc:
                        _fail_row(store, outbox_id, f"{exc}; setting it: {hook_exc}", EXIT_FAILURE)
                    store.channel().set_webhook_url(webhook)
                    continue
                except ViberAmbiguousError as exc:
                    store.mark_unknown(outbox_id, str(exc), _now())
                    fail(
                        f"post #{outbox_id}: {exc}; check the channel, then "
                        f"`viber-publisher retry {outbox_id}` or `skip {outbox_id}`",
                        EXIT_FAILURE,
                    )
                except ViberFatalError as exc:
                    _fail_row(store, outbox_id, str(exc), EXIT_VIBER_REFUSED)
                except (ViberError, MessageError) as exc:
                    _fail_row(store, outbox_id, f"refused by Viber: {exc}", EXIT_FAILURE)
                break
            store.mark_posted(outbox_id, result.message_token, _now())
            click.echo(
                f"posted #{outbox_id} ({row.payload.get('type')}) token={result.message_token}"
            )


def _now() -> datetime:
    return datetime.now(UTC)


def _fail_row(store: Store, outbox_id: int, reason: str, code: int) -> NoReturn:
    store.mark_failed(outbox_id, reason, _now())
    fail(f"post #{outbox_id} failed: {reason}", code)


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
