"""Pictures: any image Pillow can open → a JPEG that fits Viber, or a refusal.

Bytes in, bytes out; nothing here touches the network or the disk.

::

    bytes ─ sniff / size cap ─ open ─ first frame
          ─ draft (JPEG much larger than needed: decode at 1/2, 1/4, 1/8)
          ─ pixel cap (on what will be decoded), checked before decoding
          ─ load ─ reduce a band at a time (other formats much larger than
            needed: by the largest whole factor that keeps the target size)
          ─ EXIF orientation ─ to RGB (alpha on white, 16-bit and float
            scaled, ICC → sRGB) ─ cap the longest side
          ─ JPEG at the highest quality that fits: predicted from a sample
            of the picture, then one full-size encode (a second one when the
            prediction missed); shrink when even the floor does not fit
    picture ─ thumbnail from the resized picture kept with the result

Memory: nothing but the decoder ever holds the full-size pixels of a picture
much larger than needed; ``max_pixels`` bounds those (see :func:`_open`).
Speed: a picture over 1 MB at the top quality costs one full-size encode
most of the time (the floor) where a binary search took up to seven.

The output never carries EXIF, GPS, XMP, comments or an ICC profile.
Anything that cannot be made into a picture raises :class:`MediaError` with
a one-line reason.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from publisher.core.errors import MediaError
from publisher.core.items import MediaInfo
from publisher.core.limits import PICTURE_MAX_BYTES, THUMBNAIL_MAX_BYTES, THUMBNAIL_SIZE
from publisher.core.media.identify import EXTERNAL_FORMATS

__all__ = [
    "JPEG_MIME",
    "MAX_PIXELS",
    "ImageResult",
    "make_thumbnail",
    "prepare_picture",
    "sniff",
]

JPEG_MIME = "image/jpeg"

#: The quality search starts here (highest) and never goes below the floor.
MAX_QUALITY = 92
MIN_QUALITY = 50

#: The most pixels a picture may have once decoded (a JPEG is decoded reduced,
#: so a larger one passes; a WebP counts three times). With the decoded pixels
#: at 4 bytes each, this keeps the largest accepted picture within ~300 MB.
MAX_PIXELS = 40_000_000

#: Give up shrinking below this many pixels on the longest side.
_MIN_SIDE = 16

_WHITE = (255, 255, 255)
_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageResult:
    """A JPEG ready to post, and what it was made from."""

    data: bytes
    width: int
    height: int
    quality: int
    source_format: str
    source_width: int
    source_height: int
    source_size: int
    #: Short notes on what was done, e.g. ``"resized 4000x3000 → 2560x1920"``.
    decisions: tuple[str, ...] = ()
    #: How many full-size JPEG encodes it took to find the quality.
    encodes: int = 0
    #: How many encodes of a sample of the picture predicted the quality.
    trials: int = 0
    #: The picture's pixels (reduced when much larger than a thumbnail), so that
    #: :func:`make_thumbnail` need not decode the JPEG again.
    pixels: Image.Image | None = field(default=None, repr=False, compare=False)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def mime(self) -> str:
        return JPEG_MIME

    def media_info(self, name: str) -> MediaInfo:
        """The preview record for this picture, stored under ``name``."""
        return MediaInfo(
            kind="image",
            name=name,
            size=self.size,
            mime=JPEG_MIME,
            width=self.width,
            height=self.height,
            quality=self.quality,
            source_format=self.source_format,
            source_size=self.source_size,
            source_width=self.source_width,
            source_height=self.source_height,
        )


# --------------------------------------------------------------------------
# sniffing


_FTYP_IMAGE = {
    b"avif": "image/avif",
    b"avis": "image/avif",
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"heim": "image/heic",
    b"heis": "image/heic",
    b"hevc": "image/heic-sequence",
    b"hevx": "image/heic-sequence",
    b"mif1": "image/heif",
    b"msf1": "image/heif-sequence",
}
_FTYP_OTHER = {
    b"qt  ": "video/quicktime",
    b"M4A ": "audio/mp4",
    b"M4B ": "audio/mp4",
    b"M4P ": "audio/mp4",
    b"3gp4": "video/3gpp",
    b"3gp5": "video/3gpp",
    b"3gp6": "video/3gpp",
    b"3g2a": "video/3gpp2",
}


def _sniff_ftyp(data: bytes) -> str | None:
    size = int.from_bytes(data[0:4], "big")
    major = data[8:12]
    end = min(len(data), size if 16 <= size <= 4096 else 64)
    compatible = {data[i : i + 4] for i in range(16, end - 3, 4)}
    if major in (b"avif", b"avis") or (major == b"mif1" and b"avif" in compatible):
        return "image/avif"
    if major in _FTYP_IMAGE:
        if major == b"mif1" and compatible & {b"heic", b"heix"}:
            return "image/heic"
        return _FTYP_IMAGE[major]
    if major in _FTYP_OTHER:
        return _FTYP_OTHER[major]
    return "video/mp4"


def sniff(data: bytes) -> str | None:
    """The MIME type the first bytes of ``data`` show, or None when unknown.

    The content decides, never a URL suffix or a Content-Type header.
    """
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and len(head) >= 12:
        kind = head[8:12]
        return {
            b"WEBP": "image/webp",
            b"AVI ": "video/x-msvideo",
            b"WAVE": "audio/wav",
        }.get(kind)
    if head[4:8] == b"ftyp" and len(head) >= 12:
        return _sniff_ftyp(data[:4096])
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "image/tiff"
    if head.startswith(b"BM") and len(head) >= 26:
        return "image/bmp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return "application/zip"
    if head.startswith(b"\x00\x00\x01\x00") and len(head) >= 6 and head[4:6] != b"\x00\x00":
        return "image/vnd.microsoft.icon"
    if head.startswith(b"\x00\x00\x02\x00") and len(head) >= 6 and head[4:6] != b"\x00\x00":
        return "image/x-win-bitmap"
    if head.startswith(b"8BPS"):
        return "image/vnd.adobe.photoshop"
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n"):
        return "image/jp2"
    if head.startswith(b"\xff\x4f\xff\x51"):
        return "image/jp2"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm" if b"webm" in data[:64] else "video/x-matroska"
    if head.startswith(b"OggS"):
        return "application/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2):
        return "audio/mpeg"
    if head.startswith(b"\x1f\x8b"):
        return "application/gzip"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "application/x-7z-compressed"
    if head.startswith(b"Rar!\x1a\x07"):
        return "application/vnd.rar"
    if head.startswith(b"MZ"):
        return "application/x-msdownload"
    return _sniff_text(data[:1024])


def _sniff_text(head: bytes) -> str | None:
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "image/svg+xml"
    if text.startswith((b"<!doctype html", b"<html")):
        return "text/html"
    if text.startswith(b"<?xml"):
        return "application/xml"
    return None


# --------------------------------------------------------------------------
# decoding


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


@dataclass
class _Source:
    image: Image.Image
    format: str
    width: int
    height: int
    size: int
    decisions: list[str]


#: How much more a format's decode holds than the others', counted against
#: ``max_pixels``. Others: the decoded image (4 bytes a pixel) and, while it is
#: reduced, at most a quarter of it (5 in all); WebP: libwebp's two canvases,
#: the frame as bytes and the image (16 bytes a pixel, measured): 3 times.
_DECODE_COPIES = {"WEBP": 3}

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

#: About this many bytes of source pixels are reduced at a time (in bands).
_BAND_BYTES = 4 << 20


def _open(
    data: bytes,
    *,
    target_side: int,
    max_pixels: int,
    max_input_bytes: int | None,
) -> _Source:
    """Open, check, draft, load, reduce and turn upright. Raises MediaError.

    Memory: a JPEG is decoded at the smallest DCT scale still at least
    ``target_side`` (draft); other formats are decoded at full size (Pillow
    cannot do otherwise) and at once reduced a band at a time, so nothing but
    the decoded image ever holds the full-size pixels, and it is dropped as
    soon as it is reduced. ``max_pixels`` bounds the pixels decoded (after
    draft; a WebP counts three times), which bounds the peak.
    """
    if not data:
        raise MediaError("empty file: not an image")
    if max_input_bytes is not None and len(data) > max_input_bytes:
        raise MediaError(
            f"image is {len(data):,} bytes, over the {max_input_bytes:,}-byte input limit"
        )
    try:
        im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise MediaError(
            f"refused as a decompression bomb: {_one_line(exc)}; pictures over [media] "
            f"max_pixels ({max_pixels:,}) are refused"
        ) from exc
    except UnidentifiedImageError as exc:
        kind = sniff(data)
        what = f" ({kind}, which Pillow cannot open)" if kind else ""
        raise MediaError(f"not an image Pillow can read{what}") from exc
    except Exception as exc:  # Pillow raises many types on hostile input
        raise MediaError(f"cannot open image: {_one_line(exc)}") from exc

    fmt = im.format or "unknown"
    if fmt in EXTERNAL_FORMATS:
        im.close()
        raise MediaError(
            f"{fmt} is decoded only by an outside program (Ghostscript for EPS), which is "
            "never run on downloaded files: post it as a JPEG, PNG or WebP"
        )
    width, height = im.size
    decisions: list[str] = []
    if width <= 0 or height <= 0:
        raise MediaError(f"{fmt} image has no pixels ({width}x{height})")
    try:
        frames = getattr(im, "n_frames", 1)
        if frames > 1:
            im.seek(0)
            decisions.append(f"first frame of {frames}")
        longest = max(width, height)
        if longest >= 2 * target_side:
            scale = target_side / longest
            request = (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale)))
            if im.draft(None, request) is not None and im.size != (width, height):
                decisions.append(f"decoded at {im.size[0]}x{im.size[1]}")
    except Exception as exc:
        raise MediaError(f"{fmt} image is truncated or corrupt: {_one_line(exc)}") from exc
    _check_pixels(fmt, (width, height), im.size, max_pixels)
    try:
        im.load()
    except Exception as exc:
        raise MediaError(f"{fmt} image is truncated or corrupt: {_one_line(exc)}") from exc
    orientation = _orientation(im, decisions)
    try:
        reduced = _reduce_in_bands(im, target_side)
    except Exception as exc:
        raise MediaError(f"cannot reduce {fmt} image: {_one_line(exc)}") from exc
    if reduced is not im:
        decisions.append(f"reduced {im.width}x{im.height} → {reduced.width}x{reduced.height}")
        im.close()
    return _Source(
        _orient(reduced, orientation, decisions), fmt, width, height, len(data), decisions
    )


def _check_pixels(
    fmt: str, size: tuple[int, int], decoded: tuple[int, int], max_pixels: int
) -> None:
    """Refuse, before decoding, a picture that would decode to too many pixels."""
    copies = _DECODE_COPIES.get(fmt, 1)
    pixels = decoded[0] * decoded[1]
    if pixels * copies <= max_pixels:
        return
    what = f"{fmt} {size[0]}x{size[1]}"
    if decoded != size:
        what += f" decoded at {decoded[0]}x{decoded[1]}"
    counted = f"{pixels:,} pixels" + (f", counted {copies} times for {fmt}" if copies > 1 else "")
    raise MediaError(
        f"refused as a decompression bomb: {what} is {counted}, over [media] max_pixels "
        f"({max_pixels:,}); raise max_pixels in sources.toml if such pictures are expected"
    )


def _orientation(im: Image.Image, decisions: list[str]) -> int:
    """The EXIF (or XMP) orientation that turns ``im`` upright, 1 when none applies."""
    try:
        orientation = im.getexif().get(_ORIENTATION, 1)
    except Exception:  # corrupt EXIF: keep the pixels as stored
        decisions.append("ignored unreadable EXIF")
        return 1
    return orientation if isinstance(orientation, int) and orientation in _TRANSPOSE else 1


def _orient(im: Image.Image, orientation: int, decisions: list[str]) -> Image.Image:
    method = _TRANSPOSE.get(orientation)
    if method is None:
        return im
    decisions.append(f"applied EXIF orientation {orientation}")
    return im.transpose(method)


#: Modes whose pixels :meth:`Image.reduce` averages correctly as they are.
_REDUCIBLE = frozenset({"L", "LA", "La", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "I", "F"})


def _reducible(piece: Image.Image) -> Image.Image | None:
    """``piece`` in a mode whose pixels can be averaged, or None when there is none."""
    mode = piece.mode
    if mode in ("P", "PA", "1", "L", "RGB") and (mode == "PA" or "transparency" in piece.info):
        return piece.convert("RGBA")
    if mode == "P":
        return piece.convert("RGB")
    if mode == "1":
        return piece.convert("L")
    if mode.startswith("I;16"):
        return piece.convert("I")
    return piece if mode in _REDUCIBLE else None


def _reduce_in_bands(im: Image.Image, target_side: int) -> Image.Image:
    """``im`` reduced by the largest whole factor that keeps ``target_side``, or ``im``.

    A box reduce by a whole factor over bands whose height is a multiple of
    the factor gives exactly the reduce of the whole image, while converting
    (palette, 1-bit, 16-bit, premultiplied alpha) only one band at a time: the
    full-size pixels are never copied.
    """
    factor = max(im.size) // target_side
    if factor < 2 or _reducible(im.crop((0, 0, 1, 1))) is None:
        return im
    rows = max(1, _BAND_BYTES // (4 * im.width * factor)) * factor
    out: Image.Image | None = None
    for top in range(0, im.height, rows):
        piece = _reducible(im.crop((0, top, im.width, min(im.height, top + rows))))
        assert piece is not None
        small = piece.reduce(factor)
        if out is None:
            size = (math.ceil(im.width / factor), math.ceil(im.height / factor))
            out = Image.new(small.mode, size)
        out.paste(small, (0, top // factor))
    assert out is not None
    if "icc_profile" in im.info:
        out.info["icc_profile"] = im.info["icc_profile"]
    return out


def _flatten(im: Image.Image, decisions: list[str]) -> Image.Image:
    """RGBA → RGB on white, holding one more image, not four."""
    if im.mode != "RGBA":
        im = im.convert("RGBA")
    alpha = im.getextrema()[-1]
    low = alpha[0] if isinstance(alpha, tuple) else alpha
    if isinstance(low, int | float) and low < 255:
        decisions.append("flattened transparency on white")
    background = Image.new("RGB", im.size, _WHITE)
    background.paste(im, mask=im)
    return background


#: 16-bit values → 8-bit, rounded.
_SIXTEEN_TO_EIGHT = [(v * 255 + 32767) // 65535 for v in range(65536)]


def _scale_to_8bit(im: Image.Image, decisions: list[str]) -> Image.Image:
    """I;16*, I and F modes → L, scaling the range (never clipping it)."""
    bits16 = im.mode.startswith("I;16")
    low, high = im.getextrema()
    src = im.convert("I") if bits16 else im
    assert isinstance(low, int | float) and isinstance(high, int | float)
    if not (math.isfinite(low) and math.isfinite(high)):
        decisions.append(f"clipped non-finite {im.mode} pixels to 8-bit")
        return src.convert("L")
    if bits16 or (im.mode == "I" and low >= 0 and 255 < high <= 65535):
        decisions.append("scaled 16-bit to 8-bit")
        return src.point(_SIXTEEN_TO_EIGHT, "L")  # one pass, where point + convert take two
    elif im.mode == "F" and low >= 0 and high <= 1:
        offset, factor = 0.0, 255.0
        decisions.append("scaled 0..1 floats to 8-bit")
    elif low >= 0 and high <= 255:
        offset, factor = 0.0, 1.0
    else:
        span = high - low
        offset, factor = -low, (255 / span if span else 0.0)
        decisions.append(f"stretched {im.mode} range {low}..{high} to 8-bit")
    if (offset, factor) != (0.0, 1.0):
        src = src.point(lambda v: (v + offset) * factor)
    return src.convert("L")


def _srgb(
    im: Image.Image, profile: bytes | ImageCms.ImageCmsProfile, decisions: list[str]
) -> Image.Image | None:
    """``im`` (RGB, CMYK, L or LAB) converted to sRGB, or None when the profile is unusable."""
    try:
        source = (
            profile
            if isinstance(profile, ImageCms.ImageCmsProfile)
            else ImageCms.ImageCmsProfile(io.BytesIO(profile))
        )
        out = ImageCms.profileToProfile(
            im,
            source,
            ImageCms.createProfile("sRGB"),
            renderingIntent=ImageCms.Intent.PERCEPTUAL,
            outputMode="RGB",
        )
    except Exception:
        decisions.append("ignored unusable ICC profile")
        return None
    if out is None:
        return None
    decisions.append("converted colours to sRGB")
    return out


def _to_rgb(im: Image.Image, decisions: list[str]) -> Image.Image:
    """Any mode → RGB, colour-managed to sRGB (metadata: see :func:`_bare`)."""
    icc = im.info.get("icc_profile")
    mode = im.mode
    if mode in ("RGBA", "LA", "La", "RGBa", "PA") or (
        mode in ("P", "L", "RGB", "1") and "transparency" in im.info
    ):
        im = _flatten(im, decisions)
    elif mode.startswith("I") or mode == "F":
        im = _scale_to_8bit(im, decisions)
    elif mode == "LAB":
        lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))
        converted = _srgb(im, lab, [])
        if converted is None:
            raise MediaError("cannot convert a LAB image to RGB")
        decisions.append("converted LAB to RGB")
        im, icc = converted, None
    elif mode == "CMYK":
        decisions.append("converted CMYK to RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode not in ("RGB", "L"):
        if mode != "P":
            decisions.append(f"converted {mode} to RGB")
        im = im.convert("RGB")

    if icc and im.mode in ("RGB", "CMYK", "L"):
        managed = _srgb(im, icc, decisions)
        if managed is not None:
            im = managed
    if im.mode != "RGB":
        try:
            im = im.convert("RGB")
        except Exception as exc:
            raise MediaError(f"cannot convert {im.mode} pixels to RGB: {_one_line(exc)}") from exc
    return im


def _bare(im: Image.Image, owned: bool) -> Image.Image:
    """The same pixels with every piece of metadata dropped.

    An image made here has its metadata dropped in place; one passed in is
    copied (a copy starts without EXIF) rather than changed.
    """
    if owned:
        im.info = {}
    elif im.info or getattr(im, "_exif", None) is not None:
        im = im.copy()
        im.info.clear()
    return im


def _decode(
    data: bytes | Image.Image | ImageResult,
    *,
    target_side: int,
    max_pixels: int,
    max_input_bytes: int | None = None,
) -> _Source:
    if isinstance(data, ImageResult):
        if data.pixels is not None:  # already upright, RGB and bare
            return _Source(data.pixels, "JPEG", data.width, data.height, data.size, [])
        data = data.data
    if isinstance(data, Image.Image):
        width, height = data.size
        if width * height > max_pixels:
            raise MediaError(
                f"refused: {width}x{height} is over [media] max_pixels ({max_pixels:,})"
            )
        if width <= 0 or height <= 0:
            raise MediaError(f"image has no pixels ({width}x{height})")
        decisions: list[str] = []
        upright = _orient(data, _orientation(data, decisions), decisions)
        source = _Source(upright, data.format or "image", width, height, 0, decisions)
    else:
        source = _open(
            bytes(data),
            target_side=target_side,
            max_pixels=max_pixels,
            max_input_bytes=max_input_bytes,
        )
    given = data if isinstance(data, Image.Image) else None
    try:
        rgb = _to_rgb(source.image, source.decisions)
        source.image = _bare(rgb, owned=rgb is not given)
    except MediaError:
        raise
    except Exception as exc:
        raise MediaError(f"cannot convert {source.format} image: {_one_line(exc)}") from exc
    return source


# --------------------------------------------------------------------------
# encoding


def _encode(im: Image.Image, quality: int) -> bytes:
    """One JPEG encode. Tests wrap this to count encodes."""
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, optimize=True, progressive=True)
    return buf.getvalue()


@dataclass
class _Search:
    data: bytes
    quality: int


def _best_quality(
    im: Image.Image,
    max_bytes: int,
    low: int,
    high: int,
    encode: Callable[[Image.Image, int], bytes],
) -> _Search | None:
    """The highest quality in [low, high] whose JPEG fits, by binary search.

    When the result is below ``high``, quality + 1 was encoded and did not fit.
    None when even ``low`` does not fit. Used for small pictures, where an
    encode costs little, and when a prediction missed twice.
    """
    data = encode(im, high)
    if len(data) <= max_bytes:
        return _Search(data, high)
    best: _Search | None = None
    lo, hi = low, high - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        data = encode(im, mid)
        if len(data) <= max_bytes:
            best = _Search(data, mid)
            lo = mid + 1
        else:
            hi = mid - 1
    return best


#: Pictures with fewer pixels are searched directly: their encodes cost little.
_PREDICT_MIN_PIXELS = 1_000_000
#: Under caps this small the sample's headers and tables weigh too much: search.
_PREDICT_MIN_BYTES = 256_000
#: The sample's unit: one JPEG MCU row (16 rows with 4:2:0 chroma).
_MCU_ROWS = 16
#: The sample holds about this many MCU rows, spread evenly over the picture.
_SAMPLE_BANDS = 16
#: A predicted size this close to the cap takes one quality step down, for the
#: sample's error (a step is 3-5 % near the top, under 1 % near the floor).
_MARGIN = 0.02
#: d ln(size) / d ln(quantiser scale) assumed before two sizes are known (measured 0.6-0.7).
_SLOPE = 0.65
#: At most this many sample encodes per prediction.
_MAX_TRIALS = 5


class _Predictor:
    """Sizes of full-size JPEGs predicted from encodes of a sample of MCU rows.

    A JPEG's entropy-coded data is nearly the sum of its MCU rows' (no
    prediction crosses rows but the DC one, which restarts each row here),
    so the rows of an evenly spread sample, stacked, encode to about
    (sample rows / picture rows) of the picture's data, with the same
    encoder settings, at every quality.
    """

    def __init__(self, im: Image.Image, encode: Callable[[Image.Image, int], bytes]) -> None:
        bands = max(1, im.height // _MCU_ROWS)
        every = max(1, bands // _SAMPLE_BANDS)
        picks = range(every // 2, bands, every)
        self.sample = Image.new("RGB", (im.width, _MCU_ROWS * len(picks)))
        for i, band in enumerate(picks):
            top = band * _MCU_ROWS
            self.sample.paste(im.crop((0, top, im.width, top + _MCU_ROWS)), (0, i * _MCU_ROWS))
        self.scale = im.height / self.sample.height
        self.encode = encode
        self.sizes: dict[int, float] = {}

    def size(self, quality: int) -> float:
        """The predicted size in bytes of the picture's JPEG at ``quality``."""
        if quality not in self.sizes:
            data = self.encode(self.sample, quality)
            head = max(0, data.find(b"\xff\xda"))  # headers up to the first scan
            self.sizes[quality] = head + (len(data) - head) * self.scale
        return self.sizes[quality]

    def quality(self, target: float, low: int, high: int) -> int | None:
        """The highest quality in [low, high] predicted to fit ``target``, None if none.

        ln(size) is close to linear in ln(quantiser scale) (libjpeg scales its
        tables by 200 - 2q % above quality 50, 5000 / q % below): fit that line
        through the two sizes known nearest the target, take the highest
        quality it allows, encode the sample there, and again until the line's
        answer is a quality known to fit. Two or three sample encodes where a
        bisection takes six; when the line and the sample disagree for long,
        the highest quality known to fit.
        """
        if self.size(high) <= target:
            return high
        for _ in range(_MAX_TRIALS):
            fits = max((q for q, size in self.sizes.items() if size <= target), default=None)
            fails = min(q for q, size in self.sizes.items() if size > target)
            if fits is not None and fails - fits <= 1:
                return fits
            if fails <= low:
                return None
            quality = max(fits or low, min(fails - 1, self._solve(target)))
            if quality == fits:
                return fits
            self.size(quality)
        return max((q for q, size in self.sizes.items() if size <= target), default=None)

    def _solve(self, target: float) -> int:
        """The highest quality the line through the two sizes nearest ``target`` allows."""
        ln_target = math.log(target)
        near = sorted(self.sizes, key=lambda q: abs(math.log(self.sizes[q]) - ln_target))[:2]
        x = _ln_scale(near[0])
        y = math.log(self.sizes[near[0]])
        if len(near) == 2 and near[0] != near[1]:
            slope = (math.log(self.sizes[near[1]]) - y) / (_ln_scale(near[1]) - x)
        else:
            slope = -_SLOPE
        slope = min(slope, -0.05)  # bigger scale, smaller file: keep the line falling
        scale = math.exp(x + (ln_target - y) / slope)
        quality = (200 - scale) / 2 if scale <= 100 else 5000 / scale
        return math.floor(quality + 1e-9)


