"""Fetching: bytes from HTTP(S) or a local file. Fetching is not parsing.

One :class:`Fetcher` holds one pool of kept connections
(:mod:`publisher.adapters.httpconn`, on the standard library's
``http.client``) shared by every source and thread. Each request goes to
that pool directly: httpx's client layers, and httpcore's pool under them,
cost more CPU than the request itself on an unchanged (304) poll, and the
fetcher does its own redirects, timeouts and decoding. Through a proxy (the
environment's), or a test transport (``httpx.MockTransport``), requests go
through an ``httpx.Client`` instead; both ways give the same answers and the
same errors, and neither keeps cookies. It

- sends a clear User-Agent, accepts gzip and deflate, and gives a whole
  fetch (connect, headers, body, every redirect hop) ``[fetch] timeout``:
  httpx bounds each read only, so a server dripping its headers a byte a
  second would hold a poll for ever; a watchdog thread shuts the socket of
  any request past its deadline (see :class:`_Watchdog`); the host name is
  looked up within the same deadline (see :meth:`Fetcher._resolve_in_time`),
  so a slow DNS server cannot hold a poll either;
- follows redirects itself, at most :data:`MAX_REDIRECTS`, and checks
  **every hop** against the private-address rule before connecting;
- allows at most ``[fetch] max_per_host`` requests to one host at a time;
- stops reading a body at ``[fetch] max_bytes`` of decoded bytes, every
  layer of ``Content-Encoding`` undone here a bounded piece at a time (httpx
  would inflate a whole chunk at once, and a gzip inside a gzip grows 3.5 KB
  into 2 GB), so a compression bomb is stopped before it takes memory;
- does conditional GETs for feeds (ETag / Last-Modified) and notices a
  byte-identical body by its hash.

The private-address rule: unless ``[fetch] allow_private`` is true, a URL
whose host is, or resolves (every address ``getaddrinfo`` returns) to, a
loopback, private, link-local or otherwise non-public address is refused.
For feeds the host the operator configured is trusted (they wrote it into
``sources.toml``), but a redirect to any *other* such host is refused.
The connection goes to the addresses the rule looked at (see
:meth:`publisher.adapters.httpconn.Connection.open`): a name is not looked up a second time,
so a DNS server that answers otherwise the second time (DNS rebinding) gets
no second time. Through a proxy from the environment, the proxy looks the
name up.

Feeds may also be local files: a path (``feeds/news.xml``) or a ``file:``
URL. Media must be http(s).

Errors are translated at this boundary: feed problems raise
:class:`FetchError` (a :class:`~publisher.core.errors.SourceError`), media
problems :class:`~publisher.core.errors.MediaError`, each with a message that
names the URL and says what to do.
"""

from __future__ import annotations

import base64
import email.utils
import functools
import hashlib
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from types import TracebackType
from typing import Protocol
from urllib.parse import SplitResult, urljoin, urlsplit
from urllib.request import getproxies, url2pathname

import httpx

from publisher.adapters.httpconn import Connections, Origin, as_httpx_error
from publisher.adapters.tls import tls_context
from publisher.core.config import FetchConfig, format_duration, is_private_address
from publisher.core.errors import FetchError, MediaError, PublisherError
from publisher.core.records import FeedResponse, MediaResponse, PageResponse
from publisher.core.redact import redact_urls

MAX_REDIRECTS = 10
#: Connections open at once, and kept idle for reuse (at most ``[fetch]
#: max_per_host`` of them to one host are ever in use at a time).
MAX_CONNECTIONS = 64
#: An idle connection is closed after this long (a feed polled every few
#: minutes finds it closed; the sources of one host polled together reuse it).
KEEPALIVE_SECONDS = 15.0
#: A host name's addresses are looked up again after this long: the polls of
#: one host within it (every source of a blog farm, a feed and its media) pay
#: one look-up, not one each (and one thread each, see
#: :meth:`Fetcher._resolve_in_time`). The private-address rule is applied to
#: the remembered addresses exactly as to fresh ones; only successful
#: look-ups are remembered.
RESOLVE_TTL_SECONDS = 60.0
FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/rdf+xml;q=0.9, application/xml;q=0.9, text/xml;q=0.9, "
    "application/json;q=0.8, */*;q=0.5"
)
#: Content codings this fetcher undoes itself (see :class:`_Decoder`).
ACCEPT_ENCODING = "gzip, deflate"
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})

#: ``resolve(host, port)`` → the IP addresses the host name stands for.
Resolver = Callable[[str, int], list[str]]
#: What ``Fetcher._exchange`` gives: the response to one request, closed on exit.
_Exchange = AbstractContextManager["_Reply"]


@dataclass
class _Answer:
    status: int
    body: bytes
    headers: dict[str, str]
    final_url: str
    permanent: str | None


