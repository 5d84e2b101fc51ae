"""The service's WSGI app: media for Viber, the webhook, health and metrics.

Routes (everything else is a plain-text 404)::

    GET|HEAD /media/<name>    a file of the media store: exact Content-Type and
                              Content-Length, strong ETag (the content hash),
                              immutable caching, single byte ranges, 304
    POST     <webhook_path>   Viber's callback, signature checked: 200 {"status":0},
                              403 bad/missing signature, 400 not a JSON object,
                              413 body too large, 503 no token (local mode)
    GET      /healthz         200 {"ok": true, ...} or 503 {"ok": false, ...}
    GET      /readyz          the same, from ``ready()``
    GET      /metrics         body and content type from ``metrics()``; 404 if unset
    <prefix>/...              each ``extra`` app, mounted as it is

Media decisions, after RFC 9110 section 14: a ``Range`` with several ranges,
another unit than ``bytes`` or an invalid range is ignored (the whole file,
200); a suffix range longer than the file (``bytes=-N``, N larger) means
the whole file (206); a range starting past the end, or ``bytes=-0``, is 416. A media
name that is not exactly a stored-file name is a 404 before the disk is
touched, and symlinks in the media folder are never followed.

The webhook answers 200 once the signature is good and the body is a JSON
object, even if ``on_callback`` fails (that is logged): Viber's ``set_webhook``
check must not fail over a problem on our side of the callback.

One debug log line per request: method, path (no query string), status.
Never the token, never a request body.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException, NotFound, RequestEntityTooLarge
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import wrap_file

from publisher.adapters.mediafolder import NAME_RE
from publisher.adapters.viber.signature import verify_signature
from publisher.ports import MediaStore

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    WSGIApp = WSGIApplication
else:
    WSGIApp = Callable[..., Iterable[bytes]]

log = logging.getLogger(__name__)

HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]
MetricsExporter = Callable[[], tuple[bytes, str]]

SIGNATURE_HEADER = "X-Viber-Content-Signature"
CACHE_CONTROL = "public, max-age=31536000, immutable"

#: Content-Type by extension; anything else is application/octet-stream.
MEDIA_TYPES: dict[str, str] = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "mp4": "video/mp4",
    "m4v": "video/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "ogg": "audio/ogg",
    "wav": "audio/wav",
    "pdf": "application/pdf",
    "txt": "text/plain; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "zip": "application/zip",
    "gz": "application/gzip",
    "7z": "application/x-7z-compressed",
    "rar": "application/vnd.rar",
    "epub": "application/epub+zip",
    "doc": "application/msword",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xls": "application/vnd.ms-excel",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "ppt": "application/vnd.ms-powerpoint",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
}
DEFAULT_MEDIA_TYPE = "application/octet-stream"

_RESERVED = ("/media", "/healthz", "/readyz", "/metrics")


def media_type(name: str) -> str:
    """The Content-Type served for a stored file name."""
    return MEDIA_TYPES.get(name.rsplit(".", 1)[-1].lower(), DEFAULT_MEDIA_TYPE)


def _always_ok() -> tuple[bool, dict[str, Any]]:
    return True, {}


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
    return Response(body, status=status, mimetype="application/json")


def _text(text: str, status: int, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(text + "\n", status=status, headers=list(headers), mimetype="text/plain")


def _error(exc: HTTPException) -> Response:
    # keep headers such as Allow (405) and Content-Range (416); drop the HTML type
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    return _text(f"{exc.code} {exc.name}", exc.code or 500, headers)


class _App:
    def __init__(
        self,
        *,
        media: MediaStore,
        webhook_path: str,
        token_provider: Callable[[], str | None],
        max_body: int,
        health: HealthCheck,
        ready: HealthCheck,
        metrics: MetricsExporter | None,
        on_callback: Callable[[dict[str, Any]], None] | None,
        channel_tokens: Callable[[str], str | None] | None = None,
    ) -> None:
        self.media = media
        self.token_provider = token_provider
        self.channel_tokens = channel_tokens
        self.max_body = max_body
        self.health = health
        self.ready = ready
        self.metrics = metrics
        self.on_callback = on_callback
        self.url_map = Map(
            [
                Rule("/media/<name>", endpoint="media", methods=["GET", "HEAD"]),
                Rule(webhook_path, endpoint="webhook", methods=["POST"]),
                Rule(webhook_path.rstrip("/") + "/<channel>", endpoint="webhook", methods=["POST"]),
                Rule("/healthz", endpoint="healthz", methods=["GET", "HEAD"]),
                Rule("/readyz", endpoint="readyz", methods=["GET", "HEAD"]),
                Rule("/metrics", endpoint="metrics", methods=["GET", "HEAD"]),
            ],
            merge_slashes=False,
            redirect_defaults=False,
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            endpoint, args = self.url_map.bind_to_environ(environ).match()
            handler = getattr(self, "on_" + str(endpoint))
            response: Response = handler(request, **args)
        except HTTPException as exc:
            response = _error(exc)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            response = _text("500 Internal Server Error", 500)
        return response(environ, start_response)

    # ------------------------------------------------------------------ media

    def on_media(self, request: Request, name: str) -> Response:
        if not NAME_RE.fullmatch(name):
            raise NotFound()
        try:
            fh, st = self.media.open(name)
        except (ValueError, OSError):
            raise NotFound() from None
        environ = request.environ
        if environ.get("HTTP_RANGE"):
            wanted = _usable_range(environ["HTTP_RANGE"], st.st_size)
            environ = {k: v for k, v in environ.items() if k != "HTTP_RANGE"}
            if wanted is not None:
                environ["HTTP_RANGE"] = wanted
        response = Response(
            wrap_file(environ, fh), content_type=media_type(name), direct_passthrough=True
        )
        response.content_length = st.st_size
        response.set_etag(name.split(".", 1)[0])
        response.last_modified = datetime.fromtimestamp(int(st.st_mtime), UTC)
        response.headers["Cache-Control"] = CACHE_CONTROL
        response.headers["Accept-Ranges"] = "bytes"
        response.headers["X-Content-Type-Options"] = "nosniff"
        try:
            response.make_conditional(environ, accept_ranges=True, complete_length=st.st_size)
        except BaseException:
            fh.close()
            raise
        return response

    # ---------------------------------------------------------------- webhook

    def on_webhook(self, request: Request, channel: str | None = None) -> Response:
        length = request.content_length
        if length is not None and length > self.max_body:
            return self._too_large(request)
        if channel is None:
            token = self.token_provider()
        elif self.channel_tokens is None:
            raise NotFound()
        else:
            token = self.channel_tokens(channel)
            if token is None:
                raise NotFound()
        if not token:
            return _json(
                {"status": 1, "status_message": "no auth token configured (local mode)"}, 503
            )
        body = _read_capped(request, self.max_body)
        if body is None:
            return self._too_large(request)
        if not verify_signature(body, request.headers.get(SIGNATURE_HEADER), token):
            return _json({"status": 1, "status_message": "bad or missing signature"}, 403)
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            return _json({"status": 1, "status_message": "the body is not a JSON object"}, 400)
        log.info("viber callback: event %s", str(data.get("event", "?"))[:40])
        if self.on_callback is not None:
            try:
                self.on_callback(data)
            except Exception:
                log.exception("handling a Viber callback failed")
        return _json({"status": 0})

    def _too_large(self, request: Request) -> Response:
        # The server has read the whole body before the app runs (or refused
        # it when larger than its own cap), so the connection stays usable.
        return _error(RequestEntityTooLarge())

    # ----------------------------------------------------------------- probes

    def on_healthz(self, request: Request) -> Response:
        return _probe(self.health, "health")

    def on_readyz(self, request: Request) -> Response:
        return _probe(self.ready, "readiness")

    def on_metrics(self, request: Request) -> Response:
        if self.metrics is None:
            raise NotFound()
        body, content_type = self.metrics()
        return Response(body, content_type=content_type)


def _probe(check: HealthCheck, what: str) -> Response:
    try:
        ok, details = check()
    except Exception as exc:
        log.exception("%s check failed", what)
        ok, details = False, {"error": type(exc).__name__}
    return _json({"ok": bool(ok), **details}, 200 if ok else 503)


_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)


def _usable_range(value: str, size: int) -> str | None:
    """The ``Range`` to answer (RFC 9110 section 14), or None to send the whole file.

    Several ranges, another unit, or an invalid range: ignored (None). A
    suffix longer than the file: the whole file as a range. The rest (a
    start past the end, ``bytes=-0``) is left for the 416.
    """
    match = _RANGE.fullmatch(value)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if first and last and int(last) < int(first):
        return None
    if not first and int(last) > size:
        return "bytes=0-"
    return value


def _read_capped(request: Request, cap: int) -> bytes | None:
    """At most ``cap`` bytes of the body, or None if there are more."""
    stream = request.stream
    chunks: list[bytes] = []
    size = 0
    while size <= cap:
        chunk = stream.read(min(65536, cap + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > cap:
        return None
    return b"".join(chunks)


class _RequestLog:
    """One debug line per request, around everything (mounts included)."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if not log.isEnabledFor(logging.DEBUG):
            return self.app(environ, start_response)

        def logging_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            log.debug(
                "%s %s%s -> %s",
                environ.get("REQUEST_METHOD", "?"),
                environ.get("SCRIPT_NAME", ""),
                environ.get("PATH_INFO", ""),
                status.split(" ", 1)[0],
            )
            return start_response(status, headers, exc_info)

        return self.app(environ, logging_start_response)


