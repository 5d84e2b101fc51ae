"""Every Viber limit is written once, in publisher/core/limits.py.

These tests read the source of every module of the package and fail when one
defines a limit of its own: a name that ``limits`` defines, assigned again;
a number only a Viber limit would have; a copy of the forbidden extensions.
And where a limit is applied in two places, both read it the same way.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

from publisher.core import limits as L
from publisher.core.errors import MediaError, MessageError
from publisher.core.media.video import VideoInfo, check_video
from publisher.core.messages import VideoMessage

PACKAGE = Path(L.__file__).resolve().parents[1]
HOME = Path(L.__file__).resolve()
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.resolve() != HOME)

#: Values of limits that are also everyday numbers (HTTP 400, a million
#: microseconds, row caps, degrees, days): not searched for as literals.
COMMON = {18, 28, 90, 180, 400, 100_000, 1_000_000}
DISTINCTIVE = {
    value
    for name in L.__all__
    if type(value := getattr(L, name)) is int and value not in COMMON and value != 2**63 - 1
}
#: Forbidden extensions no other list of words would hold.
TELLTALE = {".vbscript", ".gadget", ".u3p", ".inf1", ".workflow", ".shb", ".rgs"}


def _trees() -> list[tuple[str, ast.Module]]:
    return [(str(p.relative_to(PACKAGE.parent)), ast.parse(p.read_text("utf-8"))) for p in MODULES]


def test_the_distinctive_values_are_the_ones_expected() -> None:
    # If a limit changes value, decide here whether it is distinctive enough to search for.
    assert {120, 256, 768, 2000, 7000, 30_000, 50_000_000} == DISTINCTIVE


def test_no_module_redefines_a_limit_name() -> None:
    names = set(L.__all__)
    found = []
    for where, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign | ast.AugAssign):
                targets = [node.target]
            else:
                continue
            for target in targets:
                if isinstance(target, ast.Name) and target.id in names:
                    found.append(f"{where}:{node.lineno} assigns {target.id}")
    assert found == [], "import these from publisher.core.limits instead"


def test_no_module_writes_a_limit_as_a_number() -> None:
    found = [
        f"{where}:{node.lineno} {node.value}"
        for where, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and type(node.value) is int and node.value in DISTINCTIVE
    ]
    assert found == [], "use the named limit from publisher.core.limits"


def test_no_module_copies_the_forbidden_extensions() -> None:
    telltale = TELLTALE | {ext.lstrip(".") for ext in TELLTALE}
    found = [
        f"{where}:{node.lineno} {node.value!r}"
        for where, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in telltale
    ]
    assert found == [], "use publisher.core.limits.FORBIDDEN_EXTENSIONS"


@pytest.mark.parametrize("name", L.__all__)
def test_every_limit_is_documented(name: str) -> None:
    # each constant carries a "#:" comment saying what it is
    source = HOME.read_text("utf-8").splitlines()
    line = next(i for i, text in enumerate(source) if text.startswith(f"{name}:"))
    assert source[line - 1].startswith("#: "), name


def test_the_scan_sees_a_copy() -> None:
    # The scanner itself: a module holding its own limit is caught.
    tree = ast.parse("TEXT_MAX = 7000\nBAD = ('.vbscript',)\n")
    constants = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]
    assert 7000 in DISTINCTIVE and 7000 in constants and ".vbscript" in TELLTALE
    assert MODULES and all(p.suffix == ".py" for p in MODULES)
    assert any(p.name == "server.py" and "standin" in p.parts for p in MODULES)


# --------------------------------------------------------------------------
# the media makers and the payload rule read a limit the same way


@pytest.mark.parametrize("seconds", [1.0, 179.5, 180.0, 180.001, 180.5, 181.0])
def test_check_video_and_the_duration_field_agree(seconds: float) -> None:
    # A post states whole seconds (rounded up): 180.2 s goes out as 181, which
    # the payload rule refuses, so the media check refuses it too.
    info = VideoInfo(size=1000, duration=seconds, width=2, height=2, codec="avc1", container="mp4")
    try:
        check_video(info)
        media_ok = True
    except MediaError:
        media_ok = False
    try:
        VideoMessage("https://e.org/v.mp4", 1000, duration=math.ceil(seconds))
        payload_ok = True
    except MessageError:
        payload_ok = False
    assert media_ok == payload_ok == (seconds <= L.VIDEO_MAX_SECONDS)
