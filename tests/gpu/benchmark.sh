#!/usr/bin/env bash
# Run playbooks/benchmark.yml on a real GPU machine with -c local, with the machine's own torch, and check
# that the result is sane: measured on the GPU (not the CPU path), and bf16 dense matmul at least 90 % of the
# ~790 TFLOP/s measured on H100/H200 (docs/benchmarks.md). Made for the project's GPU check machine:
# Ubuntu 24.04, driver and CUDA installed, python3 = a 3.12 venv with torch but without ansible-core, no
# network, no systemd.
#   on a machine with PyPI:   tests/gpu/fetch-wheels.sh              (wheels into .whl/)
#   on the GPU machine:       tests/gpu/benchmark.sh [OUTDIR]        (from the repository root)
# Leaves in OUTDIR (default $OUT, else /tmp/gpubox-bench): summary.txt, run.log, results/*.json (the raw
# result), report.md (charts are drawn where matplotlib is: python roles/benchmark/files/report.py
# OUTDIR/results --out DIR).
# Environment: WHEELS (default .whl), BENCH_PYTHON (default: python3 on PATH), BENCH_BOX (gpu-box),
# BENCH_INSTANCE_TYPE (empty: not an EC2 instance, no cost), MIN_BF16_TFLOPS (711 = 90 % of 790).
# Exit status 0 only when the playbook succeeds on the GPU path and bf16 reaches MIN_BF16_TFLOPS.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-${OUT:-/tmp/gpubox-bench}}
wheels=${WHEELS:-$root/.whl}
box=${BENCH_BOX:-gpu-box}
min_bf16=${MIN_BF16_TFLOPS:-711}
mkdir -p "$out"
summary=$out/summary.txt
: >"$summary"
say() { echo "$*" | tee -a "$summary"; }
fail() { say "FAILED: $*"; say "result: FAIL"; exit 1; }

. "$root/tests/gpu/common.sh"
gpu_machine_env
python=${BENCH_PYTHON:-$(command -v python3)}

say "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "host: $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r), $(uname -m)"
say "benchmark python: $python $("$python" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tail -1)"
say "nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv,noheader 2>&1 | paste -sd';')"

install_carried_ansible "$wheels" /tmp/gpubox-ansible-site >"$out/ansible-version.txt" 2>"$out/ansible-install.err" \
  || fail "$(cat "$out/ansible-install.err")"
say "$(cat "$out/ansible-version.txt")"

cfg=$out/ansible.cfg
write_local_ansible_cfg "$cfg" "$root" "$out/inventory.ini"
printf '[gpubox]\n%s ansible_connection=local\n' "$box" >"$out/inventory.ini"
export ANSIBLE_CONFIG=$cfg ANSIBLE_LOCAL_TEMP=/tmp/gpubox-ansible-tmp ANSIBLE_NOCOLOR=1
vars=$(python3 -c 'import json, sys; print(json.dumps({
    "benchmark_python": sys.argv[1], "benchmark_dir": "/tmp/gpubox-benchmark",
    "benchmark_results_dir": sys.argv[2] + "/results", "benchmark_report_dir": sys.argv[2],
    "benchmark_instance_type": sys.argv[3], "benchmark_timeout": 900}))' "$python" "$out" "${BENCH_INSTANCE_TYPE:-}")

start=$(date +%s)
python3 -m ansible playbook "$root/playbooks/benchmark.yml" -e "$vars" >"$out/run.log" 2>&1
status=$?
say "playbook: exit $status in $(($(date +%s) - start)) s; $(grep -A1 'PLAY RECAP' "$out/run.log" | tail -1 | tr -s ' ')"
if ((status != 0)); then
  grep -B2 -A20 'fatal:\|FAILED' "$out/run.log" | head -60 | tee -a "$summary"
  fail "the benchmark playbook failed (run.log)"
fi

# The sanity check, on the raw result the playbook fetched.
python3 - "$out/results" "$min_bf16" <<'PY' 2>&1 | tee -a "$summary"
import json, pathlib, sys

results, minimum = pathlib.Path(sys.argv[1]), float(sys.argv[2])
files = sorted(results.glob("*.json"), key=lambda p: p.stat().st_mtime)
if not files:
    sys.exit("no result file was fetched")
r = json.loads(files[-1].read_text())
print(f"result file: {files[-1].name} ({r.get('seconds')} s)")
if r.get("device") != "cuda":
    sys.exit(f"the benchmark ran the CPU path: {r.get('reason')}")
g = r["gpu"]
print(f"gpu: {g['count']} x {g['model']}, {g['memory_gib']} GiB, driver {g['driver']}, CUDA {g['cuda']}, torch {g['torch']}")
def med(d, k):
    v = (d or {}).get(k)
    return v.get("median") if isinstance(v, dict) else None
mm = r["matmul"]
print("matmul TFLOP/s: " + ", ".join(f"{p} {med(mm.get(p), 'tflops')}" for p in ("fp32", "tf32", "fp16", "bf16")))
bw = r["bandwidth"]
print(f"device copy {med(bw, 'device_copy_gbs')} GB/s (read + write); pinned H2D {med(bw, 'host_to_device_gbs')},"
      f" D2H {med(bw, 'device_to_host_gbs')} GB/s")
t = r["training"]
print("ResNet-18 images/s: " + ", ".join(f"{p} {med(t.get(p), 'images_per_s')}" for p in ("fp32", "amp_bf16", "amp_fp16")))
print(f"scaling: {r['scaling'].get('skipped') or r['scaling'].get('points')}")
bf16 = med(mm.get("bf16"), "tflops")
if bf16 is None or bf16 < minimum:
    sys.exit(f"bf16 matmul {bf16} TFLOP/s is below {minimum:g} TFLOP/s (90 % of ~790 on H100/H200)")
print(f"bf16 matmul {bf16} TFLOP/s >= {minimum:g}: sane")
PY
check=${PIPESTATUS[0]}
((check == 0)) || fail "the result is not sane (see above)"
say "report: $out/report.md"
say "result: PASS"
