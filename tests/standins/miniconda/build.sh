#!/usr/bin/env bash
# Stand-in for the Miniconda and Miniforge installers (repo.anaconda.com and GitHub are unreachable from the
# tests). Writes, under OUTDIR/miniconda/:
#   Miniconda3-py311_25.5.1-1-Linux-x86_64.sh   stands for Anaconda's Miniconda installer of that name
#   Miniforge3-25.3.1-0-Linux-x86_64.sh         stands for conda-forge's Miniforge installer of that name
#   SHA256SUMS                                  their checksums, for the role's *_sha256 variables
# Each is a self-extracting shell script with the real installer's command line (-b -f -h -p PREFIX -s -u -t,
# exit codes, refusal of an existing prefix without -u/-f). It ships a real CPython 3.11 (this machine's
# pyenv build, made relocatable with an $ORIGIN run path, as conda's own python is) and a `bin/conda`
# (standin_conda.py) that implements only the conda commands the miniconda role uses.
# The build is skipped when the recipe (these files + the interpreter's version) is unchanged.
#   usage: tests/standins/miniconda/build.sh OUTDIR
set -euo pipefail
out=${1:?usage: build.sh OUTDIR}/miniconda
here=$(cd "$(dirname "$0")" && pwd)
pyver=${GPUBOX_STANDIN_PYTHON:-3.11.7}
pysrc=${PYENV_ROOT:-/root/.pyenv}/versions/$pyver
minor=${pyver%.*}

[ -x "$pysrc/bin/python$minor" ] || { echo "stand-in miniconda: needs CPython $pyver at $pysrc (pyenv install $pyver)" >&2; exit 1; }
command -v patchelf >/dev/null || { echo "stand-in miniconda: needs patchelf (apt-get install patchelf)" >&2; exit 1; }

recipe=$( { cat "$here/build.sh" "$here/header.sh" "$here/standin_conda.py"; echo "$pyver"; } | sha256sum | cut -c1-16)
if [ -f "$out/.recipe" ] && [ "$(cat "$out/.recipe")" = "$recipe" ] && [ -f "$out/SHA256SUMS" ]; then
  exit 0
fi
echo "building the stand-in Miniconda/Miniforge installers (python $pyver) ..." >&2
work=$(mktemp -d /var/tmp/gpubox-standin-conda.XXXXXX)
trap 'rm -rf "$work"' EXIT
rt=$work/runtime

# The interpreter and its standard library, without tests, IDLE/Tk, the static library and third-party
# packages: what a conda "python" package holds.
mkdir -p "$rt/bin" "$rt/lib"
cp -a "$pysrc/bin/python$minor" "$rt/bin/"
cp -a "$pysrc/lib/libpython$minor.so.1.0" "$rt/lib/"
ln -s "libpython$minor.so.1.0" "$rt/lib/libpython$minor.so"
ln -s "python$minor" "$rt/bin/python3"
ln -s "python$minor" "$rt/bin/python"
tar -C "$pysrc/lib" \
  --exclude="python$minor/test" --exclude="python$minor/idlelib" --exclude="python$minor/tkinter" \
  --exclude="python$minor/turtledemo" --exclude="python$minor/site-packages" --exclude='__pycache__' \
  --exclude="python$minor/lib-dynload/_tkinter*" --exclude='*.a' \
  -c "python$minor" | tar -C "$rt/lib" -x
mkdir -p "$rt/lib/python$minor/site-packages"
strip --strip-unneeded "$rt/lib/libpython$minor.so.1.0" "$rt/bin/python$minor" "$rt/lib/python$minor"/lib-dynload/*.so
# Relocatable: find libpython next to the interpreter wherever the prefix is.
patchelf --set-rpath '$ORIGIN/../lib' "$rt/bin/python$minor"
"$rt/bin/python$minor" -c "import ssl, sqlite3, ctypes, lzma, bz2, zlib, ensurepip" \
  || { echo "stand-in miniconda: the packed interpreter does not run" >&2; exit 1; }

# conda itself (the stand-in) and the YAML parser it needs, as the base environment's packages.
pkgs=$work/conda-pkgs
"$pysrc/bin/python$minor" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-compile \
  --target "$pkgs" "PyYAML==6.0.2" 2>&1 | grep -v "^WARNING: Location" >&2 || true
cp "$here/standin_conda.py" "$rt/lib/python$minor/site-packages/standin_conda.py"

build_one() {  # NAME VERSION CONDA_VERSION DISTRIBUTION FILE
  local name=$1 version=$2 conda_version=$3 dist=$4 file=$5 payload=$work/$4.tar.gz
  rm -rf "$work/p" && mkdir -p "$work/p"
  cp -a "$rt/." "$work/p/"
  cp -a "$pkgs/." "$work/p/lib/python$minor/site-packages/"
  printf '{"name": "%s", "version": "%s", "distribution": "%s", "conda_version": "%s", "python_version": "%s"}\n' \
    "$name" "$version" "$dist" "$conda_version" "$pyver" >"$work/p/standin-distribution.json"
  tar -C "$work/p" -czf "$payload" .
  local md5 lines
  md5=$(md5sum "$payload" | cut -d' ' -f1)
  lines=$(( $(wc -l <"$here/header.sh") + 1 ))
  sed -e "s|__NAME__|$name|g" -e "s|__VERSION__|$version|g" -e "s|__MD5__|$md5|g" \
      -e "s|__LINES__|$lines|g" -e "s|__DEFAULT_PREFIX__|\${HOME:-/opt}/${dist}3|g" \
      "$here/header.sh" >"$work/$file"
  cat "$payload" >>"$work/$file"
  chmod 0755 "$work/$file"
}
build_one Miniconda3 py311_25.5.1-1 25.5.1 miniconda Miniconda3-py311_25.5.1-1-Linux-x86_64.sh
build_one Miniforge3 25.3.1-0 25.3.1 miniforge Miniforge3-25.3.1-0-Linux-x86_64.sh

mkdir -p "$out"
rm -f "$out"/Mini*.sh
mv "$work"/Mini*.sh "$out/"
(cd "$out" && sha256sum Mini*.sh >SHA256SUMS)
echo "$recipe" >"$out/.recipe"
