"""``sources.toml``: read with tomllib into frozen, typed objects.

Every problem found is reported at once, one line each, naming the key path
and what to do, e.g. ``sources[2].every: "5 minutes" is not a duration; use
e.g. "5m"``. Sources are counted from 1, as a person counts the
``[[sources]]`` tables in the file. Unknown keys are errors: a typo must not
be silently ignored.

The auth token is never part of the config: ``[viber] token_env`` names an
environment variable and ``token_file`` a file (a Docker secret, say);
:func:`resolve_token` reads it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from datetime import time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from publisher.core.config import (
    CONFIG_ENV,
    DAYS,
    DEFAULT_API_URL,
    DEFAULT_CONFIG,
    LOCAL_API_URL,
    AlertsConfig,
    ChannelConfig,
    Config,
    DeliveryConfig,
    FetchConfig,
    MediaConfig,
    Policy,
    Route,
    ServerConfig,
    SourceConfig,
    StorageConfig,
    ViberConfig,
    Window,
    format_duration,
    parse_clock,
    parse_duration,
    parse_listen,
    parse_s3_url,
    parse_size,
)
from publisher.core.errors import ConfigError
from publisher.core.policy import history_horizon
from publisher.core.redact import redact_urls

#: The shortest ``max_length`` that leaves room for a title, a few words and a link.
_MIN_LENGTH = 50

# --------------------------------------------------------------------------
# loading


class _Problems:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.warnings: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.lines.append(f"{path}: {message}")


#: The longest duration a key takes: later dates would overflow (year 9999).
_MAX_DURATION = timedelta(days=3650)
#: The largest size a key takes (bytes), and the largest whole number.
_MAX_SIZE = 1000 * 1000**3
_MAX_INTEGER = 1_000_000_000


def _short(value: Any) -> Any:
    """A value as a message quotes it: a 400-digit number cut short."""
    text = str(value)
    return text[:30] + "…" if len(text) > 40 else value


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


class _Table:
    """A TOML table being read: typed getters that record problems, and a
    final check that every key was known."""

    def __init__(self, data: Mapping[str, Any], path: str, problems: _Problems) -> None:
        self.data = data
        self.path = path
        self.problems = problems
        self.known: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def raw(self, name: str) -> Any:
        self.known.add(name)
        return self.data.get(name)

    def get(
        self,
        name: str,
        kind: type | tuple[type, ...],
        default: Any,
        hint: str,
    ) -> Any:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            self.problems.add(self.key(name), f"{_show(value)} is not valid; {hint}")
            return default
        if not isinstance(value, kind):
            self.problems.add(self.key(name), f"{_show(value)} is not valid; {hint}")
            return default
        return value

    def string(self, name: str, default: Any = None, hint: str = "use a quoted string") -> Any:
        return self.get(name, str, default, hint)

    def boolean(self, name: str, default: bool) -> bool:
        return bool(self.get(name, bool, default, "use true or false"))

    def integer(
        self, name: str, default: Any, minimum: int = 0, maximum: int = _MAX_INTEGER
    ) -> Any:
        value = self.get(name, int, default, f"use a whole number of at least {minimum}")
        if value is not None and value is not default and value < minimum:
            self.problems.add(
                self.key(name), f"{value} is too small; use a whole number of at least {minimum}"
            )
            return default
        if value is not None and value is not default and value > maximum:
            self.problems.add(
                self.key(name), f"{value} is too large; use a whole number of at most {maximum:,}"
            )
            return default
        return value

    def convert(self, name: str, parse: Callable[[Any], Any], default: Any, hint: str) -> Any:
        value = self.raw(name)
        if value is None:
            return default
        try:
            result = parse(value)
        except OverflowError:
            self.problems.add(self.key(name), f"{_show(_short(value))} is far too large")
            return default
        except (ValueError, TypeError, AttributeError):
            self.problems.add(self.key(name), f"{_show(_short(value))} {hint}")
            return default
        # Absurd values would overflow the dates and sizes computed from them.
        if isinstance(result, timedelta) and result > _MAX_DURATION:
            self.problems.add(
                self.key(name),
                f'{_show(_short(value))} is too long; use at most "{_MAX_DURATION.days}d" '
                "(ten years)",
            )
            return default
        if isinstance(result, int) and not isinstance(result, bool) and result > _MAX_SIZE:
            self.problems.add(
                self.key(name), f'{_show(_short(value))} is too large; use at most "1000GB"'
            )
            return default
        return result

    def duration(self, name: str, default: Any) -> Any:
        return self.convert(
            name, parse_duration, default, 'is not a duration; use e.g. "30s", "10m", "2h" or "7d"'
        )

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> Any:
        value = self.raw(name)
        if value is None:
            return default
        if value not in choices:
            options = ", ".join(f'"{c}"' for c in choices)
            self.problems.add(self.key(name), f"{_show(value)} is not one of {options}")
            return default
        return value

    def strings(self, name: str) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problems.add(self.key(name), 'use a list of strings, e.g. ["word", "re:^Ad"]')
            return ()
        return tuple(value)

    def table(self, name: str) -> _Table:
        value = self.raw(name)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.problems.add(self.key(name), f"must be a table, e.g. [{self.key(name)}]")
            value = {}
        return _Table(value, self.key(name), self.problems)

    def finish(self, suggestions: Mapping[str, str] | None = None) -> None:
        for name in self.data:
            if name in self.known:
                continue
            hint = (suggestions or {}).get(name)
            if hint is None:
                close = _closest(name, self.known)
                if close:
                    hint = f'did you mean "{close}"?'
                else:
                    hint = "remove it (known keys: " + ", ".join(sorted(self.known)) + ")"
            self.problems.add(self.key(name), f"unknown key; {hint}")


def _closest(name: str, known: set[str]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _resolve(base: Path | None, value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return path


def _check_url(value: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        raise ValueError(value)
    return value


def _read_media_location(
    st: _Table, problems: _Problems
) -> tuple[str | None, str | None, str | None]:
    """``[storage] media_url``, ``public_media_url`` and ``s3_endpoint``: media
    in an S3-compatible store, or (none of them) in ``media_dir``."""
    media_url = st.convert(
        "media_url",
        lambda x: (parse_s3_url(x), x)[1],
        None,
        'is not an s3:// URL; use e.g. "s3://my-bucket/media", or delete it to keep media '
        "in [storage] media_dir",
    )
    public = st.convert(
        "public_media_url",
        _check_url,
        None,
        "is not an http(s) URL; use the address at which the bucket's objects are read, e.g. "
        '"https://my-bucket.s3.eu-central-1.amazonaws.com/media" or a CDN\'s',
    )
    endpoint = st.convert(
        "s3_endpoint", _check_url, None, 'is not an http(s) URL; use e.g. "https://minio:9000"'
    )
    if media_url and st.raw("public_media_url") is None:
        problems.add(
            st.key("media_url"),
            "media in S3 need [storage] public_media_url: the HTTPS address at which Viber "
            "reads the objects (the bucket's public address, or a CDN in front of it), e.g. "
            '"https://my-bucket.s3.eu-central-1.amazonaws.com/media"',
        )
    if media_url and importlib.util.find_spec("boto3") is None:
        problems.add(
            st.key("media_url"),
            "media in S3 need boto3, which is not installed: pip install 'viber-publisher[s3]'",
        )
    if not media_url:
        for key, value in (("public_media_url", public), ("s3_endpoint", endpoint)):
            if value:
                problems.warnings.append(
                    f"storage.{key} is used only with media in S3 ([storage] media_url = "
                    '"s3://..."); media are in [storage] media_dir, so it is ignored'
                )
    elif public and not public.startswith("https://"):
        problems.warnings.append(
            f"storage.public_media_url: {public} is not HTTPS; Viber fetches media only over "
            "HTTPS with a valid certificate"
        )
    return media_url, public.rstrip("/") if public else None, endpoint


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(value) from exc
    return value


def _read_policy(table: _Table, base: Policy | None) -> Policy:
    """The delivery keys; shared by ``[delivery]`` and each source."""
    defaults = base or Policy()
    window = defaults.window
    raw_window = table.raw("window")
    if raw_window is not None:
        wt = table.table("window")
        days = wt.strings("days") or DAYS
        bad = [d for d in days if d.lower()[:3] not in DAYS]
        if bad:
            table.problems.add(
                wt.key("days"), f'{_show(bad[0])} is not a day; use e.g. ["mon", "tue"]'
            )
        days = tuple(dict.fromkeys(d.lower()[:3] for d in days if d.lower()[:3] in DAYS))
        clock_hint = 'is not a time of day; use "HH:MM", e.g. "08:00"'
        start = wt.convert("start", parse_clock, time(0, 0), clock_hint)
        end = wt.convert("end", parse_clock, time(23, 59, 59, 999999), clock_hint)
        if start == end:
            table.problems.add(wt.key("end"), "equals start; the window would be empty")
        wt.finish()
        window = Window(days=days, start=start, end=end)
    min_interval = table.duration("min_interval", defaults.min_interval)
    return Policy(
        max_per_hour=table.integer("max_per_hour", defaults.max_per_hour, minimum=1),
        max_per_day=table.integer("max_per_day", defaults.max_per_day, minimum=1),
        min_interval=min_interval,
        window=window,
        timezone=table.convert(
            "timezone",
            _check_timezone,
            defaults.timezone,
            'is not a known IANA timezone; use e.g. "Europe/Berlin" or "UTC"',
        ),
        max_age=table.duration("max_age", defaults.max_age),
    )


_SOURCE_TYPES = ("rss", "folder")


def _read_words(t: _Table) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    """``template``, ``include`` and ``exclude``: a source's, or one of its routes'."""
    problems = t.problems
    template = t.string("template")
    if template is not None:
        # Imported here: the renderer loads BeautifulSoup, which --help must not.
        from publisher.core.render.post import check_template

        problem = check_template(template)
        if problem is not None:
            problems.add(t.key("template"), problem)
            template = None
    include = t.strings("include")
    exclude = t.strings("exclude")
    for key, patterns in (("include", include), ("exclude", exclude)):
        for pattern in patterns:
            if pattern.startswith("re:"):
                try:
                    re.compile(pattern[3:])
                except re.error as exc:
                    problems.add(
                        t.key(key), f"{_show(pattern)} is not a valid regular expression ({exc})"
                    )
    return template, include, exclude


def _read_routes(t: _Table, channels: tuple[str, ...], problems: _Problems) -> tuple[Route, ...]:
    """``routes = [{ channel = "sport", template = "…" }, …]``: per-channel words."""
    raw = t.raw("routes")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.add(t.key("routes"), 'use a list of tables, e.g. [{ channel = "sport", ... }]')
        return ()
    routes: list[Route] = []
    for index, data in enumerate(raw, start=1):
        where = f"{t.key('routes')}[{index}]"
        if not isinstance(data, dict):
            problems.add(where, 'must be a table, e.g. { channel = "sport", template = "…" }')
            continue
        r = _Table(data, where, problems)
        channel = r.string("channel")
        if channel is None or channel not in channels:
            shown = ", ".join(f'"{c}"' for c in channels)
            problems.add(
                r.key("channel"),
                f"must name one of this source's channels ({shown})",
            )
        template, include, exclude = _read_words(r)
        images = r.get("images", bool, None, "use true or false")
        r.finish()
        routes.append(
            Route(
                channel=channel or "",
                template=template,
                include=include if r.raw("include") is not None else None,
                exclude=exclude if r.raw("exclude") is not None else None,
                images=images,
            )
        )
    return tuple(routes)


ENRICH = ("image", "text")
#: ``pictures`` at most (Viber has no albums: each picture is a post).
MAX_PICTURES = 10


def _read_enrich(t: _Table) -> tuple[str, ...]:
    """``enrich = ["image", "text"]``: what to take from the article page."""
    value = t.raw("enrich")
    if value is None:
        return ()
    hint = 'use a list of "image" and "text", e.g. enrich = ["image"]'
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        t.problems.add(t.key("enrich"), f"{_show(value)} is not a list of words; {hint}")
        return ()
    wrong = [v for v in value if v not in ENRICH]
    if wrong:
        t.problems.add(t.key("enrich"), f"{_show(wrong[0])} is not something to enrich; {hint}")
        return ()
    return tuple(dict.fromkeys(value))


def _read_pictures(t: _Table) -> int:
    """``pictures = N``: picture posts per item, 1 to :data:`MAX_PICTURES`."""
    value: int = t.integer("pictures", 1, minimum=1)
    if value > MAX_PICTURES:
        t.problems.add(
            t.key("pictures"),
            f"{value} is too many; use at most {MAX_PICTURES} (each picture is a post)",
        )
        return 1
    return value


def _read_source(
    data: Any,
    index: int,
    base: Path | None,
    problems: _Problems,
    channels: Mapping[str, str],
) -> SourceConfig | None:
    """One ``[[sources]]`` table; ``channels`` maps each channel's name to its timezone."""
    path = f"sources[{index}]"
    if not isinstance(data, dict):
        problems.add(path, "must be a table; write it as [[sources]]")
        return None
    t = _Table(data, path, problems)
    name = t.string("name", hint='give every source a unique name, e.g. name = "blog"')
    if name is None:
        problems.add(t.key("name"), 'missing; give every source a unique name, e.g. name = "blog"')
    elif not name.strip():
        problems.add(t.key("name"), "is empty; give the source a name")
    kind = t.choice("type", _SOURCE_TYPES, "")
    if t.raw("type") is None:
        problems.add(t.key("type"), 'missing; use type = "rss" (feeds) or type = "folder"')
    url = t.string("url")
    raw_path = t.string("path")
    folder: Path | None = None
    if kind == "rss":
        if url is None:
            problems.add(t.key("url"), "missing; an rss source needs the feed's url")
        elif not re.match(r"^(https?|file):", url) and not Path(url).suffix:
            problems.add(t.key("url"), f"{_show(url)} is not an http(s) URL, file: URL or path")
        if raw_path is not None:
            problems.add(t.key("path"), 'only folder sources take a path; use url for "rss"')
        if url is not None and not re.match(r"^(https?|file):", url):
            url = str(_resolve(base, url))
    elif kind == "folder":
        if raw_path is None:
            problems.add(t.key("path"), "missing; a folder source needs the folder's path")
        else:
            folder = _resolve(base, raw_path)
        if url is not None:
            problems.add(t.key("url"), 'only rss sources take a url; use path for "folder"')
    every = t.duration("every", timedelta(minutes=10))
    if every < timedelta(seconds=1):
        problems.add(t.key("every"), "is shorter than 1s; poll at most once a second")
    template, include, exclude = _read_words(t)
    max_length = t.integer("max_length", None, minimum=_MIN_LENGTH)
    listed = t.strings("channels")
    names = ", ".join(f'"{n}"' for n in channels)
    if not listed:
        if len(channels) == 1:
            listed = tuple(channels)
        else:
            problems.add(
                t.key("channels"),
                f"missing; there are several channels ({names}): say where this source's "
                f'items go, e.g. channels = ["{next(iter(channels))}"]',
            )
    for channel in listed:
        if channel not in channels:
            problems.add(
                t.key("channels"), f'"{channel}" is not a channel; the channels are {names}'
            )
    routes = _read_routes(t, listed, problems)
    timezone = channels.get(listed[0], "UTC") if listed else next(iter(channels.values()), "UTC")
    source = SourceConfig(
        name=name or f"#{index}",
        type=kind or "rss",
        url=url,
        path=folder,
        every=every,
        enabled=t.boolean("enabled", True),
        backfill=t.integer("backfill", 0),
        remember=t.duration("remember", timedelta(days=90)),
        on_update=t.choice("on_update", ("ignore", "repost"), "ignore"),
        include=include,
        exclude=exclude,
        template=template,
        caption_overflow=t.choice("caption_overflow", ("split", "truncate"), "split"),
        images=t.boolean("images", True),
        links=t.choice("links", ("inline", "footnotes", "drop"), "inline"),
        clean_links=t.boolean("clean_links", True),
        format=t.choice("format", ("plain", "viber"), "plain"),
        max_length=max_length,
        max_hashtags=t.integer("max_hashtags", 5, minimum=0),
        text_overflow=t.choice("text_overflow", ("split", "truncate"), "split"),
        enrich=_read_enrich(t),
        pictures=_read_pictures(t),
        settle=t.duration("settle", timedelta(seconds=5)),
        # A source's own limits; its window is read in its (first) channel's
        # timezone unless it names its own.
        policy=_read_policy(t, Policy(timezone=timezone)),
        channels=listed,
        routes=routes,
    )
    t.finish()
    return source


