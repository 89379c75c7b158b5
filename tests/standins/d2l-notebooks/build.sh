#!/usr/bin/env bash
# Stand-in for the D2L notebooks archive (https://d2l.ai/d2l-en-1.0.3.zip, unreachable from the tests).
# Writes OUTDIR/d2l/d2l-en-1.0.3.zip with the real archive's layout (one folder per framework, chapters
# inside) holding a few real Jupyter notebooks, and OUTDIR/d2l/SHA256SUMS. The archive is byte-for-byte
# reproducible, so its checksum only changes with this recipe.
#   usage: tests/standins/d2l-notebooks/build.sh OUTDIR
set -euo pipefail
out=${1:?usage: build.sh OUTDIR}/d2l
here=$(cd "$(dirname "$0")" && pwd)
recipe=$(cat "$here/build.sh" "$here/make_zip.py" | sha256sum | cut -c1-16)
if [ -f "$out/.recipe" ] && [ "$(cat "$out/.recipe")" = "$recipe" ] && [ -f "$out/SHA256SUMS" ]; then
  exit 0
fi
mkdir -p "$out"
python3 "$here/make_zip.py" "$out/d2l-en-1.0.3.zip"
(cd "$out" && sha256sum d2l-en-*.zip >SHA256SUMS)
echo "$recipe" >"$out/.recipe"
