#!/bin/sh
#
# Stand-in for the installer __NAME__ __VERSION__ (linux-64), used by gpubox's tests where the real
# installer cannot be downloaded. Same command line and exit codes as the real (constructor-made) one.
#
# NAME:  __NAME__
# VER:   __VERSION__
# PLAT:  linux-64
# MD5:   __MD5__

set -eu
unset LD_LIBRARY_PATH LD_PRELOAD LD_AUDIT

if ! echo "$0" | grep '\.sh$' > /dev/null; then
    printf 'Please run using "bash"/"dash"/"sh"/"zsh", but not "." or "source".\n' >&2
    exit 1
fi

THIS_DIR=$(DIRNAME=$(dirname "$0"); cd "$DIRNAME"; pwd)
THIS_FILE=$(basename "$0")
THIS_PATH="$THIS_DIR/$THIS_FILE"
PREFIX="__DEFAULT_PREFIX__"
BATCH=0
FORCE=0
REINSTALL=0
USAGE="
usage: $0 [options]

Installs __NAME__ __VERSION__
-b           run install in batch mode (without manual intervention),
             it is expected the license terms (if any) are agreed upon
-f           no error if install prefix already exists
-h           print this help message and exit
-p PREFIX    install prefix, defaults to $PREFIX, must not contain spaces.
-s           skip running pre/post-link/install scripts
-u           update an existing installation
-t           run package tests after installation (may install conda-build)
"

while getopts "bfhp:sut" x; do
    case "$x" in
        h)
            printf "%s\\n" "$USAGE"
            exit 2
            ;;
        b)  BATCH=1 ;;
        f)  FORCE=1 ;;
        p)  PREFIX="$OPTARG" ;;
        s)  ;;
        u)  FORCE=1 ;;
        t)
            printf "ERROR: Testing not possible without keep_pkgs\\n" >&2
            exit 1
            ;;
        ?)
            printf "ERROR: did not recognize option '%s', please try -h\\n" "$x"
            exit 1
            ;;
    esac
done

if [ "$BATCH" = "0" ]; then
    # The real installer pages its license and asks questions here; the stand-in only knows batch mode.
    printf "ERROR: this stand-in of __NAME__ runs in batch mode only (-b)\\n" >&2
    exit 2
fi

case "$PREFIX" in
    *\ * )
        printf "ERROR: Cannot install into directories with spaces\\n" >&2
        exit 1
        ;;
esac

if [ "$FORCE" = "0" ] && [ -e "$PREFIX" ]; then
    printf "ERROR: File or directory already exists: '%s'\\n" "$PREFIX" >&2
    printf "If you want to update an existing installation, use the -u option.\\n" >&2
    exit 1
elif [ "$FORCE" = "1" ] && [ -e "$PREFIX" ]; then
    REINSTALL=1
fi

if ! mkdir -p "$PREFIX"; then
    printf "ERROR: Could not create directory: '%s'\\n" "$PREFIX" >&2
    exit 1
fi
PREFIX=$(cd "$PREFIX"; pwd)
export PREFIX
printf "PREFIX=%s\\n" "$PREFIX"

MD5=$(tail -n +__LINES__ "$THIS_PATH" | md5sum -)
if ! echo "$MD5" | grep __MD5__ >/dev/null; then
    printf "WARNING: md5sum mismatch of tar archive\\n" >&2
    printf "expected: __MD5__\\n" >&2
    printf "     got: %s\\n" "$MD5" >&2
fi

printf "Unpacking payload ...\\n"
if ! tail -n +__LINES__ "$THIS_PATH" | tar -xzf - -C "$PREFIX"; then
    printf "ERROR: could not unpack the payload into '%s'\\n" "$PREFIX" >&2
    exit 1
fi

# Entry point with the prefix's interpreter, as conda writes them (prefix replacement).
PYTHON="$PREFIX/bin/python"
mkdir -p "$PREFIX/conda-meta" "$PREFIX/envs" "$PREFIX/pkgs" "$PREFIX/etc/profile.d" "$PREFIX/condabin"
cat > "$PREFIX/bin/conda" <<PY
#!$PREFIX/bin/python
import sys
from standin_conda import main
if __name__ == "__main__":
    sys.exit(main())
PY
chmod 0755 "$PREFIX/bin/conda"
ln -sf ../bin/conda "$PREFIX/condabin/conda"
if ! "$PYTHON" -c "import ssl, sqlite3, ctypes, lzma, bz2, zlib, yaml" 2>"$PREFIX/.install-error"; then
    printf "ERROR: the bundled python cannot run on this system:\\n" >&2
    cat "$PREFIX/.install-error" >&2
    exit 1
fi
rm -f "$PREFIX/.install-error"
"$PREFIX/bin/conda" shell.posix hook > "$PREFIX/etc/profile.d/conda.sh"
"$PREFIX/bin/conda" _standin_record_install --reinstall "$REINSTALL" --installer "$THIS_FILE"

printf "installation finished.\\n"
exit 0
