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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.adapters.sources.registry import make_source
from publisher.config import resolve_database_password, resolve_token
from publisher.core.config import Config, SourceConfig
from publisher.core.errors import ConfigError, StoreError
from publisher.core.records import ReplicaInfo
from publisher.core.urls import reachable_url
from publisher.ports import Channel, Clock, Leases, MediaStore, Source
from publisher.ports import Store as StateStore

# The adapters are imported where they are built, so that a command that
# needs only the config (``check``, ``health``) loads none of them.
if TYPE_CHECKING:
    from publisher.adapters.alerts import Alerter
    from publisher.adapters.fetch import Fetcher
    from publisher.adapters.httpserver import HTTPServer
    from publisher.adapters.metrics import Metrics
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
    store: StateStore
    media: MediaStore
    fetcher: Fetcher
    metrics: Metrics
    alerter: Alerter
    transformer: Transformer
    poller: Poller
    sources: dict[str, Source]
    #: Each channel's token (None until a local channel makes its own).
    tokens: dict[str, str | None] = field(default_factory=dict)
    #: Each channel's client, and its delivery lane.
    channels: dict[str, Channel] = field(default_factory=dict)
    deliverers: dict[str, Deliverer] = field(default_factory=dict)
    server: HTTPServer | None = None
    #: The local channels (ViberStandIn), by name, for channels with api_url = "local".
    locals: dict[str, ViberStandIn] = field(default_factory=dict)
    #: Where Viber (or the local channel) fetches media and calls the webhooks.
    public_url: str | None = None
    extra_apps: dict[str, WSGIApp] = field(default_factory=dict)

    @property
    def first(self) -> str:
        """The first channel's name (what single-channel callers mean)."""
        return self.config.channels[0].name

    @property
    def token(self) -> str | None:
        return self.tokens.get(self.first)

    @property
    def deliverer(self) -> Deliverer | None:
        return self.deliverers.get(self.first)

    @property
    def local(self) -> ViberStandIn | None:
        return self.locals.get(self.first)

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        for channel in self.channels.values():
            channel.close()
        self.fetcher.close()
        self.alerter.close()
        self.store.close()


def build_sources(configs: Iterable[SourceConfig], fetcher: Fetcher) -> dict[str, Source]:
    """One adapter per configured source (disabled ones too: their posts
    still finish), from the source registry."""
    return {s.name: make_source(s, fetcher) for s in configs}


def join_state(config: Config) -> Leases:
    """Join the state as a service, by the store in use. With PostgreSQL,
    as one replica among any number (a session of its own holds its leases:
    :mod:`publisher.adapters.postgres.replicas`); with a SQLite file, alone:
    its OS lock is taken, a StoreError naming the holder when another run has
    it (:mod:`publisher.adapters.sqlite.lock`). ``release()`` leaves."""
    from publisher.adapters.soloreplica import SoloReplica

    if config.storage.url is not None:
        try:
            from publisher.adapters.postgres.replicas import Replica
        except ImportError:
            return SoloReplica()  # open_store says what to install
        return Replica.join(config.storage.url, password=resolve_database_password(config.storage))
    if str(config.storage.path) == ":memory:":
        return SoloReplica()
    from publisher.adapters.sqlite.lock import StateLock

    return SoloReplica(StateLock.acquire(config.storage.path))


def replicas(config: Config, store: StateStore) -> list[ReplicaInfo]:
    """The live replicas sharing the state, for a process that is not one
    (``status``): none with a SQLite file (one service, shown as it is)."""
    if config.storage.url is None:
        return []
    from publisher.adapters.postgres import PostgresStore
    from publisher.adapters.postgres.replicas import live_replicas

    if not isinstance(store, PostgresStore):
        return []
    with store.db.read() as conn:
        return live_replicas(conn, [c.name for c in config.channels])


def build(
    config: Config,
    *,
    tokens: Mapping[str, str | None] | None = None,
    clock: Clock = utcnow,
) -> Parts:
    """The shared parts. Opens the state file (StoreError when it cannot be
    used); the posts of the single-channel version go to the first channel
    when there is no channel ``main``."""
    from publisher.adapters.alerts import Alerter
    from publisher.adapters.fetch import Fetcher
    from publisher.adapters.metrics import Metrics
    from publisher.pipeline.enrich import fetch_page_with
    from publisher.pipeline.poll import Poller
    from publisher.pipeline.transform import Transformer, fetch_media_with

    metrics = Metrics(clock=clock)
    alerter = Alerter(config.alerts, clock=clock, metrics=metrics)
    store = open_store(config)
    if all(c.name != "main" for c in config.channels):
        adopted = store.adopt(config.channels[0].name)
        if adopted:
            log.info(
                "upgrade: %d post(s) of the single-channel version now belong to channel %s",
                adopted,
                config.channels[0].name,
            )
    # Disk faults of the media store fail a poll with the reason (nothing is
    # lost: the items are read again), and /readyz shows them.
    from publisher.adapters.mediaguard import GuardedMedia

    media = GuardedMedia(lambda: open_media(config), media_where(config))
    fetcher = Fetcher(config.fetch)
    transformer = Transformer(
        config,
        media,
        fetch_media_with(fetcher),
        media_base(config, public_url(config)),
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
        tokens=dict(tokens or {}),
        public_url=public_url(config),
    )