@dataclass
class _Reply:
    """One response's head, and its body still to read, either way it came."""

    status: int
    #: Names in lower case; a repeated header's values joined by ", " (as httpx does).
    headers: dict[str, str]
    #: The URL as sent (normalised), which a relative ``Location`` is resolved against.
    url: str
    #: The body as it came over the wire, a chunk at a time.
    raws: Iterable[bytes]
    #: Its ``Content-Encoding`` (to undo), or "" when already undone.
    coding: str


@dataclass(frozen=True)
class _Target:
    """A URL parsed the way httpx parses it (IDNA, percent-encoding, dot
    segments), in the pieces a request takes, and the headers it implies."""

    origin: Origin
    #: The request target: the path and query, percent-encoded.
    path: str
    text: str
    host_header: bytes
    authorization: bytes | None


@functools.lru_cache(maxsize=4096)
def _target(url: str) -> _Target:
    """``url`` parsed by ``httpx.URL`` once (its parse costs as much as the rest
    of a 304); raises httpx.InvalidURL. The feeds polled again and again hit
    the cache."""
    parsed = httpx.URL(url)
    authorization = None
    if parsed.username or parsed.password:  # as httpx: user:password@ is Basic auth
        userpass = f"{parsed.username}:{parsed.password}".encode()
        authorization = b"Basic " + base64.b64encode(userpass)
    scheme = parsed.scheme
    port = parsed.port or (443 if scheme == "https" else 80)
    return _Target(
        origin=(scheme, parsed.raw_host.decode("ascii"), port),
        path=parsed.raw_path.decode("ascii"),
        text=str(parsed),
        host_header=parsed.netloc,
        authorization=authorization,
    )


