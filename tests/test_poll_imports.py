"""A poll that renders nothing loads no picture or video library: Pillow and
PyAV come with the first item that has media, not with the Transformer."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import publisher.pipeline.poll, publisher.pipeline.transform
print(sorted(m for m in ("PIL", "av") if m in sys.modules))
from publisher.pipeline import transform
transform.sniff(b"GIF89a")
print(sorted(m for m in ("PIL", "av") if m in sys.modules))
"""


def test_the_poll_stage_loads_pillow_and_pyav_only_when_media_needs_them() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60, check=True
    )
    before, after = done.stdout.splitlines()
    assert before == "[]"
    assert "PIL" in after