# --------------------------------------------------------------------------
# channels

#: A channel's name is used in URLs, metrics and commands.
_CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_TOKEN_HINTS = {
    "token": "the token is never written in sources.toml; put it in the environment "
    "variable named by token_env (default VIBER_AUTH_TOKEN) or in a file named by token_file",
    "auth_token": "the token is never written in sources.toml; use token_env or token_file",
}


def _read_viber(v: _Table, base: Path | None) -> ViberConfig:
    """The API keys of a channel: ``[viber]``, or a ``[[channels]]`` table."""
    api_url = v.convert(
        "api_url",
        lambda s: s if s == LOCAL_API_URL else _check_url(s),
        DEFAULT_API_URL,
        'is not a URL; use "https://chatapi.viber.com/pa" or "local"',
    )
    token_file = v.string("token_file")
    return ViberConfig(
        token_env=v.string("token_env", "VIBER_AUTH_TOKEN"),
        token_file=_resolve(base, token_file) if token_file else None,
        api_url=api_url,
        sender_id=v.string("sender_id"),
        timeout=v.duration("timeout", timedelta(seconds=15)),
    )


def _read_delivery(d: _Table) -> DeliveryConfig:
    """A channel's delivery policy: ``[delivery]``, or ``[channels.delivery]``."""
    return DeliveryConfig(
        policy=_read_policy(d, DeliveryConfig().policy),
        on_unknown=d.choice("on_unknown", ("hold", "retry"), "hold"),
        max_attempts=d.integer("max_attempts", 5, minimum=1),
        retry_backoff=d.duration("retry_backoff", timedelta(seconds=30)),
        rate_limit_cooldown=d.duration("rate_limit_cooldown", timedelta(minutes=5)),
    )


