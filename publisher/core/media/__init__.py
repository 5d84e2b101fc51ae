"""Media transforms for Viber, bytes in and bytes out.

- :mod:`publisher.core.media.images`: any image → a compliant JPEG picture and a
  400x400 thumbnail; :func:`sniff` tells content types from magic bytes.
- :mod:`publisher.core.media.video`: MP4 inspection and Viber's video limits.
- :mod:`publisher.core.media.files`: safe file names and Viber's file limits.

The limits themselves live in :mod:`publisher.core.limits`. Everything that
cannot be made to fit raises
:class:`publisher.core.errors.MediaError` with a one-line reason.
"""

from __future__ import annotations

from publisher.core.media.files import check_file
from publisher.core.media.images import ImageResult, make_thumbnail, prepare_picture, sniff
from publisher.core.media.video import (
    VideoInfo,
    check_video,
    inspect_video,
    video_thumbnail,
)

__all__ = [
    "ImageResult",
    "VideoInfo",
    "check_file",
    "check_video",
    "inspect_video",
    "make_thumbnail",
    "prepare_picture",
    "sniff",
    "video_thumbnail",
]
