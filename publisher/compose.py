"""The composition root: the one place that builds the parts from the config
and chooses which adapter stands behind each seam of :mod:`publisher.ports`.

- :func:`build` makes what every command shares: the store (SQLite), the
  media folder, the fetcher, the sources (from the registry), the
  transformer, the poller, metrics and alerts;
- :func:`start_channel` makes the channel: the Viber client, or — with
  ``[viber] api_url = "local"`` — the local channel served by the built-in
  HTTP server. Nothing else asks which one it is;
- :func:`serve` builds the built-in HTTP server (media, webhook, health,
  metrics, and the local channel's API and page when it is the channel).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.adapters.sources.registry import make_source
from publisher.config import resolve_token
from publisher.core.config import Config, SourceConfig
from publisher.ports import Channel, Clock, Source

# The adapters are imported where they are built, so that a command that
# needs only the config (``check``, ``health``) loads none of them.
if TYPE_CHECKING:
    from publisher.adapters.alerts import Alerter
    from publisher.adapters.fetch import Fetcher
    from publisher.adapters.httpserver import HTTPServer
    from publisher.adapters.mediafolder import MediaStore
    from publisher.adapters.metrics import Metrics
    from publisher.adapters.sqlite import Store
    from publisher.adapters.standin.server import ViberStandIn
    from publisher.pipeline.deliver import Deliverer
    from publisher.pipeline.poll import Poller
    from publisher.pipeline.preview import Preview
    from publisher.pipeline.transform import Transformer

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
#: (ok, details) for /healthz and /readyz.
Probe = Callable[[], tuple[bool, dict[str, Any]]]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Parts:
    """Everything a running service (or a command) uses, built once."""

    config: Config
    clock: Clock
    store: Store
    media: MediaStore
    fetcher: Fetcher
    metrics: Metrics
    alerter: Alerter
    transformer: Transformer
    poller: Poller
    sources: dict[str, Source]
    #: The channel's token (None until the local channel makes its own).
    token: str | None = None
    channel: Channel | None = None
    deliverer: Deliverer | None = None
    server: HTTPServer | None = None
    #: The local channel (a ViberStandIn) when it is the channel.
    local: Any = None
    #: Where Viber (or the local channel) fetches media and calls the webhook.
    public_url: str | None = None
    extra_apps: dict[str, WSGIApp] = field(default_factory=dict)

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.channel is not None:
            self.channel.close()
        self.fetcher.close()
        self.alerter.close()
        self.store.close()


def build_sources(configs: Iterable[SourceConfig], fetcher: Fetcher) -> dict[str, Source]:
    """One adapter per configured source (disabled ones too: their posts
    still finish), from the source registry."""
    return {s.name: make_source(s, fetcher) for s in configs}


def build(config: Config, *, token: str | None = None, clock: Clock = utcnow) -> Parts:
    """The shared parts. Opens the state file (StoreError when it cannot be used)."""
    from publisher.adapters.alerts import Alerter
    from publisher.adapters.fetch import Fetcher
    from publisher.adapters.mediafolder import MediaStore
    from publisher.adapters.metrics import Metrics
    from publisher.adapters.sqlite import Store
    from publisher.pipeline.enrich import fetch_page_with
    from publisher.pipeline.poll import Poller
    from publisher.pipeline.transform import Transformer, fetch_media_with

    metrics = Metrics(clock=clock)
    alerter = Alerter(config.alerts, clock=clock, metrics=metrics)
    store = Store.open(config.storage.path)
    media = MediaStore(config.storage.media_dir)
    fetcher = Fetcher(config.fetch)
    transformer = Transformer(
        config,
        media,
        fetch_media_with(fetcher),
        public_url(config),
        fetch_page=fetch_page_with(fetcher),
    )
    poller = Poller(config, store, transformer, clock=clock, metrics=metrics, alerts=alerter)
    return Parts(
        config=config,
        clock=clock,
        store=store,
        media=media,
        fetcher=fetcher,
        metrics=metrics,
        alerter=alerter,
        transformer=transformer,
        poller=poller,
        sources=build_sources(config.sources, fetcher),
        token=token,
        public_url=public_url(config),
    )


# --------------------------------------------------------------------------
# the channel


def uses_local_channel(config: Config) -> bool:
    """Whether the channel is the built-in local channel (no Viber account)."""
    return config.viber.is_local


#: What the commands that talk to Viber's account say on the local channel.
LOCAL_NOTE = (
    'viber.api_url is "local": the local channel is in use, so there is no Viber account '
    "to ask. Set viber.api_url to https://chatapi.viber.com/pa to post to Viber"
)


def no_account(config: Config) -> str | None:
    """Why there is no Viber account to ask (the local channel), or None."""
    return LOCAL_NOTE if uses_local_channel(config) else None


def public_url(config: Config, server_url: str | None = None) -> str | None:
    """Where Viber (or the local channel) reaches this service: ``[server]
    public_url``; on the local channel without one, the built-in server's own
    address (``server_url`` once it listens, else the one ``listen`` names),
    since the local channel fetches media from it as Viber would."""
    if config.server.public_url:
        return config.server.public_url.rstrip("/")
    if not uses_local_channel(config):
        return None
    if server_url is not None:
        return server_url
    host, port = config.server.host, config.server.port
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def channel_token(config: Config) -> str | None:
    """The channel's token, read from where ``[viber]`` says (ConfigError when
    it is missing); None for the local channel, which makes its own."""
    if uses_local_channel(config):
        return None
    return resolve_token(config.viber)


def prepare_channel(parts: Parts) -> None:
    """Before serving: make the local channel when it is the channel (its API
    is mounted on the built-in server), with a token of its own."""
    if not uses_local_channel(parts.config):
        return
    parts.token = parts.token or secrets.token_hex(24)
    parts.local = make_local_channel(parts.token)
    parts.extra_apps["/pa"] = remount(parts.local.app)
    page = _channel_page(parts)
    if page is not None:
        parts.extra_apps["/channel"] = page


def make_local_channel(token: str) -> ViberStandIn:
    """The local channel: the Viber stand-in, judging posts by Viber's rules,
    fetching media from this service over plain HTTP on loopback."""
    from publisher.adapters.standin.server import ViberStandIn

    return ViberStandIn(
        token, channel_name="Local channel", require_https=False, allow_private_media=True
    )


def start_channel(parts: Parts, channel: Channel | None = None) -> Channel:
    """The channel client (``channel`` if the caller brings one, as tests do)."""
    from publisher.adapters.viber.client import ChannelClient

    config = parts.config
    if channel is None:
        if parts.local is not None:
            assert parts.server is not None, "the local channel runs on the built-in server"
            api_url = parts.server.url + "/pa"
        else:
            api_url = config.viber.api_url
        assert parts.token is not None, "the CLI resolves the token before the service starts"
        channel = ChannelClient(
            parts.token,
            api_url=api_url,
            timeout=config.viber.timeout.total_seconds(),
            sender_id=config.viber.sender_id,
        )
    parts.channel = channel
    parts.public_url = public_url(config, parts.server.url if parts.server else None)
    parts.transformer.public_url = parts.public_url
    return channel


# --------------------------------------------------------------------------
# the built-in HTTP server


def remount(app: WSGIApp) -> WSGIApp:
    """Give a mounted app the full path again (it routes on ``/pa/...``)."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ = dict(environ)
        environ["PATH_INFO"] = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        environ["SCRIPT_NAME"] = ""
        return app(environ, start_response)

    return wrapped