def _ln_scale(quality: int) -> float:
    """ln of the percentage libjpeg scales its quantisation tables by at ``quality``."""
    return math.log(200 - 2 * quality if quality >= 50 else 5000 / max(1, quality))


def _fit_predicted(
    im: Image.Image,
    max_bytes: int,
    low: int,
    high: int,
    encode: Callable[[Image.Image, int], bytes],
    trial: Callable[[Image.Image, int], bytes],
) -> tuple[_Search | None, _Predictor]:
    """The highest quality in [low, high] that fits, give or take one or two.

    Predicts the quality from the sample, encodes the picture once at it;
    when that missed the cap, or came in under it by more than a quality
    step, corrects the prediction by the difference and encodes once more;
    when that missed the cap too, bisects below. Only the picture's encodes
    are full size. None when even ``low`` does not fit.
    """
    predictor = _Predictor(im, trial)
    target = max_bytes * (1 - _MARGIN)
    quality = predictor.quality(max_bytes, low, high)
    if quality is not None and quality > low and predictor.size(quality) > target:
        quality -= 1  # too close to the cap for the sample's error: one step down
    if quality is None:
        if predictor.size(low) > max_bytes * (1 + 2 * _MARGIN):
            return None, predictor  # clearly too big: shrink without encoding it
        quality = low
    data = encode(im, quality)
    if len(data) <= max_bytes:
        found = _Search(data, quality)
        correction = len(data) / predictor.size(quality)
        if correction < 1 and quality < high:  # the sample was pessimistic: by how much?
            better = predictor.quality(target / correction, quality + 1, high)
            if better is not None and better > quality + 1:
                data = encode(im, better)
                if len(data) <= max_bytes:
                    found = _Search(data, better)
        return found, predictor
    if quality == low:
        return None, predictor
    correction = len(data) / predictor.size(quality)
    again = predictor.quality(target / correction, low, quality - 1)
    if again is not None:
        data = encode(im, again)
        if len(data) <= max_bytes:
            return _Search(data, again), predictor
        quality = again
    if quality == low:
        return None, predictor
    return _best_quality(im, max_bytes, low, quality - 1, encode), predictor


