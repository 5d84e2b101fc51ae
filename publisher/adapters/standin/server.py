"""The stand-in itself: a WSGI app that answers like ``chatapi.viber.com/pa``."""

from __future__ import annotations

import hmac
import json
import logging
import random
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from werkzeug.wrappers import Request, Response

from publisher.adapters.httpserver import HTTPServer
from publisher.adapters.standin.media import MediaFetcher, MediaRefused
from publisher.adapters.viber.signature import sign
from publisher.core.errors import MessageError, MissingField
from publisher.core.messages import check_request_size, validate_payload

log = logging.getLogger("publisher.adapters.standin")

ENDPOINTS = ("get_account_info", "set_webhook", "post")
CHAT_HOSTNAME = "SN-CHAT-01_"
SUPERADMIN_ID = "01234567890A="
ADMIN_ID = "Sxyz0987654321="
DEFAULT_MEMBERS: tuple[Mapping[str, str], ...] = (
    {"id": SUPERADMIN_ID, "name": "Stand-in Owner", "role": "superadmin"},
    {"id": ADMIN_ID, "name": "Stand-in Editor", "role": "admin"},
)
#: Bodies larger than this are not even read (far above the 30 KB limit).
MAX_READ = 1_000_000

FaultKind = Literal["http500", "status12", "status", "slow", "drop", "drop_before", "drop_after"]
FAULT_KINDS: tuple[str, ...] = (
    "http500",
    "status12",
    "status",
    "slow",
    "drop",
    "drop_before",
    "drop_after",
)


@dataclass(frozen=True)
class Fault:
    """One planned misbehaviour.

    - ``http500``: answer HTTP 500 with a text body; nothing happens.
    - ``status12`` / ``status``: answer ``status`` (12, or the one given); nothing happens.
    - ``slow``: do the work (a post IS recorded), then wait ``delay`` seconds before answering.
    - ``drop_before``: close the connection without answering; nothing happens.
    - ``drop_after`` (alias ``drop``): do the work (a post IS recorded), then close the
      connection without answering: the ambiguous case.
    """

    kind: str
    endpoint: str | None = "post"
    status: int = 12
    status_message: str = ""
    delay: float = 5.0


@dataclass(frozen=True)
class PostRecord:
    payload: dict[str, Any]
    message_token: int
    time: float
    sender: str


@dataclass(frozen=True)
class RequestRecord:
    method: str
    endpoint: str
    #: The JSON body without ``auth_token``; None when it was not a JSON object.
    payload: dict[str, Any] | None
    http_status: int
    #: Viber's ``status`` in the answer; None when no JSON answer was sent.
    status: int | None
    status_message: str
    fault: str | None
    time: float
    body_size: int = 0


@dataclass
class _Outcome:
    answer: dict[str, Any]
    post: PostRecord | None = None


class _Drop(Exception):
    """Close the connection without an answer."""


