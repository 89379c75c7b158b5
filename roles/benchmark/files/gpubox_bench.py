#!/usr/bin/env python3
"""gpubox benchmark: how fast is this box for D2L-style deep learning?

Measures, with PyTorch on every CUDA GPU of the box:
  - GPU model, count, memory, driver, CUDA;
  - dense matmul throughput (TFLOP/s) in fp32, tf32, fp16 and bf16;
  - device memory bandwidth (device-to-device copy, GB/s, read + write bytes counted);
  - host<->device bandwidth with pinned host memory, both directions (GB/s);
  - training throughput (images/s) of D2L's ResNet-18 on Fashion-MNIST-shaped synthetic data (1x96x96,
    batch 256), in fp32 and with mixed precision (torch.autocast bf16 / fp16);
  - on boxes with several GPUs, data-parallel training (DDP, one process per GPU) on 1..N GPUs: images/s
    and scaling efficiency.

Without torch or without a CUDA device it says so (device "cpu", "gpu": null, and why) and measures the CPU
path instead: matmul GFLOP/s (numpy fp32/fp64 when numpy is there, else a small pure-Python matmul) and
memory copy bandwidth. It never reports a GPU figure it did not measure.

Every figure is the median of several timed repetitions after warm-up; the repetitions are kept in the
JSON. GPU work is timed with CUDA events recorded on the stream around the work, and read after
synchronising, so queued kernels are never mistaken for finished ones.

Standard library only (torch and numpy are used when importable); Python 3.10+ (Ubuntu 22.04's python3).
Writes JSON to --output (or stdout) and progress to stderr.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SCHEMA = 1
VERSION = "1.0"
MATMUL_PRECISIONS = ("fp32", "tf32", "fp16", "bf16")


def log(*parts) -> None:
    print("[gpubox-bench]", *parts, file=sys.stderr, flush=True)


def median_summary(reps: list[float], digits: int = 3) -> dict:
    """The median of the repetitions, and the repetitions themselves (rounded, for the JSON)."""
    return {"median": round(statistics.median(reps), digits), "reps": [round(r, digits) for r in reps]}


# ----------------------------------------------------------------------------------------------------------
# The box
# ----------------------------------------------------------------------------------------------------------


def host_info() -> dict:
    info = {
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "cpu_count": os.cpu_count(),
        "cpu_model": None,
        "memory_gib": None,
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["memory_gib"] = round(int(line.split()[1]) / 2**20, 1)
                    break
    except OSError:
        pass
    return info


def nvidia_smi() -> dict:
    """Driver version (and GPU names) as nvidia-smi reports them; empty when it is not there."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return {}
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    rows = [[c.strip() for c in line.split(",")] for line in out.strip().splitlines() if line.strip()]
    if not rows:
        return {}
    return {"driver": rows[0][1], "names": [r[0] for r in rows], "memory_mib": [r[2] for r in rows]}


def load_torch():
    """torch and a reason why the GPU path cannot run (None when it can)."""
    try:
        import torch
    except Exception as e:  # ImportError, or a broken install raising something else
        return None, f"torch is not importable with {sys.executable}: {type(e).__name__}: {e}"
    if not torch.cuda.is_available():
        return torch, f"torch {torch.__version__} sees no CUDA device (torch.version.cuda = {torch.version.cuda})"
    return torch, None


# ----------------------------------------------------------------------------------------------------------
# GPU path (torch + CUDA)
# ----------------------------------------------------------------------------------------------------------


def bf16_native(torch) -> bool:
    """Whether the GPU computes bf16 natively (compute capability 8.0+: A100, A10G, L4, L40S, H100, ...).

    Newer torch also answers True for older GPUs that only emulate bf16 (much slower); those are skipped.
    """
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch < 2.3 has no including_emulation, and reports native support only
        return bool(torch.cuda.is_bf16_supported())