# --------------------------------------------------------------------------
# the store


def open_store(config: Config, *, read_only: bool = False) -> StateStore:
    """The state: the PostgreSQL database of ``[storage] url`` when set
    (its password from ``password_file`` or ``password_env``), else the
    SQLite file ``[storage] path``. ``read_only``: nothing is written, and
    a state that does not exist yet is a StoreError saying so."""
    if config.storage.url is None:
        from publisher.adapters.sqlite import Store

        return Store.open(config.storage.path, read_only=read_only)
    try:
        from publisher.adapters.postgres import PostgresStore
    except ImportError as exc:
        raise StoreError(
            "[storage] url names a PostgreSQL database, but psycopg is not installed: "
            "pip install 'viber-publisher[postgres]'"
        ) from exc
    return PostgresStore.open(
        config.storage.url,
        password=resolve_database_password(config.storage),
        read_only=read_only,
    )


def state_exists(config: Config) -> bool:
    """Whether there may be a state to read: always with PostgreSQL (opening
    says if not), else whether the SQLite file exists."""
    path = config.storage.path
    return config.storage.url is not None or (str(path) != ":memory:" and Path(path).exists())


# --------------------------------------------------------------------------
# media


def media_where(config: Config) -> str:
    """The media store as the operator knows it (the bucket, or the folder)."""
    return config.storage.media_url or str(config.storage.media_dir)


def open_media(config: Config) -> MediaStore:
    """The media store: the S3-compatible bucket of ``[storage] media_url``
    (``s3://bucket/prefix``, read at ``public_media_url``) when set, else the
    folder ``[storage] media_dir``."""
    location = config.storage.media_bucket
    if location is None:
        from publisher.adapters.mediafolder import MediaStore as MediaFolder

        return MediaFolder(config.storage.media_dir)
    from publisher.adapters.s3media import S3MediaStore

    bucket, prefix = location
    assert config.storage.public_media_url is not None, "check: S3 media need public_media_url"
    return S3MediaStore(
        bucket,
        prefix,
        config.storage.public_media_url,
        endpoint_url=config.storage.s3_endpoint,
    )


def media_base(config: Config, public: str | None) -> str | None:
    """Where the posts' media are read from: ``public_media_url`` with S3
    media (Viber fetches from the bucket or its CDN), else the service's
    public URL (``/media/<name>`` on the built-in server), if any."""
    if config.storage.media_bucket is not None:
        return config.storage.public_media_url
    return public


# --------------------------------------------------------------------------
# the channel


def uses_local_channel(config: Config, channel: str | None = None) -> bool:
    """Whether the channel (the first unless named) is a built-in local channel."""
    chosen = config.channel(channel) if channel else config.channels[0]
    return chosen.viber.is_local


#: What the commands that talk to Viber's account say on the local channel.
LOCAL_NOTE = (
    'viber.api_url is "local": the local channel is in use, so there is no Viber account '
    "to ask. Set viber.api_url to https://chatapi.viber.com/pa to post to Viber"
)


def no_account(config: Config, channel: str | None = None) -> str | None:
    """Why there is no Viber account to ask (a local channel), or None."""
    return LOCAL_NOTE if uses_local_channel(config, channel) else None


def public_url(config: Config, server_url: str | None = None) -> str | None:
    """Where Viber (or the local channel) reaches this service: ``[server]
    public_url``; on the local channel without one, the built-in server's own
    address (``server_url`` once it listens, else the one ``listen`` names),
    since the local channel fetches media from it as Viber would."""
    if config.server.public_url:
        return config.server.public_url.rstrip("/")
    if not any(c.viber.is_local for c in config.channels):
        return None
    if server_url is not None:
        return server_url
    return reachable_url(config.server.host, config.server.port)


def channel_token(config: Config, channel: str | None = None) -> str | None:
    """A channel's token (the first channel's unless named), read from where
    its config says (ConfigError when missing); None for a local channel,
    which makes its own."""
    chosen = config.channel(channel) if channel else config.channels[0]
    if chosen.viber.is_local:
        return None
    return resolve_token(chosen.viber)


def channel_tokens(config: Config) -> dict[str, str | None]:
    """Every channel's token; ConfigError naming what is missing, or two
    channels that were given the same token."""
    tokens: dict[str, str | None] = {}
    problems: list[str] = []
    for channel in config.channels:
        try:
            tokens[channel.name] = channel_token(config, channel.name)
        except ConfigError as exc:
            prefix = f"channel {channel.name}: " if len(config.channels) > 1 else ""
            problems.extend(prefix + p for p in exc.problems)
    owners: dict[str, str] = {}
    for name, token in tokens.items():
        if token is None:
            continue
        if token in owners:
            problems.append(
                f"channels {owners[token]} and {name} have the same token; each channel "
                "posts with its own token (Viber app: that channel → Settings → Developer Tools)"
            )
        owners.setdefault(token, name)
    if problems:
        raise ConfigError(problems)
    return tokens


