#!/usr/bin/env bash
# Bring this machine back to how a new one looks for what the proving ground makes: its podman containers,
# networks (with their bridges) and test images, the venv and the checkout's caches. `.ci/run` starts with it,
# so that a green CI means a fresh clone on a fresh machine passes. A rehearsal that is up is taken down first.
# Containers that are not the project's are left alone.
#   usage: tests/ground/fresh.sh        (or `make fresh`)
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ -f .cache/rehearsal/state.json && -x .venv/bin/python ]]; then
  .venv/bin/python -m tests.ground.rehearsal down || true
fi
if command -v podman >/dev/null; then
  # The test hosts, and whatever joined one of the project's networks (molecule's boxes, rehearsal boxes).
  podman ps -aq --filter label=org.gpubox.testhost=1 | xargs -r podman rm -f -t 2 >/dev/null
  for net in $(podman network ls --format '{{.Name}}' | grep '^gpubox-' || true); do
    podman network rm -f "$net" >/dev/null   # -f: its containers too; podman removes the bridge with it
    echo "removed network $net"
  done
  for image in $(podman images --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/gpubox-' || true); do
    podman rmi -f "$image" >/dev/null
    echo "removed image $image"
  done
fi
# The EC2 twin's EBS volumes (tests/ground/twin.py): loop devices over its volume files.
losetup -a 2>/dev/null | grep -F '/gpubox-twin-vol-' | cut -d: -f1 | xargs -r -n1 losetup -d || true
rm -rf .venv .cache .pytest_cache .ruff_cache
echo "fresh: no gpubox containers, networks, images or venv left"
