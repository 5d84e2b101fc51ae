"""Videos: what an MP4 is (duration, codec, size) and whether Viber takes it.

Viber plays MP4 with H.264 video, at most 50 MB and 180 seconds. Nothing is
transcoded here: a video either fits or is refused with a reason saying
what to do. ``mutagen`` reads the duration; a small ISO-BMFF box walk finds
the video track's sample entry (``avc1``, ``hvc1``, ``mp4v``...) and its
size, since mutagen only describes audio tracks.

A thumbnail frame needs PyAV (``pip install av``), an optional extra: without
it :func:`video_thumbnail` returns None and posts go out without one.
"""

from __future__ import annotations

import importlib
import io
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import mutagen.mp4

from publisher.core.errors import MediaError
from publisher.core.limits import (
    THUMBNAIL_MAX_BYTES,
    THUMBNAIL_SIZE,
    VIDEO_MAX_BYTES,
    VIDEO_MAX_SECONDS,
)
from publisher.core.media.images import make_thumbnail, sniff

__all__ = [
    "H264_CODECS",
    "HAVE_PYAV",
    "VideoInfo",
    "check_video",
    "inspect_video",
    "video_thumbnail",
]

#: Sample entries of H.264 video.
H264_CODECS = frozenset({"avc1", "avc3"})


def _load_pyav() -> Any:
    try:
        return importlib.import_module("av")
    except ImportError:
        return None


_av: Any = _load_pyav()
#: True when PyAV is importable and video thumbnails can be made.
HAVE_PYAV = _av is not None


@dataclass(frozen=True)
class VideoInfo:
    size: int
    #: Seconds, from the movie header; None when unknown.
    duration: float | None
    width: int | None
    height: int | None
    #: The first video track's sample entry, e.g. ``"avc1"``; None without video.
    codec: str | None
    #: ``"mp4"``, ``"quicktime"`` (ftyp brand ``qt``), or the sniffed MIME type.
    container: str
    #: The ftyp major brand, e.g. ``"isom"``.
    brand: str | None = None

    @property
    def mime(self) -> str:
        return "video/quicktime" if self.container == "quicktime" else "video/mp4"


# --------------------------------------------------------------------------
# ISO base media file format boxes

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
_MAX_BOX_READ = 1 << 20


