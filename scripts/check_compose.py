"""Check a Docker Compose file of docker/ without a Docker engine (CI has none).

    python scripts/check_compose.py [--python PY] docker/compose.yml [...]

For each file: it parses (YAML, a ``services`` mapping); every file it names
(build context and Dockerfile, bind mounts, env files, secrets, a Caddyfile)
exists in docker/, or its header's start instructions make it (``cp A B``
makes B from A, which must exist; ``... > PATH`` writes PATH); named volumes
and secrets are declared; ``depends_on`` names services, and a
``service_healthy`` one has a health check. For each service built from this
project: its config is mounted read-only at /config/sources.toml and passes
``viber-publisher check`` (with stand-ins for the service's Docker secrets);
it listens on 0.0.0.0:8080; with several replicas its state and media are
shared (``[storage] url`` and ``media_url``, on services of the same file).
A mounted Caddyfile proxies only to services of the file, without
compression. ``--python``: an interpreter with viber-publisher installed
(default: this one). PyYAML is needed here, nothing else.

Prints one line per problem; exit 1 if any, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

#: Where the image reads its config (PUBLISHER_CONFIG in the Dockerfile).
CONFIG_TARGET = "/config/sources.toml"
#: What a replica's config must be to run in the container, as JSON.
_DUMP = """
import json, sys
from publisher.config import load_config
c = load_config(sys.argv[1])
s = c.storage
print(json.dumps({"listen": c.server.listen, "url": s.url, "media_url": s.media_url,
    "s3_endpoint": s.s3_endpoint, "path": str(s.path), "media_dir": str(s.media_dir)}))
