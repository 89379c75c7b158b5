#!/usr/bin/env bash
# Download, here (with PyPI), the wheels the GPU machine lacks to run Ansible: ansible-core and the
# dependencies its Python 3.12 environment does not have (see docs/gpu-verification.md). jinja2,
# MarkupSafe, PyYAML and packaging are already there. Versions: those of this project's venv.
#   usage: tests/gpu/fetch-wheels.sh [DIR]      (default .whl/ at the repository root, git-ignored locally)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-$root/.whl}
pip=${PIP:-$root/.venv/bin/pip}
version() { "$pip" show "$1" 2>/dev/null | sed -n 's/^Version: //p'; }

wheels=()
for name in ansible-core resolvelib cryptography cffi pycparser; do
  v=$(version "$name")
  [[ -n $v ]] || { echo "fetch-wheels: $name is not in $root/.venv (run make setup)" >&2; exit 1; }
  wheels+=("$name==$v")
done

mkdir -p "$dir"
if [[ $dir == "$root/.whl" && -d $root/.git ]]; then
  mkdir -p "$root/.git/info"
  grep -qx '/.whl/' "$root/.git/info/exclude" 2>/dev/null || echo '/.whl/' >>"$root/.git/info/exclude"
fi
platforms=()
for p in manylinux_2_34_x86_64 manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
  platforms+=(--platform "$p")
done
"$pip" download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d "$dir" "${wheels[@]}"
ls -1 "$dir"
