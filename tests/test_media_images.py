"""publisher.core.media.images: any image → a compliant JPEG and thumbnail, or MediaError."""

from __future__ import annotations

import dataclasses
import io
import random
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageCms, ImageStat

from publisher.core.config import MediaConfig
from publisher.core.errors import MediaError
from publisher.core.media import images
from publisher.core.media.images import ImageResult, make_thumbnail, prepare_picture, sniff

IMAGES = Path(__file__).parent / "data" / "images"
CORPUS = sorted(
    p for p in IMAGES.rglob("*") if p.is_file() and p.suffix.lower() not in (".md", ".txt")
)

# Pillow and libtiff complain loudly about the hostile corpus files; that is expected.
pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning", "ignore::PIL.Image.DecompressionBombWarning"
)


# --------------------------------------------------------------------------
# helpers


def jpeg_markers(data: bytes) -> list[int]:
    """The marker codes of a JPEG up to the start of scan."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    markers = []
    pos = 2
    while pos + 4 <= len(data):
        assert data[pos] == 0xFF, f"bad marker at {pos}"
        marker = data[pos + 1]
        markers.append(marker)
        if marker == 0xDA:  # SOS: entropy-coded data follows
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        pos += 2 + length
    return markers


def assert_clean_jpeg(data: bytes, max_bytes: int) -> Image.Image:
    """A baseline/progressive JPEG under max_bytes, RGB, no EXIF/XMP/ICC/comment."""
    assert len(data) <= max_bytes
    markers = jpeg_markers(data)
    extra = [hex(m) for m in markers if 0xE1 <= m <= 0xEF or m == 0xFE]
    assert not extra, f"metadata segments left in the output: {extra}"
    im = Image.open(io.BytesIO(data))
    assert im.format == "JPEG"
    assert im.mode == "RGB"
    assert not im.getexif()
    for key in ("exif", "icc_profile", "comment", "xmp", "XML:com.adobe.xmp"):
        assert key not in im.info
    return im


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def mean_diff(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    return sum(ImageStat.Stat(diff).mean) / 3


def close(pixel: object, expected: tuple[int, int, int], tolerance: int = 24) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(p - e) <= tolerance for p, e in zip(pixel, expected, strict=True))


def photo(width: int, height: int, noise: float = 30.0) -> Image.Image:
    """A photo-like RGB picture: gradients with some grain, so JPEGs are big."""
    grad = Image.linear_gradient("L").resize((width, height))
    half = (max(1, width // 2), max(1, height // 2))  # noise at full size is slow
    grain = Image.effect_noise(half, noise).resize((width, height), Image.Resampling.NEAREST)
    other = grad.transpose(Image.Transpose.ROTATE_180)
    return Image.merge("RGB", (grad, grain, other))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height but holds no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


# --------------------------------------------------------------------------
# the corpus: every file is a compliant JPEG or a one-line MediaError


#: Every corpus file Pillow 13 cannot make a picture of, and a word its reason must contain.
REFUSED = {
    "avif/hopper.heif": "image/heic",  # HEIC needs pillow-heif
    "bmp/b/reallybig.bmp": "decompression bomb",
    "bmp/b/shortfile.bmp": "truncated",
    "bmp/q/rgb24jpeg.bmp": "cannot open",
    "bmp/q/rgb24png.bmp": "cannot open",
    "broken.png": "not an image",
    "broken_data_stream.png": "corrupt",
    "crash-0c7e0e8e11ce787078f00b5b0ca409a167f070e0.tif": "corrupt",
    "crash-2020-10-test.tif": "corrupt",
    "decompression_bomb.gif": "decompression bomb",
    "decompression_bomb.ico": "decompression bomb",
    "l2rgb_read.bmp": "decompression bomb",
    "png_decompression_dos.png": "cannot open",
    "truncated_end_chunk.png": "truncated",
    "truncated_image.png": "truncated",
    "truncated_jpeg.jpg": "truncated",
    "ultrahdr.jpg": "truncated",
    "unknown_compression_method.png": "not an image",
    "zero_width.gif": "not an image",
}


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(IMAGES)))
def test_corpus_image_is_compliant_or_refused(path: Path) -> None:
    name = path.relative_to(IMAGES).as_posix()
    data = path.read_bytes()
    if name in REFUSED:
        with pytest.raises(MediaError, match=REFUSED[name]) as info:
            prepare_picture(data)
        reason = str(info.value)
        assert "\n" not in reason and len(reason) <= 300
        return
    # Everything else converts, including the size traps (pport_g4.tif would be
    # 2.27 MB as a full-size JPEG, xmp_test.jpg and old-style-jpeg-compression.png
    # are over 1 MB, g4-multi.tiff is 3307x4677).
    result = prepare_picture(data)
    im = assert_clean_jpeg(result.data, 1_000_000)
    assert im.size == (result.width, result.height)
    assert max(im.size) <= 2560
    assert result.source_size == len(data)
    assert result.source_format != "unknown"
    thumb = make_thumbnail(result)
    thumb_im = assert_clean_jpeg(thumb.data, 100_000)
    assert thumb_im.size == (400, 400)


def test_corpus_is_present() -> None:
    # A walk over an empty folder would pass: make sure it is the real corpus.
    assert len(CORPUS) == 117
    assert set(REFUSED) <= {p.relative_to(IMAGES).as_posix() for p in CORPUS}
    assert (IMAGES / "LICENSES" / "Pillow-LICENSE.txt").is_file()


def test_big_icc_profile_is_not_kept_in_thumbnail() -> None:
    # Keeping the 400 KB profile would give a 413 KB thumbnail.
    thumb = make_thumbnail((IMAGES / "icc_profile_big.jpg").read_bytes())
    assert_clean_jpeg(thumb.data, 100_000)
    assert "converted colours to sRGB" in thumb.decisions


@pytest.mark.parametrize(
    ("n", "ext"), [*((n, "jpg") for n in range(2, 9)), (3, "webp"), (6, "webp")]
)
def test_corpus_orientations_come_out_upright(n: int, ext: str) -> None:
    path = IMAGES / f"hopper_orientation_{n}.{ext}"
    upright = Image.open(io.BytesIO(prepare_picture((IMAGES / f"hopper.{ext}").read_bytes()).data))
    result = prepare_picture(path.read_bytes())
    out = Image.open(io.BytesIO(result.data))
    assert mean_diff(out, upright) < 12
    assert f"applied EXIF orientation {n}" in result.decisions
    # and it really was turned: the stored pixels differ from the upright picture
    stored = Image.open(path)
    assert mean_diff(stored, upright) > 20


def test_corpus_cmyk_matches_its_rgb_twin() -> None:
    cmyk = prepare_picture((IMAGES / "pil_sample_cmyk.jpg").read_bytes())
    rgb = prepare_picture((IMAGES / "pil_sample_rgb.jpg").read_bytes())
    assert Image.open(io.BytesIO(cmyk.data)).mode == "RGB"
    assert cmyk.source_format == "JPEG"
    assert "converted CMYK to RGB" in cmyk.decisions
    assert mean_diff(Image.open(io.BytesIO(cmyk.data)), Image.open(io.BytesIO(rgb.data))) < 10


def test_non_square_orientation_swaps_axes() -> None:
    result = prepare_picture((IMAGES / "orientation_rectangle.jpg").read_bytes())
    assert (result.source_width, result.source_height) == (2, 1)
    assert (result.width, result.height) == (1, 2)


# --------------------------------------------------------------------------
# generated pictures


def test_12_megapixel_jpeg_is_shrunk_under_1mb() -> None:
    # grainy enough to be a big file, smooth enough to take few encodes (the search
    # itself is tested below)
    source = encode(photo(4000, 3000, noise=4), "JPEG", quality=95)
    assert len(source) > 1_000_000
    result = prepare_picture(source)
    assert_clean_jpeg(result.data, 1_000_000)
    assert (result.width, result.height) == (2560, 1920)
    assert (result.source_width, result.source_height) == (4000, 3000)
    assert "resized 4000x3000 → 2560x1920" in result.decisions
    assert result.encodes <= 8


def test_much_larger_jpeg_is_decoded_at_reduced_scale() -> None:
    source = encode(photo(2000, 1500, noise=5), "JPEG", quality=90)
    result = prepare_picture(source, max_side=400)
    assert "decoded at 500x375" in result.decisions
    assert (result.width, result.height) == (400, 300)


def test_max_side_is_respected_for_tall_images() -> None:
    source = encode(photo(300, 1200, noise=5), "PNG")
    result = prepare_picture(source, max_side=600)
    assert (result.width, result.height) == (150, 600)


def test_cmyk_jpeg_becomes_rgb() -> None:
    source = encode(Image.new("CMYK", (64, 64), (255, 0, 0, 0)), "JPEG", quality=95)
    result = prepare_picture(source)
    im = assert_clean_jpeg(result.data, 1_000_000)
    assert close(im.getpixel((32, 32)), (0, 255, 255))


def test_exif_orientation_6_is_applied() -> None:
    # Stored 200x100 with a red top-left corner; orientation 6 means "turn 90° clockwise
    # to display", so the picture is 100x200 with the red corner at the top right.
    stored = Image.new("RGB", (200, 100), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    result = prepare_picture(encode(stored, "JPEG", quality=95, exif=exif.tobytes()))
    im = assert_clean_jpeg(result.data, 1_000_000)
    assert im.size == (100, 200)
    assert close(im.getpixel((95, 5)), (255, 0, 0))
    assert close(im.getpixel((5, 5)), (0, 0, 255))
    assert close(im.getpixel((5, 195)), (0, 0, 255))
    assert "applied EXIF orientation 6" in result.decisions


def test_exif_gps_comment_and_icc_are_stripped() -> None:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "Phone 12"  # Model
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (52.0, 22.0, 11.0)
    gps[3] = "E"
    gps[4] = (4.0, 53.0, 2.0)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = encode(
        photo(300, 200, noise=5),
        "JPEG",
        exif=exif.tobytes(),
        comment=b"secret comment",
        icc_profile=srgb,
    )
    check = Image.open(io.BytesIO(source))
    assert check.getexif().get_ifd(0x8825), "the test image must carry GPS"
    assert "comment" in check.info and "icc_profile" in check.info

    for result in (prepare_picture(source), make_thumbnail(source)):
        assert_clean_jpeg(result.data, 1_000_000)
        assert b"PhoneMaker" not in result.data
        assert b"secret comment" not in result.data


def test_comment_in_pillow_info_does_not_leak() -> None:
    # Pillow's JPEG writer falls back to im.info["comment"]: it must be dropped.
    source = encode(photo(64, 64), "JPEG", comment=b"from the source")
    assert b"from the source" not in prepare_picture(source).data


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_transparent_pixels_become_white(fmt: str) -> None:
    im = Image.new("RGBA", (60, 40), (0, 0, 0, 0))
    im.paste((200, 0, 0, 255), (30, 0, 60, 40))
    result = prepare_picture(encode(im, fmt, **({"lossless": True} if fmt == "WEBP" else {})))
    out = assert_clean_jpeg(result.data, 1_000_000)
    assert close(out.getpixel((5, 20)), (255, 255, 255), 8)
    assert close(out.getpixel((50, 20)), (200, 0, 0))
    assert "flattened transparency on white" in result.decisions


def test_palette_transparency_becomes_white() -> None:
    im = Image.new("P", (40, 40), 0)
    im.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    im.paste(1, (20, 0, 40, 40))
    result = prepare_picture(encode(im, "GIF", transparency=0))
    out = Image.open(io.BytesIO(result.data))
    assert close(out.getpixel((5, 20)), (255, 255, 255), 8)
    assert close(out.getpixel((35, 20)), (0, 200, 0))


@pytest.mark.parametrize(
    ("fmt", "params"),
    [
        ("GIF", {}),
        ("PNG", {}),  # APNG
        ("WEBP", {"lossless": True}),
    ],
)
def test_animated_image_gives_its_first_frame(fmt: str, params: dict[str, object]) -> None:
    frames = [Image.new("RGB", (50, 50), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    source = encode(frames[0], fmt, save_all=True, append_images=frames[1:], **params)
    assert getattr(Image.open(io.BytesIO(source)), "n_frames", 1) == 3
    result = prepare_picture(source)
    out = Image.open(io.BytesIO(result.data))
    assert close(out.getpixel((25, 25)), (255, 0, 0))
    assert "first frame of 3" in result.decisions


def test_16_bit_is_scaled_not_clipped() -> None:
    # left half 0, right half 32768 (half of 65535: mid grey, not white)
    row = struct.pack("<32H", *([0] * 32)) + struct.pack("<32H", *([32768] * 32))
    im = Image.frombytes("I;16", (64, 32), row * 32)
    assert im.getextrema() == (0, 32768)
    result = prepare_picture(encode(im, "PNG"))
    out = Image.open(io.BytesIO(result.data))
    value = out.getpixel((48, 16))
    assert isinstance(value, tuple)
    assert 115 <= value[0] <= 140
    assert close(out.getpixel((8, 16)), (0, 0, 0), 8)


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("L", 128, 128),
        ("1", 1, 255),
        ("F", 0.5, 128),  # floats in 0..1 are scaled
        ("I", 40000, 156),  # 16-bit values in an I image
    ],
)
def test_single_band_modes(mode: str, value: float, expected: int) -> None:
    im = Image.new(mode, (16, 16), value)
    out = Image.open(io.BytesIO(prepare_picture(encode(im, "TIFF")).data))
    pixel = out.getpixel((8, 8))
    assert isinstance(pixel, tuple)
    assert abs(pixel[0] - expected) <= 3


# --------------------------------------------------------------------------
# refusals


def test_decompression_bomb_is_refused_before_decoding() -> None:
    # 9000x9000 = 81 Mpx: under Pillow's own limit, over ours; no pixel data at all,
    # so a refusal that says "bomb" (not "truncated") proves the size came first.
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(MediaError, match="decompression bomb"):
        prepare_picture(png_header_only(9000, 9000))
    assert before == Image.MAX_IMAGE_PIXELS


def test_pixel_limit_is_per_call() -> None:
    source = encode(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(MediaError, match=r"10,000 pixels, over \[media\] max_pixels \(5,000\)"):
        prepare_picture(source, max_pixels=5000)
    assert prepare_picture(source).width == 100  # the default is unchanged
    with pytest.raises(MediaError):
        make_thumbnail(source, max_pixels=5000)


def test_truncated_jpeg_is_refused_with_a_reason() -> None:
    source = encode(photo(400, 300), "JPEG", quality=90)
    with pytest.raises(MediaError, match="truncated") as info:
        prepare_picture(source[: len(source) // 2])
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, world",
        random.Random(1).randbytes(5000),
        b"\xff\xd8\xff" + random.Random(2).randbytes(3000),
        b"%PDF-1.4\n" + b"0" * 100,
    ],
    ids=["empty", "text", "random", "jpeg-magic-then-noise", "pdf"],
)
def test_not_an_image_is_refused(data: bytes) -> None:
    with pytest.raises(MediaError) as info:
        prepare_picture(data)
    assert str(info.value) and "\n" not in str(info.value)


def test_input_cap() -> None:
    source = encode(Image.new("RGB", (10, 10)), "PNG")
    with pytest.raises(MediaError, match="input limit"):
        prepare_picture(source, max_input_bytes=len(source) - 1)
    assert prepare_picture(source, max_input_bytes=len(source)).width == 10


def test_mediaerror_is_raised_from_the_cause() -> None:
    with pytest.raises(MediaError) as info:
        prepare_picture(b"GIF89a" + b"\x00" * 20)
    assert info.value.__cause__ is not None


# --------------------------------------------------------------------------
# the quality search


@pytest.fixture
def count_encodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the quality of every real JPEG encode."""
    qualities: list[int] = []
    real: Callable[[Image.Image, int], bytes] = images._encode

    def counting(im: Image.Image, quality: int) -> bytes:
        qualities.append(quality)
        return real(im, quality)

    monkeypatch.setattr(images, "_encode", counting)
    return qualities


