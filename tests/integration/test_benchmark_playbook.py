"""playbooks/benchmark.yml on a systemd host reached over SSH as `ubuntu`, like an EC2 box without a GPU.

The host's /usr/bin/python3 has neither torch nor numpy, so the program must say there is no GPU and
measure the CPU path in pure Python (a few seconds). The test checks the real result: the JSON written
on the box and fetched to the controller, the report and the charts written on the controller. A rerun
is a new measurement (a second result file, the run task reported as a change) while the install part
changes nothing. A Python that is not there is named, and nothing is run.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import ROOT, load_module, png_size, run_ansible, ssh_inventory

FILES = ROOT / "roles" / "benchmark" / "files"
INSTALL_TASKS = (
    "Find the Python that runs the benchmark",
    "Create the benchmark's directories",
    "Install the benchmark program",
)


def task_results(stdout: str) -> dict[str, str]:
    """What each task of the run reported for the box: ok, changed, skipping or fatal."""
    results, task = {}, None
    for line in stdout.splitlines():
        if m := re.match(r"TASK \[(?:benchmark : )?(.+?)\]", line):
            task = m.group(1)
        elif task and (m := re.match(r"(ok|changed|skipping|fatal): \[(box|box -> localhost)\]", line)):
            results.setdefault(task, m.group(1))
    return results


@pytest.fixture(scope="module")
def bench(testhost_factory, ssh_key, tmp_path_factory):
    host = testhost_factory("benchmark", image="debian12")
    tmp = tmp_path_factory.mktemp("benchmark")
    inventory = ssh_inventory(tmp / "hosts.yml", host, ssh_key)
    variables = {
        "benchmark_python": "/usr/bin/python3",
        "benchmark_results_dir": str(tmp / "results"),
        "benchmark_report_dir": str(tmp / "report"),
        "benchmark_instance_type": "g4dn.xlarge",
        "benchmark_repeats": 3,
    }

    def run(check: bool = True, **overrides):
        return run_ansible(
            [
                "ansible-playbook",
                "-i",
                str(inventory),
                str(ROOT / "playbooks" / "benchmark.yml"),
                "-e",
                json.dumps(variables | overrides),
            ],
            env={"ANSIBLE_CACHE_PLUGIN": "memory"},
            check=check,
        )

    first = run()
    return host, tmp, run, first


def test_cpu_box_measures_the_cpu_path_and_says_so(bench):
    host, tmp, _, first = bench
    files = sorted((tmp / "results").glob("*.json"))
    assert len(files) == 1, files
    result = json.loads(files[0].read_text())
    assert result["device"] == "cpu"
    assert result["gpu"] is None
    assert "torch is not importable" in result["reason"]
    assert not {"matmul", "bandwidth", "training", "scaling"} & result.keys(), "a GPU figure on a CPU box"
    assert result["box"] == "box"
    assert result["instance_type"] == "g4dn.xlarge"
    assert result["host"]["python_executable"] == "/usr/bin/python3"
    cpu = result["cpu"]
    assert cpu["backend"].startswith("pure Python")
    assert cpu["matmul"]["fp64"]["gflops"]["median"] > 0
    assert len(cpu["matmul"]["fp64"]["gflops"]["reps"]) == 3
    assert cpu["memory"]["copy_gbs"]["median"] > 0
    assert result["seconds"] < 30
    # The box keeps its own copy of the same result.
    on_box = host.exec("cat", f"/home/ubuntu/.gpubox/benchmark/results/{files[0].name}", user="ubuntu").stdout
    assert json.loads(on_box) == result
    assert "no GPU path: torch is not importable" in first.stdout


def test_report_and_charts_are_written_on_the_controller(bench):
    _, tmp, _, _ = bench
    report = load_module(FILES / "report.py")
    result = json.loads(next((tmp / "results").glob("*.json")).read_text())
    text = (tmp / "report" / "report.md").read_text()
    assert "CPU (no GPU measured)" in text
    assert "## Dense matmul" not in text, "GPU tables for a CPU-only comparison"
    assert report.fmt(result["cpu"]["matmul"]["fp64"]["gflops"]["median"], 2) in text
    assert report.fmt(result["cpu"]["memory"]["copy_gbs"]["median"], 2) in text
    assert "| box | g4dn.xlarge | $0.5260 | unknown |" in text  # on-demand from ec2_list's table, spot unknown
    for name in ("throughput", "scaling", "cost"):
        assert f"![{name}](charts/{name}.png)" in text
        assert png_size(tmp / "report" / "charts" / f"{name}.png") == (800, 450)


def test_rerun_is_a_new_measurement_and_installs_nothing(bench):
    _, tmp, run, first = bench
    second = run()
    tasks = task_results(second.stdout)
    for name in INSTALL_TASKS:
        assert tasks[name] == "ok", (name, tasks)
    assert tasks["Run the benchmark"] == "changed"
    assert tasks["Bring the result back to the controller"] == "changed"
    assert task_results(first.stdout)["Install the benchmark program"] == "changed"
    files = sorted((tmp / "results").glob("*.json"))
    assert len(files) == 2, files
    text = (tmp / "report" / "report.md").read_text()
    assert all(f.name in text for f in files), "the report lists every run"
    assert "from 2 result file(s)" in text


def test_a_missing_python_is_named_and_nothing_is_measured(bench):
    _, tmp, run, _ = bench
    before = sorted((tmp / "results").glob("*.json"))
    proc = run(check=False, benchmark_python="/opt/nowhere/bin/python")
    assert proc.returncode != 0
    assert "/opt/nowhere/bin/python is not an executable on box" in proc.stdout
    assert "Run the benchmark" not in task_results(proc.stdout)
    assert sorted((tmp / "results").glob("*.json")) == before
