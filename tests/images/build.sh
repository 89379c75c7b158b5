#!/usr/bin/env bash
# Build a systemd test-host image (stand-in for an EC2 Ubuntu box) with debootstrap + podman import.
# Nothing is pulled. The image tag carries a hash of this recipe, so a build is redone only when the
# recipe changes.
#   usage: tests/images/build.sh debian12|debian13      (prints the image reference)
set -euo pipefail

name=${1:?usage: build.sh debian12|debian13}
case $name in
  debian12) suite=bookworm ;;
  debian13) suite=trixie ;;
  *) echo "unknown image '$name': use debian12 or debian13" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
recipe=$(cat "$here/build.sh" "$here"/rootfs/* | sha256sum | cut -c1-12)
ref=localhost/gpubox-$name:$recipe

if podman image exists "$ref"; then
  podman tag "$ref" "localhost/gpubox-$name:latest"
  echo "$ref"
  exit 0
fi

mirror=${GPUBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d /var/tmp/gpubox-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs

echo "building $ref ($suite) ..." >&2
# python3-apt: what Ubuntu cloud images ship and Ansible's apt module needs; e2fsprogs: theirs too (an EBS volume
# is formatted and grown on the box), which Debian 13's minbase leaves out.
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,python3,python3-apt,sudo,openssh-server,ca-certificates,dbus,iproute2,procps,e2fsprogs \
  "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }

# Each container gets its own machine-id and SSH host keys at first boot.
: >"$root/etc/machine-id"
rm -f "$root"/etc/ssh/ssh_host_*
install -m 0644 "$here/rootfs/ssh-hostkeys.service" "$root/etc/systemd/system/ssh-hostkeys.service"
ln -sf /etc/systemd/system/ssh-hostkeys.service "$root/etc/systemd/system/multi-user.target.wants/ssh-hostkeys.service"

# Units that cannot work in a container.
for unit in getty@tty1.service systemd-remount-fs.service sys-kernel-debug.mount dev-hugepages.mount \
            systemd-firstboot.service console-getty.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done

# Apt sources as on a real install (security and updates included).
cat >"$root/etc/apt/sources.list" <<SRC
deb $mirror $suite main
deb $mirror $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
SRC

# The login user of EC2's Ubuntu images: 'ubuntu', passwordless sudo, no password.
chroot "$root" useradd --create-home --shell /bin/bash --groups sudo ubuntu
install -m 0440 "$here/rootfs/sudoers-ubuntu" "$root/etc/sudoers.d/90-cloud-init-users"

# The host's extra CA certificates, so HTTPS from inside works where the host's does.
shopt -s nullglob
for crt in /usr/local/share/ca-certificates/*.crt; do
  install -m 0644 "$crt" "$root/usr/local/share/ca-certificates/"
done
chroot "$root" update-ca-certificates >/dev/null 2>&1

chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/log/*.log

tar -C "$root" -c . | podman import --quiet \
  --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3' \
  --change "LABEL org.gpubox.recipe=$recipe" - "$ref" >/dev/null
podman tag "$ref" "localhost/gpubox-$name:latest"
echo "$ref"