def _fit(
    im: Image.Image,
    *,
    max_bytes: int,
    decisions: list[str],
    min_quality: int,
    max_quality: int,
    shrink: bool,
) -> tuple[Image.Image, _Search, int, int]:
    """Encode ``im`` under ``max_bytes``; shrink when the quality floor is too big.

    Returns the image encoded, the encode, and how many full-size and sample
    encodes it took.
    """
    count = trials = 0

    def encode(image: Image.Image, quality: int) -> bytes:
        nonlocal count
        count += 1
        return _encode(image, quality)

    def trial(image: Image.Image, quality: int) -> bytes:
        nonlocal trials
        trials += 1
        return _encode(image, quality)

    while True:
        floor_size: float | None = None
        if im.width * im.height >= _PREDICT_MIN_PIXELS and max_bytes >= _PREDICT_MIN_BYTES:
            found, predictor = _fit_predicted(
                im, max_bytes, min_quality, max_quality, encode, trial
            )
            if found is None:
                floor_size = predictor.size(min_quality)
        else:
            found = _best_quality(im, max_bytes, min_quality, max_quality, encode)
        if found is not None:
            return im, found, count, trials
        if not shrink or max(im.size) <= _MIN_SIDE:
            floor_size = len(encode(im, min_quality))
            raise MediaError(
                f"cannot fit a {im.width}x{im.height} JPEG under {max_bytes:,} bytes "
                f"(quality {min_quality} gives {floor_size:,.0f})"
            )
        if floor_size is None:
            floor_size = len(encode(im, min_quality))
        factor = min(0.9, max(0.25, math.sqrt(max_bytes / floor_size) * 0.9))
        size = (max(1, round(im.width * factor)), max(1, round(im.height * factor)))
        decisions.append(
            f"shrunk {im.width}x{im.height} → {size[0]}x{size[1]} to fit {max_bytes:,} bytes"
        )
        im = im.resize(size, Image.Resampling.LANCZOS)


