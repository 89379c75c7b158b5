#!/usr/bin/env bash
# Stand-in for NVIDIA's CUDA network apt repository (developer.download.nvidia.com/compute/cuda/repos/),
# which cannot be reached from the test machines. Writes OUTDIR/nvidia/<distro>/x86_64/: a flat apt
# repository like NVIDIA's (Packages, Release, InRelease, Release.gpg, the signing key as <keyid>.pub),
# holding real .deb packages built with dpkg-deb under NVIDIA's package names and file layout:
#   cuda-toolkit-X-Y -> cuda-nvcc-X-Y (/usr/local/cuda-X.Y/bin/nvcc), cuda-cudart-X-Y (a real ELF
#   libcudart in targets/x86_64-linux/lib, lib64 -> it), cuda-toolkit-X-Y-config-common (/usr/local/cuda
#   and /usr/local/cuda-X through update-alternatives, as NVIDIA's packages do);
#   nvidia-open-B / cuda-drivers-B -> nvidia-driver-B-open / nvidia-driver-B -> nvidia-utils-B (nvidia-smi)
#   and nvidia-compute-utils-B (nvidia-persistenced, its system user and its systemd unit).
# The programs are stand-ins: nvcc answers --version like the real one and refuses to compile;
# nvidia-smi fails like the real one on a machine without an NVIDIA kernel driver (exit 9); so does
# nvidia-persistenced (exit 1), after checking its options and its --user as the real one does. Its unit is
# modelled on the distribution's: persistence mode off (--no-persistence-mode), stopped when unneeded, and no
# [Install] section, so `systemctl enable` refuses it until something adds one.
# Signed with a throwaway RSA key made at build time (its private half is deleted); its fingerprint
# is in OUTDIR/nvidia/signing-key.fingerprint. apt verifies the signature as for the real repository.
# Built once per recipe in .cache/standins/ and copied into OUTDIR when OUTDIR holds another recipe.
#   usage: tests/standins/nvidia/build.sh OUTDIR
set -euo pipefail

