"""Pictures: picture + thumbnail against the floor, and peak memory.

For each generated photo (noise over gradients, so the files are as big as
photos: 12 MP and 24 MP JPEG, a CMYK JPEG, a 16-bit PNG, a WebP, a panorama)
it times ``prepare_picture`` + ``make_thumbnail`` against the floor measured
in the same run: one reduced decode (draft), one resize, one encode at the
quality the service chose, one thumbnail from the resized picture. Then, in
a child process each, the peak RSS of transforming each photo and the
largest pictures: a PNG at the default ``[media] max_pixels`` and the
7999x8000 RGBA PNG (refused at the default; also shown with the limit
raised to let it through).

    python bench/images.py [--repeat 3]

Prints figures (medians); asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import math
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import PIL
from PIL import Image, ImageOps

from publisher.core.limits import PICTURE_MAX_BYTES, THUMBNAIL_SIZE
from publisher.core.media import images
from publisher.core.media.images import make_thumbnail, prepare_picture

MAX_SIDE = 2560


def photo(width: int, height: int, mode: str = "RGB", noise: float = 24.0) -> Image.Image:
    """Gradients with grain (at half resolution, as a camera's noise looks), in ``mode``."""
    grad = Image.linear_gradient("L").resize((width, height))
    half = (max(1, width // 2), max(1, height // 2))
    grain = Image.effect_noise(half, noise).resize((width, height), Image.Resampling.BILINEAR)
    other = Image.radial_gradient("L").resize((width, height))
    rgb = Image.merge("RGB", (grad, grain, other))
    if mode == "RGBA":
        return Image.merge("RGBA", (grad, grain, other, Image.new("L", (width, height), 255)))
    if mode == "I;16":
        grey = Image.blend(grad, grain, 0.4)
        return grey.point(lambda v: v * 257, "I").convert("I;16")
    return rgb.convert(mode) if mode != "RGB" else rgb


def encoded(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


PHOTOS = ("12 MP JPEG", "24 MP JPEG", "CMYK JPEG", "16-bit PNG", "WebP", "panorama JPEG")


def photos() -> dict[str, bytes]:
    return {
        "12 MP JPEG": encoded(photo(4000, 3000), "JPEG", quality=92),
        "24 MP JPEG": encoded(photo(6000, 4000), "JPEG", quality=92),
        "CMYK JPEG": encoded(photo(4000, 3000, "CMYK"), "JPEG", quality=92),
        "16-bit PNG": encoded(photo(4000, 3000, "I;16"), "PNG", compress_level=1),
        "WebP": encoded(photo(4000, 3000), "WEBP", quality=90),
        "panorama JPEG": encoded(photo(12000, 2000), "JPEG", quality=92),
    }


def ours(data: bytes) -> int:
    picture = prepare_picture(data, max_side=MAX_SIDE)
    make_thumbnail(picture)
    return picture.quality


def floor(data: bytes, quality: int) -> None:
    """What any picture service must do: decode reduced, resize, encode once, thumbnail."""
    im: Image.Image = Image.open(io.BytesIO(data))
    longest = max(im.size)
    if longest >= 2 * MAX_SIDE:
        scale = MAX_SIDE / longest
        im.draft(None, (math.ceil(im.width * scale), math.ceil(im.height * scale)))
    im.load()
    if im.mode.startswith("I;16"):  # 16 bits to 8 in one pass
        im = im.convert("I").point([v * 255 // 65535 for v in range(65536)], "L")
    im = im.convert("RGB")
    if max(im.size) > MAX_SIDE:
        scale = MAX_SIDE / max(im.size)
        size = (round(im.width * scale), round(im.height * scale))
        im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    images._encode(im, quality)
    thumb = ImageOps.fit(im, (THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS)
    images._encode(thumb, images.MAX_QUALITY)


CHILD = textwrap.dedent(
    """
    import resource, sys
    from pathlib import Path
    from publisher.core.errors import MediaError
    from publisher.core.media.images import make_thumbnail, prepare_picture
    data = Path(sys.argv[1]).read_bytes()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        kwargs = {"max_pixels": int(sys.argv[2])} if len(sys.argv) > 2 else {}
        make_thumbnail(prepare_picture(data, **kwargs))
        outcome = "ok"
    except MediaError as exc:
        outcome = "refused"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(base // 1024, peak // 1024, outcome)
    """
)


def peak_rss(path: Path, *args: str) -> tuple[int, int, str]:
    """(MB after imports and reading the file, peak MB, outcome) of a child process."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        return 0, 0, f"exit {out.returncode}: {out.stderr.strip().splitlines()[-1:]}"
    base, peak, outcome = out.stdout.split()
    return int(base), int(peak), outcome


def generate(folder: Path) -> None:
    """Write the photos and the largest pictures (see :func:`generate_names`)."""
    for name, data in photos().items():
        (folder / name.replace(" ", "_")).write_bytes(data)
    side = math.isqrt(images.MAX_PIXELS * 4 // 3)
    photo(side, images.MAX_PIXELS // side, "RGBA").save(folder / "largest.png", compress_level=1)
    photo(7999, 8000, "RGBA").save(folder / "bomb.png", compress_level=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:  # in a child, so that this process stays small (see peak_rss)
        generate(args.generate)
        return 0
    print(
        f"machine: {platform.machine()}, {_cores()} cores; "
        f"Python {platform.python_version()}, Pillow {PIL.__version__}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        subprocess.run([sys.executable, __file__, "--generate", tmp], check=True)
        files = generate_names(folder)
        # A child's ru_maxrss starts from its parent's RSS at fork (Linux keeps
        # it across exec): measured first, while this process holds no pixels.
        print("peak RSS of one transform, each in a child process (MB)")
        print(f"{'picture':<42} {'input':>7} {'base':>5} {'peak':>5} {'picture':>7}")
        for name, path, extra in files:
            base, peak, outcome = peak_rss(path, *extra)
            size = path.stat().st_size / 1e6
            print(f"{name:<42} {size:>5.1f}MB {base:>5} {peak:>5} {peak - base:>7}  {outcome}")

        print(f"\npicture + thumbnail against the floor (median of {args.repeat}, interleaved)")
        print(
            f"{'photo':<15} {'input':>9} {'q':>3} {'full':>4} {'trial':>5} "
            f"{'ours':>8} {'floor':>8} {'ratio':>6}"
        )
        for name, path, _extra in files[:6]:
            data = path.read_bytes()
            picture = prepare_picture(data, max_side=MAX_SIDE)
            assert picture.size <= PICTURE_MAX_BYTES
            ours_s, floor_s = timed(data, picture.quality, args.repeat)
            print(
                f"{name:<15} {len(data) / 1e6:>7.1f}MB {picture.quality:>3} {picture.encodes:>4} "
                f"{picture.trials:>5} {ours_s * 1000:>6.0f}ms {floor_s * 1000:>6.0f}ms "
                f"{ours_s / floor_s:>5.2f}x"
            )
    return 0


def generate_names(folder: Path) -> list[tuple[str, Path, tuple[str, ...]]]:
    """What :func:`generate` wrote into ``folder``, without generating it again."""
    names = [*PHOTOS]
    files: list[tuple[str, Path, tuple[str, ...]]] = [
        (name, folder / name.replace(" ", "_"), ()) for name in names
    ]
    side = math.isqrt(images.MAX_PIXELS * 4 // 3)
    files.append(
        (f"{side}x{images.MAX_PIXELS // side} RGBA PNG (largest)", folder / "largest.png", ())
    )
    files.append(("7999x8000 RGBA PNG", folder / "bomb.png", ()))
    files.append(("  the same, max_pixels 64M", folder / "bomb.png", ("64000000",)))
    return files


def timed(data: bytes, quality: int, repeat: int) -> tuple[float, float]:
    """Median seconds of ours and of the floor, run in turns so that noise hits both."""
    ours_times, floor_times = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        ours(data)
        middle = time.perf_counter()
        floor(data, quality)
        ours_times.append(middle - started)
        floor_times.append(time.perf_counter() - middle)
    return statistics.median(ours_times), statistics.median(floor_times)


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    sys.exit(main())