def _boxes(f: IO[bytes], start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the boxes in [start, end)."""
    found = []
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        header = f.read(8)
        if len(header) < 8:
            break
        size, kind = struct.unpack(">I4s", header)
        payload = pos + 8
        if size == 1:
            large = f.read(8)
            if len(large) < 8:
                break
            size = struct.unpack(">Q", large)[0]
            payload = pos + 16
        elif size == 0:
            size = end - pos
        if size < payload - pos or pos + size > end:
            break  # a broken box: stop here, keep what was found
        found.append((kind, payload, pos + size))
        pos += size
    return found


def _find(f: IO[bytes], start: int, end: int, kind: bytes) -> list[tuple[int, int]]:
    return [(s, e) for k, s, e in _boxes(f, start, end) if k == kind]


def _read(f: IO[bytes], start: int, end: int) -> bytes:
    f.seek(start)
    return f.read(min(end - start, _MAX_BOX_READ))


def _video_track(f: IO[bytes], size: int) -> tuple[str | None, int | None, int | None]:
    """Codec fourcc, width and height of the first video track."""
    for moov_start, moov_end in _find(f, 0, size, b"moov"):
        for trak_start, trak_end in _find(f, moov_start, moov_end, b"trak"):
            for mdia_start, mdia_end in _find(f, trak_start, trak_end, b"mdia"):
                hdlr = [_read(f, s, e) for s, e in _find(f, mdia_start, mdia_end, b"hdlr")]
                if not hdlr or hdlr[0][8:12] != b"vide":
                    continue
                for minf_s, minf_e in _find(f, mdia_start, mdia_end, b"minf"):
                    for stbl_s, stbl_e in _find(f, minf_s, minf_e, b"stbl"):
                        for stsd_s, stsd_e in _find(f, stbl_s, stbl_e, b"stsd"):
                            return _sample_entry(_read(f, stsd_s, stsd_e))
    return None, None, None


def _sample_entry(stsd: bytes) -> tuple[str | None, int | None, int | None]:
    # stsd: version+flags (4), entry_count (4), then entries: size (4), type (4),
    # reserved (6), data_reference_index (2), pre_defined/reserved (16),
    # width (2), height (2), ...
    if len(stsd) < 16 or int.from_bytes(stsd[4:8], "big") < 1:
        return None, None, None
    kind = stsd[12:16].decode("latin-1")
    if len(stsd) < 8 + 36:
        return kind, None, None
    width, height = struct.unpack(">HH", stsd[8 + 32 : 8 + 36])
    return kind, width or None, height or None


# --------------------------------------------------------------------------
# public


def inspect_video(source: bytes | str | os.PathLike[str]) -> VideoInfo:
    """Read size, duration, codec and dimensions of an MP4 (or MOV) file.

    Raises :class:`MediaError` when the data is not an ISO media file at all.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        size = len(data)
        with io.BytesIO(data) as f:
            return _inspect(f, size)
    path = Path(source)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            return _inspect(f, size)
    except OSError as exc:
        raise MediaError(f"cannot read video {path.name}: {exc.strerror or exc}") from exc


def _inspect(f: IO[bytes], size: int) -> VideoInfo:
    head = f.read(64)
    kind = sniff(head)
    if head[4:8] != b"ftyp":
        what = kind or "unknown data"
        raise MediaError(f"not an MP4 video ({what}): convert it to MP4 with H.264")
    brand = head[8:12].decode("latin-1")
    container = "quicktime" if kind == "video/quicktime" else "mp4"
    try:
        f.seek(0)
        length = getattr(mutagen.mp4.MP4(f).info, "length", None)
    except Exception as exc:  # mutagen raises its own and struct errors
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise MediaError(f"MP4 file is damaged or incomplete: {message}") from exc
    duration = float(length) if length else None
    codec, width, height = _video_track(f, size)
    return VideoInfo(
        size=size,
        duration=duration,
        width=width,
        height=height,
        codec=codec,
        container=container,
        brand=brand,
    )


def check_video(
    info: VideoInfo,
    *,
    max_bytes: int = VIDEO_MAX_BYTES,
    max_seconds: float = VIDEO_MAX_SECONDS,
) -> None:
    """Raise :class:`MediaError` unless Viber accepts this video as it is.

    The duration is judged in whole seconds rounded up, as a post's
    ``duration`` states it: 180.2 s is 181 s, over the limit of 180.
    """
    if info.container != "mp4":
        raise MediaError(
            f"video is {info.container}, not MP4: remux or convert it to MP4 with H.264"
        )
    if info.codec is None:
        raise MediaError("MP4 file has no video track")
    if info.codec not in H264_CODECS:
        raise MediaError(f"video codec is {info.codec}, not H.264 (avc1): re-encode it with H.264")
    if info.size > max_bytes:
        raise MediaError(
            f"video is {info.size:,} bytes, over Viber's limit of {max_bytes:,}: "
            "shorten or compress it"
        )
    if info.duration is not None and (seconds := math.ceil(info.duration)) > max_seconds:
        raise MediaError(
            f"video lasts {info.duration:.2f} s ({seconds} s in whole seconds), over Viber's "
            f"limit of {max_seconds:g} s: cut it shorter"
        )


def video_thumbnail(
    path: str | os.PathLike[str],
    *,
    size: int = THUMBNAIL_SIZE,
    max_bytes: int = THUMBNAIL_MAX_BYTES,
    mode: Literal["crop", "fit"] = "crop",
    at: float = 1.0,
) -> bytes | None:
    """A JPEG thumbnail from a frame near ``at`` seconds, or None.

    None when PyAV is not installed or the video cannot be decoded: a video
    post goes out without a thumbnail then.
    """
    if _av is None:
        return None
    try:
        frame = _grab_frame(str(path), at)
    except Exception:  # PyAV/FFmpeg errors of every kind: no thumbnail
        return None
    if frame is None:
        return None
    try:
        return make_thumbnail(frame, size=size, max_bytes=max_bytes, mode=mode).data
    except MediaError:
        return None


def _grab_frame(path: str, at: float) -> Any:
    with _av.open(path) as container:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        duration = container.duration / 1_000_000 if container.duration else None
        target = min(at, duration / 2) if duration else 0.0
        if target > 0:
            container.seek(int(target * 1_000_000), backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.time is None or frame.time >= target - 1e-3:
                return frame.to_image()
    return None
