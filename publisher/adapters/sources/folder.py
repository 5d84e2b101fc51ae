"""A folder as a source: drop files in, they are posted in name order.

What a file becomes (only files directly in the folder; subfolders are
ignored)::

    001-sunrise.jpg  + 001-sunrise.txt    a picture post; the .txt is its caption
    002-clip.mp4     (+ 002-clip.md)      a video post (caption optional)
    003-note.txt     or  003-note.md      a text post (Markdown converted, never raw)
    004-report.pdf                        a file post (any other extension)

- Pictures: jpg jpeg png gif webp bmp tif tiff heic heif avif. Videos: mp4
  mov m4v. A ``.txt``/``.md`` with the same stem as a picture, video or file
  is that item's caption (a *sidecar*), not an item of its own.
- Order: natural name order (``2`` before ``10``; ``001-``, ``002-`` work).
  An item's ``published`` is the scan time, so the items of one scan are
  posted in name order, after those found by earlier scans.
- Ignored: ``posted/``, ``failed/`` and every other subfolder, hidden files
  (``.name``), and partial downloads (``.part``, ``.tmp``, ``.crdownload``,
  ``.partial``, ``.download``, names ending ``~``).
- Never outside the root: a symlink is followed only when it resolves
  inside the folder; one leading out is refused and reported as a problem.

**Files still being written** are *pending*, not items, until they are
stable: a file is stable when its size and mtime have not changed for
``settle`` (the source's key, default :data:`SETTLE`, 5 s): its mtime is at
least ``settle`` old, or the scans have seen the same size and mtime for at
least ``settle`` (an mtime in the future, a copy that kept an old one). So
the very first scan of a folder of files dropped a while ago posts them right
away, while a file being copied in is picked up on the first poll after it
has stopped changing for ``settle``. An item is pending while any of its
files (picture or sidecar) is.

**Unusable names.** A file whose name is not UTF-8 (Linux allows any bytes)
or holds control characters (a newline, a tab) cannot be posted, logged or
recorded as it is: it is *rejected* (``FolderScan.rejected``, with the
reason), and the poll moves it to ``failed/`` with ``<name>.reason.txt``
saying to rename it; the rest of the folder goes on. :func:`shown` is the
form of a name used in every message.

**Scheduled posts.** A sidecar or text post may begin with a send-at time::

    send-at: 2026-12-01 09:00
    The caption follows on the next lines.

or the same inside a front-matter block::

    ---
    send-at: 2026-12-01T09:00:00+02:00
    ---
    The caption.

A time without an offset is local time in the scan's ``timezone`` (the
source's policy timezone); ISO 8601 with an offset (or ``Z``) is taken as
given; a date alone means midnight. The line (or block) is removed from the
caption and the time becomes ``Item.send_at`` (aware UTC). A send-at that
cannot be read is a problem, and the item is held back (neither posted nor
pending) until the sidecar is fixed.

After posting, :func:`move_done` moves an item's files to ``posted/`` or
``failed/`` (with ``<name>.reason.txt`` beside a failed file), never
overwriting: a clash gets ``-1``, ``-2``... before the extension.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from publisher.core.errors import SourceError
from publisher.core.identity import content_hash
from publisher.core.items import Item, MediaCandidate, MediaKind
from publisher.core.render.markdown import markdown_to_html

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif"}
)
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v"})
TEXT_EXTENSIONS = frozenset({".txt", ".md"})
PARTIAL_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial", ".download", "~")
POSTED = "posted"
FAILED = "failed"
#: A file not seen before counts as stable once unmodified for this long.
SETTLE = timedelta(seconds=5)
#: Text posts and captions larger than this are refused.
MAX_TEXT_BYTES = 1_000_000

_MIME = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".avif": "image/avif",
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
    ".m4v": "video/x-m4v",
}

Snapshot = dict[str, tuple[int, float, float]]


@dataclass(frozen=True)
class FolderScan:
    """What one look at the folder found.

    ``items`` are ready to post, in name order; ``pending`` are files not yet
    stable (looked at again next poll); ``rejected`` are files that can never
    be posted as they are named, with the reason (to be moved to ``failed/``);
    ``problems`` are readable lines for the operator; ``snapshot`` (name →
    (size, mtime, since): since when, as a timestamp, the scans have seen that
    size and mtime) is to be passed back as ``previous`` on the next scan.
    """

    items: list[Item] = field(default_factory=list)
    pending: list[Path] = field(default_factory=list)
    rejected: list[tuple[Path, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    snapshot: Snapshot = field(default_factory=dict)


@dataclass
class _File:
    path: Path
    name: str
    size: int
    mtime: float
    stable: bool

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix.lower()

    @property
    def stem(self) -> str:
        return Path(self.name).stem


def natural_key(name: str) -> tuple[tuple[str, int], ...]:
    """Sort key so that ``"2"`` < ``"10"`` and ``"a"`` == ``"A"`` up to ties."""
    parts = re.split(r"(\d+)", name)
    key: list[tuple[str, int]] = []
    for index in range(0, len(parts), 2):
        number = int(parts[index + 1]) if index + 1 < len(parts) else -1
        key.append((parts[index].casefold(), number))
    key.append((name, 0))  # ties broken by the exact name
    return tuple(key)


def shown(name: str) -> str:
    """A file name as messages show it: bytes that are not UTF-8 as ``\\xff``,
    control characters escaped (``\\n``), so a line of the log stays one line."""
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def unusable_name(name: str) -> str | None:
    """Why a file cannot be posted under ``name``; None when it can."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return (
            f"the file name {shown(name)} is not valid UTF-8 (saved by a system using "
            "another encoding); rename it using UTF-8 and put it back in the folder"
        )
    if any(unicodedata.category(c) == "Cc" for c in name):
        return (
            f"the file name {shown(name)} holds control characters (a newline, a tab); "
            "rename it without them and put it back in the folder"
        )
    return None