def _header_dict(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Response headers as httpx's ``headers.items()`` gives them: one text
    encoding for all (ASCII, else UTF-8, else Latin-1), names in lower case,
    a repeated header's values joined by ", "."""
    pairs = list(raw)
    for encoding in ("ascii", "utf-8", "iso-8859-1"):
        try:
            decoded = [(k.decode(encoding).lower(), v.decode(encoding)) for k, v in pairs]
        except UnicodeDecodeError:
            continue
        break
    headers: dict[str, str] = {}
    for key, value in decoded:
        known = headers.get(key)
        headers[key] = value if known is None else f"{known}, {value}"
    return headers


def _default_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _non_public(address: str) -> bool:
    """True for a resolved address that is not public (or not an address at all)."""
    try:
        ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    return is_private_address(address)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def _split(url: str) -> SplitResult:
    """``urlsplit``, remembered for as many URLs as a service polls (the
    standard library's own cache holds 128: fewer than the feeds of one turn)."""
    return urlsplit(url)


def is_local_source(url: str) -> bool:
    """True when a feed ``url`` names a local file (a path or ``file:`` URL)."""
    scheme = _split(url).scheme.lower()
    return scheme == "file" or scheme == "" or (len(scheme) == 1 and url[1:2] == ":")


class Fetcher:
    """Fetches feeds and media for every source; safe to share between threads.

    ``transport`` and ``resolve`` are test hooks: an ``httpx`` transport
    (e.g. ``httpx.MockTransport``) and a replacement for ``getaddrinfo``;
    ``resolve_ttl``: seconds a look-up's answer is used again (see
    :data:`RESOLVE_TTL_SECONDS`).
    """

    def __init__(
        self,
        config: FetchConfig | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        resolve: Resolver | None = None,
        now: Callable[[], datetime] | None = None,
        resolve_ttl: float = RESOLVE_TTL_SECONDS,
    ) -> None:
        self.config = config or FetchConfig()
        seconds = self.config.timeout.total_seconds()
        # Connections are kept and reused per host; each request tells the
        # watchdog the socket it uses. Through a proxy (the environment's)
        # httpx builds the connections itself, so there every request opens
        # its own.
        reuse = transport is None and not getproxies()
        self._connections: Connections | None = None
        self._client: httpx.Client | None = None
        self._exchange: Callable[[str, list[tuple[bytes, bytes]], float, _Watch], _Exchange]
        if reuse:
            self._connections = Connections(tls_context, MAX_CONNECTIONS, KEEPALIVE_SECONDS)
            #: What every request sends besides its own headers (as httpx.Client would).
            self._common_headers = [
                (b"Accept-Encoding", ACCEPT_ENCODING.encode("ascii")),
                (b"Connection", b"keep-alive"),
                (b"User-Agent", self.config.user_agent.encode()),
            ]
            self._exchange = self._via_connections
        else:
            self._client = httpx.Client(
                timeout=httpx.Timeout(seconds),
                follow_redirects=False,
                headers={"User-Agent": self.config.user_agent, "Accept-Encoding": ACCEPT_ENCODING},
                # no cookies kept, as on the direct path: each request stands alone
                cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
                limits=httpx.Limits(
                    max_connections=MAX_CONNECTIONS,
                    max_keepalive_connections=0,
                    keepalive_expiry=KEEPALIVE_SECONDS,
                ),
                transport=transport,
            )
            self._exchange = self._via_client
        self._watchdog = _Watchdog()
        self._resolve = resolve or _default_resolve
        # Names are looked up ahead of httpx only where httpx will connect to
        # them itself: not through a test transport, nor through a proxy.
        self._look_up_ahead = reuse
        self._now = now or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._resolve_ttl = resolve_ttl
        #: (host, port) → (monotonic time it expires, its addresses).
        self._resolved: dict[tuple[str, int], tuple[float, list[str]]] = {}
        self._resolved_pruned = time.monotonic()

    # -- lifecycle

    def close(self) -> None:
        if self._connections is not None:
            self._connections.close()
        if self._client is not None:
            self._client.close()
        self._watchdog.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- public

    def fetch_feed(
        self,
        url: str,
        etag: str | None = None,
        last_modified: str | None = None,
        body_hash: str | None = None,
    ) -> FeedResponse:
        """GET a feed (or read a local file) conditionally; raise FetchError.

        Pass the ``etag``, ``last_modified`` and ``body_hash`` of the last
        response; a 304 gives ``not_modified``, the same bytes ``unchanged``.
        """
        if is_local_source(url):
            return self._read_local(url, body_hash)
        headers = {"Accept": FEED_ACCEPT}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        trusted = (_split(url).hostname or "").lower()

        def fail(message: str, status: int | None = None, **kw: timedelta | None) -> PublisherError:
            return FetchError(
                redact_urls(message), url=url, status=status, retry_after=kw.get("retry_after")
            )

        answer = self._get(url, headers, fail, trusted_host=trusted)
        retry_after = _retry_after(answer.headers.get("retry-after"), self._now())
        max_age = _max_age(answer.headers.get("cache-control"))
        if answer.status == 304:
            return FeedResponse(
                url=url,
                final_url=answer.final_url,
                status=304,
                body=b"",
                headers=answer.headers,
                permanent_redirect=answer.permanent,
                not_modified=True,
                unchanged=True,
                etag=answer.headers.get("etag") or etag,
                last_modified=answer.headers.get("last-modified") or last_modified,
                body_hash=body_hash,
                retry_after=retry_after,
                max_age=max_age,
            )
        digest = hashlib.sha256(answer.body).hexdigest()
        return FeedResponse(
            url=url,
            final_url=answer.final_url,
            status=answer.status,
            body=answer.body,
            headers=answer.headers,
            permanent_redirect=answer.permanent,
            unchanged=body_hash is not None and body_hash == digest,
            etag=answer.headers.get("etag"),
            last_modified=answer.headers.get("last-modified"),
            body_hash=digest,
            retry_after=retry_after,
            max_age=max_age,
        )

    def fetch_media(self, url: str) -> MediaResponse:
        """GET a picture, video or file named in a feed; raise MediaError.

        Only http(s); private addresses refused unless ``allow_private``.
        """

        def fail(message: str, status: int | None = None, **kw: timedelta | None) -> PublisherError:
            return MediaError(redact_urls(message))

        answer = self._get(url, {"Accept": "*/*"}, fail, trusted_host=None)
        if answer.status != 200:
            raise MediaError(
                f"{redact_urls(url)}: unexpected HTTP {answer.status}; the media cannot be used"
            )
        return MediaResponse(
            data=answer.body,
            content_type_header=answer.headers.get("content-type"),
            final_url=answer.final_url,
            sniffed_type=sniff_type(answer.body),
        )

    def fetch_page(self, url: str) -> PageResponse:
        """GET an item's article page (``enrich``) as decoded HTML; raise MediaError.

        The same rules as media: http(s) only, private addresses refused unless
        ``allow_private``, every hop checked, ``max_bytes`` and the timeouts.
        Anything but an HTML page is refused.
        """

        def fail(message: str, status: int | None = None, **kw: timedelta | None) -> PublisherError:
            return MediaError(redact_urls(message))

        answer = self._get(url, {"Accept": PAGE_ACCEPT}, fail, trusted_host=None)
        if answer.status != 200:
            raise MediaError(
                f"{redact_urls(url)}: unexpected HTTP {answer.status}; the page cannot be read"
            )
        declared = answer.headers.get("content-type", "")
        mime = declared.split(";", 1)[0].strip().lower()
        sniffed_html = mime in ("", "text/plain") and _looks_html(answer.body)
        if mime not in _HTML_TYPES and not sniffed_html:
            shown = mime or sniff_type(answer.body) or "unknown data"
            raise MediaError(
                f"{redact_urls(url)}: not an HTML page ({shown}); there is no article to read"
            )
        return PageResponse(html=_decode_html(answer.body, declared), final_url=answer.final_url)

    # -- internals

    def _get(
        self,
        url: str,
        headers: dict[str, str],
        fail: _Fail,
        trusted_host: str | None,
    ) -> _Answer:
        deadline = time.monotonic() + self.config.timeout.total_seconds()
        # (UTF-8: an ETag sent back as it came, even one that is not ASCII)
        sent = [(name.encode("ascii"), value.encode()) for name, value in headers.items()]
        current = url
        permanent: str | None = None
        all_permanent = True
        for _hop in range(MAX_REDIRECTS + 1):
            host, addresses = self._check_target(current, fail, trusted_host, deadline)
            watch = self._watchdog.watch(deadline, addresses)
            try:
                with (
                    watch,
                    self._host_slot(host, deadline, current, fail),
                    self._exchange(current, sent, deadline, watch) as reply,
                ):
                    status = reply.status
                    location = reply.headers.get("location")
                    if status in _REDIRECTS and location:
                        target = urljoin(reply.url, location.strip())
                        if status in _PERMANENT and all_permanent:
                            permanent = target
                        else:
                            all_permanent = False
                        current = target
                        continue
                    if status == 304:
                        # It has no body; reading its end keeps the connection for reuse.
                        for _ in reply.raws:
                            pass
                        return _Answer(304, b"", reply.headers, current, permanent)
                    if status >= 400 or status < 200:
                        raise self._status_error(current, status, reply.headers, fail)
                    body = self._read_capped(reply, current, fail, deadline)
                    return _Answer(status, body, reply.headers, current, permanent)
            except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
                raise self._request_error(exc, watch, deadline, current, fail) from exc
            except OSError as exc:  # the watchdog shut the socket under a TLS read
                if not watch.expired:
                    raise
                raise self._too_slow(current, fail) from exc
        raise fail(
            f"{url}: more than {MAX_REDIRECTS} redirects (last {current}); "
            "the server is redirecting in a loop; check the url"
        )

    def _request_error(
        self, exc: Exception, watch: _Watch, deadline: float, url: str, fail: _Fail
    ) -> PublisherError:
        if watch.expired or time.monotonic() >= deadline:
            return self._too_slow(url, fail)
        return _translate(exc, url, self.config.timeout, fail)

    @contextmanager
    def _via_connections(
        self, url: str, headers: list[tuple[bytes, bytes]], deadline: float, watch: _Watch
    ) -> Iterator[_Reply]:
        """One request on a kept connection (``reuse``), opened to the
        addresses the private-address rule checked; errors raised as the
        httpx errors they stand for (``_get`` turns them into one line). A
        kept connection the server had already closed is replaced once."""
        assert self._connections is not None
        target = _target(url)
        sent = [(b"Host", target.host_header), *headers, *self._common_headers]
        if target.authorization is not None:
            sent.append((b"Authorization", target.authorization))
        for attempt in (1, 2):
            conn = self._connections.take(target.origin)
            kept = conn.sock is not None
            phase = "connect"
            try:
                seconds = max(0.001, deadline - time.monotonic())
                if kept:
                    watch.claim_socket(conn.sock)
                    conn.sock.settimeout(seconds)
                else:
                    conn.open(watch.addresses, seconds, watch.claim_socket)
                phase = "write"
                conn.putrequest("GET", target.path, skip_host=True, skip_accept_encoding=True)
                for name, value in sent:
                    conn.putheader(name, value)
                conn.endheaders()
                phase = "read"
                response = conn.getresponse()
            # ValueError: a header value http.client refuses to send
            except (OSError, http.client.HTTPException, ValueError) as exc:
                conn.close()
                gone = isinstance(
                    exc, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError
                )
                if kept and gone and attempt == 1 and not watch.expired:
                    continue  # it was closed as it was taken: once more, on a new one
                raise as_httpx_error(exc, phase) from exc
            break
        try:
            raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.getheaders()]
            answer_headers = _header_dict(raw)
            yield _Reply(
                status=response.status,
                headers=answer_headers,
                url=target.text,
                raws=_body_chunks(response),
                coding=answer_headers.get("content-encoding", ""),
            )
        finally:
            # Once back in the pool, its connection is no longer this request's.
            watch.release_sockets()
            if response.isclosed() and not response.will_close:
                self._connections.give(conn)
            else:  # not read to its end (an error, a redirect) or closing
                conn.close()

    @contextmanager
    def _via_client(
        self, url: str, headers: list[tuple[bytes, bytes]], deadline: float, watch: _Watch
    ) -> Iterator[_Reply]:
        """One request through ``httpx.Client`` (a test transport, a proxy)."""
        assert self._client is not None
        with self._client.stream(
            "GET",
            url,
            headers=headers,
            timeout=httpx.Timeout(max(0.001, deadline - time.monotonic())),
            extensions={"trace": watch.trace},
        ) as response:
            answer_headers = {k.lower(): v for k, v in response.headers.items()}
            raws: Iterable[bytes]
            if response.is_stream_consumed:
                # made whole in memory (a test transport), and decoded by httpx already
                raws, coding = [response.content], ""
            else:
                raws, coding = response.iter_raw(), answer_headers.get("content-encoding", "")
            yield _Reply(response.status_code, answer_headers, str(response.url), raws, coding)

    def _check_target(
        self, url: str, fail: _Fail, trusted_host: str | None, deadline: float
    ) -> tuple[str, list[str] | None]:
        """Check scheme and the private-address rule; return ``host:port`` and
        the addresses the request connects to: those looked up here, so the
        connection goes where the rule looked (None: an address in the URL,
        or a name left to the connection to look up).

        A host name is looked up before ``deadline`` or the fetch times out;
        where the rule does not apply (a trusted host, ``allow_private``) it is
        still looked up, within the deadline, unless a proxy or a test
        transport connects instead: a DNS server that does not answer then
        fails the fetch in time, not when the system gives up. Only that
        look-up's time-out counts there; its other failures are left to httpx.
        """
        try:
            parts = _split(url)
            port = parts.port
        except ValueError as exc:
            raise fail(f"{url}: not a valid URL ({exc}); check it") from exc
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise fail(f"{url}: only http and https URLs can be fetched")
        host = (parts.hostname or "").lower()
        if not host:
            raise fail(f"{url}: the URL has no host name; check it")
        port = port or (443 if scheme == "https" else 80)
        key = f"{host}:{port}"
        if self.config.allow_private or (trusted_host and host == trusted_host):
            if self._look_up_ahead and not _is_ip_literal(host):
                try:
                    return key, self._resolve_in_time(host, port, deadline)
                except TimeoutError:
                    raise self._too_slow(url, fail) from None
                except (OSError, UnicodeError):
                    pass  # httpx looks it up again and says what is wrong
            return key, None
        refusal = "such URLs are refused unless [fetch] allow_private = true in sources.toml"
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            pass
        else:
            if _non_public(host.strip("[]")):
                raise fail(f"{url}: {host} is a private or local address; {refusal}")
            return key, None
        try:
            addresses = self._resolve_in_time(host, port, deadline)
        except TimeoutError:
            raise self._too_slow(url, fail) from None
        except (OSError, UnicodeError) as exc:
            raise fail(
                f"{url}: the host name {host} could not be resolved (DNS); check the url"
            ) from exc
        if not addresses:
            raise fail(f"{url}: the host name {host} has no address; check the url")
        for address in addresses:
            if _non_public(address):
                raise fail(
                    f"{url}: {host} resolves to the private or local address {address}; {refusal}"
                )
        return key, addresses if self._look_up_ahead else None

    def _resolve_in_time(self, host: str, port: int, deadline: float) -> list[str]:
        """``resolve(host, port)``, waited for until ``deadline`` at most.

        ``getaddrinfo`` takes no timeout, so the look-up runs in a thread of
        its own and TimeoutError is raised when it is not back in time; the
        thread is left to end when the system's resolver gives up (one per
        late look-up, for seconds: nothing to pool). A successful answer is
        used again for :data:`RESOLVE_TTL_SECONDS` (no look-up, no thread).
        """
        key = (host, port)
        now = time.monotonic()
        with self._lock:
            known = self._resolved.get(key)
        if known is not None and known[0] > now:
            return list(known[1])
        addresses = self._look_up(host, port, deadline)
        if not addresses:
            return addresses
        now = time.monotonic()
        with self._lock:
            if now - self._resolved_pruned >= self._resolve_ttl:
                # the answers of hosts no longer fetched go (memory stays
                # bounded by the hosts of one TTL)
                self._resolved = {k: v for k, v in self._resolved.items() if v[0] > now}
                self._resolved_pruned = now
            self._resolved[key] = (now + self._resolve_ttl, list(addresses))
        return addresses

    def _look_up(self, host: str, port: int, deadline: float) -> list[str]:
        """One look-up in a thread of its own, waited for until ``deadline``."""
        result: Future[list[str]] = Future()

        def look_up() -> None:
            try:
                result.set_result(self._resolve(host, port))
            except BaseException as exc:  # handed to the waiting caller
                result.set_exception(exc)

        threading.Thread(target=look_up, name="fetch-resolve", daemon=True).start()
        return result.result(timeout=max(0.0, deadline - time.monotonic()))

    def _too_slow(self, url: str, fail: _Fail) -> PublisherError:
        return fail(
            f"{url}: timed out after {format_duration(self.config.timeout)} without a "
            "complete answer ([fetch] timeout); the server is too slow or stalling; "
            "it will be retried later; raise [fetch] timeout if it is just slow"
        )

    @contextmanager
    def _host_slot(self, key: str, deadline: float, url: str, fail: _Fail) -> Iterator[None]:
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = threading.BoundedSemaphore(self.config.max_per_host)
                self._slots[key] = slot
        if not slot.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise self._too_slow(url, fail)
        try:
            yield
        finally:
            slot.release()

    def _read_capped(self, reply: _Reply, url: str, fail: _Fail, deadline: float) -> bytes:
        cap = self.config.max_bytes
        too_big = (
            f"{url}: the response is larger than {cap:,} bytes ([fetch] max_bytes); "
            "raise [fetch] max_bytes in sources.toml if this is expected"
        )
        declared = reply.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap and not reply.headers.get("content-encoding"):
            raise fail(too_big)
        try:
            decoder = _Decoder(reply.coding, cap)
        except ValueError as exc:
            raise fail(f"{url}: {exc}; tell the site's owner") from exc
        raws = reply.raws
        chunks: list[bytes] = []
        size = 0
        try:
            for raw in raws:
                if time.monotonic() > deadline:
                    raise self._too_slow(url, fail)
                chunk = decoder.decode(raw)
                size += len(chunk)
                if size > cap:
                    raise fail(too_big)
                chunks.append(chunk)
            chunk = decoder.flush()
            if time.monotonic() > deadline:  # the watchdog ended it: it is not whole
                raise self._too_slow(url, fail)
        except _TooBig:
            raise fail(too_big) from None
        except zlib.error as exc:
            raise fail(
                f"{url}: the server sent a compressed body that cannot be decoded ({exc}); "
                "it will be retried later; tell the site's owner if it lasts"
            ) from exc
        size += len(chunk)
        if size > cap:
            raise fail(too_big)
        chunks.append(chunk)
        return b"".join(chunks)

    def _status_error(
        self, url: str, status: int, headers: Mapping[str, str], fail: _Fail
    ) -> PublisherError:
        reason = _REASONS.get(status, "")
        shown = f"HTTP {status}" + (f" {reason}" if reason else "")
        retry_after = _retry_after(headers.get("retry-after"), self._now())
        if status in (401, 403):
            hint = "the server refuses access; the URL may need a login or block this User-Agent"
        elif status == 404:
            hint = "nothing at this address; check the url"
        elif status == 410:
            hint = "the server says it is gone for good; remove or change the url"
        elif status == 429:
            hint = "polled too often; it will be retried later"
            if retry_after is not None:
                hint += f" (the server asks to wait {format_duration(retry_after)})"
        elif status >= 500:
            hint = "the server has a problem; it will be retried later"
        else:
            hint = "check the url"
        return fail(f"{url}: {shown}; {hint}", status, retry_after=retry_after)

    def _read_local(self, url: str, body_hash: str | None) -> FeedResponse:
        parts = urlsplit(url)
        if parts.scheme.lower() == "file":
            if parts.netloc not in ("", "localhost"):
                raise FetchError(f"{url}: file URLs on other hosts are not supported", url=url)
            path = Path(url2pathname(parts.path))
        else:
            path = Path(url).expanduser()
        cap = self.config.max_bytes
        try:
            if path.is_dir():
                raise FetchError(
                    f'{path}: is a folder, not a feed file; use type = "folder" for folders',
                    url=url,
                )
            size = path.stat().st_size
            if size > cap:
                raise FetchError(
                    f"{path}: the file is larger than {cap:,} bytes ([fetch] max_bytes); "
                    "raise [fetch] max_bytes in sources.toml if this is expected",
                    url=url,
                )
            with path.open("rb") as handle:
                body = handle.read(cap + 1)
        except FileNotFoundError as exc:
            raise FetchError(f"{path}: no such file; check the path", url=url) from exc
        except PermissionError as exc:
            raise FetchError(f"{path}: permission denied; check who may read it", url=url) from exc
        except OSError as exc:
            raise FetchError(f"{path}: cannot be read ({exc.strerror or exc})", url=url) from exc
        if len(body) > cap:
            raise FetchError(f"{path}: the file grew beyond {cap:,} bytes while read", url=url)
        digest = hashlib.sha256(body).hexdigest()
        return FeedResponse(
            url=url,
            final_url=path.resolve().as_uri(),
            status=200,
            body=body,
            headers={},
            unchanged=body_hash is not None and body_hash == digest,
            body_hash=digest,
        )


