from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from publisher.adapters.mediafolder import (
    NAME_RE,
    TEMP_PREFIX,
    MediaStore,
    check_name,
    sanitize_ext,
)

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
HEX32 = "0123456789abcdef" * 2
HEX64 = HEX32 * 2


def set_mtime(path: Path, when: datetime) -> None:
    os.utime(path, (when.timestamp(), when.timestamp()), follow_symlinks=False)


@pytest.fixture
def store(tmp_path: Path) -> MediaStore:
    return MediaStore(tmp_path / "media")


def listing(store: MediaStore) -> list[str]:
    return sorted(os.listdir(store.root))


def test_put_is_content_addressed(store: MediaStore) -> None:
    data = b"\xff\xd8\xff\xe0 picture bytes"
    name = store.put(data, ".jpg")
    assert name == hashlib.sha256(data).hexdigest()[:32] + ".jpg"
    assert NAME_RE.fullmatch(name)
    assert store.path(name).read_bytes() == data
    assert store.path(name).stat().st_mode & 0o777 == 0o644
    assert store.exists(name)
    assert listing(store) == [name]  # no temporary file left behind


def test_put_same_bytes_twice_gives_one_file(store: MediaStore) -> None:
    first = store.put(b"same", ".mp4")
    second = store.put(b"same", "mp4")
    assert first == second
    assert listing(store) == [first]
    other = store.put(b"same", ".png")
    assert other != first and other.startswith(first[:32])
    assert listing(store) == sorted([first, other])


def test_put_again_refreshes_mtime_so_prune_keeps_it(store: MediaStore) -> None:
    name = store.put(b"reused", ".jpg")
    long_ago = datetime(2001, 1, 1, tzinfo=UTC)  # before the real clock, whatever it says
    set_mtime(store.path(name), long_ago)
    assert store.put(b"reused", ".jpg") == name
    assert store.path(name).stat().st_mtime > long_ago.timestamp()


def test_put_repairs_a_truncated_file(store: MediaStore) -> None:
    name = store.put(b"complete content", ".jpg")
    store.path(name).write_bytes(b"compl")
    assert store.put(b"complete content", ".jpg") == name
    assert store.path(name).read_bytes() == b"complete content"


def test_put_replaces_a_symlink_instead_of_writing_through_it(
    store: MediaStore, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"do not touch")
    data = b"twelve bytes"
    name = hashlib.sha256(data).hexdigest()[:32] + ".jpg"
    (store.root / name).symlink_to(outside)
    assert store.put(data, ".jpg") == name
    assert outside.read_bytes() == b"do not touch"
    assert not store.path(name).is_symlink()
    assert store.path(name).read_bytes() == data


def test_put_file_streams_a_copy(store: MediaStore, tmp_path: Path) -> None:
    source = tmp_path / "Clip.MP4"
    data = os.urandom(3 * 1024 * 1024 + 17)
    source.write_bytes(data)
    name = store.put_file(source)
    assert name == store.put(data, ".mp4")
    assert name.endswith(".mp4")
    assert store.path(name).read_bytes() == data
    assert store.put_file(source, ext=".bin").endswith(".bin")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (".jpg", ".jpg"),
        ("jpg", ".jpg"),
        (".JPEG", ".jpg"),
        ("photo.Jpe", ".jpg"),
        ("archive.tar.gz", ".gz"),
        (".mp4", ".mp4"),
        ("report.PDF", ".pdf"),
        (".a-b_c", ".abc"),
        (".verylongextension", ".verylongex"),
        ("файл.docx", ".docx"),
    ],
)
def test_sanitize_ext(given: str, expected: str) -> None:
    assert sanitize_ext(given) == expected


@pytest.mark.parametrize("given", ["", ".", "README.", ".ü", ".-_", "name.💥"])
def test_sanitize_ext_refuses_what_is_left_empty(given: str, store: MediaStore) -> None:
    with pytest.raises(ValueError):
        sanitize_ext(given)
    with pytest.raises(ValueError):
        store.put(b"x", given)
    assert listing(store) == []