def is_ignored(name: str) -> bool:
    """Hidden files and partial downloads are never items."""
    lower = name.lower()
    return name.startswith(".") or lower.endswith(PARTIAL_SUFFIXES)


def kind_of(suffix: str) -> MediaKind:
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return "file"


def scan_folder(
    root: Path,
    source_name: str,
    previous: Mapping[str, Sequence[float]] | None,
    *,
    now: datetime | None = None,
    timezone: str | tzinfo = "UTC",
    settle: timedelta = SETTLE,
) -> FolderScan:
    """Look at ``root`` once; see the module docstring for the rules.

    Raises SourceError when the folder itself is missing or unreadable.
    """
    now = now or datetime.now(UTC)
    tz = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
    try:
        real_root = root.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise SourceError(f"{root}: the folder does not exist; create it or fix path") from exc
    if not real_root.is_dir():
        raise SourceError(f"{root}: is not a folder; fix path")
    try:
        entries = sorted(os.scandir(real_root), key=lambda e: natural_key(e.name))
    except OSError as exc:
        raise SourceError(
            f"{root}: the folder cannot be read ({exc.strerror or exc}); check its permissions"
        ) from exc

    problems: list[str] = []
    rejected: list[tuple[Path, str]] = []
    snapshot: Snapshot = {}
    files: list[_File] = []
    stamp = now.timestamp()
    wait = settle.total_seconds()
    for entry in entries:
        name = entry.name
        if is_ignored(name):
            continue
        found = _look(entry, real_root, problems)
        if found is None:
            continue
        path, size, mtime = found
        why = unusable_name(name)
        if why is not None:
            rejected.append((path, why))
            continue
        since = _unchanged_since(previous, name, size, mtime, stamp)
        snapshot[name] = (size, mtime, since)
        stable = stamp - mtime >= wait or stamp - since >= wait
        files.append(_File(path, name, size, mtime, stable))

    groups = _group(files)
    items: list[Item] = []
    pending: list[Path] = []
    for main, sidecar in groups:
        members = [main] + ([sidecar] if sidecar else [])
        if not all(f.stable for f in members):
            pending.extend(f.path for f in members)
            continue
        item = _make_item(main, sidecar, source_name, tz, problems, now)
        if item is not None:
            items.append(item)
    return FolderScan(
        items=items, pending=pending, rejected=rejected, problems=problems, snapshot=snapshot
    )


def _unchanged_since(
    previous: Mapping[str, Sequence[float]] | None,
    name: str,
    size: int,
    mtime: float,
    now: float,
) -> float:
    """Since when the scans have seen ``name`` with this size and mtime: the
    previous snapshot's time when they match, else ``now``. A snapshot of an
    older version (size, mtime) has no time: a match there counts as settled."""
    old = previous.get(name) if previous is not None else None
    try:
        if old is None or (int(old[0]), float(old[1])) != (size, mtime):
            return now
        return float(old[2]) if len(old) > 2 else 0.0
    except (TypeError, ValueError, IndexError):
        return now  # a damaged snapshot: as if never seen