class _Watch:
    """One request's deadline and the sockets it uses (see :class:`_Watchdog`)."""

    def __init__(
        self, owner: _Watchdog, deadline: float, addresses: list[str] | None = None
    ) -> None:
        self.deadline = deadline
        #: Where a connection it opens goes (see :meth:`Fetcher._check_target`).
        self.addresses = addresses
        self.expired = False
        self._owner = owner
        self._sockets: list[socket.socket] = []
        self._done = False
        self._lock = threading.Lock()

    def trace(self, event: str, info: Mapping[str, object]) -> None:
        """httpcore's ``trace`` extension: note every socket the request opens;
        once its response is closed, its connection may serve another request."""
        if event.endswith((".connect_tcp.complete", ".start_tls.complete")):
            self.claim(info.get("return_value"))
        elif event.endswith(".response_closed.started"):
            self.release_sockets()

    def release_sockets(self) -> None:
        """Its response is being closed: its connection goes back to the pool."""
        with self._lock:
            self._done = True

    def claim(self, stream: object) -> None:
        """Note the socket of httpcore's ``stream`` as this request's."""
        get_extra_info = getattr(stream, "get_extra_info", None)
        sock = get_extra_info("socket") if callable(get_extra_info) else None
        if isinstance(sock, socket.socket):
            self.claim_socket(sock)

    def claim_socket(self, sock: socket.socket) -> None:
        """Note ``sock`` as this request's (shut it if already late)."""
        with self._lock:
            if self._done or any(s is sock for s in self._sockets):
                return
            self._sockets.append(sock)
            late = self.expired
        if late:
            _shut(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            # a connection back in the pool is no longer this request's
            sockets = [] if self._done else list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def __enter__(self) -> _Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self._owner.release(self)
        with self._lock:
            self._done = True
            self._sockets.clear()


def _shut(sock: socket.socket) -> None:
    """Wake whoever is blocked reading ``sock``: its read ends at once.

    The base class's ``shutdown`` is called even on a TLS socket, whose own
    ``shutdown`` would drop its TLS state under the reading thread's feet.
    """
    with suppress(OSError):  # already closed: nothing is blocked on it
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """Ends requests that outlive their deadline.

    httpx's timeouts bound each connect, read and write, never a whole
    request: a server sending one byte a second never trips them. Each
    request registers its deadline here and the sockets it uses: the socket
    of the kept connection it takes or opens (:meth:`_Watch.claim_socket`;
    through ``httpx.Client``, httpcore's ``trace`` extension notes the
    sockets a request opens). One thread shuts
    those sockets when the deadline passes, the blocked read returns, and the
    fetcher reports the timeout. Once a response is closed its connection
    goes back to the pool and is no longer the request's to shut.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._watches: set[_Watch] = set()
        self._thread: threading.Thread | None = None
        self._closed = False
        #: When the thread looks next (it is woken only for an earlier
        #: deadline: requests with the same timeout never wake it).
        self._wake_at = float("inf")

    def watch(self, deadline: float, addresses: list[str] | None = None) -> _Watch:
        watch = _Watch(self, deadline, addresses)
        with self._cond:
            self._watches.add(watch)
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="fetch-watchdog", daemon=True
                )
                self._thread.start()
            if deadline < self._wake_at:
                self._wake_at = deadline
                self._cond.notify()
        return watch

    def release(self, watch: _Watch) -> None:
        with self._cond:
            self._watches.discard(watch)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                due = [w for w in self._watches if w.deadline <= now]
                for watch in due:
                    self._watches.discard(watch)
                    watch.expire()
                soonest = min((w.deadline for w in self._watches), default=None)
                self._wake_at = float("inf") if soonest is None else soonest
                self._cond.wait(None if soonest is None else max(0.0, soonest - now) + 0.01)


class _TooBig(Exception):
    """A layer of the body decoded to more than the cap."""


class _Decoder:
    """Undoes ``Content-Encoding`` (gzip, deflate, in any number of layers).

    Each layer inflates at most ``cap`` + 1 bytes per call
    (``decompressobj.decompress(data, max_length)``), so no chunk, however
    well compressed, grows past the cap in memory: :class:`_TooBig` instead.
    ValueError names a coding that is not supported.
    """

    def __init__(self, header: str, cap: int) -> None:
        self._cap = cap
        self._layers: list[_Layer] = []
        codings = [c.strip().lower() for c in header.split(",") if c.strip()]
        for coding in reversed(codings):  # the last one applied is undone first
            if coding in ("identity", ""):
                continue
            if coding not in ("gzip", "x-gzip", "deflate"):
                raise ValueError(f"the body uses the compression {coding!r}, not supported here")
            self._layers.append(_Layer(coding, cap))

    def decode(self, data: bytes) -> bytes:
        for layer in self._layers:
            data = layer.decode(data)
        return data

    def flush(self) -> bytes:
        data = b""
        for layer in self._layers:
            data = layer.decode(data) + layer.flush()
        return data


class _Layer:
    def __init__(self, coding: str, cap: int) -> None:
        self._cap = cap
        self._made = 0
        self._deflate = coding == "deflate"
        self._first = True
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS if self._deflate else 16 + zlib.MAX_WBITS)

    def decode(self, data: bytes) -> bytes:
        if not data:
            return b""
        try:
            out = self._zlib.decompress(data, self._cap + 1 - self._made)
        except zlib.error:
            if not (self._deflate and self._first):
                raise
            # "deflate" sent as a raw deflate stream, without the zlib header
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._zlib.decompress(data, self._cap + 1 - self._made)
        self._first = False
        self._made += len(out)
        if self._made > self._cap or self._zlib.unconsumed_tail:
            raise _TooBig
        return out

    def flush(self) -> bytes:
        out = self._zlib.flush()
        self._made += len(out)
        if self._made > self._cap:
            raise _TooBig
        return out


class _Fail(Protocol):
    """``fail(message, status=None, retry_after=None)`` → the error to raise."""

    def __call__(
        self, message: str, status: int | None = None, **kw: timedelta | None
    ) -> PublisherError: ...


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    408: "Request Timeout",
    410: "Gone",
    429: "Too Many Requests",
    451: "Unavailable For Legal Reasons",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _translate(exc: Exception, url: str, timeout: timedelta, fail: _Fail) -> PublisherError:
    """An httpx exception as a readable error saying what to do."""
    text = " ".join(str(e) for e in _chain(exc)).lower()
    causes = list(_chain(exc))
    if isinstance(exc, httpx.TimeoutException):
        what = {
            httpx.ConnectTimeout: "connecting",
            httpx.ReadTimeout: "waiting for the answer",
            httpx.WriteTimeout: "sending the request",
            httpx.PoolTimeout: "waiting for a free connection",
        }.get(type(exc), "waiting")
        return fail(
            f"{url}: timed out after {format_duration(timeout)} {what}; the server is slow "
            "or unreachable; raise [fetch] timeout if it is just slow"
        )
    if isinstance(exc, httpx.ConnectError):
        if (
            any(isinstance(c, ssl.SSLError) for c in causes)
            or "certificate" in text
            or ("ssl" in text)
        ):
            return fail(
                f"{url}: TLS (https) error: {exc}; the server's certificate is not trusted "
                "or its TLS setup is broken; check the url or tell the site's owner"
            )
        if any(isinstance(c, socket.gaierror) for c in causes) or any(
            marker in text
            for marker in (
                "name or service not known",
                "nodename nor servname",
                "temporary failure in name resolution",
                "getaddrinfo failed",
                "no address associated",
            )
        ):
            return fail(f"{url}: the host name could not be resolved (DNS); check the url")
        if any(isinstance(c, ConnectionRefusedError) for c in causes) or "refused" in text:
            return fail(f"{url}: connection refused; is the server up and the port right?")
        return fail(f"{url}: could not connect ({exc}); check the url and the network")
    if isinstance(exc, httpx.RemoteProtocolError):
        return fail(
            f"{url}: the server closed the connection or sent a broken answer ({exc}); "
            "it will be retried later"
        )
    if isinstance(exc, httpx.DecodingError):
        return fail(f"{url}: the server sent a body that cannot be decoded ({exc})")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return fail(f"{url}: not a valid http(s) URL ({exc}); check it")
    return fail(f"{url}: {type(exc).__name__}: {exc}")


def _retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After``: seconds or an HTTP date; None when absent, past or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = int(value)
        return timedelta(seconds=seconds) if seconds > 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - now
    return delta if delta > timedelta(0) else None


_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


def _max_age(value: str | None) -> timedelta | None:
    """``Cache-Control: max-age=N`` as a timedelta; None when absent or zero."""
    if not value:
        return None
    if re.search(r"(?:^|[,\s])(no-store|no-cache)\b", value, re.IGNORECASE):
        return None
    match = _MAX_AGE.search(value)
    if not match:
        return None
    seconds = int(match.group(1))
    return timedelta(seconds=seconds) if seconds > 0 else None


_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE
)


def _looks_html(body: bytes) -> bool:
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<meta"))


def _decode_html(body: bytes, content_type: str) -> str:
    """An HTML body as text: the header's charset, else the page's ``<meta
    charset>``, else UTF-8; undecodable bytes replaced."""
    match = re.search(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", content_type, re.IGNORECASE)
    charset = match.group(1) if match else None
    if charset is None:
        meta = _META_CHARSET.search(body[:4096])
        charset = meta.group(1).decode("ascii") if meta else None
    for encoding in (charset, "utf-8"):
        if encoding:
            try:
                return body.decode(encoding, errors="replace")
            except LookupError:
                continue
    return body.decode("utf-8", errors="replace")


def sniff_type(data: bytes) -> str | None:
    """The MIME type the first bytes of ``data`` announce, for common media; else None."""
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:2] == b"BM":
        return "image/bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand in (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1"):
            return "image/heic"
        if brand == b"qt  ":
            return "video/quicktime"
        if brand.startswith(b"M4A"):
            return "audio/mp4"
        return "video/mp4"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    return None


def _body_chunks(response: http.client.HTTPResponse) -> Iterator[bytes]:
    """A response's body as it came over the wire, a chunk at a time; errors
    as the httpx errors they stand for."""
    while True:
        try:
            chunk = response.read1(65536)
            if not chunk:
                if response.length:  # the connection ended before Content-Length did
                    raise http.client.IncompleteRead(b"", response.length)
                # read1 leaves a body read to its length open; read closes it
                # (and so frees the connection for the next request)
                response.read()
                return
        except (OSError, http.client.HTTPException) as exc:
            raise as_httpx_error(exc, "read") from exc
        yield chunk