@pytest.mark.parametrize(
    "name", [HEX32 + ".jpg", HEX64 + ".mp4", HEX32 + "a.x", HEX32 + ".abcdefghij"]
)
def test_valid_names(name: str, store: MediaStore) -> None:
    assert check_name(name) == name
    assert store.path(name) == store.root / name
    assert not store.exists(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".jpg",
        HEX32,
        HEX32 + ".",
        HEX32[:31] + ".jpg",  # too short
        HEX64 + "0.jpg",  # too long
        HEX32.upper() + ".jpg",
        HEX32 + ".JPG",
        HEX32 + ".abcdefghijk",  # extension too long
        HEX32 + ".tar.gz",
        HEX32 + ".jp g",
        HEX32 + ".jpg\n",
        HEX32 + ".jpg\x00",
        "../" + HEX32 + ".jpg",
        "/etc/passwd",
        "..",
        HEX32 + ".jpg/..",
        "sub/" + HEX32 + ".jpg",
        "..\\" + HEX32 + ".jpg",
        "g" + HEX32[1:] + ".jpg",
        TEMP_PREFIX + "abc.part",
    ],
)
def test_invalid_names(name: str, store: MediaStore) -> None:
    with pytest.raises(ValueError):
        store.path(name)
    with pytest.raises(ValueError):
        store.open(name)
    with pytest.raises(ValueError):
        MediaStore.url("https://example.org", name)
    assert store.exists(name) is False


def test_open_refuses_symlinks_and_directories(store: MediaStore, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"secret")
    (store.root / (HEX32 + ".jpg")).symlink_to(outside)
    (store.root / (HEX32 + ".mp4")).mkdir()
    for name in (HEX32 + ".jpg", HEX32 + ".mp4", HEX32 + ".png"):
        assert not store.exists(name)
        with pytest.raises(FileNotFoundError):
            store.open(name)
    name = store.put(b"real", ".jpg")
    fh, st = store.open(name)
    with fh:
        assert fh.read() == b"real"
    assert st.st_size == 4


@pytest.mark.parametrize("public_url", ["https://pub.example.org", "https://pub.example.org/"])
def test_url(public_url: str) -> None:
    assert (
        MediaStore.url(public_url, HEX32 + ".jpg") == f"https://pub.example.org/media/{HEX32}.jpg"
    )


def test_prune(store: MediaStore, tmp_path: Path) -> None:
    old, new = NOW - timedelta(days=20), NOW - timedelta(days=1)
    cutoff = NOW - timedelta(days=14)
    old_unused = store.put(b"old unused", ".jpg")
    old_in_use = store.put(b"old in use", ".jpg")
    new_unused = store.put(b"new unused", ".mp4")
    for name, when in ((old_unused, old), (old_in_use, old), (new_unused, new)):
        set_mtime(store.path(name), when)
    stale_tmp = store.root / (TEMP_PREFIX + "dead.part")
    live_tmp = store.root / (TEMP_PREFIX + "writing.part")
    stale_tmp.write_bytes(b"crashed write")
    live_tmp.write_bytes(b"write in progress")
    set_mtime(stale_tmp, old)
    set_mtime(live_tmp, new)
    # not ours: left alone however old
    stranger = store.root / "notes.txt"
    stranger.write_text("operator's file")
    outside = tmp_path / "target.jpg"
    outside.write_bytes(b"target")
    link = store.root / (HEX32 + ".jpg")
    link.symlink_to(outside)
    for path in (stranger, outside, link):
        set_mtime(path, old)

    assert store.prune({old_in_use}, cutoff) == [old_unused]

    assert listing(store) == sorted(
        [old_in_use, new_unused, live_tmp.name, stranger.name, link.name]
    )
    assert outside.read_bytes() == b"target"
    # everything unused is old a year later, except what is in use
    later = NOW + timedelta(days=365)
    assert store.prune({old_in_use}, later) == [new_unused]
    assert not live_tmp.exists()
    assert store.prune(set(), later) == [old_in_use]


def test_prune_needs_an_aware_cutoff(store: MediaStore) -> None:
    with pytest.raises(ValueError):
        store.prune(set(), datetime(2030, 1, 1))