# --------------------------------------------------------------------------
# public


def prepare_picture(
    data: bytes,
    *,
    max_side: int = 2560,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = PICTURE_MAX_BYTES,
    max_input_bytes: int | None = None,
    min_quality: int = MIN_QUALITY,
    max_quality: int = MAX_QUALITY,
) -> ImageResult:
    """Turn image bytes into a JPEG for a Viber ``picture`` post.

    The result is upright, RGB (sRGB), at most ``max_side`` on its longest
    side, under ``max_bytes``, at the highest quality in
    [``min_quality``, ``max_quality``] that fits (give or take two, for a
    picture of a megapixel or more), without any metadata. It keeps its
    pixels for :func:`make_thumbnail`. Raises :class:`MediaError` (one-line
    reason) for anything else.
    """
    if max_side < 1 or max_bytes < 1:
        raise ValueError("max_side and max_bytes must be positive")
    source = _decode(
        data, target_side=max_side, max_pixels=max_pixels, max_input_bytes=max_input_bytes
    )
    im, decisions = source.image, source.decisions
    if max(im.size) > max_side:
        scale = max_side / max(im.size)
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        decisions.append(f"resized {im.width}x{im.height} → {size[0]}x{size[1]}")
        im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    source.image = im  # the decoded pixels are no longer needed
    im, found, count, trials = _fit(
        im,
        max_bytes=max_bytes,
        decisions=decisions,
        min_quality=min_quality,
        max_quality=max_quality,
        shrink=True,
    )
    return _result(found, im, source, decisions, count, trials, _for_thumbnail(im))