def gpu_info(torch) -> dict:
    smi = nvidia_smi()
    props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
    return {
        "model": props[0].name,
        "models": [p.name for p in props],
        "count": len(props),
        "memory_gib": round(props[0].total_memory / 2**30, 1),
        "compute_capability": f"{props[0].major}.{props[0].minor}",
        "driver": smi.get("driver"),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "torch": torch.__version__,
        "bf16_native": bf16_native(torch),
    }


def time_cuda(torch, fn, iters: int) -> float:
    """Seconds taken on the GPU by `iters` calls of fn, timed with CUDA events around them."""
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _unused in range(iters):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1000.0


def calibrate(torch, fn, min_seconds: float, warmup: int, cap: int = 10000) -> int:
    """Warm up, then how many calls of fn make one repetition last at least min_seconds."""
    time_cuda(torch, fn, warmup)
    iters = 1
    while True:
        t = time_cuda(torch, fn, iters)
        if t >= min_seconds / 4 or iters >= cap:
            break
        iters *= 2
    return max(1, min(cap, int(iters * min_seconds / max(t, 1e-9)) + 1))


class TF32Matmul:
    """Allow or forbid TF32 in fp32 matmuls, and restore the setting found, with one of torch's two APIs.

    torch >= 2.9 has torch.backends.cuda.matmul.fp32_precision ("ieee" / "tf32") and refuses to read the
    legacy allow_tf32 flag once the two have been mixed; older releases have only allow_tf32.
    """

    def __init__(self, torch):
        self.backend = torch.backends.cuda.matmul
        self.new_api = hasattr(self.backend, "fp32_precision")
        self.saved = self.backend.fp32_precision if self.new_api else self.backend.allow_tf32

    def allow(self, on: bool) -> None:
        if self.new_api:
            self.backend.fp32_precision = "tf32" if on else "ieee"
        else:
            self.backend.allow_tf32 = on

    def restore(self) -> None:
        if self.new_api:
            self.backend.fp32_precision = self.saved
        else:
            self.backend.allow_tf32 = self.saved


def gpu_matmul(torch, n: int, repeats: int, warmup: int, min_seconds: float) -> dict:
    """C = A @ B with n x n matrices: 2 n^3 floating-point operations per product."""
    dtypes = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    out = {}
    tf32 = TF32Matmul(torch)
    try:
        for name in MATMUL_PRECISIONS:
            if name == "bf16" and not bf16_native(torch):
                out[name] = {"skipped": "no native bf16 on this GPU (compute capability < 8.0)"}
                continue
            tf32.allow(name == "tf32")
            out[name] = gpu_matmul_one(torch, n, dtypes[name], repeats, warmup, min_seconds)
            log(f"matmul {name} {n}^3: {out[name]['tflops']['median']} TFLOP/s")
            torch.cuda.empty_cache()
    finally:
        tf32.restore()
    return out


def gpu_matmul_one(torch, n: int, dtype, repeats: int, warmup: int, min_seconds: float) -> dict:
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    c = torch.empty(n, n, device="cuda", dtype=dtype)

    def product():
        torch.mm(a, b, out=c)

    iters = calibrate(torch, product, min_seconds, warmup)
    reps = [2 * n**3 * iters / time_cuda(torch, product, iters) / 1e12 for _unused in range(repeats)]
    return {"tflops": median_summary(reps, 2), "n": n, "iters_per_rep": iters}


def gpu_device_copy(torch, size: int, repeats: int, warmup: int, min_seconds: float) -> list[float]:
    """GB/s of dst.copy_(src) on the GPU, counting the bytes read and the bytes written (2 x size per copy)."""
    src = torch.empty(size, dtype=torch.uint8, device="cuda").random_(0, 255)
    dst = torch.empty_like(src)

    def d2d():
        dst.copy_(src)

    iters = calibrate(torch, d2d, min_seconds, warmup)
    return [2 * size * iters / time_cuda(torch, d2d, iters) / 1e9 for _unused in range(repeats)]