def _look(
    entry: os.DirEntry[str], root: Path, problems: list[str]
) -> tuple[Path, int, float] | None:
    """A regular file inside ``root``: (path, size, mtime); None otherwise."""
    name = entry.name
    path = Path(entry.path)
    try:
        if entry.is_symlink():
            try:
                target = path.resolve(strict=True)
            except (OSError, RuntimeError):
                problems.append(f"{shown(name)}: a broken symlink; ignored")
                return None
            if not target.is_relative_to(root):
                problems.append(
                    f"{shown(name)}: a symlink leading outside the folder "
                    f"(to {shown(str(target))}); refused, "
                    "copy the file into the folder instead"
                )
                return None
            if not target.is_file():
                return None
            stat = target.stat()
            return path, stat.st_size, stat.st_mtime
        if not entry.is_file(follow_symlinks=False):
            return None  # subfolders (posted/, failed/ and others), sockets, fifos
        stat = entry.stat(follow_symlinks=False)
    except OSError as exc:
        problems.append(f"{shown(name)}: cannot be read ({exc.strerror or exc}); ignored")
        return None
    return path, stat.st_size, stat.st_mtime


def _group(files: Sequence[_File]) -> list[tuple[_File, _File | None]]:
    """Pair each picture, video or file with its caption sidecar; text files
    without a partner are text posts. Keeps name order."""
    by_stem: dict[str, list[_File]] = {}
    for f in files:
        by_stem.setdefault(f.stem, []).append(f)
    sidecar_of: dict[str, _File] = {}
    used: set[str] = set()
    for members in by_stem.values():
        mains = [f for f in members if f.suffix not in TEXT_EXTENSIONS]
        texts = [f for f in members if f.suffix in TEXT_EXTENSIONS]
        if mains and texts:
            sidecar_of[mains[0].name] = texts[0]
            used.add(texts[0].name)
    groups: list[tuple[_File, _File | None]] = []
    for f in files:
        if f.name in used:
            continue
        groups.append((f, sidecar_of.get(f.name)))
    return groups