def test_small_picture_takes_one_encode_at_the_top_quality(count_encodes: list[int]) -> None:
    result = prepare_picture(encode(photo(200, 150), "PNG"))
    assert result.quality == images.MAX_QUALITY
    assert result.encodes == 1 == len(count_encodes)


@pytest.mark.parametrize("target_quality", [55, 70, 85])
def test_binary_search_finds_the_highest_quality_that_fits(
    count_encodes: list[int], target_quality: int
) -> None:
    picture = photo(800, 600)
    limit = len(images._encode(picture, target_quality))
    count_encodes.clear()

    result = prepare_picture(encode(picture, "PNG"), max_bytes=limit)

    assert len(result.data) <= limit
    assert result.quality >= target_quality
    assert result.quality < images.MAX_QUALITY
    # few encodes, and the counter it exposes is the true number
    assert result.encodes == len(count_encodes) <= 8
    assert count_encodes[0] == images.MAX_QUALITY
    assert result.quality + 1 in count_encodes  # the next step up was tried and failed
    assert len(images._encode(picture, result.quality + 1)) > limit


def test_floor_too_big_shrinks_the_picture() -> None:
    source = encode(photo(600, 600, noise=80), "PNG")
    result = prepare_picture(source, max_bytes=20_000)
    assert len(result.data) <= 20_000
    assert result.width < 600
    assert any(d.startswith("shrunk 600x600") for d in result.decisions)
    assert result.quality >= images.MIN_QUALITY