def make_app(
    *,
    media: MediaStore,
    webhook_path: str,
    token_provider: Callable[[], str | None],
    max_body: int = 65536,
    health: HealthCheck | None = None,
    ready: HealthCheck | None = None,
    metrics: MetricsExporter | None = None,
    extra: Mapping[str, WSGIApp] | None = None,
    on_callback: Callable[[dict[str, Any]], None] | None = None,
    channel_tokens: Callable[[str], str | None] | None = None,
) -> WSGIApp:
    """The service's WSGI app (see the module docstring for the routes).

    ``token_provider`` is called per webhook request (the token may change
    or be absent); with several channels, ``<webhook_path>/<channel>`` is
    answered with ``channel_tokens(channel)`` (None: no such channel).
    ``extra`` maps path prefixes such as ``"/channel"`` to WSGI apps mounted
    under them. ValueError for a webhook path or prefix that
    does not start with "/" or clashes with the built-in routes.
    """
    if not webhook_path.startswith("/") or _clashes(webhook_path):
        raise ValueError(f"webhook_path {webhook_path!r} must start with / and not be a built-in")
    if max_body <= 0:
        raise ValueError("max_body must be positive")
    app: WSGIApp = _App(
        media=media,
        webhook_path=webhook_path,
        token_provider=token_provider,
        max_body=max_body,
        health=health or _always_ok,
        ready=ready or _always_ok,
        metrics=metrics,
        on_callback=on_callback,
        channel_tokens=channel_tokens,
    )
    if extra:
        mounts: dict[str, WSGIApp] = {}
        for prefix, mounted in extra.items():
            key = prefix.rstrip("/")
            if not key.startswith("/") or _clashes(key) or _under(webhook_path, key):
                raise ValueError(f"cannot mount an app at {prefix!r}")
            mounts[key] = mounted
        app = DispatcherMiddleware(app, mounts)
    return _RequestLog(app)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def _clashes(path: str) -> bool:
    return any(_under(path, reserved) for reserved in _RESERVED)
