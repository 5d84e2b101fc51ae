from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from s3server import Bucket, S3Server

from publisher import ports
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


# --------------------------------------------------------------------------
# The MediaStore contract, on the folder and on a real S3-compatible server
# (moto's, see tests/s3server.py): what the pipeline, the web server and
# pruning rely on, whichever store stands behind the port.


@dataclass
class Backend:
    """A store under test and what the test needs to look behind it."""

    store: ports.MediaStore
    #: The stored names, and anything else kept there (a stranger's file).
    listing: Callable[[], list[str]]
    #: Put a file that is not a stored name where the store keeps its files.
    add_stranger: Callable[[str], None]
    public_url: str
    #: The URL a stored name gets.
    expected_url: Callable[[str], str]


@pytest.fixture(params=["folder", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "folder":
        folder = MediaStore(tmp_path / "media")
        return Backend(
            store=folder,
            listing=lambda: sorted(os.listdir(folder.root)),
            add_stranger=lambda name: (folder.root / name).write_bytes(b"not ours"),
            public_url="https://pub.example.org",
            expected_url=lambda name: f"https://pub.example.org/media/{name}",
        )
    bucket = request.getfixturevalue("s3_bucket")
    s3 = bucket.store()
    prefix = bucket.prefix + "/"

    def stranger(name: str) -> None:
        bucket.client.put_object(Bucket=bucket.name, Key=prefix + name, Body=b"not ours")

    return Backend(
        store=s3,
        listing=lambda: [k.removeprefix(prefix) for k in bucket.object_keys()],
        add_stranger=stranger,
        public_url="https://ignored.example.org",
        expected_url=lambda name: f"{bucket.public_media_url}/{name}",
    )


def read(store: ports.MediaStore, name: str) -> tuple[bytes, os.stat_result]:
    fh, st = store.open(name)
    with fh:
        return fh.read(), st


def test_contract_put_is_content_addressed_and_reads_back(backend: Backend) -> None:
    data = b"\xff\xd8\xff\xe0 picture bytes"
    name = backend.store.put(data, ".JPEG")
    assert name == hashlib.sha256(data).hexdigest()[:32] + ".jpg"
    assert backend.store.exists(name)
    body, st = read(backend.store, name)
    assert body == data and st.st_size == len(data)
    assert abs(st.st_mtime - time.time()) < 120
    assert backend.listing() == [name]


def test_contract_same_bytes_twice_is_one_file(backend: Backend) -> None:
    first = backend.store.put(b"same", ".mp4")
    assert backend.store.put(b"same", "mp4") == first
    other = backend.store.put(b"same", ".png")
    assert other != first and other.startswith(first[:32])
    assert backend.listing() == sorted([first, other])


def test_contract_put_file_streams_a_copy(backend: Backend, tmp_path: Path) -> None:
    source = tmp_path / "Clip.MP4"
    data = os.urandom(3 * 1024 * 1024 + 17)
    source.write_bytes(data)
    name = backend.store.put_file(source)
    assert name == hashlib.sha256(data).hexdigest()[:32] + ".mp4"
    assert backend.store.put(data, ".mp4") == name
    assert read(backend.store, name)[0] == data
    assert backend.store.put_file(source, ext=".bin").endswith(".bin")


def test_contract_missing_and_invalid_names(backend: Backend) -> None:
    with pytest.raises(FileNotFoundError):
        backend.store.open(HEX32 + ".jpg")
    assert backend.store.exists(HEX32 + ".jpg") is False
    for bad in ("../" + HEX32 + ".jpg", HEX32 + ".JPG", "sub/" + HEX32 + ".jpg", ""):
        with pytest.raises(ValueError):
            backend.store.open(bad)
        with pytest.raises(ValueError):
            backend.store.url(backend.public_url, bad)
        assert backend.store.exists(bad) is False
    with pytest.raises(ValueError):
        backend.store.put(b"x", ".ü")
    assert backend.listing() == []


def test_contract_url(backend: Backend) -> None:
    name = backend.store.put(b"served", ".jpg")
    assert backend.store.url(backend.public_url, name) == backend.expected_url(name)


def test_contract_prune(backend: Backend) -> None:
    in_use = backend.store.put(b"in use", ".jpg")
    unused = backend.store.put(b"unused", ".mp4")
    backend.add_stranger("notes.txt")
    now = datetime.now(UTC)
    # nothing is older than an hour ago: nothing goes
    assert backend.store.prune(set(), now - timedelta(hours=1)) == []
    # an hour from now, everything is old: what is not in use goes, strangers stay
    assert backend.store.prune({in_use}, now + timedelta(hours=1)) == [unused]
    assert backend.listing() == sorted([in_use, "notes.txt"])
    assert not backend.store.exists(unused)
    with pytest.raises(ValueError):
        backend.store.prune(set(), datetime(2030, 1, 1))


def test_contract_put_again_spares_it_from_pruning(backend: Backend) -> None:
    """A post that reuses old bytes must not lose them to the next prune:
    storing them again makes them young (S3 times are whole seconds)."""
    name = backend.store.put(b"reused", ".jpg")
    if isinstance(backend.store, MediaStore):
        set_mtime(backend.store.path(name), datetime(2001, 1, 1, tzinfo=UTC))
        cutoff = datetime.now(UTC) - timedelta(minutes=1)
    else:  # LastModified cannot be set: let time pass
        time.sleep(1.1)
        cutoff = datetime.now(UTC)
        time.sleep(1.1)
    assert backend.store.put(b"reused", ".jpg") == name
    assert backend.store.prune(set(), cutoff) == []
    assert backend.store.exists(name)


def test_s3_objects_are_read_at_public_media_url(s3_bucket: Bucket) -> None:
    """What Viber does: a plain GET of the URL, no credentials."""
    store = s3_bucket.store()
    data = b"\x89PNG picture"
    name = store.put(data, ".png")
    answer = httpx.get(store.url(None, name))
    assert answer.status_code == 200
    assert answer.content == data
    assert answer.headers["content-type"] == "image/png"
    assert "immutable" in answer.headers.get("cache-control", "")


def test_s3_errors_say_what_to_do(s3_server: S3Server) -> None:
    from publisher.adapters.s3media import S3MediaError, S3MediaStore

    client = s3_server.client()
    store = S3MediaStore("no-such-bucket", "m", "https://cdn.example.org", client=client)
    with pytest.raises(S3MediaError, match="does not exist; create it"):
        store.put(b"x", ".jpg")
    with pytest.raises(S3MediaError, match="does not exist"):
        store.prune(set(), datetime.now(UTC))
