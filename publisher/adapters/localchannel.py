"""The local channel's page: ``/channel`` on the service's built-in server.

With ``[viber] api_url = "local"`` the service posts to an embedded
:class:`~publisher.adapters.standin.server.ViberStandIn`, which validates every post as
Viber does and keeps the accepted ones in memory. This module:

- persists what it accepts, one JSON object a line, in
  ``local-channel.jsonl`` beside the state file, so the page survives
  restarts (:class:`ChannelLog`; hooked in by wrapping the stand-in's list
  of posts, so every accepted post is written the moment it is accepted);
- serves ``/channel/`` (a page showing the posts newest first as a channel
  would: text, pictures from the media URLs Viber would fetch, video, file
  and link cards; it refreshes itself when a post arrives) and
  ``/channel/posts.json`` (``{"channel": ..., "posts": [...]}``, newest first).

Mounted apps get ``SCRIPT_NAME="/channel"`` and ``PATH_INFO`` relative to it.
"""

from __future__ import annotations

import html
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.wrappers import Request, Response

from publisher.core.render.markup import to_html

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
FILE_NAME = "local-channel.jsonl"
#: The page shows at most this many posts (posts.json too, unless ?limit=).
PAGE_POSTS = 200


class ChannelLog:
    """Accepted posts, appended to a JSON-lines file (or kept in memory only
    when ``path`` is None). Thread-safe. A damaged line is skipped."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._posts: list[dict[str, Any]] = []
        if path is not None and path.exists():
            with path.open(encoding="utf-8") as fh:
                for number, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except ValueError:
                        log.warning("%s:%d: not JSON; line skipped", path, number)
                        continue
                    if isinstance(record, dict):
                        self._posts.append(record)

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
        with self._lock:
            self._posts.append(record)
            if self.path is None:
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(line)
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:
                log.warning("local channel: cannot write %s: %s", self.path, exc)

    def posts(self) -> list[dict[str, Any]]:
        """Every post, oldest first."""
        with self._lock:
            return list(self._posts)


def post_record(post: Any) -> dict[str, Any]:
    """A stand-in ``PostRecord`` as a JSON-able dict (no ``auth_token``)."""
    payload = {k: v for k, v in dict(post.payload).items() if k != "auth_token"}
    return {
        "message_token": post.message_token,
        "time": datetime.fromtimestamp(post.time, UTC).isoformat().replace("+00:00", "Z"),
        "sender": post.sender,
        "payload": payload,
    }


def attach(local: Any, channel_log: ChannelLog) -> None:
    """Record every post ``local`` (a ViberStandIn) accepts from now on."""
    for post in local.posts:
        channel_log.append(post_record(post))
    local.on_post.append(lambda post: channel_log.append(post_record(post)))


def log_path(service: Any, channel: str = "main") -> Path | None:
    """``local-channel.jsonl`` beside the state file (``local-channel-<name>.jsonl``
    for a channel not named ``main``; None for ``:memory:``)."""
    state = Path(str(service.config.storage.path))
    if str(state) == ":memory:":
        return None
    if channel == "main":
        return state.parent / FILE_NAME
    return state.parent / f"local-channel-{channel}.jsonl"


def channel_app(local: Any, service: Any, channel: str = "main") -> WSGIApp:
    """The WSGI app of one local channel's page (mounted at ``/channel``, or
    at ``/channel/<name>`` when there are several)."""
    channel_log = ChannelLog(log_path(service, channel))
    attach(local, channel_log)
    tz = _timezone(service, channel)
    members = {m.get("id"): m.get("name", "") for m in getattr(local, "members", [])}
    name = str(getattr(local, "channel_name", "Local channel"))

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        path = str(environ.get("PATH_INFO", ""))
        base = str(environ.get("SCRIPT_NAME", "")).rstrip("/")
        if request.method not in ("GET", "HEAD"):
            response = Response("Method Not Allowed\n", 405, {"Allow": "GET, HEAD"})
        elif path in ("", "/"):
            if path == "" and base:
                response = Response("", 308, {"Location": base + "/"})
            else:
                posts = list(reversed(channel_log.posts()))
                body = render_page(name, posts[:PAGE_POSTS], members, tz, base, len(posts))
                response = Response(body, content_type="text/html; charset=utf-8")
                response.headers["Cache-Control"] = "no-store"
        elif path == "/posts.json":
            posts = list(reversed(channel_log.posts()))
            try:
                limit = int(request.args.get("limit", PAGE_POSTS))
            except ValueError:
                limit = PAGE_POSTS
            data = {"channel": name, "count": len(posts), "posts": posts[: max(0, limit)]}
            response = Response(
                json.dumps(data, ensure_ascii=False) + "\n",
                content_type="application/json; charset=utf-8",
            )
            response.headers["Cache-Control"] = "no-store"
        else:
            response = Response("Not Found\n", 404, content_type="text/plain")
        return response(environ, start_response)

    return app


def _timezone(service: Any, channel: str = "main") -> ZoneInfo:
    try:
        return ZoneInfo(str(service.config.channel(channel).delivery.policy.timezone))
    except Exception:
        return ZoneInfo("UTC")


def index_app(names: list[str]) -> WSGIApp:
    """``/channel`` when there are several local channels: a list of them."""
    items = "".join(
        f'<li><a href="channel/{html.escape(n)}/">{html.escape(n)}</a></li>' for n in names
    )
    page = (
        "<!doctype html><html><head><meta charset=utf-8><title>Local channels</title>"
        f"<style>{_CSS}</style></head><body><header><b>Local channels</b></header>"
        f"<main><ul>{items}</ul></main></body></html>"
    ).encode()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if path not in ("", "/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no such local channel"]
        if path == "":
            base = str(environ.get("SCRIPT_NAME", "")).rstrip("/")
            start_response("301 Moved Permanently", [("Location", base + "/")])
            return [b""]
        start_response(
            "200 OK",
            [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(page)))],
        )
        return [page]

    return app


# --------------------------------------------------------------------------
# the page

_CSS = """
body{margin:0;background:#e9e6f2;font:15px/1.4 -apple-system,Segoe UI,Roboto,sans-serif;color:#222}
header{background:#7360f2;color:#fff;padding:14px 20px;position:sticky;top:0;z-index:1}
header h1{margin:0;font-size:18px}header p{margin:2px 0 0;font-size:13px;opacity:.85}
main{max-width:560px;margin:0 auto;padding:16px 12px 40px}
.post{margin:0 0 16px}.meta{font-size:12px;color:#666;margin:0 0 4px 6px}
.bubble{background:#fff;border-radius:14px 14px 14px 4px;box-shadow:0 1px 2px rgba(0,0,0,.12);
 padding:8px 12px;max-width:440px;overflow-wrap:anywhere}
.bubble.picture{padding:0;overflow:hidden}.bubble.picture img{display:block;width:100%}
.bubble.picture .text{padding:8px 12px}.text{white-space:pre-wrap}
.card{border-left:3px solid #7360f2}.thumb{width:64px;height:64px;border-radius:6px;
 vertical-align:middle;margin-right:8px;object-fit:cover}
.empty{color:#666;text-align:center;margin-top:40px}
"""

_SCRIPT = """
(function () {
  var count = %(count)d, url = %(url)s;
  setInterval(function () {
    fetch(url + '?limit=0', {cache: 'no-store'}).then(function (r) { return r.json(); })
      .then(function (d) { if (d.count !== count) { location.reload(); } })
      .catch(function () {});
  }, 2000);
})();
"""


def render_page(
    name: str,
    posts: list[dict[str, Any]],
    members: dict[Any, str],
    tz: ZoneInfo,
    base: str,
    total: int,
) -> str:
    esc = html.escape
    script = _SCRIPT % {"count": total, "url": json.dumps(base + "/posts.json")}
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(name)}</title><style>{_CSS}</style>",
        '<noscript><meta http-equiv="refresh" content="10"></noscript></head>',
        f'<body data-count="{total}"><header><h1>{esc(name)}</h1>',
        f"<p>The local channel: {total} post(s), newest first. "
        "Every post was validated as Viber would.</p></header><main>",
    ]
    if not posts:
        parts.append('<p class="empty">No posts yet. They appear here as they are sent.</p>')
    for post in posts:
        parts.append(_post_html(post, members, tz))
    parts.append(f"</main><script>{script}</script></body></html>")
    return "\n".join(parts) + "\n"


def _when(value: Any, tz: ZoneInfo) -> str:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S ") + tz.key


def _size(value: Any) -> str:
    try:
        size = int(value)
    except (TypeError, ValueError):
        return "?"
    if size < 1000:
        return f"{size} B"
    if size < 1_000_000:
        return f"{size / 1000:.1f} kB"
    return f"{size / 1_000_000:.2f} MB"


def _post_html(post: dict[str, Any], members: dict[Any, str], tz: ZoneInfo) -> str:
    esc = html.escape
    payload = post.get("payload") or {}
    kind = str(payload.get("type", "?"))
    sender = members.get(post.get("sender")) or str(post.get("sender", ""))
    text = str(payload.get("text") or "")
    media = str(payload.get("media") or "")
    if kind == "picture":
        caption = f'<div class="text">{to_html(text)}</div>' if text else ""
        body = (
            f'<div class="bubble picture"><a href="{esc(media)}">'
            f'<img src="{esc(media)}" alt="" loading="lazy"></a>{caption}</div>'
        )
    elif kind == "video":
        thumb = str(payload.get("thumbnail") or "")
        poster = f' poster="{esc(thumb)}"' if thumb else ""
        body = (
            f'<div class="bubble"><video controls preload="none" width="100%"{poster}'
            f' src="{esc(media)}"></video><div>▶ {esc(str(payload.get("duration", "?")))} s · '
            f"{_size(payload.get('size'))}</div></div>"
        )
    elif kind == "file":
        body = (
            f'<div class="bubble card"><a href="{esc(media)}">📄 '
            f"{esc(str(payload.get('file_name', 'file')))}</a> · {_size(payload.get('size'))}</div>"
        )
    elif kind == "url":
        title = f"<div>{esc(text)}</div>" if text else ""
        body = f'<div class="bubble card">{title}<a href="{esc(media)}">{esc(media)}</a></div>'
    else:
        body = f'<div class="bubble"><div class="text">{to_html(text)}</div></div>'
    token = esc(str(post.get("message_token", "")))
    return (
        f'<article class="post" data-type="{esc(kind)}" data-token="{token}">'
        f'<div class="meta">{esc(sender)} · {esc(_when(post.get("time"), tz))}</div>'
        f"{body}</article>"
    )
