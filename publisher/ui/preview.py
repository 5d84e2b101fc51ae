"""How a preview is shown: terminal cards, JSON Lines and an HTML page, each
a pure function of a :class:`~publisher.pipeline.preview.Preview`.

- :func:`render_cards` / :func:`print_cards`: one ``rich`` card per item;
- :func:`json_lines`: one JSON object per post (JSON Lines), deterministic;
- :func:`write_html`: a self-contained page with the pictures beside it,
  showing the posts as a Viber channel would.
"""

from __future__ import annotations

import html
import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from publisher.core.errors import MediaError
from publisher.core.items import MediaInfo, RenderedMessage
from publisher.core.limits import TEXT_MAX
from publisher.core.render import render_text, utf16_len
from publisher.core.render.markup import segments, to_html
from publisher.pipeline.preview import (
    TEXT_CAPS,
    Delivery,
    Preview,
    PreviewEntry,
)

# --------------------------------------------------------------------------
# JSON lines


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _media_dict(info: MediaInfo) -> dict[str, Any]:
    return {k: v for k, v in asdict(info).items() if v is not None}


def _text_length(payload: dict[str, Any]) -> dict[str, int] | None:
    cap = TEXT_CAPS.get(str(payload.get("type")))
    if cap is None or "text" not in payload:
        return None
    return {"utf16": utf16_len(str(payload["text"])), "cap": cap}


def json_records(preview: Preview) -> Iterator[dict[str, Any]]:
    """One record per post (per item when it has no post), in output order."""
    for entry in preview.entries:
        common: dict[str, Any] = {
            "source": entry.source,
            "source_type": entry.source_type,
            "item_key": entry.item.key,
            "title": entry.item.title,
            "link": entry.item.link,
            "published": _iso(entry.item.published),
            "action": entry.action,
            "will_post": entry.will_post,
            "reason": entry.reason or None,
            "decisions": [{"code": d.code, "detail": d.detail} for d in entry.decisions],
            "delivery": _delivery_dict(entry.delivery),
            "channels": list(entry.channels),
        }
        if not entry.messages:
            yield {**common, "seq": 0, "messages": 0, "payload": None, "media": []}
            continue
        for seq, message in enumerate(entry.messages):
            payload = {k: v for k, v in message.payload.items() if k not in ("auth_token", "from")}
            yield {
                **common,
                "seq": seq,
                "messages": len(entry.messages),
                "payload": payload,
                "text_length": _text_length(payload),
                "media": [_media_dict(m) for m in message.media],
                "invalid": list(entry.invalid),
            }


def _delivery_dict(delivery: Delivery | None) -> dict[str, Any] | None:
    if delivery is None:
        return None
    return {"state": delivery.state, "at": _iso(delivery.at), "reason": delivery.reason or None}


def json_lines(preview: Preview) -> str:
    """JSON Lines, keys sorted, non-ASCII kept: stable enough for golden files."""
    return "".join(
        json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
        for record in json_records(preview)
    )


# --------------------------------------------------------------------------
# terminal cards


def _human_size(size: int | None) -> str:
    if size is None:
        return "?"
    if size < 1000:
        return f"{size} B"
    if size < 1_000_000:
        return f"{size / 1000:.1f} kB"
    return f"{size / 1_000_000:.2f} MB"


def describe_media(info: MediaInfo) -> str:
    """``PNG 1600x900 412.3 kB → JPEG 1600x900 180.2 kB q85`` (before → after)."""
    after = f"{_mime_label(info.mime)} {_pixels(info.width, info.height)}{_human_size(info.size)}"
    if info.quality is not None:
        after += f" q{info.quality}"
    if info.duration is not None:
        after += f" {info.duration:.0f}s"
    if info.source_format is None and info.source_size is None:
        return after
    before = (
        f"{info.source_format or '?'} {_pixels(info.source_width, info.source_height)}"
        f"{_human_size(info.source_size)}"
    )
    return f"{before} → {after}"


def _pixels(width: int | None, height: int | None) -> str:
    return f"{width}x{height} " if width and height else ""


def _mime_label(mime: str) -> str:
    return {"image/jpeg": "JPEG", "video/mp4": "MP4"}.get(mime, mime)


def _skipped_text(entry: PreviewEntry) -> str:
    """The text an item not posted would have had (for showing it greyed)."""
    try:
        return render_text(entry.item, None, limit=TEXT_MAX).text
    except (MediaError, ValueError):
        return entry.item.title


def render_cards(preview: Preview, width: int = 100, color: bool = False) -> str:
    """Every item as a ``rich`` card, rendered to text at ``width`` columns."""
    import io

    from rich.console import Console

    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        force_terminal=color,
        color_system="standard" if color else None,
        no_color=not color,
        highlight=False,
        emoji=False,
        legacy_windows=False,
    )
    print_cards(preview, console)
    return buffer.getvalue()