def test_search_helper_reports_none_when_floor_does_not_fit() -> None:
    picture = photo(300, 300, noise=80)
    assert images._best_quality(picture, 100, 50, 92, images._encode) is None


# --------------------------------------------------------------------------
# thumbnails


def test_thumbnail_crop_fills_the_square() -> None:
    im = Image.new("RGB", (800, 200), (0, 0, 255))
    im.paste((255, 0, 0), (350, 0, 450, 200))  # the middle quarter
    thumb = make_thumbnail(encode(im, "PNG"))
    out = assert_clean_jpeg(thumb.data, 100_000)
    assert out.size == (400, 400)
    assert close(out.getpixel((200, 10)), (255, 0, 0))
    assert close(out.getpixel((200, 390)), (255, 0, 0))
    assert close(out.getpixel((10, 200)), (0, 0, 255))


def test_thumbnail_fit_letterboxes_on_white() -> None:
    im = Image.new("RGB", (800, 200), (255, 0, 0))
    thumb = make_thumbnail(encode(im, "PNG"), mode="fit")
    out = assert_clean_jpeg(thumb.data, 100_000)
    assert out.size == (400, 400)
    assert close(out.getpixel((200, 10)), (255, 255, 255), 8)
    assert close(out.getpixel((200, 200)), (255, 0, 0))
    assert "letterboxed on white" in thumb.decisions