def _read_channels(top: _Table, base: Path | None, problems: _Problems) -> list[ChannelConfig]:
    """``[[channels]]``, or the old ``[viber]`` + ``[delivery]`` as the channel ``main``."""
    raw = top.raw("channels")
    if raw is None:
        v = top.table("viber")
        viber = _read_viber(v, base)
        v.finish(_TOKEN_HINTS)
        d = top.table("delivery")
        delivery = _read_delivery(d)
        d.finish()
        return [ChannelConfig("main", viber, delivery)]
    for old in ("viber", "delivery"):
        if top.raw(old) is not None:
            problems.add(
                old,
                f"[{old}] and [[channels]] cannot both be used; move its keys into each "
                f"channel ({'[[channels]]' if old == 'viber' else '[channels.delivery]'})",
            )
            top.raw(old)  # known: reported once, above
    if not isinstance(raw, list) or not raw:
        problems.add("channels", 'must be a list of tables; write each as [[channels]] name = "…"')
        return [ChannelConfig()]
    channels: list[ChannelConfig] = []
    places: dict[tuple[str, str], str] = {}
    for index, data in enumerate(raw, start=1):
        where = f"channels[{index}]"
        if not isinstance(data, dict):
            problems.add(where, 'must be a table; write it as [[channels]] name = "…"')
            continue
        table = _Table(data, where, problems)
        name = table.string("name")
        if name is None:
            problems.add(table.key("name"), 'missing; give every channel a name, e.g. "news"')
            name = f"#{index}"
        elif not _CHANNEL_NAME.match(name):
            problems.add(
                table.key("name"),
                f"{_show(name)} is not a usable name; use lowercase letters, digits, - and _ "
                "(it is used in URLs, metrics and commands)",
            )
        elif any(c.name == name for c in channels):
            problems.add(table.key("name"), f"{_show(name)} is the name of another channel")
        viber = _read_viber(table, base)
        d = table.table("delivery")
        delivery = _read_delivery(d)
        d.finish()
        table.finish(_TOKEN_HINTS)
        if viber.api_url != LOCAL_API_URL:
            place = (
                ("file", str(viber.token_file))
                if viber.token_file is not None
                else ("env", viber.token_env)
            )
            if place in places:
                problems.add(
                    table.key("token_file" if place[0] == "file" else "token_env"),
                    f"reads its token from the same place as {places[place]}; two channels "
                    "cannot share a token: give each its own token_env or token_file",
                )
            places.setdefault(place, where)
        channels.append(ChannelConfig(name, viber, delivery))
    return channels or [ChannelConfig()]


