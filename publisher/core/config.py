"""The configuration model: frozen, typed settings and their value parsers.

Durations (``"30s"``, ``"1h30m"``), sizes (``"20MB"``), wall-clock times and
``host:port`` are parsed here; :mod:`publisher.config` reads ``sources.toml``
into these objects. Pure: nothing here reads a file or the environment.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace
from datetime import time, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

DEFAULT_CONFIG = "sources.toml"
CONFIG_ENV = "PUBLISHER_CONFIG"
DEFAULT_API_URL = "https://chatapi.viber.com/pa"
LOCAL_API_URL = "local"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# --------------------------------------------------------------------------
# value parsers


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | int | float) -> timedelta:
    """``"30s"``, ``"10m"``, ``"2h"``, ``"1h30m"``, ``"90d"``; a bare number is seconds.

    Raises ValueError for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(value)
        return timedelta(seconds=value)
    text = value.strip().lower().replace(" ", "")
    if not text:
        raise ValueError(value)
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            raise ValueError(value)
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(value)
    return timedelta(seconds=total)


def format_duration(delta: timedelta) -> str:
    """The inverse of :func:`parse_duration`, for messages: ``"1h30m"``."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        ms = int(delta.total_seconds() * 1000)
        return f"{ms}ms" if ms else "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?")
_SIZE_UNITS = {
    None: 1,
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}


def parse_size(value: str | int) -> int:
    """``20000000``, ``"20MB"``, ``"512KiB"`` → bytes. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(value)
        return value
    match = _SIZE.fullmatch(value.strip().lower())
    if not match:
        raise ValueError(value)
    size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    if size <= 0:
        raise ValueError(value)
    return size


def parse_clock(value: str) -> time:
    """``"08:00"`` or ``"22:30"``; ``"24:00"`` means the end of the day."""
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
    if not match:
        raise ValueError(value)
    hour, minute = int(match.group(1)), int(match.group(2))
    if (hour, minute) == (24, 0):
        return time(23, 59, 59, 999999)
    return time(hour, minute)


def parse_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"``, ``"0.0.0.0:80"``, ``"[::1]:8080"``, ``":8080"``."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(value)
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


# --------------------------------------------------------------------------
# the config objects


@dataclass(frozen=True)
class ViberConfig:
    token_env: str = "VIBER_AUTH_TOKEN"
    token_file: Path | None = None
    #: ``"local"`` posts to the embedded local channel instead of Viber.
    api_url: str = DEFAULT_API_URL
    sender_id: str | None = None
    timeout: timedelta = timedelta(seconds=15)

    @property
    def is_local(self) -> bool:
        return self.api_url == LOCAL_API_URL

    def token_source(self) -> str:
        """Where the token is read from, for messages (never the token)."""
        if self.token_file is not None:
            return f"the file {self.token_file} (viber.token_file)"
        return f"the environment variable {self.token_env} (viber.token_env)"


@dataclass(frozen=True)
class ServerConfig:
    listen: str = "127.0.0.1:8080"
    #: The address Viber reaches for webhook and media; None when not public.
    public_url: str | None = None
    webhook_path: str = "/viber/webhook"
    #: Webhook request bodies larger than this are refused.
    max_body: int = 64 * 1024

    @property
    def host(self) -> str:
        return parse_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return parse_listen(self.listen)[1]


@dataclass(frozen=True)
class StorageConfig:
    path: Path = Path("data/publisher.sqlite3")
    media_dir: Path = Path("data/media")
    #: Media files of finished posts are deleted after this long: a year, as
    #: long as a post may be scrolled back to (Viber does not say when the
    #: apps fetch a post's media; if only when it is shown, a deleted file is
    #: a blank picture).
    media_retention: timedelta = timedelta(days=365)
    #: Finished posts and old events are deleted after this long (daily).
    history_retention: timedelta = timedelta(days=180)
    #: ``"postgresql://user@host:port/db"``: the state in PostgreSQL, not in ``path``.
    url: str | None = None
    #: The environment variable holding the database password (with ``url``).
    password_env: str = "PGPASSWORD"
    #: A file holding the database password (a Docker secret, say); wins over the variable.
    password_file: Path | None = None
    #: ``"s3://bucket/prefix"``: media in an S3-compatible store, not ``media_dir``.
    media_url: str | None = None
    #: With S3 media: the HTTPS address (the bucket's, or a CDN's) at which
    #: ``<public_media_url>/<name>`` is the stored object; what Viber fetches.
    public_media_url: str | None = None
    #: The S3 endpoint (MinIO, R2, ...); None: boto3's (``AWS_ENDPOINT_URL``, else AWS).
    s3_endpoint: str | None = None

    @property
    def media_bucket(self) -> tuple[str, str] | None:
        """``(bucket, prefix)`` of an ``s3://`` media_url (prefix ``""`` or
        ending in ``/``), None for the media folder."""
        return parse_s3_url(self.media_url) if self.media_url else None


