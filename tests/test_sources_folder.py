"""Folder sources: order, sidecars, pending files, symlinks, schedules, moves."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from publisher.adapters.sources.folder import (
    FolderScan,
    move_done,
    parse_send_at,
    scan_folder,
    split_front_matter,
)
from publisher.core.errors import SourceError

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
OLD = (NOW - timedelta(hours=1)).timestamp()


def put(root: Path, name: str, data: bytes | str = b"x", mtime: float = OLD) -> Path:
    path = root / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    os.utime(path, (mtime, mtime))
    return path


def scan(root: Path, previous: Mapping[str, Any] | None = None, **kw: Any) -> FolderScan:
    return scan_folder(root, "folder", previous, now=NOW, **kw)


def test_kinds_order_and_sidecars(tmp_path: Path) -> None:
    put(tmp_path, "10-last.txt", "ten")
    put(tmp_path, "2-photo.jpg", b"\xff\xd8\xff")
    put(tmp_path, "2-photo.txt", "the caption\n")
    put(tmp_path, "001-first.md", "# hello")
    put(tmp_path, "3-clip.MP4", b"video")
    put(tmp_path, "4-report.pdf", b"%PDF")
    put(tmp_path, "5-pic.webp", b"RIFF")
    result = scan(tmp_path)
    assert [i.files[0].name for i in result.items] == [
        "001-first.md",
        "2-photo.jpg",
        "3-clip.MP4",
        "4-report.pdf",
        "5-pic.webp",
        "10-last.txt",
    ]
    first, photo, clip, report, pic, last = result.items
    assert first.text == "# hello" and first.media == ()
    assert photo.text == "the caption" and photo.files[1].name == "2-photo.txt"
    assert photo.media[0].kind == "image" and photo.media[0].path == tmp_path / "2-photo.jpg"
    assert photo.media[0].origin == "folder" and photo.media[0].length == 3
    assert clip.media[0].kind == "video" and report.media[0].kind == "file"
    assert pic.media[0].kind == "image" and pic.text == ""
    assert last.text == "ten"
    assert len({i.key for i in result.items}) == 6
    assert all(i.source == "folder" and i.published is not None for i in result.items)
    assert result.pending == [] and result.problems == []
    assert set(result.snapshot) == {p.name for p in tmp_path.iterdir()}


def test_ignored_files(tmp_path: Path) -> None:
    for name in (".hidden.jpg", "a.jpg.part", "b.tmp", "c.crdownload", "d.txt~", ".DS_Store"):
        put(tmp_path, name)
    (tmp_path / "posted").mkdir()
    put(tmp_path / "posted", "old.jpg")
    (tmp_path / "failed").mkdir()
    (tmp_path / "sub").mkdir()
    put(tmp_path / "sub", "nested.jpg")
    put(tmp_path, "real.jpg")
    result = scan(tmp_path)
    assert [i.files[0].name for i in result.items] == ["real.jpg"]


def test_pending_until_stable(tmp_path: Path) -> None:
    put(tmp_path, "old.jpg")
    fresh = put(tmp_path, "new.jpg", b"12", mtime=(NOW - timedelta(seconds=1)).timestamp())
    first = scan(tmp_path)
    assert [i.files[0].name for i in first.items] == ["old.jpg"]
    assert first.pending == [fresh]
    # grew since: still pending
    put(tmp_path, "new.jpg", b"1234", mtime=NOW.timestamp())
    second = scan(tmp_path, first.snapshot)
    assert second.pending == [fresh]
    # unchanged since the last look, but not yet for settle: still pending
    assert scan(tmp_path, second.snapshot).pending == [fresh]
    # unchanged for settle (5 s) by the scans' count: stable although its
    # mtime is recent (here: in the future, a clock ahead)
    put(tmp_path, "new.jpg", b"1234", mtime=(NOW + timedelta(hours=1)).timestamp())
    third = scan(tmp_path, second.snapshot)
    assert third.pending == [fresh]
    later = scan_folder(tmp_path, "folder", third.snapshot, now=NOW + timedelta(seconds=5))
    assert [i.files[0].name for i in later.items] == ["new.jpg", "old.jpg"]
    assert later.pending == []


def test_settle_is_the_sources_key(tmp_path: Path) -> None:
    just_now = put(tmp_path, "a.jpg", mtime=(NOW - timedelta(seconds=30)).timestamp())
    assert scan(tmp_path, settle=timedelta(minutes=1)).pending == [just_now]
    assert len(scan(tmp_path, settle=timedelta(seconds=10)).items) == 1
    assert len(scan(tmp_path, settle=timedelta(0)).items) == 1


def test_unusable_names_are_rejected_with_a_reason_the_rest_goes_on(tmp_path: Path) -> None:
    put(tmp_path, "1-first.txt", "first")
    latin1 = os.fsdecode(b"2-caf\xe9.jpg")
    put(tmp_path, latin1, b"\xff\xd8\xff")
    put(tmp_path, "3-two\nlines.txt", "x")
    put(tmp_path, "4-last.txt", "last")
    result = scan(tmp_path)
    assert [i.files[0].name for i in result.items] == ["1-first.txt", "4-last.txt"]
    assert [(p.name, why.split(";")[0]) for p, why in result.rejected] == [
        (
            latin1,
            "the file name 2-caf\\xe9.jpg is not valid UTF-8 (saved by a system using "
            "another encoding)",
        ),
        (
            "3-two\nlines.txt",
            "the file name 3-two\\nlines.txt holds control characters (a newline, a tab)",
        ),
    ]
    assert all("rename it" in why for _, why in result.rejected)
    assert set(result.snapshot) == {"1-first.txt", "4-last.txt"}
    # what is rejected can be moved to failed/ with its reason
    moved = move_done(tmp_path, [result.rejected[0][0]], ok=False, reason=result.rejected[0][1])
    assert moved == [tmp_path / "failed" / latin1]
    reason = (tmp_path / "failed" / (latin1 + ".reason.txt")).read_text(encoding="utf-8")
    assert "not valid UTF-8" in reason


def test_sidecar_being_written_holds_the_item(tmp_path: Path) -> None:
    put(tmp_path, "a.jpg")
    put(tmp_path, "a.txt", "cap", mtime=NOW.timestamp())
    result = scan(tmp_path)
    assert result.items == [] and sorted(p.name for p in result.pending) == ["a.jpg", "a.txt"]


def test_previous_snapshot_from_json_lists(tmp_path: Path) -> None:
    put(tmp_path, "a.jpg", mtime=NOW.timestamp())
    first = scan(tmp_path)
    restored = {k: [v[0], v[1]] for k, v in first.snapshot.items()}
    assert len(scan(tmp_path, restored).items) == 1


def test_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "inbox"
    root.mkdir()
    outside = put(tmp_path, "secret.txt", "do not post")
    put(root, "inside.jpg")
    (root / "escape.txt").symlink_to(outside)
    (root / "alias.jpg").symlink_to(root / "inside.jpg")
    (root / "broken.jpg").symlink_to(root / "missing.jpg")
    result = scan(root)
    names = [i.files[0].name for i in result.items]
    assert names == ["alias.jpg", "inside.jpg"]
    assert any("escape.txt" in p and "outside" in p for p in result.problems)
    assert any("broken.jpg" in p for p in result.problems)
    assert all("do not post" not in i.text for i in result.items)


def test_missing_folder_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        scan(tmp_path / "nope")


def test_scheduled_sidecar(tmp_path: Path) -> None:
    put(tmp_path, "a.jpg")
    put(tmp_path, "a.txt", "send-at: 2026-12-01 09:00\nHello\nworld\n")
    put(tmp_path, "b.md", "---\nsend-at: 2026-12-01T09:00:00+02:00\n---\nBlock caption")
    put(tmp_path, "c.txt", "send-at: tomorrow-ish\nbad")
    put(tmp_path, "d.txt", "no schedule here: fine")
    result = scan(tmp_path, timezone="Europe/Kyiv")
    by_name = {i.files[0].name: i for i in result.items}
    assert by_name["a.jpg"].text == "Hello\nworld"
    assert by_name["a.jpg"].send_at == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)  # UTC+2 in winter
    assert by_name["b.md"].text == "Block caption"
    assert by_name["b.md"].send_at == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    assert by_name["d.txt"].send_at is None and by_name["d.txt"].text == "no schedule here: fine"
    assert "c.txt" not in by_name
    assert any(p.startswith("c.txt: send-at 'tomorrow-ish' is not a date") for p in result.problems)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-12-01 09:00", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
        ("2026-12-01T09:00:00Z", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
        ("2026-12-01T09:00+05:30", datetime(2026, 12, 1, 3, 30, tzinfo=UTC)),
        ("2026-12-01", datetime(2026, 12, 1, 0, 0, tzinfo=UTC)),
        ('"2026-12-01 09:00"', datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
    ],
)
def test_parse_send_at(value: str, expected: datetime) -> None:
    assert parse_send_at(value, UTC) == expected


@pytest.mark.parametrize("value", ["", "soon", "2026-13-01 09:00", "01/12/2026"])
def test_parse_send_at_refuses(value: str) -> None:
    with pytest.raises(ValueError):
        parse_send_at(value, UTC)


@pytest.mark.parametrize(
    ("text", "send_at", "caption"),
    [
        ("plain caption", None, "plain caption"),
        ("\n\nSend-At: 2026-01-01 10:00\n\ncap", datetime(2026, 1, 1, 10, tzinfo=UTC), "cap"),
        ("---\n---\nempty block", None, "empty block"),
        ("--- not a block", None, "--- not a block"),
        ("---\nlone opener", None, "---\nlone opener"),
    ],
)
def test_split_front_matter(text: str, send_at: datetime | None, caption: str) -> None:
    assert split_front_matter(text, UTC) == (send_at, caption)


def test_unknown_front_matter_key_is_a_problem(tmp_path: Path) -> None:
    put(tmp_path, "a.txt", "---\ncolour: blue\n---\nhi")
    result = scan(tmp_path)
    assert result.items == [] and "unknown front-matter key 'colour'" in result.problems[0]


def test_non_utf8_text_is_read_with_a_note(tmp_path: Path) -> None:
    put(tmp_path, "a.txt", "café".encode("cp1252"))
    result = scan(tmp_path)
    assert result.items[0].text == "café" and "not UTF-8" in result.problems[0]


def test_move_done(tmp_path: Path) -> None:
    photo = put(tmp_path, "a.jpg", b"one")
    caption = put(tmp_path, "a.txt", "cap")
    moved = move_done(tmp_path, [photo, caption], ok=True, reason=None)
    assert moved == [tmp_path / "posted" / "a.jpg", tmp_path / "posted" / "a.txt"]
    assert not photo.exists() and moved[0].read_bytes() == b"one"
    # a second a.jpg never overwrites the first
    again = put(tmp_path, "a.jpg", b"two")
    [second] = move_done(tmp_path, [again], ok=True, reason=None)
    assert second == tmp_path / "posted" / "a-1.jpg" and second.read_bytes() == b"two"
    assert (tmp_path / "posted" / "a.jpg").read_bytes() == b"one"


def test_move_failed_with_reason(tmp_path: Path) -> None:
    bad = put(tmp_path, "b.png", b"bad")
    [moved] = move_done(tmp_path, [bad, tmp_path / "gone.txt"], ok=False, reason="not an image")
    assert moved == tmp_path / "failed" / "b.png"
    assert (tmp_path / "failed" / "b.png.reason.txt").read_text() == "not an image\n"
    bad2 = put(tmp_path, "b.png", b"bad again")
    [moved2] = move_done(tmp_path, [bad2], ok=False, reason="still bad")
    assert moved2.name == "b-1.png"
    assert (tmp_path / "failed" / "b-1.png.reason.txt").read_text() == "still bad\n"
    # moved files are not items any more
    assert scan(tmp_path).items == []


def test_move_refuses_files_outside_root(tmp_path: Path) -> None:
    root = tmp_path / "inbox"
    root.mkdir()
    outside = put(tmp_path, "x.jpg")
    with pytest.raises(SourceError, match="not directly in"):
        move_done(root, [outside], ok=True, reason=None)
    assert outside.exists()


def test_move_symlink_moves_the_link_not_the_target(tmp_path: Path) -> None:
    target = put(tmp_path, "real.jpg")
    link = tmp_path / "alias.jpg"
    link.symlink_to(target)
    [moved] = move_done(tmp_path, [link], ok=True, reason=None)
    assert moved.is_symlink() and target.exists()


def test_send_at_is_read_in_the_sources_timezone(tmp_path: Path) -> None:
    """Bug: a caption's `send-at: 2026-12-01 09:00` was read as UTC, not in the
    source's timezone (the channel's, unless the source names its own)."""
    from publisher.adapters.sources.folder_source import FolderSource
    from publisher.config import parse_config
    from publisher.core.records import SourceState

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "001-note.txt").write_text("send-at: 2026-12-01 09:00\nGood morning", "utf-8")
    old = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    os.utime(inbox / "001-note.txt", (old, old))
    config = parse_config(
        {
            "delivery": {"timezone": "Europe/Berlin"},
            "sources": [{"name": "inbox", "type": "folder", "path": str(inbox)}],
        }
    )
    source = FolderSource(config.source("inbox"))
    read = source.read(SourceState("inbox"), datetime(2026, 11, 30, tzinfo=UTC))
    (item,) = read.items
    assert item.text == "Good morning"
    assert item.send_at == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
