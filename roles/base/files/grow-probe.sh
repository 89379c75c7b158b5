#!/bin/sh
# What growing a mounted filesystem to the end of its disk takes, as one line of JSON: $1 is the mount point.
m=$1
# not a mounted filesystem on a block device: nothing to grow
none() { printf '{"mount": "%s", "block": false, "grow_partition": false, "grow_fs": false}\n' "$m"; exit 0; }
line=$(findmnt -n -o SOURCE,FSTYPE --mountpoint "$m" 2>/dev/null) || none
src=${line%% *}; src=${src%%\[*}; fstype=${line##* }
dev=$(readlink -f "$src" 2>/dev/null)
name=${dev##*/}
[ -b "$dev" ] || none
# sizes in 512-byte sectors; a partition (sysfs knows it by its name) has a disk, a start and maybe room after it
size=$(( $(blockdev --getsize64 "$dev") / 512 ))
sys=/sys/class/block/$name
if [ -e "$sys/partition" ]; then
  part=$(cat "$sys/partition"); disk=$(basename "$(readlink -f "$sys/..")")
  spare=$(( $(cat "/sys/class/block/$disk/size") - $(cat "$sys/start") - size ))
else
  part=""; disk=$name; spare=0
fi
case "$fstype" in
  ext2|ext3|ext4) fs=$(dumpe2fs -h "$dev" 2>/dev/null | awk -F: '/^Block count/ {c = $2} /^Block size/ {s = $2} END {printf "%d", c * s}') ;;
  xfs) fs=$(xfs_info "$m" 2>/dev/null | sed -n 's/^data *= *bsize=\([0-9]*\) *blocks=\([0-9]*\).*/\1 \2/p' | awk '{printf "%d", $1 * $2}') ;;
  *) fs=0 ;;
esac
# a partition with more than 1 MiB after it grows; a filesystem more than 1 MiB smaller than its device grows
gp=false; [ -n "$part" ] && [ "$spare" -gt 2048 ] && gp=true
gf=false; case "$fstype" in ext2|ext3|ext4|xfs) [ "${fs:-0}" -gt 0 ] && { [ "$gp" = true ] || [ $(( size * 512 - fs )) -gt 1048576 ]; } && gf=true ;; esac
have=false; command -v growpart >/dev/null && have=true
printf '{"mount": "%s", "block": true, "source": "%s", "fstype": "%s", "disk": "/dev/%s", "partition": "%s", "device_bytes": %d, "fs_bytes": %d, "grow_partition": %s, "grow_fs": %s, "growpart": %s}\n' \
  "$m" "$dev" "$fstype" "$disk" "$part" $(( size * 512 )) "${fs:-0}" "$gp" "$gf" "$have"