class ViberStandIn:
    """A faithful, in-memory stand-in for Viber's Post API of one channel.

    ``app`` is a WSGI app serving ``/pa/get_account_info`` (POST or GET),
    ``/pa/set_webhook`` and ``/pa/post``. ``serve()`` runs it on a real socket::

        with ViberStandIn("token").serve() as standin:
            client = ChannelClient("token", api_url=standin.api_url)

    Accepted posts are in :attr:`posts`, every request in :attr:`requests`.
    Thread-safe; time and the token generator are injectable.
    """

    def __init__(
        self,
        token: str,
        channel_name: str = "Stand-in Channel",
        members: Sequence[Mapping[str, str]] | None = None,
        *,
        require_https: bool = False,
        allow_private_media: bool = True,
        require_webhook: bool = True,
        check_media: bool = True,
        channel_id: str = "pa:5571390431958453129",
        uri: str = "standinchannel",
        media_timeout: float = 10.0,
        webhook_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if not token:
            raise ValueError("token: empty; give the stand-in an auth token")
        self.token = token
        self.channel_name = channel_name
        self.channel_id = channel_id
        self.uri = uri
        self.members: list[dict[str, str]] = [
            dict(m) for m in (DEFAULT_MEMBERS if members is None else members)
        ]
        self.require_https = require_https
        self.require_webhook = require_webhook
        self.check_media = check_media
        self.media_timeout = media_timeout
        self.webhook_timeout = webhook_timeout
        self.allow_private_media = allow_private_media
        self.clock = clock
        self._rng = rng if rng is not None else random.SystemRandom()
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._initial = (channel_name, [dict(m) for m in self.members])
        self._posts: list[PostRecord] = []
        #: Called with each accepted post, under the stand-in's lock (the
        #: local channel persists posts this way).
        self.on_post: list[Callable[[PostRecord], None]] = []
        self._requests: list[RequestRecord] = []
        self._faults: deque[Fault] = deque()
        self._counts: Counter[str] = Counter()
        self._webhook_url: str | None = None
        self._server: HTTPServer | None = None
        self._http: httpx.Client | None = None
        self._fetcher: MediaFetcher | None = None

    def __repr__(self) -> str:
        where = self.api_url if self._server is not None else "not serving"
        return f"ViberStandIn({self.channel_name!r}, {where})"

    # ------------------------------------------------------------ state

    @property
    def posts(self) -> list[PostRecord]:
        with self._lock:
            return list(self._posts)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    @property
    def counts(self) -> Counter[str]:
        """Successful calls per endpoint."""
        with self._lock:
            return Counter(self._counts)

    @property
    def webhook_url(self) -> str | None:
        with self._lock:
            return self._webhook_url

    @property
    def superadmin_ids(self) -> list[str]:
        return [m["id"] for m in self.members if m.get("role") == "superadmin"]

    def preset_webhook(self, url: str | None) -> None:
        """Set (or clear) the webhook without the test call Viber makes."""
        with self._lock:
            self._webhook_url = url or None

    def fail_next(
        self,
        kind: FaultKind | str,
        count: int = 1,
        *,
        endpoint: str | None = "post",
        status: int | None = None,
        status_message: str = "",
        delay: float = 5.0,
    ) -> None:
        """Make the next ``count`` calls to ``endpoint`` (None: any) misbehave.

        Kinds: ``http500``, ``status12``, ``status`` (give ``status``), ``slow``
        (``delay`` seconds, the work is done), ``drop_before`` (nothing done),
        ``drop_after``/``drop`` (the work is done). See :class:`Fault`.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind {kind!r}: use one of {', '.join(FAULT_KINDS)}")
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint {endpoint!r}: use one of {', '.join(ENDPOINTS)} or None")
        if kind == "status" and status is None:
            raise ValueError('fault "status" needs status=<code>')
        if kind == "drop":
            kind = "drop_after"
        fault = Fault(
            kind=kind,
            endpoint=endpoint,
            status=12 if kind == "status12" else (status or 0),
            status_message=status_message or ("tooManyRequests" if kind == "status12" else ""),
            delay=delay,
        )
        with self._lock:
            self._faults.extend([fault] * count)

    def clear(self) -> None:
        """Forget posts, requests, counts and planned faults (not the webhook);
        answer slow requests still waiting at once."""
        with self._lock:
            self._posts.clear()
            self._requests.clear()
            self._faults.clear()
            self._counts.clear()
            self._wake.set()
            self._wake = threading.Event()

    def reset(self) -> None:
        """:meth:`clear`, remove the webhook and restore the constructor's
        channel name and members."""
        with self._lock:
            self.clear()
            self._webhook_url = None
            self.channel_name = self._initial[0]
            self.members = [dict(m) for m in self._initial[1]]

    def _take_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.endpoint is None or fault.endpoint == endpoint:
                    self._faults.remove(fault)
                    return fault
        return None

    # ------------------------------------------------------------ serving

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stand-in is not serving; call start() or serve()")
        return self._server.url

    @property
    def api_url(self) -> str:
        """What a client takes as ``api_url``: ``http://127.0.0.1:PORT/pa``."""
        return self.url + "/pa"

    def start(self, host: str = "127.0.0.1", port: int = 0) -> ViberStandIn:
        if self._server is not None:
            raise RuntimeError("the stand-in is already serving")
        self._stopping.clear()
        self._server = HTTPServer(self.app, host, port).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            self._wake.set()
        if self._server is not None:
            self._server.stop()
            self._server = None
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None
            if self._fetcher is not None:
                self._fetcher.close()
                self._fetcher = None

    @contextmanager
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[ViberStandIn]:
        self.start(host, port)
        try:
            yield self
        finally:
            self.stop()

    def run(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve until interrupted (Ctrl-C)."""
        with self.serve(host, port):
            print(f"Viber stand-in for {self.channel_name!r} at {self.api_url}", flush=True)
            try:
                while not self._stopping.wait(3600):
                    pass
            except KeyboardInterrupt:
                pass

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(timeout=self.webhook_timeout)
            return self._http

    # ------------------------------------------------------------ WSGI

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        response = self._respond(request, environ)
        return response(environ, start_response)

    def _respond(self, request: Request, environ: dict[str, Any]) -> Response:
        path = request.path
        endpoint = path[len("/pa/") :] if path.startswith("/pa/") else ""
        if endpoint not in ENDPOINTS:
            return Response("Not Found\n", status=404, content_type="text/plain")
        allowed = ("POST", "GET") if endpoint == "get_account_info" else ("POST",)
        if request.method not in allowed:
            return Response(
                "Method Not Allowed\n",
                status=405,
                content_type="text/plain",
                headers={"Allow": ", ".join(allowed)},
            )
        body = request.stream.read(MAX_READ + 1)
        payload = _parse(body)
        fault = self._take_fault(endpoint)
        kind = fault.kind if fault else None

        def record(http_status: int, answer: dict[str, Any] | None) -> None:
            shown = None
            if payload is not None:
                shown = {k: v for k, v in payload.items() if k != "auth_token"}
            status = answer.get("status") if answer else None
            with self._lock:
                self._requests.append(
                    RequestRecord(
                        method=request.method,
                        endpoint=endpoint,
                        payload=shown,
                        http_status=http_status,
                        status=status if isinstance(status, int) else None,
                        status_message=str(answer.get("status_message", "")) if answer else "",
                        fault=kind,
                        time=self.clock(),
                        body_size=len(body),
                    )
                )

        if fault is not None and fault.kind == "http500":
            record(500, None)
            return Response("Internal Server Error\n", status=500, content_type="text/plain")
        if fault is not None and fault.kind == "drop_before":
            record(0, None)
            return _drop(environ)
        if fault is not None and fault.kind in ("status12", "status"):
            answer = _answer(fault.status, fault.status_message or f"error {fault.status}")
            record(200, answer)
            return _json(answer)

        outcome = self._handle(endpoint, request, body, payload)
        with self._lock:
            if outcome.post is not None:
                self._posts.append(outcome.post)
                for hook in self.on_post:
                    try:
                        hook(outcome.post)
                    except Exception:  # an accepted post stays accepted
                        log.exception("stand-in: an on_post hook failed")
            if outcome.answer.get("status") == 0:
                self._counts[endpoint] += 1
        record(200, outcome.answer)
        log.debug("stand-in %s → %s", endpoint, outcome.answer.get("status"))

        if fault is not None and fault.kind == "slow":
            with self._lock:
                wake = self._wake
            wake.wait(fault.delay)
        if fault is not None and fault.kind == "drop_after":
            return _drop(environ)
        return _json(outcome.answer)

    # ------------------------------------------------------------ endpoints

    def _handle(
        self, endpoint: str, request: Request, body: bytes, payload: dict[str, Any] | None
    ) -> _Outcome:
        given = [request.headers.get("X-Viber-Auth-Token")]
        if payload is not None:
            given.append(payload.get("auth_token"))
        tokens = [t for t in given if t not in (None, "")]
        if not tokens:
            return _Outcome(_answer(2, "missing_auth_token"))
        for token in tokens:
            if not isinstance(token, str) or not hmac.compare_digest(
                token.encode("utf-8"), self.token.encode("utf-8")
            ):
                return _Outcome(_answer(2, "invalidAuthToken"))
        if endpoint != "post":  # a post's size is checked with the rest of it, in _post
            try:
                check_request_size(len(body))
            except MessageError as exc:
                return _Outcome(_answer(3, f"badData: {exc}"))
        if payload is None:
            if body.strip() or (request.method == "POST" and endpoint != "get_account_info"):
                return _Outcome(_answer(3, "badData: the body is not a JSON object"))
            payload = {}
        if endpoint == "get_account_info":
            return _Outcome(self._account_info())
        if endpoint == "set_webhook":
            return _Outcome(self._set_webhook(payload))
        return self._post(payload, len(body))

    def _account_info(self) -> dict[str, Any]:
        answer = _answer(0, "ok")
        answer.update(
            {
                "id": self.channel_id,
                "chat_hostname": CHAT_HOSTNAME,
                "name": self.channel_name,
                "uri": self.uri,
                "icon": None,
                "background": None,
                "category": "Local",
                "subcategory": "Stand-in",
                "country": "ZZ",
                "webhook": self.webhook_url or "",
                "event_types": [],
                "subscribers_count": 0,
                "members": [dict(m) for m in self.members],
            }
        )
        return answer

    def _set_webhook(self, payload: dict[str, Any]) -> dict[str, Any]:
        url = payload.get("url")
        if url is None:
            return _answer(4, "missingData: url")
        if not isinstance(url, str):
            return _answer(3, "badData: url must be a string")
        if url == "":
            self.preset_webhook(None)
            return _answer(0, "ok")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return _answer(1, f"invalidUrl: {url!r} is not a URL")
        if self.require_https and parts.scheme != "https":
            return _answer(1, "invalidUrl: the webhook URL must be HTTPS")
        event = {
            "event": "webhook",
            "timestamp": int(self.clock() * 1000),
            "chat_hostname": CHAT_HOSTNAME,
            "message_token": self._new_token(),
        }
        body = json.dumps(event, separators=(",", ":")).encode("utf-8")
        try:
            response = self._client().post(
                url,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Viber-Content-Signature": sign(body, self.token),
                    "User-Agent": "viber-standin",
                },
            )
        except httpx.HTTPError as exc:
            return _answer(1, f"invalidUrl: {type(exc).__name__} calling {url}")
        if response.status_code != 200:
            return _answer(1, f"invalidUrl: Result[HttpResponse(Code={response.status_code})]")
        self.preset_webhook(url)
        answer = _answer(0, "ok")
        answer["event_types"] = []
        return answer

    def _post(self, payload: dict[str, Any], body_size: int) -> _Outcome:
        """The channel's rules (webhook, sender), then the core's rules for the
        payload (:func:`~publisher.core.messages.validate_payload`, on the
        request as received), then the media, fetched as Viber does."""
        if self.require_webhook and self.webhook_url is None:
            return _Outcome(_answer(10, "webhookNotSet"))
        sender = payload.get("from")
        if sender in (None, ""):
            return _Outcome(_answer(4, "missingData: from"))
        if sender not in self.superadmin_ids:
            return _Outcome(
                _answer(3, f"badData: from {sender!r} is not a superadmin of this channel")
            )
        try:
            validate_payload(payload, wire_size=body_size)
        except MissingField as exc:
            return _Outcome(_answer(4, f"missingData: {exc}"))
        except MessageError as exc:
            return _Outcome(_answer(3, f"badData: {exc}"))
        if self.check_media:
            try:
                self._check_media(payload)
            except MediaRefused as exc:
                return _Outcome(_answer(3, f"badData: {exc}"))
        token = self._new_token()
        record = PostRecord(
            payload={k: v for k, v in payload.items() if k != "auth_token"},
            message_token=token,
            time=self.clock(),
            sender=str(sender),
        )
        answer = _answer(0, "ok")
        answer["message_token"] = token
        answer["chat_hostname"] = CHAT_HOSTNAME
        return _Outcome(answer, record)

    def _check_media(self, payload: dict[str, Any]) -> None:
        kind = payload["type"]
        if kind not in ("picture", "video", "file"):
            return
        fetcher = self._media_fetcher()
        if kind == "picture":
            fetcher.check_jpeg("picture.media", payload["media"])
        elif kind == "video":
            fetcher.check_video("video.media", payload["media"], payload["size"])
        else:
            fetcher.check_file("file.media", payload["media"], payload["size"])
        if payload.get("thumbnail") is not None:
            fetcher.check_thumbnail(f"{kind}.thumbnail", payload["thumbnail"])

    def _media_fetcher(self) -> MediaFetcher:
        with self._lock:
            if self._fetcher is None:
                self._fetcher = MediaFetcher.create(
                    self.media_timeout,
                    require_https=self.require_https,
                    allow_private=self.allow_private_media,
                )
            return self._fetcher

    def _new_token(self) -> int:
        return self._rng.randint(2**53 + 1, 2**63 - 1)


# --------------------------------------------------------------------------
# helpers


def _answer(status: int, message: str) -> dict[str, Any]:
    return {"status": status, "status_message": message}


def _json(answer: dict[str, Any]) -> Response:
    return Response(json.dumps(answer), status=200, content_type="application/json")


def _parse(body: bytes) -> dict[str, Any] | None:
    if not body.strip():
        return None
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _socket_of(environ: dict[str, Any]) -> socket.socket | None:
    """The client's socket under cheroot (wsgi.input → reader → SocketIO)."""
    stream: Any = environ.get("wsgi.input")
    for attr in ("rfile", "raw", "_sock"):
        stream = getattr(stream, attr, None)
        if stream is None:
            return None
    return stream if isinstance(stream, socket.socket) else None


def _drop(environ: dict[str, Any]) -> Response:
    """Close the connection without a response. Where the socket cannot be
    reached, send a truncated response instead (just as unreadable)."""
    sock = _socket_of(environ)
    if sock is not None:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        return Response(b"", status=200)
    response = Response(b"{", status=200, content_type="application/json")
    response.headers["Content-Length"] = "100"
    return response


__all__ = [
    "ADMIN_ID",
    "CHAT_HOSTNAME",
    "DEFAULT_MEMBERS",
    "FAULT_KINDS",
    "SUPERADMIN_ID",
    "Fault",
    "PostRecord",
    "RequestRecord",
    "ViberStandIn",
]