def print_cards(preview: Preview, console: Any) -> None:
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    posting = sum(1 for e in preview.entries if e.will_post)
    posts = sum(len(e.messages) for e in preview.entries if e.will_post)
    for entry in preview.entries:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        if entry.will_post:
            status = Text("will post", style="green")
            if entry.delivery is not None:
                status.append(": " + entry.delivery.describe(preview.now))
        else:
            status = Text("not posted", style="yellow")
            status.append(": " + entry.reason)
        grid.add_row("status", status)
        grid.add_row("item", Text(entry.title))
        if entry.item.link:
            grid.add_row("link", Text(entry.item.link))
        if entry.item.published is not None:
            grid.add_row("published", Text(_iso(entry.item.published) or ""))
        for seq, message in enumerate(entry.messages):
            payload = message.payload
            label = f"post {seq + 1}/{len(entry.messages)}"
            kind = str(payload.get("type"))
            length = _text_length(payload)
            summary = kind
            if length is not None:
                summary += f", text {length['utf16']}/{length['cap']} UTF-16 units"
            grid.add_row(label, Text(summary, style="cyan"))
            if payload.get("text"):
                shown = _styled(str(payload["text"])) if kind != "url" else Text(payload["text"])
                grid.add_row("", Panel(shown, padding=(0, 1)))
            for key in ("media", "thumbnail"):
                if key in payload:
                    grid.add_row(key, Text(str(payload[key])))
            for key in ("file_name", "size", "duration"):
                if key in payload:
                    grid.add_row(key.replace("_", " "), Text(str(payload[key])))
            infos = list(message.media)
            if infos:
                grid.add_row(
                    "  picture" if kind == "picture" else "  media", describe_media(infos[0])
                )
            for info in infos[1:]:
                grid.add_row("  thumbnail", describe_media(info))
        if not entry.messages:
            text = _skipped_text(entry)
            if text.strip():
                grid.add_row("text", Text(_clip(text, 300), style="dim"))
        if entry.channels and entry.channels != ("main",):
            grid.add_row("to", Text(", ".join(entry.channels)))
        for decision in entry.decisions:
            grid.add_row("decision", Text(f"{decision.code}: {decision.detail}"))
        for problem in entry.invalid:
            grid.add_row("INVALID", Text(problem, style="red"))
        title = f"{escape(entry.source)} ({entry.source_type}) · {escape(entry.item.key)}"
        console.print(
            Panel(
                grid,
                title=title,
                title_align="left",
                border_style="green" if entry.will_post else "dim",
            )
        )
    for source, note in preview.notes:
        console.print(Text(f"note: {source}: {note}"))
    for source, error in preview.errors:
        console.print(Text(f"error: {source}: {error}", style="red"))
    skipped = len(preview.entries) - posting
    console.print(
        Text(
            f"{posting} item(s) would be posted in {posts} post(s); {skipped} not posted. "
            "Nothing was posted and no state was changed."
        )
    )


_RICH_STYLE = {"bold": "bold", "italic": "italic", "strike": "strike", "mono": "reverse"}


def _styled(text: str) -> Any:
    """``text`` as a rich Text, Viber's formatting shown as Viber shows it."""
    from rich.text import Text

    out = Text()
    for piece, style in segments(text):
        out.append(piece, style=_RICH_STYLE[style] if style else None)
    return out


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------
# the HTML page


def write_html(preview: Preview, directory: Path) -> Path:
    """Write ``index.html`` and the posts' media (under ``media/``) into
    ``directory``; return the page's path. The page needs nothing else."""
    directory = Path(directory)
    media_out = directory / "media"
    media_out.mkdir(parents=True, exist_ok=True)
    copied: set[str] = set()
    if preview.media_dir is not None:
        for entry in preview.entries:
            for message in entry.messages:
                for info in message.media:
                    source = preview.media_dir / info.name
                    if info.name not in copied and source.is_file():
                        shutil.copyfile(source, media_out / info.name)
                        copied.add(info.name)
    page = directory / "index.html"
    page.write_text(render_html(preview, copied), encoding="utf-8")
    return page


_CSS = """
body{margin:0;background:#e9e6f2;font:15px/1.4 -apple-system,Segoe UI,Roboto,sans-serif;color:#222}
header{background:#7360f2;color:#fff;padding:14px 20px;position:sticky;top:0}
header h1{margin:0;font-size:18px}header p{margin:2px 0 0;font-size:13px;opacity:.85}
main{max-width:560px;margin:0 auto;padding:16px 12px 40px}
.item{margin:0 0 18px}.meta{font-size:12px;color:#666;margin:0 0 4px 6px}
.bubble{background:#fff;border-radius:14px 14px 14px 4px;box-shadow:0 1px 2px rgba(0,0,0,.12);
 padding:8px 12px;margin:0 0 6px;max-width:440px;overflow-wrap:anywhere}
.bubble.picture{padding:0;overflow:hidden}.bubble.picture img{display:block;width:100%}
.bubble.picture .caption{padding:8px 12px}
.text{white-space:pre-wrap}.len{font-size:11px;color:#999;text-align:right}
.card{border-left:3px solid #7360f2;padding-left:8px}
.decisions{font-size:12px;color:#555;margin:2px 0 0 6px;padding-left:16px}
.skipped{opacity:.45;filter:grayscale(1)}.reason{font-size:12px;color:#a33;margin:0 0 4px 6px}
.thumb{width:64px;height:64px;border-radius:6px;vertical-align:middle;margin-right:8px}
h2{font-size:14px;color:#555;margin:26px 6px 10px;font-weight:600}
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images', String(imgs.length));
  document.body.setAttribute('data-loaded', String(ok));
});
"""


