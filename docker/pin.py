"""Print docker/constraints.txt: the runtime dependencies of viber-publisher,
pinned to the versions installed in the running environment.

Only what ``[project] dependencies``, the ``video`` extra (PyAV, for video
thumbnails) and the ``s3`` extra (boto3, for media in S3) need, followed through every
requirement (markers evaluated for the container's Linux and this Python);
development tools (pytest, ruff, mypy, ...) are left out.

    .venv/bin/python docker/pin.py > docker/constraints.txt
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    env = {k: str(v) for k, v in default_environment().items()}
    env.update(sys_platform="linux", platform_system="Linux", os_name="posix")
    pins: dict[str, str] = {}
    extras = project["optional-dependencies"]
    wanted = [*project["dependencies"], *extras["video"], *extras["s3"], *extras["postgres"]]
    todo: list[tuple[str, frozenset[str]]] = [(r, frozenset()) for r in wanted]
    seen: set[tuple[str, frozenset[str]]] = set()
    missing: list[str] = []
    while todo:
        text, extras = todo.pop()
        req = Requirement(text)
        if req.marker is not None and not any(
            req.marker.evaluate({**env, "extra": extra}) for extra in (extras or {""})
        ):
            continue
        name = canonicalize_name(req.name)
        key = (name, frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            missing.append(req.name)
            continue
        pins[name] = f"{dist.metadata['Name']}=={dist.version}"
        for sub in dist.requires or ():
            todo.append((sub, frozenset(req.extras)))
    if missing:
        print(f"not installed here: {', '.join(sorted(missing))}", file=sys.stderr)
        return 1
    print("# The container's runtime dependencies, pinned; made by docker/pin.py from the")
    print("# development venv. Regenerate after changing [project] dependencies:")
    print("#     .venv/bin/python docker/pin.py > docker/constraints.txt")
    for pinned in sorted(pins):
        print(pins[pinned])
    return 0


if __name__ == "__main__":
    sys.exit(main())