def gpu_host_copies(torch, size: int, repeats: int, warmup: int, min_seconds: float) -> dict:
    """GB/s of copies between pinned host memory and the GPU, each direction (size bytes moved per copy)."""
    host = torch.empty(size, dtype=torch.uint8, pin_memory=True)
    dev = torch.empty(size, dtype=torch.uint8, device="cuda")

    def h2d():
        dev.copy_(host, non_blocking=True)

    def d2h():
        host.copy_(dev, non_blocking=True)

    out = {}
    for name, fn in (("host_to_device_gbs", h2d), ("device_to_host_gbs", d2h)):
        iters = calibrate(torch, fn, min_seconds, warmup)
        out[name] = [size * iters / time_cuda(torch, fn, iters) / 1e9 for _unused in range(repeats)]
    return out


def gpu_bandwidth(torch, repeats: int, warmup: int, min_seconds: float) -> dict:
    """Device-to-device copy (read + write bytes) and pinned host<->device copies (bytes moved once)."""
    free, _unused = torch.cuda.mem_get_info()
    size = min(2**30, free // 8)  # 1 GiB buffers, less on a small or busy GPU
    result = {
        "device_copy_gbs": median_summary(gpu_device_copy(torch, size, repeats, warmup, min_seconds), 1),
        "device_copy_bytes": size,
        "convention": "device copy: (bytes read + bytes written) / s; host<->device: bytes moved / s; GB = 1e9 B",
    }
    torch.cuda.empty_cache()
    log(f"device-to-device copy: {result['device_copy_gbs']['median']} GB/s (read + write)")
    hsize = min(2**28, size)  # 256 MiB pinned on the host
    for name, reps in gpu_host_copies(torch, hsize, repeats, warmup, min_seconds).items():
        result[name] = median_summary(reps, 2)
        log(f"{name}: {result[name]['median']} GB/s (pinned)")
    result["host_copy_bytes"] = hsize
    torch.cuda.empty_cache()
    return result


def resnet18(torch, in_channels: int = 1, num_classes: int = 10):
    """ResNet-18 as defined in D2L's "Residual Networks (ResNet)" chapter (PyTorch edition)."""
    nn = torch.nn
    functional = torch.nn.functional

    class Residual(nn.Module):
        def __init__(self, in_ch, num_channels, use_1x1conv=False, strides=1):
            super().__init__()
            self.conv1 = nn.Conv2d(in_ch, num_channels, kernel_size=3, padding=1, stride=strides)
            self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
            self.conv3 = nn.Conv2d(in_ch, num_channels, kernel_size=1, stride=strides) if use_1x1conv else None
            self.bn1 = nn.BatchNorm2d(num_channels)
            self.bn2 = nn.BatchNorm2d(num_channels)

        def forward(self, x):
            y = functional.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            if self.conv3 is not None:
                x = self.conv3(x)
            return functional.relu(y + x)

    def block(in_ch, num_channels, num_residuals, first_block=False):
        layers = []
        for i in range(num_residuals):
            if i == 0 and not first_block:
                layers.append(Residual(in_ch, num_channels, use_1x1conv=True, strides=2))
            else:
                layers.append(Residual(num_channels, num_channels))
        return layers

    b1 = nn.Sequential(
        nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    return nn.Sequential(
        b1,
        nn.Sequential(*block(64, 64, 2, first_block=True)),
        nn.Sequential(*block(64, 128, 2)),
        nn.Sequential(*block(128, 256, 2)),
        nn.Sequential(*block(256, 512, 2)),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
        nn.Linear(512, num_classes),
    )


def training_step(torch, model, optimizer, scaler, x, y, precision: str):
    """One SGD step; precision: fp32, amp_bf16 or amp_fp16 (autocast, with a gradient scaler for fp16)."""
    optimizer.zero_grad(set_to_none=True)
    if precision == "fp32":
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return
    dtype = torch.bfloat16 if precision == "amp_bf16" else torch.float16
    with torch.autocast(device_type=x.device.type, dtype=dtype):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()


def make_trainer(torch, device, precision: str, batch: int, image: int, lr: float):
    """A fresh ResNet-18, SGD and one synthetic batch on `device`; returns the step function."""
    torch.manual_seed(0)
    model = resnet18(torch).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    scaler = None
    if precision == "amp_fp16" and device.type == "cuda":
        # torch >= 2.3 has torch.amp.GradScaler("cuda"); older releases only torch.cuda.amp.GradScaler()
        scaler = torch.amp.GradScaler("cuda") if hasattr(torch.amp, "GradScaler") else torch.cuda.amp.GradScaler()
    x = torch.randn(batch, 1, image, image, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    return model, optimizer, scaler, x, y


def gpu_training(torch, batch: int, image: int, steps: int, warmup: int, repeats: int, lr: float) -> dict:
    torch.backends.cudnn.benchmark = True
    device = torch.device("cuda", 0)
    out = {"model": "ResNet-18 (D2L)", "input": [1, image, image], "batch": batch, "steps_per_rep": steps}
    for precision in ("fp32", "amp_bf16", "amp_fp16"):
        if precision == "amp_bf16" and not bf16_native(torch):
            out[precision] = {"skipped": "no native bf16 on this GPU (compute capability < 8.0)"}
            continue
        model, optimizer, scaler, x, y = make_trainer(torch, device, precision, batch, image, lr)
        model.train()

        def step(model=model, optimizer=optimizer, scaler=scaler, x=x, y=y, precision=precision):
            training_step(torch, model, optimizer, scaler, x, y, precision)

        time_cuda(torch, step, warmup)
        reps = [batch * steps / time_cuda(torch, step, steps) for _unused in range(repeats)]
        out[precision] = {"images_per_s": median_summary(reps, 1)}
        log(f"training {precision}: {out[precision]['images_per_s']['median']} images/s")
        del model, optimizer, scaler, x, y
        torch.cuda.empty_cache()
    out["note"] = (
        "fp32 keeps PyTorch's defaults (cuDNN may use TF32 for convolutions); data are synthetic and already on "
        "the GPU, so input loading is not measured"
    )
    return out


def ddp_worker(rank: int, world: int, port: int, cfg: dict, result_path: str) -> None:
    """One process per GPU: DDP training of ResNet-18, weak scaling (cfg['batch'] images per GPU per step)."""
    import torch
    import torch.distributed as dist

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=world)
    try:
        torch.backends.cudnn.benchmark = True
        device = torch.device("cuda", rank)
        model, optimizer, scaler, x, y = make_trainer(
            torch, device, cfg["precision"], cfg["batch"], cfg["image"], cfg["lr"]
        )
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rank])
        model.train()

        def step():
            training_step(torch, model, optimizer, scaler, x, y, cfg["precision"])

        for _unused in range(cfg["warmup"]):
            step()
        reps = []
        for _unused in range(cfg["repeats"]):
            torch.cuda.synchronize()
            dist.barrier()
            t0 = time.perf_counter()
            for _unused in range(cfg["steps"]):
                step()
            torch.cuda.synchronize()
            elapsed = torch.tensor([time.perf_counter() - t0], device=device)
            dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)  # the slowest rank sets the pace
            reps.append(world * cfg["batch"] * cfg["steps"] / elapsed.item())
        if rank == 0:
            with open(result_path, "w", encoding="utf-8") as f:
                json.dump(reps, f)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scaling_counts(n: int) -> list[int]:
    """1, 2, 4, ... up to n, and n itself."""
    counts, k = [], 1
    while k < n:
        counts.append(k)
        k *= 2
    return [*counts, n]