out=${1:?usage: build.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
recipe=$(sha256sum "$here/build.sh" | cut -c1-12)

distros=(debian12 debian13 ubuntu2204 ubuntu2404)
toolkits=(12.8:12.8.93 13.0:13.0.88)   # X.Y:full version, as NVIDIA numbers cuda-nvcc
driver_branch=580
driver_version=580.95.05

if [[ -f $out/nvidia/.recipe && "$(cat "$out/nvidia/.recipe")" == "$recipe" ]]; then
  exit 0
fi
cache=$root/.cache/standins/nvidia-$recipe
if [[ ! -f $cache/.recipe ]]; then
  for tool in dpkg-deb dpkg-scanpackages gpg gcc; do
    command -v "$tool" >/dev/null || { echo "nvidia stand-in: '$tool' is missing (run tests/ground/install-system-packages.sh)" >&2; exit 1; }
  done
  work=$(mktemp -d /var/tmp/gpubox-nvidia.XXXXXX)
  trap 'gpgconf --homedir "$work/gnupg" --kill all 2>/dev/null || true; rm -rf "$work"' EXIT
  export GNUPGHOME=$work/gnupg
  install -d -m 0700 "$GNUPGHOME"
  printf 'quiet\ntrust-model always\n' >"$GNUPGHOME/gpg.conf"   # a throwaway key: no trust database chatter
  gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
    --quick-generate-key 'gpubox stand-in cudatools <cudatools@gpubox.invalid>' rsa3072 sign 1y
  fpr=$(gpg --batch --with-colons --list-keys | awk -F: '$1 == "fpr" {print $10; exit}')
  keyid=$(printf '%s' "${fpr: -8}" | tr 'A-F' 'a-f')

  pkgs=$work/pkgs
  mkdir -p "$pkgs"
  # deb NAME VERSION ARCH DEPENDS [EXTRA CONTROL LINES]; the package tree is $work/tree/NAME
  deb() {
    local name=$1 version=$2 arch=$3 depends=$4 extra=${5:-} dir=$work/tree/$1
    mkdir -p "$dir/DEBIAN"
    {
      echo "Package: $name"
      echo "Version: $version"
      echo "Architecture: $arch"
      echo "Maintainer: gpubox stand-in <cudatools@gpubox.invalid>"
      [[ -n $depends ]] && echo "Depends: $depends"
      [[ -n $extra ]] && printf '%s\n' "$extra"
      echo "Section: multiverse/devel"
      echo "Priority: optional"
      echo "Description: stand-in for NVIDIA's $name package (gpubox tests)"
    } >"$dir/DEBIAN/control"
    dpkg-deb --root-owner-group -Zxz --build "$dir" "$pkgs/${name}_${version}_${arch}.deb" >/dev/null
  }

  for tk in "${toolkits[@]}"; do
    xy=${tk%%:*} full=${tk#*:} x=${xy%%.*} dash=${xy/./-}
    prefix=/usr/local/cuda-$xy
    # cuda-toolkit-X-Y-config-common: /usr/local/cuda and /usr/local/cuda-X via alternatives.
    t=$work/tree/cuda-toolkit-$dash-config-common
    mkdir -p "$t/DEBIAN"
    cat >"$t/DEBIAN/postinst" <<POST
#!/bin/sh
set -e
if [ "\$1" = configure ]; then
  update-alternatives --install /usr/local/cuda cuda $prefix ${x}${xy#*.}
  update-alternatives --install /usr/local/cuda-$x cuda-$x $prefix ${x}${xy#*.}
fi
POST
    cat >"$t/DEBIAN/prerm" <<PRERM
#!/bin/sh
set -e
if [ "\$1" = remove ] || [ "\$1" = deconfigure ]; then
  update-alternatives --remove cuda $prefix
  update-alternatives --remove cuda-$x $prefix
fi
PRERM
    chmod 0755 "$t/DEBIAN/postinst" "$t/DEBIAN/prerm"
    deb "cuda-toolkit-$dash-config-common" "$full-1" all ""

    # cuda-cudart-X-Y: a real shared library under targets/, lib64 pointing at it, like NVIDIA's.
    t=$work/tree/cuda-cudart-$dash
    lib=$t$prefix/targets/x86_64-linux/lib
    mkdir -p "$lib"
    printf 'int cudaRuntimeGetVersion(int *v) { *v = %d; return 0; }\n' "$((x * 1000 + ${xy#*.} * 10))" >"$work/cudart.c"
    gcc -shared -fPIC -nostdlib -Wl,-soname,libcudart.so.$x -o "$lib/libcudart.so.$full" "$work/cudart.c"
    ln -s "libcudart.so.$full" "$lib/libcudart.so.$x"
    ln -s targets/x86_64-linux/lib "$t$prefix/lib64"
    deb "cuda-cudart-$dash" "$full-1" amd64 "cuda-toolkit-$dash-config-common"

    # cuda-nvcc-X-Y: nvcc that reports its version the way the real one does and compiles nothing.
    t=$work/tree/cuda-nvcc-$dash
    mkdir -p "$t$prefix/bin"
    cat >"$t$prefix/bin/nvcc" <<NVCC
#!/bin/sh
# Stand-in for NVIDIA's nvcc $full (gpubox tests): reports its version, refuses to compile.
case "\$*" in
  --version|-V)
    echo "nvcc: NVIDIA (R) Cuda compiler driver"
    echo "Copyright (c) 2005-2025 NVIDIA Corporation"
    echo "Built on Wed_Jan_15_19:20:09_PST_2025"
    echo "Cuda compilation tools, release $xy, V$full"
    echo "Build cuda_$xy.r$xy/compiler.35404655_0"
    ;;
  *)
    echo "nvcc fatal   : this is a stand-in nvcc without a compiler: '\$*' cannot be compiled" >&2
    exit 1 ;;
esac
NVCC
    chmod 0755 "$t$prefix/bin/nvcc"
    deb "cuda-nvcc-$dash" "$full-1" amd64 "cuda-cudart-$dash"

    # cuda-toolkit-X-Y: the metapackage users install.
    deb "cuda-toolkit-$dash" "$full-1" amd64 "cuda-nvcc-$dash (>= $full), cuda-cudart-$dash (>= $full), cuda-toolkit-$dash-config-common"
  done

  # Driver: nvidia-smi, as it behaves without an NVIDIA kernel driver loaded.
  b=$driver_branch v=$driver_version-0ubuntu1
  t=$work/tree/nvidia-utils-$b
  mkdir -p "$t/usr/bin"
  cat >"$t/usr/bin/nvidia-smi" <<'SMI'
#!/bin/sh
# Stand-in for NVIDIA's nvidia-smi (gpubox tests). No NVIDIA kernel driver runs in a test container,
# so it fails the way the real one fails there.
if [ ! -r /proc/driver/nvidia/version ]; then
  echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running."
  exit 9
fi
echo "stand-in nvidia-smi: a driver is loaded here; use NVIDIA's real package" >&2
exit 9
SMI
  chmod 0755 "$t/usr/bin/nvidia-smi"
  deb "nvidia-utils-$b" "$v" amd64 ""

  # nvidia-compute-utils-B: the persistence daemon, its user and its unit.
  t=$work/tree/nvidia-compute-utils-$b
  mkdir -p "$t/usr/bin" "$t/lib/systemd/system" "$t/DEBIAN"
  cat >"$t/usr/bin/nvidia-persistenced" <<'PD'
#!/bin/sh
# Stand-in for NVIDIA's nvidia-persistenced (gpubox tests): checks its command line and its user like the
# real daemon, then fails as the real one fails without an NVIDIA kernel driver.
user=""
while [ $# -gt 0 ]; do
  case "$1" in
    -u|--user) [ $# -ge 2 ] || { echo "nvidia-persistenced: option '$1' requires an argument" >&2; exit 1; }
               user=$2; shift ;;
    --user=*) user=${1#--user=} ;;
    -V|--version) echo "nvidia-persistenced:  version 580.95.05"; exit 0 ;;
    -v|--verbose|--persistence-mode|--no-persistence-mode|--no-uvm-persistence-mode|-f|--foreground) ;;
    *) echo "nvidia-persistenced: unrecognized option '$1'" >&2; exit 1 ;;
  esac
  shift
