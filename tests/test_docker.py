"""The container's contract, checked statically and fast (the full build of its
venv is scripts/check_docker.sh, which CI runs separately)."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from publisher.config import load_config

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


def instructions(keyword: str) -> list[str]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [m.strip() for m in re.findall(rf"^{keyword}\s+(.*)$", text, re.M)]


def final_stage() -> str:
    return DOCKERFILE.rsplit("\nFROM ", 1)[1]


def pins(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[canonicalize_name(name)] = version
    return out


def test_every_runtime_dependency_is_pinned_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pinned = pins(ROOT / "docker" / "constraints.txt")
    problems = []
    for text in project["dependencies"]:
        req = Requirement(text)
        version = pinned.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req.name} is not pinned")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}=={version} is outside {req.specifier}")
    assert problems == [], (
        "regenerate docker/constraints.txt: .venv/bin/python docker/pin.py > docker/constraints.txt"
    )


def test_no_dev_tools_in_the_image_pins() -> None:
    pinned = pins(ROOT / "docker" / "constraints.txt")
    assert not {"pytest", "ruff", "mypy", "hypothesis", "pip", "setuptools"} & set(pinned)
    assert set(pins(ROOT / "docker" / "build-constraints.txt")) == {"setuptools"}


def test_runs_as_a_numeric_non_root_user() -> None:
    users = re.findall(r"^USER\s+(\S+)", final_stage(), re.M)
    assert users, "the final stage sets no USER"
    uid = users[-1].split(":")[0]
    if uid.startswith("${"):
        arg = uid.strip("${}")
        uid = re.findall(rf"^ARG {arg}=(\d+)", final_stage(), re.M)[-1]
    assert uid.isdigit() and int(uid) != 0


@pytest.mark.parametrize(
    ("keyword", "expected"),
    [
        ("ENTRYPOINT", ["viber-publisher"]),
        ("CMD", ["run"]),
        ("STOPSIGNAL", "SIGTERM"),
        ("EXPOSE", "8080"),
        ("VOLUME", ["/data"]),
    ],
)
def test_dockerfile_instruction(keyword: str, expected: object) -> None:
    value = instructions(keyword)[-1]
    assert (json.loads(value) if isinstance(expected, list) else value) == expected


def test_healthcheck_runs_the_health_command() -> None:
    (healthcheck,) = instructions("HEALTHCHECK")
    assert json.loads(healthcheck.split(" CMD ", 1)[1]) == ["viber-publisher", "health"]


def test_config_location_and_no_build_tools_in_the_final_stage() -> None:
    final = final_stage()
    assert "PUBLISHER_CONFIG=/config/sources.toml" in final
    assert "COPY --from=builder /opt/venv /opt/venv" in final
    assert not re.search(r"apt-get|gcc|build-essential|pip install", final)


def test_dockerignore_lets_in_what_the_build_needs_and_nothing_else() -> None:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rules.append((line.startswith("!"), line.lstrip("!").strip("/")))

    def included(rel: str) -> bool:
        parts = rel.split("/")
        names = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        result = True
        for negate, pattern in rules:
            anywhere = pattern.startswith("**/")
            candidates = parts if anywhere else names
            if any(fnmatch.fnmatchcase(n, pattern.removeprefix("**/")) for n in candidates):
                result = negate
        return result

    for needed in (
        "pyproject.toml",
        "README.md",
        "publisher/__init__.py",
        "publisher/cli/__init__.py",
        "docker/build-venv.sh",
        "docker/constraints.txt",
        "docker/build-constraints.txt",
    ):
        assert included(needed), needed
    for unwanted in (
        ".git/config",
        ".venv/bin/python",
        "tests/conftest.py",
        "data/publisher.sqlite3",
        "docker/secrets/viber_token",
        "sources.toml",
        "publisher/__pycache__/config.cpython-311.pyc",
    ):
        assert not included(unwanted), unwanted


def test_container_config_listens_on_all_addresses_and_keeps_state_in_data() -> None:
    config = load_config(ROOT / "docker" / "sources.toml")
    assert config.server.listen == "0.0.0.0:8080"
    assert config.server.public_url is not None
    assert config.server.public_url.startswith("https://")
    for path in (config.storage.path, config.storage.media_dir):
        assert Path("/data") in path.parents
    assert config.viber.token_file == Path("/run/secrets/viber_token")


def test_compose_mounts_config_read_only_and_keeps_metrics_private() -> None:
    compose = (ROOT / "docker" / "compose.yml").read_text(encoding="utf-8")
    assert ":/config/sources.toml:ro" in compose
    assert "publisher-data:/data" in compose
    assert "viber_token" in compose
    caddy = (ROOT / "docker" / "Caddyfile").read_text(encoding="utf-8")
    assert "reverse_proxy publisher:8080" in caddy
    assert re.search(r"@internal path /metrics", caddy)
    assert "encode" not in caddy  # media must keep their Content-Length