def gpu_scaling(torch, batch: int, image: int, steps: int, warmup: int, repeats: int, lr: float) -> dict:
    import torch.multiprocessing as mp

    n = torch.cuda.device_count()
    if n < 2:
        return {"skipped": f"{n} GPU on this box: no multi-GPU scaling to measure"}
    if not torch.distributed.is_available() or not torch.distributed.is_nccl_available():
        return {"skipped": "torch.distributed with NCCL is not available in this torch build"}
    precision = "amp_bf16" if bf16_native(torch) else "amp_fp16"
    cfg = {"precision": precision, "batch": batch, "image": image, "steps": steps, "warmup": warmup}
    cfg.update({"repeats": repeats, "lr": lr})
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in scaling_counts(n):
            path = os.path.join(tmp, f"ddp-{k}.json")
            try:
                mp.spawn(ddp_worker, args=(k, free_port(), cfg, path), nprocs=k, join=True)
            except Exception as e:  # a failed DDP run is reported, the figures measured so far are kept
                last = (str(e).strip().splitlines() or [""])[-1]
                points.append({"gpus": k, "error": f"{type(e).__name__}: {last}"})
                log(f"DDP on {k} GPU(s) failed: {points[-1]['error']}")
                break
            with open(path, encoding="utf-8") as f:
                reps = json.load(f)
            points.append({"gpus": k, "images_per_s": median_summary(reps, 1)})
            log(f"DDP on {k} GPU(s): {points[-1]['images_per_s']['median']} images/s")
    measured = [p for p in points if "images_per_s" in p]
    if measured and measured[0]["gpus"] == 1:
        base = measured[0]["images_per_s"]["median"]
        for p in measured:
            p["efficiency"] = round(p["images_per_s"]["median"] / (p["gpus"] * base), 3)
    return {
        "method": "DistributedDataParallel, NCCL, one process per GPU (torch.multiprocessing.spawn), one node",
        "precision": precision,
        "batch_per_gpu": batch,
        "steps_per_rep": steps,
        "efficiency": "images/s on k GPUs / (k x images/s on 1 GPU)",
        "points": points,
    }


