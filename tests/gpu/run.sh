#!/usr/bin/env bash
# Run the cuda role's detect-and-verify path on a real GPU machine, with -c local, twice (the second run
# must change nothing), and record what was verified. Made for the project's GPU check machine: Ubuntu
# 24.04, NVIDIA driver 580 (open modules) and CUDA 13.0 from NVIDIA's apt packages already installed, no
# systemd, no lspci, no network, python3 = a 3.12 venv without ansible-core or cryptography.
#   on a machine with PyPI:   tests/gpu/fetch-wheels.sh          (wheels into .whl/)
#   on the GPU machine:       tests/gpu/run.sh [OUTDIR]          (run as root from the repository root)
# Environment: WHEELS (default .whl), CUDA_VERSION (13.0), DRIVER_BRANCH (580).
# Exit status 0 only when both runs succeed and the second changes nothing.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-${OUT:-/tmp/gpubox-gpu}}
wheels=${WHEELS:-$root/.whl}
cuda_version=${CUDA_VERSION:-13.0}
driver_branch=${DRIVER_BRANCH:-580}
mkdir -p "$out"
summary=$out/summary.txt
: >"$summary"
say() { echo "$*" | tee -a "$summary"; }
fail() { say "FAILED: $*"; exit 1; }

# Where this machine keeps the driver's tools and libcuda (a container with the host's driver mounted).
. "$root/tests/gpu/common.sh"
gpu_machine_env

say "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "host: $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r), $(uname -m)"
say "python3: $(command -v python3) $(python3 -V 2>&1)"

# Ansible, carried as wheels.
install_carried_ansible "$wheels" /tmp/gpubox-ansible-site >"$out/ansible-version.txt" 2>"$out/ansible-install.err" \
  || fail "$(cat "$out/ansible-install.err")"
say "$(cat "$out/ansible-version.txt")"

# What the machine says before the role runs (the role must find the same by itself).
say "nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,persistence_mode --format=csv,noheader 2>&1 | paste -sd';')"
say "nvcc: $(/usr/local/cuda-"$cuda_version"/bin/nvcc --version 2>&1 | grep -o 'release [0-9.]*, V[0-9.]*' || echo missing)"
say "host compiler: $(command -v g++ || echo 'g++ missing: nvcc cannot compile')"
say "NVIDIA PCI functions: $(grep -lx 0x10de /sys/bus/pci/devices/*/vendor 2>/dev/null | wc -l)"

# Persistence mode: the role turns it on; where this machine does not let it (a container without the
# permission), say so and check the rest.
persistence=true
if nvidia-smi --query-gpu=persistence_mode --format=csv,noheader 2>/dev/null | grep -q Disabled; then
  pm=$(nvidia-smi -pm 1 2>&1)
  if nvidia-smi --query-gpu=persistence_mode --format=csv,noheader 2>/dev/null | grep -q Disabled; then
    persistence=false
    say "persistence mode cannot be set here ($pm): checked with cuda_persistence_mode=false"
  else
    # Back off, so that the role's own task is the one that turns it on in run 1.
    nvidia-smi -pm 0 >/dev/null 2>&1
    say "persistence mode: off, and settable here"
  fi
fi

cfg=$out/ansible.cfg
write_local_ansible_cfg "$cfg" "$root" "$out/inventory.ini"
echo "gpu-box ansible_connection=local" >"$out/inventory.ini"
export ANSIBLE_CONFIG=$cfg ANSIBLE_LOCAL_TEMP=/tmp/gpubox-ansible-tmp ANSIBLE_NOCOLOR=1
vars=$(printf '{"cuda_toolkit_version": "%s", "cuda_driver_branch": "%s", "cuda_persistence_mode": %s, "gpubox_gpu_report": "%s"}' \
  "$cuda_version" "$driver_branch" "$persistence" "$out/findings.json")

rc=0
for run in 1 2; do
  start=$(date +%s)
  python3 -m ansible playbook "$root/tests/gpu/verify-cuda.yml" -e "$vars" >"$out/run$run.log" 2>&1
  status=$?
  recap=$(grep -A1 'PLAY RECAP' "$out/run$run.log" | tail -1 | tr -s ' ')
  say "run $run: exit $status in $(( $(date +%s) - start )) s; $recap"
  if ((status != 0)); then
    rc=1
    grep -B2 -A12 'fatal:\|FAILED' "$out/run$run.log" | head -60 | tee -a "$summary"
    break
  fi
done
if ((rc == 0)); then
  changed=$(sed -n '/PLAY RECAP/,$p' "$out/run2.log" | grep -o 'changed=[0-9]*' | awk -F= '{s += $2} END {print s + 0}')
  [[ $changed == 0 ]] || { say "second run changed $changed task(s): not idempotent"; rc=1; }
  say "findings: $(tr -s ' \n' ' ' <"$out/findings.json")"
fi
say "result: $([[ $rc == 0 ]] && echo PASS || echo FAIL)"
exit $rc
