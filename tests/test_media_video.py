"""publisher.core.media.video: MP4 inspection and Viber's video limits."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from PIL import Image

from publisher.core.errors import MediaError
from publisher.core.media import video
from publisher.core.media.video import VideoInfo, check_video, inspect_video, video_thumbnail

VIDEOS = Path(__file__).parent / "data" / "video"


# --------------------------------------------------------------------------
# hand-built ISO BMFF files


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def mp4(
    *,
    codec: bytes = b"avc1",
    seconds: float = 10.0,
    width: int = 320,
    height: int = 240,
    brand: bytes = b"isom",
    handler: bytes = b"vide",
    timescale: int = 1000,
) -> bytes:
    """A minimal MP4: ftyp + moov(mvhd, trak(tkhd, mdia(mdhd, hdlr, minf(stbl(stsd)))))."""
    duration = int(seconds * timescale)
    mvhd = box(
        b"mvhd",
        struct.pack(">B3xIIII", 0, 0, 0, timescale, duration),
        struct.pack(">IH10x", 0x00010000, 0x0100),
        struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000),
        b"\x00" * 24,
        struct.pack(">I", 2),
    )
    tkhd = box(
        b"tkhd",
        struct.pack(">B3xIIII4xI", 0, 0, 0, 1, 0, duration),
        b"\x00" * 8,
        struct.pack(">hhH2x", 0, 0, 0),
        struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000),
        struct.pack(">II", width << 16, height << 16),
    )
    mdhd = box(b"mdhd", struct.pack(">B3xIIIIHH", 0, 0, 0, timescale, duration, 0x55C4, 0))
    hdlr = box(b"hdlr", struct.pack(">I4s4s12x", 0, b"\x00" * 4, handler), b"VideoHandler\x00")
    entry = box(
        codec,
        b"\x00" * 6,
        struct.pack(">H", 1),
        b"\x00" * 16,
        struct.pack(">HH", width, height),
        struct.pack(">II4xH", 0x00480000, 0x00480000, 1),
        b"\x00" * 32,
        struct.pack(">Hh", 0x18, -1),
    )
    stsd = box(b"stsd", struct.pack(">II", 0, 1), entry)
    empty_tables = b"".join(
        box(kind, struct.pack(">II", 0, 0)) for kind in (b"stts", b"stsc", b"stco")
    ) + box(b"stsz", struct.pack(">III", 0, 0, 0))
    stbl = box(b"stbl", stsd, empty_tables)
    minf = box(b"minf", box(b"vmhd", struct.pack(">I8x", 1)), stbl)
    trak = box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf))
    ftyp = box(b"ftyp", brand, struct.pack(">I", 0x200), brand, b"mp41")
    return ftyp + box(b"moov", mvhd, trak) + box(b"mdat", b"\x00" * 16)


# --------------------------------------------------------------------------
# inspect


@pytest.mark.parametrize(
    ("name", "codec", "duration"),
    [
        ("h264_2s.mp4", "avc1", 2.0),
        ("h264_190s.mp4", "avc1", 190.0),
        ("mpeg4_2s.mp4", "mp4v", 2.0),
        ("hevc_1s.mp4", "hvc1", 1.0),
    ],
)
def test_inspect_real_files(name: str, codec: str, duration: float) -> None:
    path = VIDEOS / name
    for source in (path, str(path), path.read_bytes()):
        info = inspect_video(source)
        assert info.codec == codec
        assert info.duration == pytest.approx(duration, abs=0.2)
        assert (info.width, info.height) == (64, 48)
        assert info.size == path.stat().st_size
        assert info.container == "mp4"
        assert info.mime == "video/mp4"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {"codec": "avc1", "duration": 10.0, "width": 320, "height": 240}),
        ({"codec": b"avc3"}, {"codec": "avc3"}),
        ({"codec": b"hvc1"}, {"codec": "hvc1"}),
        ({"codec": b"mp4v"}, {"codec": "mp4v"}),
        ({"seconds": 181, "timescale": 90000}, {"duration": 181.0}),
        ({"width": 1920, "height": 1080}, {"width": 1920, "height": 1080}),
        ({"brand": b"qt  "}, {"container": "quicktime"}),
        ({"handler": b"soun"}, {"codec": None, "width": None}),
    ],
)
def test_inspect_built_files(params: dict[str, object], expected: dict[str, object]) -> None:
    data = mp4(**params)  # type: ignore[arg-type]
    info = inspect_video(data)
    for key, value in expected.items():
        assert getattr(info, key) == value, key
    assert info.size == len(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not an MP4"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + b"\x00" * 40, "video/webm"),
        (b"RIFF\x00\x00\x00\x00AVI LIST" + b"\x00" * 40, "video/x-msvideo"),
        (b"\x00\x00\x00\x14ftypisom\x00\x00\x02\x00isom" + b"\xff" * 20, "damaged"),
    ],
)
def test_inspect_refuses_non_mp4(data: bytes, reason: str) -> None:
    with pytest.raises(MediaError, match=reason):
        inspect_video(data)


def test_inspect_survives_a_broken_box_size() -> None:
    data = mp4()
    moov = data.index(b"moov") - 4
    broken = data[:moov] + struct.pack(">I", 0xFFFFFFF0) + data[moov + 4 :]
    try:
        info = inspect_video(broken)
    except MediaError:
        return
    assert info.codec is None  # the track could not be found, and nothing crashed


def test_inspect_missing_file() -> None:
    with pytest.raises(MediaError, match="cannot read video"):
        inspect_video(VIDEOS / "no-such-file.mp4")


# --------------------------------------------------------------------------
# check


def info(**changes: object) -> VideoInfo:
    base: dict[str, object] = {
        "size": 1_000_000,
        "duration": 60.0,
        "width": 640,
        "height": 360,
        "codec": "avc1",
        "container": "mp4",
    }
    base.update(changes)
    return VideoInfo(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"codec": "avc3"},
        {"size": 50_000_000},
        {"duration": 180.0},
        {"duration": None},
        {"width": None, "height": None},
    ],
)
def test_check_accepts(changes: dict[str, object]) -> None:
    check_video(info(**changes))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"codec": "hvc1"}, "hvc1, not H.264"),
        ({"codec": "mp4v"}, "mp4v, not H.264"),
        ({"codec": None}, "no video track"),
        ({"container": "quicktime"}, "not MP4"),
        ({"size": 50_000_001}, "over Viber's limit of 50,000,000"),
        ({"duration": 180.5}, "over Viber's limit of 180 s"),
    ],
)
def test_check_refuses(changes: dict[str, object], reason: str) -> None:
    with pytest.raises(MediaError, match=reason):
        check_video(info(**changes))


@pytest.mark.parametrize(
    ("name", "ok"),
    [("h264_2s.mp4", True), ("h264_190s.mp4", False), ("mpeg4_2s.mp4", False)],
)
def test_inspect_then_check(name: str, ok: bool) -> None:
    result = inspect_video(VIDEOS / name)
    if ok:
        check_video(result)
    else:
        with pytest.raises(MediaError):
            check_video(result)


# --------------------------------------------------------------------------
# thumbnails (PyAV is optional)


def test_thumbnail_is_none_without_pyav(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(video, "_av", None)
    assert video_thumbnail(VIDEOS / "h264_2s.mp4") is None


@pytest.mark.skipif(not video.HAVE_PYAV, reason="PyAV is not installed")
def test_thumbnail_from_a_frame() -> None:
    data = video_thumbnail(VIDEOS / "h264_2s.mp4")
    assert data is not None and len(data) <= 100_000
    im = Image.open(io.BytesIO(data))
    assert (im.format, im.size) == ("JPEG", (400, 400))
    # crop of a 64x48 frame: blue top-left quarter, red bottom-right
    top_left = im.getpixel((20, 20))
    bottom_right = im.getpixel((380, 380))
    assert isinstance(top_left, tuple) and isinstance(bottom_right, tuple)
    assert top_left[2] > 150 > top_left[0]
    assert bottom_right[0] > 150 > bottom_right[2]


@pytest.mark.skipif(not video.HAVE_PYAV, reason="PyAV is not installed")
def test_thumbnail_of_garbage_is_none(tmp_path: Path) -> None:
    path = tmp_path / "x.mp4"
    path.write_bytes(b"\x00" * 100)
    assert video_thumbnail(path) is None
