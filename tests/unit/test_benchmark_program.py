"""The benchmark program (roles/benchmark/files/gpubox_bench.py) where no GPU is: it must say so, measure
the CPU path, and never write a GPU figure. Its GPU path needs CUDA and is run by tests/gpu/benchmark.sh.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

from tests.conftest import ROOT, load_module

PROGRAM = ROOT / "roles" / "benchmark" / "files" / "gpubox_bench.py"
GPU_KEYS = {"matmul", "bandwidth", "training", "scaling"}


@pytest.fixture
def bench():
    return load_module(PROGRAM)


def test_without_torch_the_cpu_path_is_measured_with_numpy(tmp_path):
    out = tmp_path / "r.json"
    small = ["--repeats", "2", "--cpu-matmul-size", "128", "--cpu-copy-bytes", str(8 * 2**20)]
    args = ["--output", str(out), "--box", "b1", "--instance-type", "g5.xlarge", *small]
    proc = subprocess.run([sys.executable, str(PROGRAM), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "no GPU path: torch is not importable" in proc.stderr
    result = json.loads(out.read_text())
    assert (result["device"], result["gpu"], result["torch"]) == ("cpu", None, None)
    assert not GPU_KEYS & result.keys()
    assert (result["box"], result["instance_type"]) == ("b1", "g5.xlarge")
    cpu = result["cpu"]
    assert cpu["backend"].startswith("numpy ")
    for precision in ("fp32", "fp64"):
        figure = cpu["matmul"][precision]
        assert figure["n"] == 128
        assert len(figure["gflops"]["reps"]) == 2
        assert figure["gflops"]["median"] > 0
    assert cpu["memory"]["bytes"] == 8 * 2**20 and cpu["memory"]["copy_gbs"]["median"] > 0
    assert not list(tmp_path.glob("*.tmp")), "the result is written atomically"


def test_without_numpy_a_pure_python_matmul_is_measured(bench, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "numpy", None)
    assert bench.main(["--repeats", "1", "--cpu-matmul-size", "16", "--cpu-copy-bytes", str(2**20)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["device"] == "cpu"
    assert result["cpu"]["backend"] == "pure Python (numpy is not importable)"
    assert set(result["cpu"]["matmul"]) == {"fp64"}
    assert result["cpu"]["matmul"]["fp64"]["n"] == 16


def test_torch_without_a_cuda_device_is_the_cpu_path_and_says_why(bench, monkeypatch, capsys):
    fake = types.SimpleNamespace(
        __version__="0.0-stand-in",
        cuda=types.SimpleNamespace(is_available=lambda: False),
        version=types.SimpleNamespace(cuda=None),
    )
    monkeypatch.setitem(sys.modules, "torch", fake)
    bench.main(["--repeats", "1", "--cpu-matmul-size", "8", "--cpu-copy-bytes", str(2**20)])
    result = json.loads(capsys.readouterr().out)
    assert result["device"] == "cpu" and result["gpu"] is None
    assert result["torch"] == "0.0-stand-in"
    assert "sees no CUDA device" in result["reason"]


def test_python_matmul_is_a_matmul(bench):
    assert bench.python_matmul([[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]) == [[19.0, 22.0], [43.0, 50.0]]


def test_scaling_runs_on_1_2_4_up_to_all_gpus(bench):
    assert bench.scaling_counts(1) == [1]
    assert bench.scaling_counts(2) == [1, 2]
    assert bench.scaling_counts(4) == [1, 2, 4]
    assert bench.scaling_counts(6) == [1, 2, 4, 6]
    assert bench.scaling_counts(8) == [1, 2, 4, 8]


def test_settings_are_checked(bench, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--repeats", "0"])
    assert "at least 1" in capsys.readouterr().err
    assert bench.parse_args(["--no-scaling"]).scaling is False
    assert bench.parse_args([]).scaling is True


def test_resnet18_is_d2ls(bench):
    torch = pytest.importorskip("torch")
    net = bench.resnet18(torch)
    assert tuple(net(torch.zeros(2, 1, 96, 96)).shape) == (2, 10)
    assert sum(p.numel() for p in net.parameters()) == 11_178_378