def parse_s3_url(url: str) -> tuple[str, str]:
    """``"s3://bucket/a/b"`` → ``("bucket", "a/b/")``; ValueError saying what is wrong."""
    scheme, sep, rest = url.partition("://")
    if scheme.lower() != "s3" or not sep:
        raise ValueError('is not an s3:// URL; use e.g. "s3://my-bucket/media"')
    bucket, _, prefix = rest.partition("/")
    if not S3_BUCKET_RE.fullmatch(bucket):
        raise ValueError(
            f"names the bucket {bucket!r}: a bucket name is 3 to 63 lowercase letters, "
            "digits, dots and hyphens"
        )
    prefix = prefix.strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise ValueError(f"has the prefix {prefix!r}: use path parts without //, . or ..")
    return bucket, prefix + "/" if prefix else ""


#: An S3 bucket name (the rules all S3-compatible stores accept).
S3_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class FetchConfig:
    timeout: timedelta = timedelta(seconds=20)
    max_bytes: int = 20 * 1000 * 1000
    user_agent: str = "viber-publisher/0.1 (+https://github.com/viber-publisher/viber-publisher)"
    #: Allow URLs found in feed content that resolve to loopback/private/link-local.
    allow_private: bool = False
    #: At most this many connections to one host at a time.
    max_per_host: int = 2
    #: A failing source is retried after every*2^n, at most this long.
    max_backoff: timedelta = timedelta(hours=6)


@dataclass(frozen=True)
class MediaConfig:
    #: The longest side of a posted picture, in pixels.
    max_side: int = 2560
    #: Images that would decode to more pixels than this are refused as
    #: decompression bombs (a JPEG is decoded reduced; a WebP counts three times):
    #: this bounds a picture's memory (about 300 MB at the default).
    max_pixels: int = 40_000_000
    #: ``"crop"`` (centre crop to 400x400) or ``"fit"`` (letterbox on white).
    thumbnail: Literal["crop", "fit"] = "crop"


@dataclass(frozen=True)
class Window:
    """Posting hours, in the policy's timezone; may cross midnight."""

    days: tuple[str, ...] = DAYS
    start: time = time(0, 0)
    end: time = time(23, 59, 59, 999999)


@dataclass(frozen=True)
class Policy:
    """Delivery limits. ``None`` means "no limit of this kind".

    The channel has one (``[delivery]``); a source may add its own, which
    applies to that source's posts on top of the channel's.
    """

    max_per_hour: int | None = None
    max_per_day: int | None = None
    min_interval: timedelta | None = None
    window: Window | None = None
    timezone: str = "UTC"
    max_age: timedelta | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class DeliveryConfig:
    policy: Policy = field(default_factory=lambda: Policy(min_interval=timedelta(seconds=2)))
    #: What to do with posts whose fate is unknown after a crash or timeout.
    on_unknown: Literal["hold", "retry"] = "hold"
    #: Attempts for a retryable failure before the post is marked failed.
    max_attempts: int = 5
    #: First retry delay; doubled each attempt, with jitter.
    retry_backoff: timedelta = timedelta(seconds=30)
    #: How long the channel slows down after Viber says "too many requests".
    rate_limit_cooldown: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class AlertsConfig:
    webhook_url: str | None = None
    #: At most one alert of the same kind and subject per this long.
    min_interval: timedelta = timedelta(hours=1)
    #: A source is paused (and alerted on) after this many failed polls in a row.
    source_failures: int = 5


@dataclass(frozen=True)
class ChannelConfig:
    """One Viber channel: where its API is, whose token, and its own delivery policy."""

    name: str = "main"
    viber: ViberConfig = field(default_factory=ViberConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)


@dataclass(frozen=True)
class Route:
    """A source's own words for one of its channels (None: the source's own)."""

    channel: str
    template: str | None = None
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] | None = None
    images: bool | None = None


