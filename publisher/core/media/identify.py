"""Is it a picture? The content decides, not the name: any format Pillow
decodes by itself is a picture (bytes in, a MIME type out; nothing decoded).

:func:`picture_type` is asked when the magic numbers of
:func:`publisher.core.media.images.sniff` say nothing or something else
(a TGA, PCX, QOI, SGI, DDS or PPM file, whatever it is called): Pillow reads
the header only. Formats Pillow hands to an outside program (EPS through
Ghostscript, WMF) are not pictures here.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image

#: Formats Pillow opens but decodes only with an outside program (EPS with
#: Ghostscript): never decoded here, whatever is installed.
EXTERNAL_FORMATS = frozenset({"EPS", "WMF", "EMF"})


def picture_type(head: bytes) -> str | None:
    """The MIME type of the picture whose first bytes are ``head`` (its header
    is enough), or None when Pillow does not recognise one.

    A picture too large for Pillow's own decompression-bomb guard is still a
    picture (``image/x-unknown``): turning it into a post refuses it then, with
    the configured ``[media] max_pixels``.
    """
    if not head:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(head)) as image:
                name = image.format
    except Image.DecompressionBombError:
        return "image/x-unknown"
    except Exception:  # Pillow raises many types on what is not a picture
        return None
    if not name or name in EXTERNAL_FORMATS:
        return None
    return Image.MIME.get(name) or f"image/x-{name.lower()}"