def parse_config(data: Mapping[str, Any], path: Path | None = None) -> Config:
    """Turn parsed TOML into a :class:`Config`; raise ConfigError listing every problem."""
    problems = _Problems()
    base = path.parent if path is not None else None
    top = _Table(data, "", problems)

    s = top.table("server")
    listen = s.convert(
        "listen",
        lambda x: (parse_listen(x), x)[1],
        "127.0.0.1:8080",
        'is not an address; use "HOST:PORT", e.g. "0.0.0.0:8080"',
    )
    public_url = s.convert(
        "public_url", _check_url, None, 'is not an http(s) URL; use e.g. "https://bot.example.org"'
    )
    if public_url and not public_url.startswith("https://"):
        problems.warnings.append(
            f"server.public_url: {public_url} is not HTTPS; Viber refuses webhooks and media "
            "that are not served over HTTPS with a valid certificate"
        )
    webhook_path = s.string("webhook_path", "/viber/webhook")
    if not webhook_path.startswith("/"):
        problems.add(s.key("webhook_path"), f'{_show(webhook_path)} must start with "/"')
    server = ServerConfig(
        listen=listen,
        public_url=public_url.rstrip("/") if public_url else None,
        webhook_path=webhook_path,
        max_body=s.convert("max_body", parse_size, 64 * 1024, 'is not a size; use e.g. "64KiB"'),
    )
    s.finish()

    st = top.table("storage")
    database_url, password_env, password_file = _read_database(st, base, problems)
    media_url, public_media_url, s3_endpoint = _read_media_location(st, problems)
    storage = StorageConfig(
        path=_resolve(base, st.string("path", "data/publisher.sqlite3")),
        media_dir=_resolve(base, st.string("media_dir", "data/media")),
        media_retention=st.duration("media_retention", StorageConfig.media_retention),
        history_retention=st.duration("history_retention", timedelta(days=180)),
        url=database_url,
        password_env=password_env,
        password_file=password_file,
        media_url=media_url,
        public_media_url=public_media_url,
        s3_endpoint=s3_endpoint,
    )
    history_key = st.key("history_retention")
    st.finish(_STORAGE_SUGGESTIONS)

    f = top.table("fetch")
    fetch = FetchConfig(
        timeout=f.duration("timeout", timedelta(seconds=20)),
        max_bytes=f.convert(
            "max_bytes", parse_size, 20 * 1000 * 1000, 'is not a size; use e.g. "20MB"'
        ),
        user_agent=f.string("user_agent", FetchConfig.user_agent),
        allow_private=f.boolean("allow_private", False),
        max_per_host=f.integer("max_per_host", 2, minimum=1),
        max_backoff=f.duration("max_backoff", timedelta(hours=6)),
    )
    f.finish()

    m = top.table("media")
    media = MediaConfig(
        max_side=m.integer("max_side", 2560, minimum=400),
        max_pixels=m.integer("max_pixels", MediaConfig.max_pixels, minimum=1_000_000),
        thumbnail=m.choice("thumbnail", ("crop", "fit"), "crop"),
    )
    m.finish()

    channels = _read_channels(top, base, problems)
    zones = {c.name: c.delivery.policy.timezone for c in channels}

    a = top.table("alerts")
    alerts = AlertsConfig(
        webhook_url=a.convert(
            "webhook_url",
            _check_url,
            None,
            'is not an http(s) URL; use e.g. "https://hooks.example.org/x"',
        ),
        min_interval=a.duration("min_interval", timedelta(hours=1)),
        source_failures=a.integer("source_failures", 5, minimum=1),
    )
    a.finish()

    raw_sources = top.raw("sources")
    sources: list[SourceConfig] = []
    if raw_sources is None:
        pass
    elif not isinstance(raw_sources, list):
        problems.add("sources", "must be a list of tables; write each as [[sources]]")
    else:
        seen: dict[str, int] = {}
        for index, raw in enumerate(raw_sources, start=1):
            source = _read_source(raw, index, base, problems, zones)
            if source is None:
                continue
            if source.name in seen:
                problems.add(
                    f"sources[{index}].name",
                    f"{_show(source.name)} is already the name of sources[{seen[source.name]}]; "
                    "source names must be unique",
                )
            else:
                seen[source.name] = index
            sources.append(source)

    top.finish(
        {
            "source": "write sources as [[sources]] (plural)",
        }
    )
    for channel in channels:
        _check_history_retention(storage, channel.delivery.policy, sources, history_key, problems)
    if problems.lines:
        raise ConfigError(problems.lines)
    return Config(
        channels=tuple(channels),
        legacy_channel=top.raw("channels") is None,
        server=server,
        storage=storage,
        fetch=fetch,
        media=media,
        alerts=alerts,
        sources=tuple(sources),
        path=path,
        warnings=tuple(problems.warnings),
    )