def render_html(preview: Preview, available: set[str] | None = None) -> str:
    """The page; media in ``available`` are referenced as ``media/<name>``."""
    available = available or set()
    esc = html.escape
    posting = [e for e in preview.entries if e.will_post]
    skipped = [e for e in preview.entries if not e.will_post]
    # The channel order: when each item would go.
    far = datetime.max.replace(tzinfo=UTC)
    posting.sort(key=lambda e: e.delivery.at if e.delivery and e.delivery.at else far)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>viber-publisher preview</title>",
        f"<style>{_CSS}</style><script>{_SCRIPT}</script></head><body>",
        "<header><h1>Channel preview</h1>",
        f"<p>{len(posting)} item(s) would be posted, {len(skipped)} not. "
        "Nothing was posted.</p></header><main>",
    ]
    for entry in posting:
        parts.append(_html_entry(entry, preview, available))
    if skipped:
        parts.append("<h2>Not posted</h2>")
        for entry in skipped:
            parts.append(_html_entry(entry, preview, available))
    for source, error in preview.errors:
        parts.append(f'<p class="reason">error: {esc(source)}: {esc(error)}</p>')
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def _media_src(url: str, infos: Sequence[MediaInfo], available: set[str]) -> str:
    for info in infos:
        if info.name in available and url.endswith("/" + info.name):
            return "media/" + info.name
    return url


def _html_entry(entry: PreviewEntry, preview: Preview, available: set[str]) -> str:
    esc = html.escape
    cls = "item" if entry.will_post else "item skipped"
    when = ""
    if entry.delivery is not None and entry.delivery.state in ("now", "later"):
        when = " · " + esc(entry.delivery.describe(preview.now))
    out = [
        f'<section class="{cls}" data-post="{esc(entry.source)}/{esc(entry.item.key)}"'
        f' data-will-post="{str(entry.will_post).lower()}">',
        f'<div class="meta">{esc(entry.source)} · {esc(entry.title)}{when}</div>',
    ]
    if not entry.will_post:
        out.append(f'<div class="reason">{esc(entry.reason)}</div>')
    for message in entry.messages:
        out.append(_html_bubble(message, available))
    if not entry.messages:
        text = _skipped_text(entry)
        out.append(f'<div class="bubble"><div class="text">{esc(_clip(text, 600))}</div></div>')
    if entry.decisions:
        out.append('<ul class="decisions">')
        out.extend(f"<li>{esc(d.code)}: {esc(d.detail)}</li>" for d in entry.decisions)
        out.append("</ul>")
    out.append("</section>")
    return "\n".join(out)


def _html_bubble(message: RenderedMessage, available: set[str]) -> str:
    esc = html.escape
    payload = message.payload
    kind = str(payload.get("type"))
    infos = message.media
    length = _text_length(payload)
    counter = f'<div class="len">{length["utf16"]}/{length["cap"]}</div>' if length else ""
    text = str(payload.get("text") or "")
    if kind == "picture":
        src = _media_src(str(payload.get("media", "")), infos, available)
        caption = f'<div class="caption text">{to_html(text)}</div>' if text else ""
        return (
            f'<div class="bubble picture" data-type="picture"><img src="{esc(src)}" alt="">'
            f"{caption}{counter}</div>"
        )
    if kind == "video":
        thumb = str(payload.get("thumbnail", ""))
        img = f'<img class="thumb" src="{esc(_media_src(thumb, infos, available))}" alt="">'
        img = img if thumb else ""
        return (
            f'<div class="bubble card" data-type="video">{img}▶ video, '
            f"{esc(str(payload.get('duration', '?')))} s, "
            f"{esc(_human_size(payload.get('size')))}</div>"
        )
    if kind == "file":
        return (
            f'<div class="bubble card" data-type="file">📄 {esc(str(payload.get("file_name")))}'
            f" · {esc(_human_size(payload.get('size')))}</div>"
        )
    if kind == "url":
        media = str(payload.get("media", ""))
        title = f"<div>{esc(text)}</div>" if text else ""
        return (
            f'<div class="bubble card" data-type="url">{title}'
            f'<a href="{esc(media)}">{esc(media)}</a></div>'
        )
    return (
        f'<div class="bubble" data-type="{esc(kind)}">'
        f'<div class="text">{to_html(text)}</div>{counter}</div>'
    )