def test_thumbnail_of_noise_is_under_100kb(count_encodes: list[int]) -> None:
    thumb = make_thumbnail(Image.effect_noise((400, 400), 120).convert("RGB"))
    assert_clean_jpeg(thumb.data, 100_000)
    assert thumb.quality < images.MAX_QUALITY
    assert thumb.encodes == len(count_encodes) <= 8


def test_thumbnail_accepts_image_result_and_pillow_image() -> None:
    picture = prepare_picture(encode(photo(1000, 500), "PNG"))
    from_result = make_thumbnail(picture)
    from_image = make_thumbnail(Image.open(io.BytesIO(picture.data)))
    for thumb in (from_result, from_image):
        assert (thumb.width, thumb.height) == (400, 400)
        assert thumb.source_format == "JPEG"


def test_thumbnail_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError):
        make_thumbnail(b"", mode="stretch")  # type: ignore[arg-type]


def test_media_info_describes_the_result() -> None:
    result = prepare_picture(encode(photo(300, 200), "PNG"))
    info = result.media_info("abc.jpg")
    assert (info.kind, info.name, info.mime) == ("image", "abc.jpg", "image/jpeg")
    assert (info.size, info.width, info.height) == (len(result.data), 300, 200)
    assert (info.source_format, info.source_width, info.quality) == ("PNG", 300, result.quality)
    assert isinstance(result, ImageResult)