def _check_history_retention(
    storage: StorageConfig,
    channel: Policy,
    sources: list[SourceConfig],
    key: str,
    problems: _Problems,
) -> None:
    """Pruning must leave the posts the posting rules look back at."""
    look_back = history_horizon(channel, {source.name: source.policy for source in sources})
    days = -(-look_back // timedelta(days=1))  # rounded up
    if storage.history_retention < look_back:
        problems.add(
            key,
            f'"{format_duration(storage.history_retention)}" is too short: the posting rules '
            "(max_per_day, min_interval) look back further over what was posted; use at "
            f'least "{days}d"',
        )


#: What the storage keys that must not exist mean.
_STORAGE_SUGGESTIONS = {
    "password": "the database password is never written in sources.toml; put it in the "
    "environment variable named by password_env (default PGPASSWORD) or in a file named "
    "by password_file",
}
_DATABASE_SCHEMES = ("postgresql", "postgres")


def _read_database(
    st: _Table, base: Path | None, problems: _Problems
) -> tuple[str | None, str, Path | None]:
    """``[storage] url`` (the state in PostgreSQL instead of ``path``) and where
    its password is read: ``password_file``, else ``password_env``. A password
    written in the URL is refused, and never repeated in the message."""
    key = st.key("url")
    url = st.string("url", None, 'use e.g. "postgresql://publisher@db.example.org:5432/publisher"')
    password_env = st.string("password_env", "PGPASSWORD")
    password_file = st.string("password_file")
    if url is not None:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        if parts.scheme not in _DATABASE_SCHEMES:
            problems.add(
                key,
                f'"{redact_urls(url)}" is not a PostgreSQL URL; use e.g. '
                '"postgresql://publisher@db.example.org:5432/publisher", or delete it to keep '
                "the state in [storage] path (SQLite)",
            )
            url = None
        elif parts.password is not None or "password" in query:
            problems.add(
                key,
                "has a password in it; take it out of the URL (sources.toml is no place for "
                f"secrets) and put it in the environment variable {password_env} "
                "(password_env) or in a file named by password_file",
            )
            url = None
    elif password_file is not None or st.data.get("password_env") is not None:
        problems.warnings.append(
            f"{st.key('password_env')} / password_file: used only with [storage] url (PostgreSQL)"
        )
    return url, password_env, _resolve(base, password_file) if password_file else None


def resolve_database_password(
    storage: StorageConfig, env: Mapping[str, str] | None = None
) -> str | None:
    """The database password from ``password_file``, else the variable named by
    ``password_env``; None when neither has one (libpq then tries ~/.pgpass).
    ConfigError when the file cannot be read; the message never shows the password."""
    env = os.environ if env is None else env
    if storage.password_file is not None:
        try:
            password = storage.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"storage.password_file: {storage.password_file} cannot be read "
                f"({exc.strerror}); put the database password in that file"
            ) from exc
        if not password:
            raise ConfigError(
                f"storage.password_file: {storage.password_file} is empty; put the database "
                "password in it"
            )
        return password
    return env.get(storage.password_env) or None