"""


def header_instructions(text: str) -> tuple[dict[str, str], set[str]]:
    """From the comment lines at the top: ``cp A B`` (B made from A) and
    ``> PATH`` (PATH written by the user), as paths relative to the folder."""
    copies: dict[str, str] = {}
    written: set[str] = set()
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        for src, dst in re.findall(r"\bcp\s+(\S+)\s+(\S+)", line):
            copies[_rel(dst)] = _rel(src)
        for path in re.findall(r">\s*([\w./-]+)", line):
            written.add(_rel(path))
    return copies, written


def _rel(path: str) -> str:
    return path.removeprefix("./")


class Checker:
    def __init__(self, compose: Path, python: str) -> None:
        self.compose = compose
        self.folder = compose.parent
        self.python = python
        self.problems: list[str] = []
        self.text = compose.read_text(encoding="utf-8")
        self.copies, self.written = header_instructions(self.text)

    def bad(self, message: str) -> None:
        self.problems.append(f"{self.compose.name}: {message}")

    def file(self, name: str, what: str) -> Path | None:
        """The file ``name`` (relative to the compose folder) as it will be:
        itself, or the template its header copies it from; None if it is
        only written by the user, or missing (a problem)."""
        rel = _rel(name)
        path = (self.folder / rel).resolve()
        if path.exists():
            return path
        if rel in self.copies:
            template = (self.folder / self.copies[rel]).resolve()
            if template.exists():
                return template
            self.bad(f"{what}: {rel} is copied from {self.copies[rel]}, which does not exist")
            return None
        if rel not in self.written:
            self.bad(
                f"{what}: {rel} does not exist, and the start instructions at the top do not "
                "make it (cp TEMPLATE FILE, or ... > FILE)"
            )
        return None

    def run(self) -> list[str]:
        try:
            doc = yaml.safe_load(self.text)
        except yaml.YAMLError as exc:
            self.bad(f"not YAML: {exc}")
            return self.problems
        services = doc.get("services") if isinstance(doc, dict) else None
        if not isinstance(services, dict) or not services:
            self.bad("no services")
            return self.problems
        self.services: dict[str, dict[str, Any]] = services
        self.volumes = set(doc.get("volumes") or {})
        secrets = doc.get("secrets") or {}
        for name, spec in secrets.items():
            if isinstance(spec, dict) and "file" in spec:
                self.file(spec["file"], f"secret {name}")
        self.project = self.project_services()
        for name, service in services.items():
            self.check_service(name, service or {}, set(secrets))
        return self.problems

    def project_services(self) -> set[str]:
        """The services that run this project's image (built here, or its tag)."""
        built: set[str] = set()
        images: set[str] = set()
        for name, service in self.services.items():
            build = (service or {}).get("build")
            if build is None:
                continue
            context = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
            root = (self.folder / context).resolve()
            if not (root / (dockerfile or "Dockerfile")).is_file():
                self.bad(f"{name}: build: no {dockerfile or 'Dockerfile'} in {root}")
                continue
            if (root / "publisher" / "__init__.py").is_file():
                built.add(name)
                if service.get("image"):
                    images.add(service["image"])
        return built | {
            n for n, s in self.services.items() if (s or {}).get("image") in images and images
        }

    def check_service(self, name: str, service: dict[str, Any], secrets: set[str]) -> None:
        mounts: dict[str, tuple[str, bool]] = {}  # target -> (source, read-only)
        for volume in service.get("volumes") or []:
            if isinstance(volume, dict):
                source, target = volume.get("source", ""), volume.get("target", "")
                ro = bool(volume.get("read_only"))
            else:
                parts = str(volume).split(":")
                source, target = parts[0], parts[1] if len(parts) > 1 else parts[0]
                ro = len(parts) > 2 and "ro" in parts[2].split(",")
            if source.startswith((".", "/")):
                mounts[target] = (source, ro)
                self.file(source, f"{name}: volume {target}")
            elif source and source not in self.volumes:
                self.bad(f"{name}: volume {source} is not declared under the top-level volumes")
        env_files = service.get("env_file") or []
        for env_file in [env_files] if isinstance(env_files, (str, dict)) else env_files:
            path = env_file["path"] if isinstance(env_file, dict) else env_file
            self.file(path, f"{name}: env_file")
        own_secrets = []
        for secret in service.get("secrets") or []:
            secret_name = secret["source"] if isinstance(secret, dict) else secret
            own_secrets.append(secret_name)
            if secret_name not in secrets:
                self.bad(f"{name}: secret {secret_name} is not declared in the top-level secrets")
        depends = service.get("depends_on") or {}
        if not isinstance(depends, dict):
            depends = {other: {} for other in depends}
        for other, spec in depends.items():
            target = self.services.get(other)
            if target is None:
                self.bad(f"{name}: depends on {other}, which is not a service of this file")
                continue
            condition = (spec or {}).get("condition", "service_started")
            if (
                condition == "service_healthy"
                and not (target or {}).get("healthcheck")
                and other not in self.project
            ):
                self.bad(f"{name}: waits for {other} to be healthy, but {other} has no healthcheck")
            if condition == "service_completed_successfully" and (target or {}).get(
                "restart", "no"
            ) not in ("no", None):
                self.bad(f"{name}: waits for {other} to complete, but {other} restarts")
        caddyfile = mounts.get("/etc/caddy/Caddyfile")
        if caddyfile:
            path = self.file(caddyfile[0], f"{name}: Caddyfile")
            if path is not None:
                self.check_caddyfile(path)
        if name in self.project:
            self.check_publisher(name, service, mounts, own_secrets)

    def check_caddyfile(self, path: Path) -> None:
        text = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
        upstreams = re.findall(r"\breverse_proxy\s+(?:/\S*\s+)?([\w.-]+):(\d+)", text)
        upstreams += re.findall(r"\bdynamic\s+a\s+([\w.-]+)\s+(\d+)", text)
        if not upstreams:
            self.bad(f"{path.name}: proxies to no service")
        for host, port in upstreams:
            if host not in self.services:
                self.bad(f"{path.name}: proxies to {host}, which is not a service of this file")
            elif host in self.project and port != "8080":
                self.bad(f"{path.name}: proxies to {host}:{port}; the service listens on 8080")
        if re.search(r"^\s*encode\b", text, re.M):
            self.bad(f"{path.name}: compresses responses; Viber wants media's exact Content-Length")

    def check_publisher(
        self,
        name: str,
        service: dict[str, Any],
        mounts: dict[str, tuple[str, bool]],
        secrets: list[str],
    ) -> None:
        mounted = mounts.get(CONFIG_TARGET)
        if mounted is None:
            self.bad(f"{name}: nothing is mounted at {CONFIG_TARGET} (the image's config)")
            return
        if not mounted[1]:
            self.bad(f"{name}: {CONFIG_TARGET} is not mounted read-only (:ro)")
        config = self.file(mounted[0], f"{name}: config")
        if config is None:
            return
        with tempfile.TemporaryDirectory() as tmp:
            # The service's secrets as files, where its config reads them.
            for secret in secrets:
                (Path(tmp) / secret).write_text("stand-in\n", encoding="utf-8")
            text = config.read_text(encoding="utf-8").replace("/run/secrets/", tmp + "/")
            local = Path(tmp) / "sources.toml"
            local.write_text(text, encoding="utf-8")
            checked = subprocess.run(
                [self.python, "-m", "publisher", "--config", str(local), "check"],
                capture_output=True,
                text=True,
                cwd=tmp,
            )
            if checked.returncode != 0:
                errors = [line for line in checked.stderr.splitlines() if line.strip()]
                self.bad(f"{name}: viber-publisher check {config.name}: " + "; ".join(errors))
                return
            dumped = subprocess.run(
                [self.python, "-c", _DUMP, str(local)], capture_output=True, text=True, cwd=tmp
            )
        if dumped.returncode != 0:
            self.bad(f"{name}: cannot read {config.name}: {dumped.stderr.strip()}")
            return
        values = json.loads(dumped.stdout)
        self.check_config(name, service, config.name, values)

    def check_config(
        self, name: str, service: dict[str, Any], config: str, values: dict[str, Any]
    ) -> None:
        where = f"{name}: {config}"
        if values["listen"] != "0.0.0.0:8080":
            self.bad(f'{where}: server.listen is {values["listen"]}, not "0.0.0.0:8080"')
        for key, path, shared in (
            ("storage.path", values["path"], values["url"]),
            ("storage.media_dir", values["media_dir"], values["media_url"]),
        ):
            if not shared and not path.startswith("/data/"):
                self.bad(f"{where}: {key} is {path}, outside the /data volume")
        replicas = ((service.get("deploy") or {}).get("replicas")) or 1
        if replicas > 1:
            if not values["url"]:
                self.bad(
                    f"{where}: {replicas} replicas cannot share a SQLite file: set [storage] url "
                    "(PostgreSQL)"
                )
            if not values["media_url"]:
                self.bad(
                    f"{where}: {replicas} replicas cannot share a media folder: set [storage] "
                    'media_url = "s3://..."'
                )
        for key in ("url", "s3_endpoint"):
            host = urlsplit(values[key]).hostname if values[key] else None
            if host and "." not in host and host not in self.services:
                self.bad(f"{where}: storage.{key} names {host}, not a service of this file")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    problems = []
    for path in args.files:
        problems += Checker(path.resolve(), args.python).run()
    for line in problems:
        print(f"FAIL: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
