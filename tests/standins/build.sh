#!/usr/bin/env bash
# Build every stand-in download into the mirror directory OUTDIR: each tests/standins/<name>/build.sh
# writes its part under OUTDIR (and skips the work when its recipe is unchanged).
#   usage: tests/standins/build.sh OUTDIR
set -euo pipefail
out=${1:?usage: build.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
shopt -s nullglob
for part in "$here"/*/build.sh; do
  "$part" "$out"
done