@dataclass(frozen=True)
class SourceConfig:
    name: str
    type: Literal["rss", "folder"]
    url: str | None = None
    path: Path | None = None
    every: timedelta = timedelta(minutes=10)
    enabled: bool = True
    #: On the very first poll, queue only the newest N items.
    backfill: int = 0
    #: Seen item keys are remembered this long.
    remember: timedelta = timedelta(days=90)
    on_update: Literal["ignore", "repost"] = "ignore"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    #: Python ``str.format`` template over title, text, link, author, published, source.
    template: str | None = None
    caption_overflow: Literal["split", "truncate"] = "split"
    #: Post pictures found in items (else text only).
    images: bool = True
    #: Links inside the text: ``"inline"`` (``text (URL)``), ``"footnotes"`` or ``"drop"``.
    links: Literal["inline", "footnotes", "drop"] = "inline"
    #: Remove tracking parameters (``utm_*``, ``fbclid``...) from posted URLs.
    clean_links: bool = True
    #: ``"viber"``: the title bold and the text's formatting as Viber's markup.
    format: Literal["plain", "viber"] = "plain"
    #: Every post of this source at most this many characters (an excerpt); None: Viber's limits.
    max_length: int | None = None
    #: At most this many ``{hashtags}`` from the item's categories.
    max_hashtags: int = 5
    #: A text over Viber's 7,000 characters: several posts (``"split"``) or cut.
    text_overflow: Literal["split", "truncate"] = "split"
    #: Read the article page for what the feed left out: ``"image"``, ``"text"``.
    enrich: tuple[str, ...] = ()
    #: An item with several pictures posts up to this many picture posts.
    pictures: int = 1
    #: Folders: a file is taken once its size and mtime are unchanged this long.
    settle: timedelta = timedelta(seconds=5)
    #: This source's own limits on top of the channel's.
    policy: Policy = field(default_factory=Policy)
    #: The channels its items go to (never empty once the config is read).
    channels: tuple[str, ...] = ("main",)
    #: Per-channel overrides of template, include, exclude and images.
    routes: tuple[Route, ...] = ()

    def for_channel(self, channel: str) -> SourceConfig:
        """This source as ``channel`` sees it: with that channel's route applied."""
        for route in self.routes:
            if route.channel == channel:
                return replace(
                    self,
                    template=route.template if route.template is not None else self.template,
                    include=route.include if route.include is not None else self.include,
                    exclude=route.exclude if route.exclude is not None else self.exclude,
                    images=route.images if route.images is not None else self.images,
                    routes=(),
                )
        return self if not self.routes else replace(self, routes=())


@dataclass(frozen=True)
class Config:
    #: The channels, in the order of the file (at least one; the old
    #: ``[viber]`` + ``[delivery]`` form is the one channel ``main``).
    channels: tuple[ChannelConfig, ...] = (ChannelConfig(),)
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    fetch: FetchConfig = field(default_factory=FetchConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    sources: tuple[SourceConfig, ...] = ()
    #: The file this was read from (relative paths in it are resolved against its folder).
    path: Path | None = None
    #: Non-fatal remarks for ``check`` (e.g. a public_url that is not HTTPS).
    warnings: tuple[str, ...] = ()
    #: The channel came from the old ``[viber]`` + ``[delivery]`` form.
    legacy_channel: bool = True

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)

    def channel(self, name: str) -> ChannelConfig:
        for channel in self.channels:
            if channel.name == name:
                return channel
        raise KeyError(name)

    @property
    def viber(self) -> ViberConfig:
        """The first channel's API settings (for what concerns one channel)."""
        return self.channels[0].viber

    @property
    def delivery(self) -> DeliveryConfig:
        """The first channel's delivery policy (for what concerns one channel)."""
        return self.channels[0].delivery

    def sources_of(self, channel: str) -> tuple[SourceConfig, ...]:
        """The sources routed to ``channel``, each as that channel sees it."""
        return tuple(s.for_channel(channel) for s in self.sources if channel in s.channels)


#: IPv6 ranges that carry an IPv4 address in their last 32 bits: NAT64 (RFC 6052)
#: and the deprecated IPv4-compatible form (``::a.b.c.d``).
_V4_IN_LAST_32 = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("::/96"),
)
#: IPv6 ranges never fetched: NAT64 for local use (RFC 8215), site-local
#: (deprecated, still routed inside some networks), Teredo (a tunnel to IPv4),
#: multicast.
_V6_REFUSED = (
    ipaddress.IPv6Network("64:ff9b:1::/48"),
    ipaddress.IPv6Network("fec0::/10"),
    ipaddress.IPv6Network("2001::/32"),
    ipaddress.IPv6Network("ff00::/8"),
)


def is_private_address(host: str) -> bool:
    """True for an IP literal that is, or reaches, a non-public address.

    Loopback, private, link-local, shared (CGNAT), multicast and reserved
    addresses, and every IPv6 form that carries an IPv4 address inside it is
    judged by that IPv4 address: IPv4-mapped ``::ffff:a.b.c.d``,
    IPv4-compatible ``::a.b.c.d``, NAT64 ``64:ff9b::a.b.c.d`` and 6to4
    ``2002:aabb:ccdd::``; local-use NAT64, site-local ``fec0::/10`` and
    Teredo ``2001::/32`` are refused outright. A host name (not an IP
    literal) is False: resolve it and ask about each address.
    """
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in net for net in _V6_REFUSED):
            return True
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address not in (
            ipaddress.IPv6Address("::"),
            ipaddress.IPv6Address("::1"),
        ):
            for net in _V4_IN_LAST_32:
                if address in net:
                    embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_private_address(str(embedded))
    return not address.is_global or address.is_multicast