# --------------------------------------------------------------------------
# property: whatever Pillow can write, we turn into a compliant JPEG or refuse

MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "CMYK", "I;16", "I", "F", "YCbCr", "LAB", "RGBX"]
FORMATS = ["PNG", "TIFF", "WEBP", "BMP", "GIF", "JPEG"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mode=st.sampled_from(MODES),
    width=st.integers(1, 48),
    height=st.integers(1, 48),
    fmt=st.sampled_from(FORMATS),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_images_become_compliant_or_refused(
    mode: str, width: int, height: int, fmt: str, seed: int
) -> None:
    probe = Image.new(mode, (1, 1))
    nbytes = len(probe.tobytes()) * width * height + 64
    im = Image.frombytes(mode, (width, height), random.Random(seed).randbytes(nbytes))
    try:
        source = encode(im, fmt)
    except (OSError, ValueError, KeyError, TypeError):
        assume(False)
        return
    try:
        result = prepare_picture(source)
    except MediaError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    out = assert_clean_jpeg(result.data, 1_000_000)
    assert out.size == (width, height)
    thumb = make_thumbnail(result)
    assert Image.open(io.BytesIO(thumb.data)).size == (400, 400)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=2048))
def test_random_bytes_never_escape_as_other_errors(data: bytes) -> None:
    try:
        result = prepare_picture(data)
    except MediaError:
        return
    assert_clean_jpeg(result.data, 1_000_000)