def run_gpu(torch, args) -> dict:
    log(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s)")
    result = {"gpu": gpu_info(torch)}
    log(f"GPU: {result['gpu']['count']} x {result['gpu']['model']}, driver {result['gpu']['driver']}")
    result["matmul"] = gpu_matmul(torch, args.matmul_size, args.repeats, args.warmup, args.min_seconds)
    result["bandwidth"] = gpu_bandwidth(torch, args.repeats, args.warmup, args.min_seconds)
    train = (args.batch, args.image, args.train_steps, args.warmup, args.repeats, args.lr)
    result["training"] = gpu_training(torch, *train)
    if args.scaling:
        result["scaling"] = gpu_scaling(torch, *train)
    else:
        result["scaling"] = {"skipped": "not asked for (--no-scaling)"}
    return result


# ----------------------------------------------------------------------------------------------------------
# CPU path (no torch, or no CUDA device)
# ----------------------------------------------------------------------------------------------------------


def time_call(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def python_matmul(a: list[list[float]], b: list[list[float]]) -> list[list[float]]:
    bt = list(zip(*b, strict=True))
    return [[sum(x * y for x, y in zip(row, col, strict=True)) for col in bt] for row in a]


def cpu_matmul_python(n: int, repeats: int) -> dict:
    import random

    rng = random.Random(0)
    a = [[rng.random() for _unused in range(n)] for _unused in range(n)]
    b = [[rng.random() for _unused in range(n)] for _unused in range(n)]
    python_matmul(a, b)  # warm-up
    reps = [2 * n**3 / time_call(lambda: python_matmul(a, b)) / 1e9 for _unused in range(repeats)]
    return {"fp64": {"gflops": median_summary(reps, 4), "n": n}}


def cpu_matmul_numpy(np, n: int, repeats: int) -> dict:
    out = {}
    rng = np.random.default_rng(0)
    for name, dtype in (("fp32", np.float32), ("fp64", np.float64)):
        a = rng.random((n, n)).astype(dtype)
        b = rng.random((n, n)).astype(dtype)
        a @ b  # warm-up
        reps = [2 * n**3 / time_call(lambda a=a, b=b: a @ b) / 1e9 for _unused in range(repeats)]
        out[name] = {"gflops": median_summary(reps, 2), "n": n}
    return out


def cpu_copy(size: int, repeats: int, np=None) -> dict:
    """Memory copy of `size` bytes; (bytes read + bytes written) / s, like the device copy."""
    if np is not None:
        src = np.ones(size, dtype=np.uint8)
        dst = np.empty_like(src)

        def copy():
            np.copyto(dst, src)

    else:
        src = bytearray(os.urandom(1024)) * (size // 1024)
        dst = bytearray(len(src))

        def copy():
            dst[:] = src  # one memmove

    copy()
    reps = [2 * size / time_call(copy) / 1e9 for _unused in range(repeats)]
    return {"copy_gbs": median_summary(reps, 2), "bytes": size}


def run_cpu(args, reason: str) -> dict:
    log(f"no GPU path: {reason}")
    log("measuring the CPU path instead; no GPU figure is reported")
    try:
        import numpy as np
    except ImportError:
        np = None
    if np is not None:
        matmul = cpu_matmul_numpy(np, args.cpu_matmul_size or 1024, args.repeats)
        backend = f"numpy {np.__version__}"
    else:
        matmul = cpu_matmul_python(args.cpu_matmul_size or 64, args.repeats)
        backend = "pure Python (numpy is not importable)"
    for name, m in matmul.items():
        log(f"CPU matmul {name} {m['n']}^3 ({backend}): {m['gflops']['median']} GFLOP/s")
    copy = cpu_copy(args.cpu_copy_bytes, args.repeats, np)
    log(f"CPU memory copy: {copy['copy_gbs']['median']} GB/s")
    return {
        "gpu": None,
        "cpu": {"backend": backend, "matmul": matmul, "memory": copy},
    }


# ----------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("--output", help="write the JSON here (default: stdout)")
    p.add_argument("--box", default=socket.gethostname(), help="name of the box in the report")
    p.add_argument("--instance-type", default="", help="EC2 instance type, for the cost figures")
    p.add_argument("--market", default="", help="on-demand or spot, when known")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions per figure (median reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up calls/steps before timing")
    p.add_argument("--min-seconds", type=float, default=0.2, help="shortest timed repetition (GPU kernels)")
    p.add_argument("--matmul-size", type=int, default=8192, help="n of the n x n GPU matmul")
    p.add_argument("--batch", type=int, default=256, help="training batch (per GPU)")
    p.add_argument("--image", type=int, default=96, help="training image side (1 x side x side)")
    p.add_argument("--train-steps", type=int, default=20, help="training steps per timed repetition")
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (D2L's ResNet setting)")
    p.add_argument(
        "--scaling", action=argparse.BooleanOptionalAction, default=True, help="multi-GPU scaling runs (DDP)"
    )
    p.add_argument("--cpu-matmul-size", type=int, default=0, help="n of the CPU matmul (0: 1024 numpy, 64 Python)")
    p.add_argument("--cpu-copy-bytes", type=int, default=64 * 2**20, help="bytes of the CPU memory copy")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.warmup < 1 or args.train_steps < 1:
        p.error("--repeats, --warmup and --train-steps must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 - datetime.UTC is 3.11+
    record = {
        "schema": SCHEMA,
        "program": f"gpubox_bench {VERSION}",
        "box": args.box,
        "instance_type": args.instance_type or None,
        "market": args.market or None,
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": host_info(),
        "settings": {
            "repeats": args.repeats,
            "warmup": args.warmup,
            "statistic": "median of repetitions",
        },
    }
    torch, reason = load_torch()
    record["torch"] = torch.__version__ if torch is not None else None
    if reason is None:
        record["device"] = "cuda"
        record["reason"] = None
        record.update(run_gpu(torch, args))
    else:
        record["device"] = "cpu"
        record["reason"] = reason
        record.update(run_cpu(args, reason))
    elapsed = datetime.datetime.now(datetime.timezone.utc) - started  # noqa: UP017
    record["seconds"] = round(elapsed.total_seconds(), 1)
    text = json.dumps(record, indent=2) + "\n"
    if args.output:
        tmp = args.output + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, args.output)
        log(f"results written to {args.output} ({record['seconds']} s)")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