def config_path(given: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Path:
    """``--config``, else ``$PUBLISHER_CONFIG``, else ``./sources.toml``."""
    env = os.environ if env is None else env
    if given:
        return Path(given)
    return Path(env.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and check a ``sources.toml``; raise ConfigError with every problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; pass --config PATH or set {CONFIG_ENV}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: is not UTF-8 text ({exc.reason})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: is not valid TOML: {exc}") from exc
    return parse_config(data, path.resolve())


#: A token file larger than this is not a token file.
_MAX_TOKEN_FILE = 4096
#: What a Viber token is made of (letters, digits, ``-``; printable ASCII at most).
_TOKEN_CHARS = re.compile(r"^[\x21-\x7e]+$")


def resolve_token(viber: ViberConfig, env: Mapping[str, str] | None = None) -> str:
    """Read the auth token from where the config says; ConfigError if absent
    or not one token (two lines, inner spaces, other characters).

    The message says where the token was looked for and what is wrong with
    it, never the token: a BOM, surrounding spaces and line ends (CRLF) are
    removed, anything else is refused before the token reaches a request.
    """
    env = os.environ if env is None else env
    if viber.token_file is not None:
        where = f"viber.token_file: {viber.token_file}"
        try:
            with viber.token_file.open("rb") as handle:
                raw = handle.read(_MAX_TOKEN_FILE + 1)
        except OSError as exc:
            raise ConfigError(
                f"{where} cannot be read ({exc.strerror}); "
                "put the channel's auth token in that file"
            ) from exc
        if len(raw) > _MAX_TOKEN_FILE:
            raise ConfigError(
                f"{where} is larger than {_MAX_TOKEN_FILE:,} bytes, too large for a token; "
                "put only the channel's auth token in it"
            )
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ConfigError(
                f"{where} is not UTF-8 text; put only the channel's auth token in it"
            ) from None
        token = text.strip()
        if not token:
            raise ConfigError(f"{where} is empty; put the channel's auth token in it")
        _check_token(token, where)
        return token
    token = env.get(viber.token_env, "").strip()
    if not token:
        raise ConfigError(
            f"viber: no auth token; set the environment variable {viber.token_env} "
            "(viber.token_env) to the channel's token (Viber app: channel → Settings → "
            "Developer Tools), or name a file with viber.token_file"
        )
    _check_token(token, f"viber: the environment variable {viber.token_env}")
    return token


def _check_token(token: str, where: str) -> None:
    """ConfigError (without the token) unless ``token`` can be one token."""
    if _TOKEN_CHARS.match(token):
        return
    if "\n" in token or "\r" in token:
        what = "holds more than one line"
    elif any(c.isspace() for c in token):
        what = "holds spaces inside the token"
    else:
        what = "holds characters a token does not have (only letters, digits and signs)"
    raise ConfigError(f"{where} {what}; put only the channel's auth token in it, on one line")