# --------------------------------------------------------------------------
# sniffing


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
        (b"GIF89a\x01\x00", "image/gif"),
        (b"GIF87a\x01\x00", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "video/x-msvideo"),
        (b"BM" + b"\x00" * 40, "image/bmp"),
        (b"II*\x00\x08\x00\x00\x00", "image/tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "image/tiff"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "image/avif"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "image/heic"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "image/heic"),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", "video/mp4"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "video/mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  ", "video/quicktime"),
        (b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A mp42", "audio/mp4"),
        (b"%PDF-1.7\n", "application/pdf"),
        (b"PK\x03\x04\x14\x00", "application/zip"),
        (b"\x00\x00\x01\x00\x01\x00\x10\x10", "image/vnd.microsoft.icon"),
        (b"8BPS\x00\x01", "image/vnd.adobe.photoshop"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "video/webm"),
        (b"ID3\x04\x00", "audio/mpeg"),
        (b"OggS\x00\x02", "application/ogg"),
        (b"\x1f\x8b\x08\x00", "application/gzip"),
        (b"MZ\x90\x00", "application/x-msdownload"),
        (b"\xef\xbb\xbf  <svg xmlns='http://www.w3.org/2000/svg'>", "image/svg+xml"),
        (b"<?xml version='1.0'?>\n<svg>", "image/svg+xml"),
        (b"<!DOCTYPE html><html>", "text/html"),
        (b"<?xml version='1.0'?><rss>", "application/xml"),
        (b"", None),
        (b"hello", None),
        (b"\x00\x00\x00\x00", None),
    ],
)
def test_sniff(head: bytes, mime: str | None) -> None:
    assert sniff(head) == mime


@pytest.mark.parametrize(
    ("name", "mime"),
    [
        ("hopper.jpg", "image/jpeg"),
        ("sugarshack.mpo", "image/jpeg"),
        ("hopper.png", "image/png"),
        ("chi.gif", "image/gif"),
        ("hopper.webp", "image/webp"),
        ("hopper.bmp", "image/bmp"),
        ("hopper.tif", "image/tiff"),
        ("hopper_bigtiff.tif", "image/tiff"),
        ("avif/hopper.avif", "image/avif"),
        ("avif/hopper.heif", "image/heic"),
        ("pillow.ico", "image/vnd.microsoft.icon"),
        ("rgba.psd", "image/vnd.adobe.photoshop"),
        ("rgb_trns_ycbc.jp2", "image/jp2"),
    ],
)
def test_sniff_corpus_files(name: str, mime: str) -> None:
    assert sniff((IMAGES / name).read_bytes()) == mime


# --------------------------------------------------------------------------
# speed: the quality is predicted from a sample, the picture encoded once or twice


def test_large_picture_takes_one_full_size_encode(count_encodes: list[int]) -> None:
    source = encode(photo(4000, 3000, noise=30), "JPEG", quality=95)
    result = prepare_picture(source)
    assert_clean_jpeg(result.data, 1_000_000)
    assert result.quality < images.MAX_QUALITY  # the top quality is over 1 MB
    assert result.encodes == 1
    assert 1 <= result.trials <= 4
    assert len(count_encodes) == result.encodes + result.trials


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    width=st.integers(1200, 2000),
    height=st.integers(850, 1500),
    noise=st.floats(2, 90),
    max_bytes=st.integers(256_000, 1_500_000),
)
def test_predicted_quality_is_within_two_of_the_search(
    width: int, height: int, noise: float, max_bytes: int
) -> None:
    # a megapixel or more, under a cap of 256 KB or more: the quality is predicted
    picture = photo(width, height, noise)
    result = prepare_picture(encode(picture, "BMP"), max_bytes=max_bytes)
    assert_clean_jpeg(result.data, max_bytes)
    if any(note.startswith("shrunk") for note in result.decisions):
        return  # even the floor did not fit: shrunk, as the search would have
    searched = images._best_quality(picture, max_bytes, images.MIN_QUALITY, 92, images._encode)
    assert searched is not None
    assert abs(result.quality - searched.quality) <= 2
    assert result.encodes <= 2