def _channel_page(parts: Parts) -> WSGIApp | None:
    from publisher.adapters.localchannel import channel_app

    app: WSGIApp = channel_app(parts.local, parts)
    return app


def serve(parts: Parts, *, health: Probe, ready: Probe) -> HTTPServer:
    """Start the built-in HTTP server on ``[server] listen`` (OSError if it cannot)."""
    from publisher.adapters.httpserver import HTTPServer
    from publisher.adapters.web import make_app

    config = parts.config
    app = make_app(
        media=parts.media,
        webhook_path=config.server.webhook_path,
        token_provider=lambda: parts.token,
        max_body=config.server.max_body,
        health=health,
        ready=ready,
        metrics=parts.metrics.render,
        extra=parts.extra_apps,
    )
    server = HTTPServer(app, host=config.server.host, port=config.server.port).start()
    parts.server = server
    log.info("serving media, webhook and health on %s", server.url)
    return server


# --------------------------------------------------------------------------
# preview: the pipeline without its writes


def build_preview(
    config: Config,
    media_dir: Path,
    *,
    sources: Sequence[str] | None = None,
    limit: int | None = None,
    new_only: bool = False,
    now: datetime | None = None,
    fetcher: Fetcher | None = None,
) -> Preview:
    """What the next poll would post, changing nothing: the state file is
    opened read-only (absent: an empty store in memory), rendered media go to
    ``media_dir`` (a temporary folder), nothing is posted or moved."""
    from publisher.adapters.fetch import Fetcher
    from publisher.adapters.mediafolder import MediaStore
    from publisher.adapters.sqlite import Store
    from publisher.pipeline.enrich import fetch_page_with
    from publisher.pipeline.poll import Poller
    from publisher.pipeline.preview import run_preview
    from publisher.pipeline.transform import Transformer, fetch_media_with

    now = (now or utcnow()).astimezone(UTC)
    chosen = [
        s for s in config.sources if (s.name in sources if sources is not None else s.enabled)
    ]
    path = config.storage.path
    exists = str(path) != ":memory:" and Path(path).exists()
    store = Store.open(path, read_only=True) if exists else Store.open(":memory:")
    own_fetcher = fetcher is None
    fetcher = fetcher if fetcher is not None else Fetcher(config.fetch)
    try:
        transformer = Transformer(
            config,
            MediaStore(media_dir),
            fetch_media_with(fetcher),
            public_url(config),
            fetch_page=fetch_page_with(fetcher),
        )
        poller = Poller(config, store, transformer, clock=lambda: now)
        adapters = list(build_sources(chosen, fetcher).values())
        return run_preview(
            config,
            poller,
            adapters,
            limit=limit,
            new_only=new_only,
            now=now,
            media_dir=media_dir,
        )
    finally:
        store.close()
        if own_fetcher:
            fetcher.close()