def _for_thumbnail(im: Image.Image) -> Image.Image:
    """``im`` reduced while it stays twice a thumbnail's side (a cheap box filter)."""
    factor = min(im.size) // (2 * THUMBNAIL_SIZE)
    return im.reduce(factor) if factor >= 2 else im


def _result(
    found: _Search,
    im: Image.Image,
    source: _Source,
    decisions: list[str],
    count: int,
    trials: int,
    pixels: Image.Image | None = None,
) -> ImageResult:
    """The result of an encode search: ``found`` (data, quality) of ``im``."""
    decisions.append(f"JPEG quality {found.quality}")
    return ImageResult(
        data=found.data,
        width=im.width,
        height=im.height,
        quality=found.quality,
        source_format=source.format,
        source_width=source.width,
        source_height=source.height,
        source_size=source.size,
        decisions=tuple(decisions),
        encodes=count,
        trials=trials,
        pixels=pixels,
    )


def make_thumbnail(
    data_or_image: bytes | Image.Image | ImageResult,
    *,
    size: int = THUMBNAIL_SIZE,
    max_bytes: int = THUMBNAIL_MAX_BYTES,
    mode: Literal["crop", "fit"] = "crop",
    max_pixels: int = MAX_PIXELS,
) -> ImageResult:
    """A ``size`` x ``size`` JPEG under ``max_bytes`` for a Viber ``thumbnail``.

    ``"crop"`` fills the square and cuts the middle out; ``"fit"`` shows the
    whole picture, letterboxed on white. Accepts image bytes, an open Pillow
    image or a :class:`ImageResult` (cheap: made from the pixels it kept, or
    its JPEG decoded at reduced scale).
    """
    if mode not in ("crop", "fit"):
        raise ValueError(f"thumbnail mode must be 'crop' or 'fit', not {mode!r}")
    source = _decode(data_or_image, target_side=size, max_pixels=max_pixels)
    im, decisions = source.image, source.decisions
    if mode == "crop":
        thumb = ImageOps.fit(im, (size, size), Image.Resampling.LANCZOS)
        if im.width != im.height:
            decisions.append("cropped to a square")
    else:
        thumb = ImageOps.pad(im, (size, size), Image.Resampling.LANCZOS, color=_WHITE)
        if im.width != im.height:
            decisions.append("letterboxed on white")
    thumb, found, count, trials = _fit(
        _bare(thumb, owned=thumb is not im),
        max_bytes=max_bytes,
        decisions=decisions,
        min_quality=10,
        max_quality=MAX_QUALITY,
        shrink=False,
    )
    return _result(found, thumb, source, decisions, count, trials)