done
if [ -n "$user" ] && ! getent passwd "$user" >/dev/null; then
  echo "nvidia-persistenced failed to initialize. Check syslog for more details." >&2
  logger -t nvidia-persistenced "Failed to find user '$user'" 2>/dev/null || true
  exit 1
fi
if [ ! -r /proc/driver/nvidia/version ]; then
  echo "nvidia-persistenced failed to initialize. Check syslog for more details." >&2
  logger -t nvidia-persistenced "Failed to open libnvidia-cfg: no NVIDIA kernel driver" 2>/dev/null || true
  exit 1
fi
echo "stand-in nvidia-persistenced: a driver is loaded here; use NVIDIA's real package" >&2
exit 1
PD
  chmod 0755 "$t/usr/bin/nvidia-persistenced"
  cat >"$t/lib/systemd/system/nvidia-persistenced.service" <<'UNIT'
[Unit]
Description=NVIDIA Persistence Daemon
Wants=syslog.target
StopWhenUnneeded=true

[Service]
Type=forking
ExecStart=/usr/bin/nvidia-persistenced --user nvidia-persistenced --no-persistence-mode --verbose
ExecStopPost=/bin/rm -rf /var/run/nvidia-persistenced
UNIT
  cat >"$t/DEBIAN/postinst" <<'POST'
#!/bin/sh
set -e
if [ "$1" = configure ] && ! getent passwd nvidia-persistenced >/dev/null; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
    --comment "NVIDIA Persistence Daemon" nvidia-persistenced
fi
POST
  chmod 0755 "$t/DEBIAN/postinst"
  deb "nvidia-compute-utils-$b" "$v" amd64 ""

  deb "nvidia-driver-$b-open" "$v" amd64 "nvidia-utils-$b (= $v), nvidia-compute-utils-$b (= $v)" "Conflicts: nvidia-driver-$b
Provides: nvidia-driver-$b-any"
  deb "nvidia-driver-$b" "$v" amd64 "nvidia-utils-$b (= $v), nvidia-compute-utils-$b (= $v)" "Conflicts: nvidia-driver-$b-open
Provides: nvidia-driver-$b-any"
  deb "nvidia-open-$b" "$driver_version-1" amd64 "nvidia-driver-$b-open (>= $driver_version)"
  deb "cuda-drivers-$b" "$driver_version-1" amd64 "nvidia-driver-$b (>= $driver_version)"

  stage=$work/stage
  for d in "${distros[@]}"; do
    repo=$stage/$d/x86_64
    mkdir -p "$repo"
    cp "$pkgs"/*.deb "$repo/"
    (cd "$repo" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null >Packages && gzip -9kn Packages)
    {
      echo "Origin: NVIDIA"
      echo "Label: NVIDIA CUDA"
      echo "Architecture: x86_64"
      echo "Date: $(LC_ALL=C date -u -R)"
      echo "Acquire-By-Hash: no"
      for sum in MD5Sum:md5sum SHA1:sha1sum SHA256:sha256sum SHA512:sha512sum; do
        echo "${sum%%:*}:"
        for f in Packages Packages.gz; do
          printf ' %s %s %s\n' "$(${sum#*:} "$repo/$f" | cut -d' ' -f1)" "$(stat -c %s "$repo/$f")" "$f"
        done
      done
    } >"$repo/Release"
    gpg --batch --quiet --yes --digest-algo SHA512 --clearsign -o "$repo/InRelease" "$repo/Release"
    gpg --batch --quiet --yes --digest-algo SHA512 -abs -o "$repo/Release.gpg" "$repo/Release"
    gpg --batch --armor --export "$fpr" >"$repo/$keyid.pub"
  done
  echo "$fpr" >"$stage/signing-key.fingerprint"
  echo "$recipe" >"$stage/.recipe"
  mkdir -p "$(dirname "$cache")"
  # A build running at the same time may have put its repository there first: then that one is used.
  mv -T "$stage" "$cache" 2>/dev/null || [[ -f $cache/.recipe ]]
fi
# Replace OUTDIR/nvidia in one step, so that a mirror serving it never sees half a repository.
mkdir -p "$out"
tmp=$(mktemp -d "$out/.nvidia.XXXXXX")
cp -a "$cache/." "$tmp/"
chmod 0755 "$tmp"
old=$out/.nvidia.old.$$
[[ -e $out/nvidia ]] && mv -T "$out/nvidia" "$old"
mv -T "$tmp" "$out/nvidia"
rm -rf "$old"