def _read_text(f: _File, problems: list[str]) -> str | None:
    if f.size > MAX_TEXT_BYTES:
        problems.append(
            f"{f.name}: larger than {MAX_TEXT_BYTES:,} bytes; too long for a post, ignored"
        )
        return None
    try:
        raw = f.path.read_bytes()
    except OSError as exc:
        problems.append(f"{f.name}: cannot be read ({exc.strerror or exc}); ignored")
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        problems.append(f"{f.name}: is not UTF-8; read as Windows-1252, save it as UTF-8")
        text = raw.decode("cp1252", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


_SEND_AT_LINE = re.compile(r"^\s*send[-_ ]?at\s*:\s*(.*?)\s*$", re.IGNORECASE)


class _BadSendAt(ValueError):
    pass


def split_front_matter(text: str, tz: tzinfo) -> tuple[datetime | None, str]:
    """``(send_at, caption)`` from a sidecar's text; raise ValueError with a
    readable message when a send-at is present but cannot be read."""
    lines = text.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return None, text.strip()
    if lines[first].strip() == "---":
        try:
            end = next(i for i in range(first + 1, len(lines)) if lines[i].strip() == "---")
        except StopIteration:
            return None, text.strip()  # a lone --- is just text
        send_at: datetime | None = None
        for line in lines[first + 1 : end]:
            if not line.strip():
                continue
            match = _SEND_AT_LINE.match(line)
            if match is None:
                key = line.split(":", 1)[0].strip()
                raise _BadSendAt(f"unknown front-matter key {key!r}; only send-at is known")
            send_at = parse_send_at(match.group(1), tz)
        return send_at, "\n".join(lines[end + 1 :]).strip()
    match = _SEND_AT_LINE.match(lines[first])
    if match is None:
        return None, text.strip()
    return parse_send_at(match.group(1), tz), "\n".join(lines[first + 1 :]).strip()


def parse_send_at(value: str, tz: tzinfo) -> datetime:
    """``2026-12-01 09:00`` (local in ``tz``), ``2026-12-01T09:00+02:00``,
    ``...Z``, or ``2026-12-01`` (midnight local) → aware UTC."""
    text = value.strip().strip("\"'")
    if not text:
        raise _BadSendAt("send-at is empty")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        try:
            when = datetime.combine(date.fromisoformat(text), time(0, 0))
        except ValueError:
            raise _BadSendAt(
                f"send-at {text!r} is not a date and time; write e.g. "
                "send-at: 2026-12-01 09:00 or 2026-12-01T09:00+02:00"
            ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return when.astimezone(UTC)


def _file_key(name: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256(f"{name}\0{size}\0{mtime!r}".encode()).hexdigest()[:16]
    return f"file:{name}@{digest}"


def _make_item(
    main: _File,
    sidecar: _File | None,
    source_name: str,
    tz: tzinfo,
    problems: list[str],
    found_at: datetime,
) -> Item | None:
    send_at: datetime | None = None
    caption = ""
    text_file = main if main.suffix in TEXT_EXTENSIONS else sidecar
    if text_file is not None:
        raw = _read_text(text_file, problems)
        if raw is None:
            return None
        try:
            send_at, caption = split_front_matter(raw, tz)
        except ValueError as exc:
            problems.append(f"{text_file.name}: {exc}; the item is held back until it is fixed")
            return None
    # A Markdown note is posted as what it says, never as raw Markdown.
    markdown = markdown_to_html(caption) if text_file and text_file.suffix == ".md" else ""
    files = (main.path,) + ((sidecar.path,) if sidecar else ())
    # When the item was found, not the file's mtime (a copied file keeps an
    # arbitrary one): the delivery policy orders by published time, and the
    # items of one scan must go in name order; ``max_age`` counts from here.
    published = found_at
    key = _file_key(main.name, main.size, main.mtime)
    if main.suffix in TEXT_EXTENSIONS:
        if not caption:
            problems.append(f"{main.name}: empty text post; ignored")
            return None
        return Item(
            source=source_name,
            key=key,
            text=caption,
            html=markdown,
            published=published,
            send_at=send_at,
            content_hash=content_hash(caption),
            files=files,
        )
    kind = kind_of(main.suffix)
    media = MediaCandidate(
        path=main.path,
        kind=kind,
        mime=_MIME.get(main.suffix),
        length=main.size,
        origin="folder",
    )
    return Item(
        source=source_name,
        key=key,
        title="",
        text=caption,
        html=markdown,
        published=published,
        attached=(media,),
        send_at=send_at,
        content_hash=content_hash(main.name, str(main.size), str(main.mtime), caption),
        files=files,
    )


# --------------------------------------------------------------------------
# after posting


def move_done(root: Path, files: Iterable[Path], ok: bool, reason: str | None = None) -> list[Path]:
    """Move an item's files into ``root/posted`` (``ok``) or ``root/failed``.

    Never overwrites: a clash gets ``-1``, ``-2``... before the extension. A
    failed item's first file gets ``<name>.reason.txt`` beside it holding
    ``reason``. Files already gone are skipped. Returns the new paths.
    Raises SourceError for a file outside ``root`` or a move that fails.
    """
    real_root = root.resolve()
    target_dir = real_root / (POSTED if ok else FAILED)
    moved: list[Path] = []
    errors: list[str] = []
    for file in files:
        source = file if file.is_absolute() else real_root / file
        # a symlink inside the folder is moved itself, never its target
        parent = source.parent.resolve()
        if parent != real_root:
            errors.append(f"{file}: not directly in {root}; not moved")
            continue
        source = parent / source.name
        if not source.exists() and not source.is_symlink():
            continue
        try:
            target_dir.mkdir(exist_ok=True)
            target = _move_exclusive(source, target_dir)
        except FileNotFoundError:
            continue  # moved by someone else meanwhile (the deliverer, `skip`)
        except OSError as exc:
            errors.append(
                f"{source.name}: could not be moved to {target_dir} ({exc.strerror or exc})"
            )
            continue
        moved.append(target)
    if not ok and moved:
        note = (reason or "no reason recorded").rstrip() + "\n"
        try:
            _write_exclusive(moved[0].with_name(moved[0].name + ".reason.txt"), note)
        except OSError as exc:
            errors.append(f"{moved[0].name}: the reason file could not be written ({exc})")
    if errors:
        raise SourceError("; ".join(errors) + "; check the folder's permissions")
    return moved


def _candidates(directory: Path, name: str) -> Iterable[Path]:
    yield directory / name
    stem, dot, suffix = name.rpartition(".")
    if not stem:  # no extension (or a dot-file)
        stem, dot, suffix = name, "", ""
    for n in range(1, 10_000):
        yield directory / f"{stem}-{n}{dot}{suffix}"


def _move_exclusive(source: Path, directory: Path) -> Path:
    for target in _candidates(directory, source.name):
        if target.exists() or target.is_symlink():
            continue
        try:
            os.link(source, target, follow_symlinks=False)
        except FileExistsError:
            continue  # lost a race: try the next name
        except FileNotFoundError:
            raise  # the source is gone: moved by someone else
        except OSError:
            # no hard links here (some file systems): rename, having checked
            os.rename(source, target)
            return target
        try:
            os.unlink(source)
        except FileNotFoundError:
            # Another mover linked and unlinked it first: theirs is the copy kept.
            os.unlink(target)
            raise
        return target
    raise OSError(f"no free name for {source.name} in {directory}")


def _write_exclusive(path: Path, text: str) -> Path:
    for target in _candidates(path.parent, path.name):
        try:
            with target.open("x", encoding="utf-8") as handle:
                handle.write(text)
        except FileExistsError:
            continue
        return target
    raise OSError(f"no free name for {path.name}")