def prepare_channel(parts: Parts) -> None:
    """Before serving: make a local channel for each channel with ``api_url =
    "local"`` (its API mounted on the built-in server), with a token of its own."""
    local = [c for c in parts.config.channels if c.viber.is_local]
    several = len(local) > 1
    for channel in local:
        token = parts.tokens.get(channel.name) or secrets.token_hex(24)
        parts.tokens[channel.name] = token
        parts.locals[channel.name] = make_local_channel(token, channel.name)
        parts.extra_apps[_local_api_path(channel.name, several)] = remount(
            parts.locals[channel.name].app
        )
    if parts.locals:
        from publisher.adapters.localchannel import channel_app, index_app

        if several:
            for name, stand_in in parts.locals.items():
                parts.extra_apps[f"/channel/{name}"] = channel_app(stand_in, parts, name)
            parts.extra_apps["/channel"] = index_app(list(parts.locals))
        else:
            ((name, stand_in),) = parts.locals.items()
            parts.extra_apps["/channel"] = channel_app(stand_in, parts, name)


def _local_api_path(name: str, several: bool) -> str:
    """Where a local channel's API is mounted: ``/pa``, or ``/pa/<name>`` for each of several."""
    return f"/pa/{name}" if several else "/pa"


def make_local_channel(token: str, name: str = "main") -> ViberStandIn:
    """A local channel: the Viber stand-in, judging posts by Viber's rules,
    fetching media from this service over plain HTTP on loopback."""
    from publisher.adapters.standin.server import ViberStandIn

    title = "Local channel" if name == "main" else f"Local channel {name}"
    return ViberStandIn(token, channel_name=title, require_https=False, allow_private_media=True)


def start_channels(parts: Parts, given: Mapping[str, Channel] | None = None) -> dict[str, Channel]:
    """Each channel's client (``given`` ones as they are, as tests bring them)."""
    from publisher.adapters.viber.client import ChannelClient

    config = parts.config
    several = len(parts.locals) > 1
    for channel in config.channels:
        client = (given or {}).get(channel.name)
        if client is None:
            if channel.name in parts.locals:
                assert parts.server is not None, "the local channel runs on the built-in server"
                api_url = parts.server.url + _local_api_path(channel.name, several)
            else:
                api_url = channel.viber.api_url
            token = parts.tokens.get(channel.name)
            assert token is not None, "the CLI resolves the tokens before the service starts"
            client = ChannelClient(
                token,
                api_url=api_url,
                timeout=channel.viber.timeout.total_seconds(),
                sender_id=channel.viber.sender_id,
                token_source=channel.viber.token_source(),
            )
        parts.channels[channel.name] = client
    parts.public_url = public_url(config, parts.server.url if parts.server else None)
    parts.transformer.public_url = media_base(config, parts.public_url)
    return parts.channels


# --------------------------------------------------------------------------
# the built-in HTTP server


def remount(app: WSGIApp) -> WSGIApp:
    """Give a mounted stand-in the path it routes on (``/pa/...``), wherever
    it is mounted (``/pa`` or ``/pa/<channel>``)."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ = dict(environ)
        environ["PATH_INFO"] = "/pa" + environ.get("PATH_INFO", "")
        environ["SCRIPT_NAME"] = ""
        return app(environ, start_response)

    return wrapped


def serve(parts: Parts, *, health: Probe, ready: Probe) -> HTTPServer:
    """Start the built-in HTTP server on ``[server] listen`` (OSError if it cannot)."""
    from publisher.adapters.httpserver import HTTPServer
    from publisher.adapters.web import make_app

    config = parts.config
    app = make_app(
        media=parts.media,
        webhook_path=config.server.webhook_path,
        # One channel: its webhook at webhook_path; several: each at webhook_path/<name>.
        token_provider=lambda: parts.token if len(config.channels) == 1 else None,
        channel_tokens=(lambda name: parts.tokens.get(name)) if len(config.channels) > 1 else None,
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
    from publisher.adapters.mediafolder import MediaStore as MediaFolder
    from publisher.adapters.sqlite import Store
    from publisher.pipeline.enrich import fetch_page_with
    from publisher.pipeline.poll import Poller
    from publisher.pipeline.preview import run_preview
    from publisher.pipeline.transform import Transformer, fetch_media_with

    now = (now or utcnow()).astimezone(UTC)
    chosen = [
        s for s in config.sources if (s.name in sources if sources is not None else s.enabled)
    ]
    store = open_store(config, read_only=True) if state_exists(config) else Store.open(":memory:")
    own_fetcher = fetcher is None
    fetcher = fetcher if fetcher is not None else Fetcher(config.fetch)
    try:
        transformer = Transformer(
            config,
            MediaFolder(media_dir),
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
