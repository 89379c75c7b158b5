"""The benchmark report (roles/benchmark/files/report.py): tables, costs and charts.

Two kinds of input:
- recorded results: JSON written by real runs of gpubox_bench.py, kept in tests/fixtures/benchmark/: so far
  CPU-only machines (a Debian 12 test container through playbooks/benchmark.yml, and the build machine with
  numpy). No GPU run is recorded yet; the test for recorded GPU runs skips until one is (docs/benchmarks.md).
- SYNTHETIC GPU-shaped results, built in this file by `synthetic_gpu_result`, to reach the report's GPU code
  paths (GPU tables, scaling, cost per image). Their numbers are invented round figures, not measurements,
  and are never written to disk as if recorded.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, load_module, png_size

FIXTURES = ROOT / "tests" / "fixtures" / "benchmark"
PRICES = ROOT / "inventory" / "group_vars" / "all" / "prices.yml"


@pytest.fixture(scope="module")
def report():
    return load_module(ROOT / "roles" / "benchmark" / "files" / "report.py")


def recorded(device: str) -> list[Path]:
    return [p for p in sorted(FIXTURES.glob("*.json")) if json.loads(p.read_text())["device"] == device]


def stat(value: float) -> dict:
    return {"median": value, "reps": [value] * 3}


def synthetic_gpu_result(box: str, instance_type: str, gpus: int = 1, scale: float = 1.0, **extra) -> dict:
    """SYNTHETIC: a GPU-shaped result with invented round figures (not a measurement)."""
    result = {
        "schema": 1,
        "program": "SYNTHETIC test input",
        "box": box,
        "instance_type": instance_type,
        "market": "on-demand",
        "started": "2000-01-01T00:00:00Z",
        "seconds": 1.0,
        "torch": "synthetic",
        "device": "cuda",
        "reason": None,
        "gpu": {"model": "Synthetic GPU", "count": gpus, "memory_gib": 10.0, "driver": "0.0", "cuda": "0.0"},
        "matmul": {p: {"tflops": stat(v * scale), "n": 8192} for p, v in (("fp32", 10.0), ("tf32", 20.0))}
        | {"fp16": {"tflops": stat(40.0 * scale), "n": 8192}, "bf16": {"skipped": "bf16 is not supported"}},
        "bandwidth": {
            "device_copy_gbs": stat(500.0 * scale),
            "host_to_device_gbs": stat(12.0),
            "device_to_host_gbs": stat(11.0),
        },
        "training": {
            "model": "ResNet-18 (D2L)",
            "input": [1, 96, 96],
            "batch": 256,
            "fp32": {"images_per_s": stat(1000.0 * scale)},
            "amp_bf16": {"skipped": "bf16 is not supported"},
            "amp_fp16": {"images_per_s": stat(2000.0 * scale)},
        },
        "scaling": {"skipped": f"{gpus} GPU on this box"},
    }
    result.update(extra)
    return result


def write(results: Path, *records: dict) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    for i, record in enumerate(records):
        (results / f"{record['box']}-{i}.json").write_text(json.dumps(record))
    return results


# ----------------------------------------------------------------------------------------------------------
# Recorded CPU runs
# ----------------------------------------------------------------------------------------------------------


def test_recorded_cpu_runs_make_a_cpu_report_and_real_charts(report, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    for p in recorded("cpu"):
        shutil.copy(p, results)
    path = report.write_report(results, tmp_path / "out", PRICES)
    text = path.read_text()
    runs = [json.loads(p.read_text()) for p in recorded("cpu")]
    assert len(runs) >= 2
    for r in runs:
        assert r["device"] == "cpu" and r["gpu"] is None
        mm = r["cpu"]["matmul"]
        assert f"| {r['box']} | {r['cpu']['backend']} |" in text
        for precision in ("fp32", "fp64"):
            if precision in mm:
                assert report.fmt(mm[precision]["gflops"]["median"], 2) in text
        assert report.fmt(r["cpu"]["memory"]["copy_gbs"]["median"], 2) in text
        assert f"**{r['box']}** ran the CPU path: {r['reason']}" in text
    assert "CPU (no GPU measured)" in text
    for gpu_section in ("## Dense matmul", "## Memory bandwidth", "## Training throughput", "## Multi-GPU scaling"):
        assert gpu_section not in text, "GPU tables without any GPU result"
    assert "TFLOP/s" not in text
    for name in report.CHARTS:
        assert f"![{name}](charts/{name}.png)" in text
        assert png_size(tmp_path / "out" / "charts" / f"{name}.png") == (800, 450)


def test_recorded_gpu_runs_fill_the_gpu_tables(report, tmp_path):
    gpu_runs = recorded("cuda")
    if not gpu_runs:
        pytest.skip("no GPU run recorded yet: tests/gpu/benchmark.sh, then docs/benchmarks.md")
    results = tmp_path / "results"
    results.mkdir()
    for p in gpu_runs:
        shutil.copy(p, results)
    text = report.write_report(results, tmp_path / "out", PRICES).read_text()
    for r in (json.loads(p.read_text()) for p in gpu_runs):
        assert r["gpu"]["model"] in text
        assert report.fmt(r["matmul"]["bf16"]["tflops"]["median"]) in text
        assert report.fmt(r["bandwidth"]["device_copy_gbs"]["median"]) in text
        assert report.fmt(r["training"]["fp32"]["images_per_s"]["median"]) in text
    for name in report.CHARTS:
        assert png_size(tmp_path / "out" / "charts" / f"{name}.png") == (800, 450)


def test_the_pure_python_run_is_from_the_container_and_the_numpy_run_has_both_precisions(report):
    by_backend = {json.loads(p.read_text())["cpu"]["backend"].split()[0]: p for p in recorded("cpu")}
    container = json.loads(by_backend["pure"].read_text())
    assert container["host"]["python_executable"] == "/usr/bin/python3"
    assert set(container["cpu"]["matmul"]) == {"fp64"}
    assert set(json.loads(by_backend["numpy"].read_text())["cpu"]["matmul"]) == {"fp32", "fp64"}


def test_latest_run_of_a_box_is_compared_and_every_run_is_listed(report, tmp_path):
    older = json.loads(next(FIXTURES.glob("container-*.json")).read_text())
    newer = json.loads(json.dumps(older))
    newer["started"] = "2099-01-01T00:00:00Z"
    newer["cpu"]["memory"]["copy_gbs"]["median"] = 123.45
    results = tmp_path / "results"
    results.mkdir()
    (results / "b-new.json").write_text(json.dumps(newer))
    (results / "a-old.json").write_text(json.dumps(older))
    (results / "notes.json").write_text('{"something": "else"}')
    (results / "broken.json").write_text("{")
    text = report.write_report(results, tmp_path, PRICES).read_text()
    assert "from 2 result file(s); the latest run of each of 1 box(es)" in text
    assert "| 123.45 |" in text
    assert text.index("b-new.json") < text.index("a-old.json"), "newest run first"


def test_no_result_is_an_error(report, tmp_path):
    with pytest.raises(SystemExit, match="no gpubox benchmark result"):
        report.write_report(tmp_path, tmp_path, PRICES)


# ----------------------------------------------------------------------------------------------------------
# Prices
# ----------------------------------------------------------------------------------------------------------


def test_prices_come_from_the_project_table_with_or_without_pyyaml(report, monkeypatch):
    import yaml

    table = yaml.safe_load(PRICES.read_text())
    prices, date = report.load_prices(PRICES)
    assert prices == {k: float(v) for k, v in table["gpubox_ondemand_prices"].items()}
    assert date == str(table["gpubox_ondemand_prices_date"])
    monkeypatch.setitem(sys.modules, "yaml", None)  # a bare Python (the GPU machine may lack PyYAML)
    assert report.load_prices(PRICES) == (prices, date)


# ----------------------------------------------------------------------------------------------------------
# GPU code paths, on SYNTHETIC input
# ----------------------------------------------------------------------------------------------------------


def test_synthetic_gpu_boxes_fill_the_gpu_tables_and_cost_per_image(report, tmp_path):
    results = write(
        tmp_path / "results",
        synthetic_gpu_result("small", "g4dn.xlarge"),
        synthetic_gpu_result("big", "g5.xlarge", scale=2.0),
        json.loads(next(FIXTURES.glob("container-*.json")).read_text()),
    )
    path = report.write_report(results, tmp_path / "out", PRICES, spot={"g5.xlarge": 0.5})
    text = path.read_text()
    assert "| small | 10.0 | 20.0 | 40.0 | — | 8192³ |" in text  # bf16 skipped: no figure shown
    assert "| big | 20.0 | 40.0 | 80.0 | — | 8192³ |" in text
    assert "| big | 1,000.0 | 12.0 | 11.0 |" in text
    assert "| small | 1,000.0 | — | 2,000.0 |" in text  # fp32, AMP bf16 (skipped), AMP fp16
    assert "| small | — | — | — | 1 GPU on this box |" in text
    # Cost: $/h / (images/s x 3600) x 1e6 at the best single-GPU figure (AMP fp16 here).
    small = 0.526 / (2000 * 3600) * 1e6
    big_ondemand, big_spot = 1.006 / (4000 * 3600) * 1e6, 0.5 / (4000 * 3600) * 1e6
    assert f"| small | g4dn.xlarge | $0.5260 | unknown | 2,000.0 | 1 GPU, AMP fp16 | ${small:.4f} | — |" in text
    assert (
        f"| big | g5.xlarge | $1.01 | $0.5000 | 4,000.0 | 1 GPU, AMP fp16 | ${big_ondemand:.4f} | ${big_spot:.4f} |"
        in text
    )
    # The CPU box stays a CPU box beside them.
    assert "## CPU path" in text and "| container-debian12 | unknown | unknown | unknown | — |" in text
    for name in report.CHARTS:
        assert png_size(tmp_path / "out" / "charts" / f"{name}.png") == (800, 450)


def test_synthetic_multi_gpu_box_scaling_and_whole_box_cost(report, tmp_path):
    points = [
        {"gpus": 1, "images_per_s": stat(1000.0), "efficiency": 1.0},
        {"gpus": 2, "images_per_s": stat(1900.0), "efficiency": 0.95},
        {"gpus": 4, "images_per_s": stat(3600.0), "efficiency": 0.9},
    ]
    failed = [*points[:2], {"gpus": 4, "error": "ProcessRaisedException: NCCL error"}]
    scaled = synthetic_gpu_result("quad", "g5.12xlarge", gpus=4, scaling={"precision": "fp32", "points": points})
    unscaled = synthetic_gpu_result("quad-noscale", "g5.12xlarge", gpus=4, scaling={"skipped": "--no-scaling"})
    broken = synthetic_gpu_result("quad-failed", "g5.12xlarge", gpus=4, scaling={"precision": "fp32", "points": failed})
    results = write(tmp_path / "r", scaled, unscaled, broken)
    text = report.write_report(results, tmp_path / "out", PRICES).read_text()
    assert "| quad | 2 | 1,900.0 | 2,000.0 | 95% |" in text
    assert "| quad | 4 | 3,600.0 | 4,000.0 | 90% |" in text
    assert "| quad-noscale | — | — | — | --no-scaling |" in text
    per_m = 5.672 / (3600 * 3600) * 1e6
    assert f"| quad | g5.12xlarge | $5.67 | unknown | 3,600.0 | DDP on all 4 GPUs, fp32 | ${per_m:.4f} | — |" in text
    assert "1 GPU, AMP fp16 (of 4: no figure for all GPUs)" in text
    assert "| quad-failed | 2 | 1,900.0 | 2,000.0 | 95% |" in text
    assert "| quad-failed | 4 | — | — | failed: ProcessRaisedException: NCCL error |" in text
    assert (
        "| quad-failed | g5.12xlarge | $5.67 | unknown | 2,000.0 | 1 GPU, AMP fp16 (of 4: no figure for all GPUs) |"
        in text
    )
    assert png_size(tmp_path / "out" / "charts" / "scaling.png") == (800, 450)


def test_unknown_instance_type_has_no_cost(report):
    row = report.cost_of(synthetic_gpu_result("x", None), {"g5.xlarge": 1.0}, {})
    assert row["ondemand"] is None and row["ondemand_per_m"] is None and row["spot_per_m"] is None
    row = report.cost_of(synthetic_gpu_result("x", "p9.huge"), {"g5.xlarge": 1.0}, {})
    assert row["ondemand"] is None and row["ondemand_per_m"] is None


def test_without_matplotlib_the_markdown_is_written_and_says_how_to_draw_the_charts(report, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    results = write(tmp_path / "results", synthetic_gpu_result("small", "g4dn.xlarge"))
    text = report.write_report(results, tmp_path / "out", PRICES).read_text()
    assert "![" not in text
    assert "Charts not drawn here" in text and "report.py RESULTS_DIR" in text
    assert not (tmp_path / "out" / "charts").exists()


def test_command_line(report, tmp_path, capsys):
    results = write(tmp_path / "results", synthetic_gpu_result("small", "g4dn.xlarge"))
    assert report.main([str(results), "--spot-prices", '{"g4dn.xlarge": 0.2}']) == 0
    assert capsys.readouterr().out.strip() == str(results / "report.md")
    assert "| small | g4dn.xlarge | $0.5260 | $0.2000 |" in (results / "report.md").read_text()
    with pytest.raises(SystemExit, match="JSON object"):
        report.main([str(results), "--spot-prices", '["g4dn.xlarge"]'])
    # The prices as the benchmark role passes them (the project's table, as JSON).
    assert report.main([str(results), "--ondemand-prices", '{"g4dn.xlarge": 0.6}', "--prices-date", "2030-01"]) == 0
    text = (results / "report.md").read_text()
    assert "| small | g4dn.xlarge | $0.6000 |" in text and "2030-01" in text
    with pytest.raises(SystemExit, match="--ondemand-prices must be"):
        report.main([str(results), "--ondemand-prices", '{"g4dn.xlarge": true}'])