def test_thumbnail_is_made_from_the_kept_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    picture = prepare_picture(encode(photo(3000, 2000, noise=10), "PNG"))
    assert picture.pixels is not None and picture.pixels.size == (1280, 854)
    decoded = make_thumbnail(dataclasses.replace(picture, pixels=None))

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("the JPEG was decoded again")

    monkeypatch.setattr(images, "_open", no_decoding)
    kept = make_thumbnail(picture)
    assert (kept.width, kept.height) == (400, 400)
    assert mean_diff(Image.open(io.BytesIO(kept.data)), Image.open(io.BytesIO(decoded.data))) < 4


# --------------------------------------------------------------------------
# memory: reduced while decoding, pixels counted as decoded


@pytest.mark.parametrize(
    ("mode", "info"),
    [("RGB", {}), ("RGBA", {}), ("L", {}), ("1", {}), ("I;16", {}), ("P", {}), ("P", {"t": 0})],
)
def test_reduce_in_bands_is_the_reduce_of_the_whole(
    monkeypatch: pytest.MonkeyPatch, mode: str, info: dict[str, int]
) -> None:
    monkeypatch.setattr(images, "_BAND_BYTES", 3000)  # many bands, one not whole
    size = (301, 203)
    im = Image.frombytes(
        mode, size, random.Random(3).randbytes(len(Image.new(mode, size).tobytes()))
    )
    if "t" in info:
        im.info["transparency"] = info["t"]
    reduced = images._reduce_in_bands(im, 100)
    whole = images._reducible(im)
    assert whole is not None
    assert reduced.size == (101, 68)
    assert reduced.tobytes() == whole.reduce(3).tobytes()


def test_huge_png_is_reduced_right_after_decoding() -> None:
    im = photo(4100, 1000, noise=10).convert("RGBA")
    result = prepare_picture(encode(im, "PNG", compress_level=1), max_side=1000)
    assert "reduced 4100x1000 → 1025x250" in result.decisions
    assert (result.width, result.height) == (1000, 244)
    assert (result.source_width, result.source_height) == (4100, 1000)


def test_orientation_is_applied_after_reducing() -> None:
    stored = Image.new("RGB", (2400, 1200), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 400, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    result = prepare_picture(encode(stored, "PNG", exif=exif.tobytes()), max_side=600)
    im = assert_clean_jpeg(result.data, 1_000_000)
    assert im.size == (300, 600)
    assert close(im.getpixel((290, 10)), (255, 0, 0))
    assert "reduced 2400x1200 → 600x300" in result.decisions


def test_jpeg_pixels_are_counted_as_decoded() -> None:
    # 12 Mpx, decoded at 1/4 (1000x750): under a 1 Mpx limit; the same as a PNG is not
    picture = photo(4000, 3000, noise=3)
    result = prepare_picture(encode(picture, "JPEG"), max_side=1000, max_pixels=1_000_000)
    assert "decoded at 1000x750" in result.decisions
    with pytest.raises(
        MediaError, match=r"12,000,000 pixels, over \[media\] max_pixels \(1,000,000\)"
    ):
        prepare_picture(
            encode(picture, "PNG", compress_level=1), max_side=1000, max_pixels=1_000_000
        )


def test_webp_counts_three_times() -> None:
    source = encode(photo(1000, 600), "WEBP")
    with pytest.raises(MediaError, match="600,000 pixels, counted 3 times for WEBP"):
        prepare_picture(source, max_pixels=1_700_000)
    assert prepare_picture(source, max_pixels=1_800_000).width == 1000


def test_default_pixel_limit_refuses_a_64_megapixel_png() -> None:
    # 7999x8000 RGBA took 1.1 GB to transform; now it is refused before decoding
    with pytest.raises(MediaError, match=r"over \[media\] max_pixels \(40,000,000\)"):
        prepare_picture(png_header_only(7999, 8000))
    assert MediaConfig().max_pixels == images.MAX_PIXELS


def test_an_eps_is_refused_and_ghostscript_is_never_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow opens an EPS by its header and decodes it with Ghostscript when
    Ghostscript is installed: a downloaded file never gets that far."""
    from PIL import EpsImagePlugin

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ghostscript was run")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", never)
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", "/usr/bin/gs", raising=False)
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n%%EndComments\nshowpage\n"
    with pytest.raises(MediaError, match="EPS is decoded only by an outside program"):
        prepare_picture(eps)
    with pytest.raises(MediaError, match="EPS"):
        make_thumbnail(eps)
