#!/usr/bin/env bash
# Install and configure what the proving ground needs on a fresh Debian 12 machine. Idempotent: a
# second run installs nothing and rewrites nothing (a few hundred ms).
set -euo pipefail

packages=(podman debootstrap runc uidmap slirp4netns fuse-overlayfs iptables containernetworking-plugins
          openssh-client rsync make gnupg dpkg-dev gcc patchelf chromium shellcheck)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  [[ $EUID -eq 0 ]] || { echo "need root to install: ${missing[*]}" >&2; exit 1; }
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# This VM: crun cannot run on its hybrid cgroups, and root lacks CAP_SYS_RESOURCE to raise rlimits
# beyond these. A drop-in keeps the distribution's containers.conf untouched.
conf=/etc/containers/containers.conf.d/50-gpubox.conf
want='# gpubox proving ground: settings this VM needs to run systemd containers
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"'
if [[ ! -f $conf || "$(cat "$conf")" != "$want" ]]; then
  mkdir -p "$(dirname "$conf")"
  printf '%s\n' "$want" >"$conf"
  echo "wrote $conf"
fi
