"""The container's contract, checked statically and fast (the full build of its
venv is scripts/check_docker.sh, which CI runs separately)."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
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


# ---------------------------------------------------------------- compose files
# scripts/check_compose.py is what scripts/check_docker.sh runs on them.


def _compose_checker() -> Any:
    spec = importlib.util.spec_from_file_location(
        "check_compose", ROOT / "scripts" / "check_compose.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["compose.yml", "compose.scale.yml"])
def test_compose_file_passes_the_static_checks(name: str) -> None:
    checker = _compose_checker().Checker(ROOT / "docker" / name, sys.executable)
    assert checker.run() == []


def test_scaled_compose_shares_state_and_media_across_replicas() -> None:
    compose = yaml.safe_load((ROOT / "docker" / "compose.scale.yml").read_text(encoding="utf-8"))
    publisher = compose["services"]["publisher"]
    assert publisher["deploy"]["replicas"] >= 2
    assert "./sources.scale.local.toml:/config/sources.toml:ro" in publisher["volumes"]
    config = load_config(ROOT / "docker" / "sources.scale.toml")
    assert config.storage.url is not None and config.storage.media_url is not None
    assert config.storage.password_file == Path("/run/secrets/postgres_password")
    # The bucket the one-shot job makes is the one media_url names.
    bucket = compose["services"]["s3-bucket"]["environment"]["S3_BUCKET"]
    assert config.storage.media_bucket is not None
    assert config.storage.media_bucket[0] == bucket
    # Media go through Caddy to the replicas, which read the private bucket.
    assert config.storage.public_media_url == f"{config.server.public_url}/media"
    caddy = (ROOT / "docker" / "Caddyfile.scale").read_text(encoding="utf-8")
    assert "dynamic a publisher 8080" in caddy
    assert "encode" not in caddy


def test_compose_check_reports_what_would_break_at_start(tmp_path: Path) -> None:
    (tmp_path / "sources.toml").write_text(
        (ROOT / "docker" / "sources.toml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (tmp_path / "Caddyfile").write_text(
        "{$D} {\n\tencode gzip\n\treverse_proxy publishr:8080\n}\n", encoding="utf-8"
    )
    (tmp_path / "compose.yml").write_text(
        f"""# cp sources.toml sources.local.toml
# printf x > secrets/viber_token
services:
  publisher:
    build: {{context: {ROOT}, dockerfile: Dockerfile}}
    image: viber-publisher:latest
    deploy: {{replicas: 2}}
    volumes:
      - ./sources.local.toml:/config/sources.toml
      - data:/data
    secrets: [viber_token]
    env_file: ./missing.env
    depends_on:
      db: {{condition: service_healthy}}
  db:
    image: postgres:17
  caddy:
    image: caddy:2.10
    volumes: ["./Caddyfile:/etc/caddy/Caddyfile:ro"]
secrets:
  viber_token: {{file: ./secrets/viber_token}}
""",
        encoding="utf-8",
    )
    problems = _compose_checker().Checker(tmp_path / "compose.yml", sys.executable).run()
    expected = [
        "volume data is not declared",
        "missing.env does not exist",
        "waits for db to be healthy, but db has no healthcheck",
        "/config/sources.toml is not mounted read-only",
        "replicas cannot share a SQLite file",
        "replicas cannot share a media folder",
        "proxies to publishr, which is not a service",
        "compresses responses",
    ]
    for words in expected:
        assert any(words in line for line in problems), (words, problems)
    assert len(problems) == len(expected), problems


def test_compose_check_runs_viber_publisher_check_on_the_config(tmp_path: Path) -> None:
    (tmp_path / "sources.toml").write_text(
        (ROOT / "docker" / "sources.toml").read_text(encoding="utf-8").replace("every =", "evry ="),
        encoding="utf-8",
    )
    (tmp_path / "compose.yml").write_text(
        f"""services:
  publisher:
    build: {{context: {ROOT}}}
    volumes: ["./sources.toml:/config/sources.toml:ro"]
""",
        encoding="utf-8",
    )
    (problem,) = _compose_checker().Checker(tmp_path / "compose.yml", sys.executable).run()
    assert "viber-publisher check sources.toml" in problem and "evry" in problem
