"""How long provision.yml with nothing to do and list.yml take, against the local EC2 API (no containers).

  python -m tests.performance_ec2 [--boxes 1 3] [--repeat 5] [--slowest 8] [--out docs/performance.md]

Launches the boxes once (provision.yml), then times provision.yml and list.yml `--repeat` times each and prints
the medians, the module runs and the slowest tasks of the last run (profile_tasks). With --out, the table goes
between the EC2 results markers of that Markdown file. The local API answers in milliseconds where AWS takes
tens to hundreds: the figures are gpubox's and Ansible's own cost, and a lower bound for a real account.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import changed_count, run_ansible
from tests.ground.ec2api import EC2Api
from tests.integration.ec2play import SSH_CIDR, home_env
from tests.performance import seconds_table, write_results

ROOT = Path(__file__).resolve().parents[1]
MARKERS = ("<!-- ec2 results: written by tests/performance_ec2.py -->", "<!-- end of ec2 results -->")


def run(name: str, env: dict[str, str], boxes: list[str]) -> tuple[float, str]:
    extra = '{"gpubox_boxes": [' + ",".join(f'{{"name": "{b}"}}' for b in boxes) + "]}"
    cmd = [
        "ansible-playbook",
        str(ROOT / "playbooks" / f"{name}.yml"),
        "-e",
        extra,
        "-e",
        f"gpubox_ssh_cidr={SSH_CIDR}",
    ]
    start = time.monotonic()
    proc = run_ansible(cmd, env=env)
    return time.monotonic() - start, proc.stdout


def slowest(stdout: str, n: int) -> list[str]:
    """profile_tasks' summary lines: `Role : Task ---- 0.52s`."""
    lines = [m for m in re.findall(r"^(.+?) -+ (\d+\.\d+)s$", stdout, re.M)]
    return [f"{float(t):5.2f} s  {name.strip()}" for name, t in lines[:n]]


def measure(boxes: int, repeat: int, top: int, tmp: Path) -> dict:
    api = EC2Api().start()
    try:
        env = home_env(api.env, tmp / f"home{boxes}")
        names = [f"box{i}" for i in range(1, boxes + 1)]
        first, _ = run("provision", env, names)
        row: dict = {"boxes": boxes, "provision_first": first}
        for name in ("provision", "list"):
            times, out = [], ""
            for _ in range(repeat):
                took, out = run(name, env, names)
                times.append(took)
            assert changed_count(out) == 0, f"{name}.yml changed something on a rerun"
            row[name] = statistics.median(times)
            row[f"{name}_all"] = [round(t, 2) for t in times]
            row[f"{name}_slowest"] = slowest(out, top)
        return row
    finally:
        api.stop()


def report(rows: list[dict], repeat: int) -> str:
    measures = [
        ("provision_first", "provision.yml, launching (s)"),
        ("provision", f"provision.yml, nothing to do, median of {repeat} (s)"),
        ("list", f"list.yml, median of {repeat} (s)"),
    ]
    return "\n".join(seconds_table("against the local EC2 API", rows, measures))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--slowest", type=int, default=8, help="print this many slowest tasks of each last run")
    parser.add_argument("--out", type=Path, help="write the figures into this Markdown file's EC2 results section")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpubox-perf-ec2-") as tmp:
        for n in args.boxes:
            row = measure(n, args.repeat, args.slowest, Path(tmp))
            rows.append(row)
            print(f"== {n} box(es): provision {row['provision_all']} s, list {row['list_all']} s", flush=True)
            for name in ("provision", "list"):
                print(f"   slowest tasks of {name}.yml:", *row[f"{name}_slowest"], sep="\n     ", flush=True)
    table = report(rows, args.repeat)
    print(table)
    if args.out:
        command = " ".join(["python -m tests.performance_ec2", *(argv if argv is not None else sys.argv[1:])])
        write_results(args.out, table, command, MARKERS)


if __name__ == "__main__":
    main()
