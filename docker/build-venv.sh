#!/bin/sh
# Build the container's virtual environment. The Dockerfile runs this, and so
# does scripts/check_docker.sh (in CI, where no Docker engine exists), so both
# build the same thing in the same way.
#
#   build-venv.sh deps VENV        a venv without pip, the pinned runtime
#                                  dependencies of docker/constraints.txt
#   build-venv.sh app VENV SRC     the package from the source tree SRC,
#                                  non-editable, then `pip check`
#
# pip itself runs from the base interpreter (--python), so the venv ends up
# with neither pip nor setuptools in it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
phase=$1
venv=$2
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_NO_INPUT=1
pip="${PYTHON:-python3} -m pip --python $venv/bin/python"
case "$phase" in
deps)
    "${PYTHON:-python3}" -m venv --without-pip "$venv"
    $pip install --quiet --require-virtualenv --only-binary=:all: -r "$here/constraints.txt"
    ;;
app)
    src=$3
    # setuptools for the isolated build is pinned too.
    PIP_CONSTRAINT="$here/build-constraints.txt" \
        $pip install --quiet --require-virtualenv --no-deps "$src"
    $pip check
    ;;
*)
    echo "usage: $0 deps VENV | app VENV SRC" >&2
    exit 2
    ;;
esac
