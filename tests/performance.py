"""How long gpubox's runs take: configure.yml first converge and no-op re-converge on 1 and 5 boxes (and, in turn
with the five, on one of them alone, for a ratio measured in the same minutes), each no-op's CPU on the controller
and on the boxes, with the shipped ansible.cfg, with Ansible's defaults and with the opt-in Mitogen strategy
(scripts/with-mitogen over the shipped ansible.cfg); a no-op the next day (apt lists older than their validity,
facts expired); provision.yml when there is nothing to do; the dynamic inventory listing with and without its cache.
Boxes are rehearsal boxes (tests/ground/rehearsal.py: systemd containers, local EC2 API), so the figures are Ansible's
own cost plus real downloads on a first converge (and the apt lists' refresh on the aged no-op).

  python -m tests.performance [--boxes 1 5] [--configs shipped defaults mitogen] [--repeat 3] [--out FILE.md]
  python -m tests.performance --task-costs [--boxes 1 5] [--out FILE.md]   # what one task adds, on 1 and on 5 boxes
  python -m tests.performance --roles-curve [--boxes 1 5] [--out FILE.md]  # the ratio as roles are added (--tags)
  python -m tests.performance --floor [--boxes 1 5] [--out FILE.md]        # the ratio of configure.yml's frame + N raw
  python -m tests.performance --notebook [--repeat 1] [--out FILE.md]       # from site.yml / start.yml to JupyterLab
  python -m tests.performance --jobs [--repeat 3] [--out FILE.md]           # run.yml's sync; a job again after a boot

Prints the figures and writes them, with the machine and this command, to the Markdown file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import changed_count
from tests.ground.net import free_port
from tests.ground.rehearsal import ROOT, Rehearsal

BIN = Path(sys.executable).parent
CONFIGS = ("shipped", "defaults", "mitogen")
# The configs whose runs also get the aged no-op (both read the shipped ansible.cfg).
AGED_CONFIGS = ("shipped", "mitogen")
AGED_LABEL = "aged no-op (apt lists 2 days old, facts expired) (s)"
# What makes a box look like the next day to configure.yml: apt's package lists, the directory whose mtime the apt
# module takes for their age (or the success stamp, where apt's periodic job writes one) and the binary caches,
# all two days old.
BACKDATE_APT = (
    "find /var/lib/apt/lists -maxdepth 1 -exec touch -d '2 days ago' {} + && "
    "for f in /var/lib/apt/periodic/update-success-stamp /var/cache/apt/pkgcache.bin /var/cache/apt/srcpkgcache.bin;"
    ' do if [ -e "$f" ]; then touch -d \'2 days ago\' "$f"; fi; done'
)


def defaults_env(tmp: Path) -> dict[str, str]:
    """Ansible's defaults: an empty ansible.cfg, plus only what any run needs to work at all (where the
    roles and the project's plugins are; host keys: the defaults would ask on the terminal about each new box)."""
    empty = tmp / "empty.cfg"
    empty.write_text("")
    return {
        "ANSIBLE_CONFIG": str(empty),
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        # the collection gpubox.gpubox (this checkout): its EC2 inventory, settings lookup, modules, filters, tests
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
        "ANSIBLE_HOST_KEY_CHECKING": "False",
    }


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True)
    took = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return took, proc


def config_run(config: str, tmp: Path) -> tuple[list[str], dict[str, str]]:
    """The command prefix and environment of a configuration: the shipped ansible.cfg as it is, Ansible's defaults,
    or the shipped ansible.cfg through scripts/with-mitogen (which finds the ansible-playbook of this venv on
    PATH and sets the Mitogen strategy)."""
    if config == "defaults":
        return [], defaults_env(tmp)
    if config == "mitogen":
        return [str(ROOT / "scripts" / "with-mitogen")], {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return [], {}


def playbook(
    r: Rehearsal, name: str, extra_env: dict[str, str], prefix: list[str] | None = None, args: tuple[str, ...] = ()
) -> tuple[float, int, int]:
    """Seconds, tasks run and changed count of one ansible-playbook run."""
    took, proc = timed([*(prefix or []), str(BIN / "ansible-playbook"), name, *args], {**r.env(), **extra_env})
    tasks = sum(int(n) for n in re.findall(r"\bok=(\d+)", proc.stdout.split("PLAY RECAP")[-1]))
    if tasks == 0:  # no host matched (a plugin not found): nothing was measured
        raise SystemExit(f"{name} ran no task:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return took, tasks, changed_count(proc.stdout)


def box_cgroups(r: Rehearsal) -> list[Path]:
    """The file that counts each box's CPU: its container's cgroup v2 cpu.stat, or v1's cpuacct.usage."""
    files = []
    for box in r.boxes():
        path = subprocess.run(
            ["podman", "inspect", "--format", "{{.State.CgroupPath}}", r.container(box)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        v2 = [Path(f"{base}{path}/cpu.stat") for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")]
        files.append(next((f for f in v2 if f.exists()), Path(f"/sys/fs/cgroup/cpuacct{path}/cpuacct.usage")))
    return files


def box_cpu(cgroups: list[Path]) -> float:
    """CPU seconds the boxes have used so far, summed. Here they share the controller's cores; on EC2 each box has
    its own."""
    total = 0.0
    for f in cgroups:
        text = f.read_text()
        total += int(re.search(r"usage_usec (\d+)", text).group(1)) / 1e6 if f.name == "cpu.stat" else int(text) / 1e9
    return total


def controller_cpu() -> float:
    """CPU seconds of this script's finished child processes: ansible-playbook with its workers and ssh clients (not
    the ssh connections kept open in the background, ControlPersist)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def noop_run(
    r: Rehearsal, cgroups: list[Path], extra: dict[str, str], prefix: list[str], args: tuple[str, ...] = ()
) -> tuple[float, int, int, float, float]:
    """A no-op re-converge: seconds, tasks, changed, and the CPU seconds it took on the controller and on the boxes
    (`cgroups`: box_cgroups)."""
    controller, boxes = controller_cpu(), box_cpu(cgroups)
    took, tasks, changed = playbook(r, "playbooks/configure.yml", extra, prefix, args)
    return took, tasks, changed, controller_cpu() - controller, box_cpu(cgroups) - boxes


def first_contact(r: Rehearsal) -> None:
    """Reach each new box once with plain Ansible, which accepts its host key (ansible.cfg: accept-new). Mitogen's
    SSH puts StrictHostKeyChecking=yes ahead of ansible.cfg's options and refuses a box it does not know yet, so a
    Mitogen user's first run after a launch is a plain one too (scripts/with-mitogen)."""
    timed([str(BIN / "ansible"), "gpubox", "-m", "ansible.builtin.ping"], r.env())


def age(r: Rehearsal) -> None:
    """Make each box look like the next day to configure.yml: its apt lists two days old (older than the roles'
    cache_valid_time, so apt refreshes them) and its cached facts gone (gathered again)."""
    facts = Path(r.env()["ANSIBLE_CACHE_PLUGIN_CONNECTION"])
    for box in r.boxes():
        subprocess.run(["podman", "exec", r.container(box), "sh", "-c", BACKDATE_APT], check=True)
        # The jsonfile cache names a host's file after it, behind ansible-core's schema prefix (2.21: s1_BOX).
        cached = [f for f in facts.iterdir() if re.fullmatch(rf"(s\d+_)?{re.escape(box)}", f.name)]
        if not cached:
            raise SystemExit(f"no cached facts of {box} in {facts} to expire: has the fact cache moved?")
        for f in cached:
            f.unlink()


def measure_configure(n: int, config: str, repeat: int, tmp: Path) -> dict:
    prefix, extra = config_run(config, tmp)
    names = [f"box{i}" for i in range(1, n + 1)]
    r = Rehearsal(f"perf{n}{config[0]}", tmp / f"state-{n}-{config}", tmp / "home", box_names=names)
    try:
        r._start()
        provision, _, _ = playbook(r, "playbooks/provision.yml", {})
        if config == "mitogen":
            first_contact(r)
        first, _, first_changed = playbook(r, "playbooks/configure.yml", extra, prefix)
        # With several boxes, each no-op on all of them is followed by one on the first box alone (--limit): this
        # machine's speed drifts by tens of percent over minutes, so the ratio compares runs made in the same minutes.
        noop, alone = [], []
        cgroups = box_cgroups(r)
        for _ in range(repeat):
            noop.append(noop_run(r, cgroups, extra, prefix))
            if n > 1:
                alone.append(noop_run(r, cgroups, extra, prefix, ("--limit", names[0])))
        assert all(run[2] == 0 for run in noop + alone), f"{config}, {n} boxes: a re-converge changed something"
        row = {
            "boxes": n,
            "config": config,
            "provision_first": provision,
            "first": first,
            "first_changed": first_changed,
            "noop": statistics.median(run[0] for run in noop),
            "noop_all": [run[0] for run in noop],
            "noop_tasks": noop[0][1],
            "noop_controller_cpu": statistics.median(run[3] for run in noop),
            "noop_box_cpu": statistics.median(run[4] for run in noop),
        }
        if alone:
            row["noop_alone"] = statistics.median(run[0] for run in alone)
            row["noop_ratio"] = f"{row['noop'] / row['noop_alone']:.2f}"
        if config in AGED_CONFIGS:
            age(r)
            row["aged"], _, aged_changed = playbook(r, "playbooks/configure.yml", extra, prefix)
            assert aged_changed == 0, f"{config}, {n} boxes: the aged no-op changed something ({aged_changed})"
        if config == "shipped":
            row["provision_noop"] = statistics.median(
                playbook(r, "playbooks/provision.yml", {})[0] for _ in range(repeat)
            )
            row |= inventory_listing(r, repeat, tmp)
        return row
    finally:
        r.down()


def inventory_listing(r: Rehearsal, repeat: int, tmp: Path) -> dict:
    """`ansible-inventory --graph`: straight from the API, then from the inventory cache (ANSIBLE_INVENTORY_CACHE)."""
    cmd = [str(BIN / "ansible-inventory"), "--graph"]
    cache = {"ANSIBLE_INVENTORY_CACHE": "True", "ANSIBLE_INVENTORY_CACHE_CONNECTION": str(tmp / "inventory-cache")}
    uncached = [timed(cmd, r.env())[0] for _ in range(repeat)]
    timed(cmd, {**r.env(), **cache})  # fills the cache
    cached = [timed(cmd, {**r.env(), **cache})[0] for _ in range(repeat)]
    return {"inventory_uncached": statistics.median(uncached), "inventory_cached": statistics.median(cached)}


@contextlib.contextmanager
def launched(label: str, n: int, tmp: Path) -> Iterator[tuple[Rehearsal, list[str]]]:
    """A rehearsal of n boxes (box1 ... boxN) launched by provision.yml, and the boxes' names; taken down after."""
    names = [f"box{i}" for i in range(1, n + 1)]
    r = Rehearsal(label, tmp / f"state-{label}", tmp / "home", box_names=names)
    try:
        r._start()
        playbook(r, "playbooks/provision.yml", {})
        yield r, names
    finally:
        r.down()


# What one task costs, whatever it does: a play of TASKS_PER_PLAY tasks of one kind, timed on one box (--limit) and
# on all the boxes of one rehearsal, less the same play with no task.
TASKS_PER_PLAY = 20
TASK_KINDS = {
    "skipped (`when: false`)": "ansible.builtin.debug: {msg: never}\n      when: false",
    "`raw: true`": "ansible.builtin.raw: 'true'\n      changed_when: false",
    "`set_fact`": "ansible.builtin.set_fact: {gpubox_perf: 1}",
}


def task_costs(n: int, repeat: int, tmp: Path) -> list[tuple[str, float, float]]:
    """Milliseconds one task adds to a run on one box and on n boxes (median of `repeat`), for each kind of task."""

    def run(tasks: str, limit: list[str]) -> float:  # r: the rehearsal launched below
        play = tmp / "cost.yml"
        play.write_text(
            "- hosts: gpubox\n  gather_facts: false\n  become: true\n  tasks:\n"
            + "".join(f"    - name: task {i}\n      {tasks}\n" for i in range(TASKS_PER_PLAY if tasks else 0))
            + ("" if tasks else "    []\n")
        )
        cmd = [str(BIN / "ansible-playbook"), str(play), *limit]
        return statistics.median(timed(cmd, r.env())[0] for _ in range(repeat))

    with launched("perfcost", n, tmp) as (r, names):
        first_contact(r)
        limits = (["--limit", names[0]], [])
        empty = [run("", limit) for limit in limits]
        rows = []
        for label, tasks in TASK_KINDS.items():
            one, all_ = ((run(tasks, lim) - t0) / TASKS_PER_PLAY * 1000 for lim, t0 in zip(limits, empty, strict=True))
            rows.append((label, one, all_))
            print(f"{label}: {one:.0f} ms on 1 box, {all_:.0f} ms on {n}", flush=True)
        return rows


def cost_report(rows: list[tuple[str, float, float]], n: int) -> str:
    lines = [f"| one task (ms) | 1 box | {n} boxes | {n} boxes / 1 |", "|---|---:|---:|---:|"]
    lines += [f"| {label} | {one:.0f} | {all_:.0f} | {all_ / one:.1f} |" for label, one, all_ in rows]
    return "\n".join(lines)


# configure.yml's roles in the order it applies them: --roles-curve times the first, the first two, ... all of them.
ROLES = ("base", "cuda", "miniconda", "jupyter", "autostop")


def roles_curve(n: int, repeat: int, tmp: Path) -> list[tuple[str, int, float, float]]:
    """For the first k roles of configure.yml (--tags, k = 1 to all) on configured boxes: the tasks a no-op takes
    per box (run and skipped, the play's own included), its seconds on the first box alone and on all n boxes
    (medians of `repeat`, the two alternating so that both see the machine in the same minutes)."""
    cmd = [str(BIN / "ansible-playbook"), "playbooks/configure.yml"]

    def noop(args: list[str]) -> tuple[float, int]:  # r, names: the rehearsal launched below
        took, proc = timed([*cmd, *args], r.env())
        recap = proc.stdout.split("PLAY RECAP")[-1]
        if changed_count(proc.stdout):
            raise SystemExit(f"a no-op with {args} changed something:\n{recap}")
        first = re.search(rf"^{re.escape(names[0])}\s*:(.*)$", recap, re.MULTILINE).group(1)
        return took, sum(int(v) for v in re.findall(r"\b(?:ok|skipped)=(\d+)", first))

    with launched("perfcurve", n, tmp) as (r, names):
        playbook(r, "playbooks/configure.yml", {})
        rows = []
        for k in range(1, len(ROLES) + 1):
            tags = ["--tags", ",".join(ROLES[:k])]
            one, all_ = [], []
            for _ in range(repeat):
                all_.append(noop(tags))
                one.append(noop([*tags, "--limit", names[0]]))
            row = (
                ", ".join(ROLES[:k]),
                one[0][1],
                statistics.median(t for t, _ in one),
                statistics.median(t for t, _ in all_),
            )
            rows.append(row)
            print(f"{row[0]}: {row[1]} tasks per box, {row[2]:.2f} s on 1 box, {row[3]:.2f} s on {n}", flush=True)
        return rows


def curve_report(rows: list[tuple[str, int, float, float]], n: int) -> str:
    lines = [
        f"| roles in the no-op (`--tags`) | tasks per box | 1 box (s) | {n} boxes (s) | {n} boxes / 1 |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {roles} | {tasks} | {one:.2f} | {all_:.2f} | {all_ / one:.2f} |" for roles, tasks, one, all_ in rows]
    return "\n".join(lines)


# configure.yml's frame (its connection check, then a play with the minimal facts, from the cache on a rerun) with
# N of the cheapest tasks there are (`raw: true`, one SSH exchange each) per box: --floor times it on one box and on
# all, for each N, to show how many tasks a no-op may run per box before five boxes take twice one box's time.
FLOOR_TASKS = (0, 10, 20, 30, 40)
FLOOR_PLAY = """- name: The connection check, as configure.yml's
  hosts: gpubox
  gather_facts: false
  tasks:
    - name: Wait until each box answers over SSH
      ansible.builtin.wait_for_connection:
        sleep: 5
        timeout: 60
- name: The minimal facts (cached on a rerun), then N reads
  hosts: gpubox
  become: true
  gather_facts: true
  gather_subset: [min]
  tasks:
"""


def floor(n: int, repeat: int, tmp: Path) -> list[tuple[int, float, float]]:
    """For each N of FLOOR_TASKS: seconds of configure.yml's frame with N `raw: true` tasks per box on the first box
    alone and on all n boxes (medians of `repeat`, alternating)."""
    with launched("perffloor", n, tmp) as (r, names):
        rows = []
        for count in FLOOR_TASKS:
            play = tmp / f"floor{count}.yml"
            reads = "".join(
                f"    - name: read {i}\n      ansible.builtin.raw: 'true'\n      changed_when: false\n"
                for i in range(count)
            )
            play.write_text(FLOOR_PLAY + (reads or "    - name: nothing\n      ansible.builtin.meta: noop\n"))
            cmd = [str(BIN / "ansible-playbook"), str(play)]
            timed(cmd, r.env())  # accepts new host keys, fills the fact cache
            one, all_ = [], []
            for _ in range(repeat):
                all_.append(timed(cmd, r.env())[0])
                one.append(timed([*cmd, "--limit", names[0]], r.env())[0])
            rows.append((count, statistics.median(one), statistics.median(all_)))
            print(f"{count} raw tasks: {rows[-1][1]:.2f} s on 1 box, {rows[-1][2]:.2f} s on {n}", flush=True)
        return rows


def floor_report(rows: list[tuple[int, float, float]], n: int) -> str:
    lines = [
        f"| `raw: true` tasks per box, after the connection check and the facts | 1 box (s) | {n} boxes (s) "
        f"| {n} boxes / 1 |",
        "|---:|---:|---:|---:|",
    ]
    lines += [f"| {count} | {one:.2f} | {all_:.2f} | {all_ / one:.2f} |" for count, one, all_ in rows]
    return "\n".join(lines)


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    mem = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) / 2**20
    ansible = subprocess.run([str(BIN / "ansible"), "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    python = platform.python_version()
    return f"{os.cpu_count()} vCPU ({cpu}), {mem:.0f} GiB RAM, {platform.platform()}, {ansible}, Python {python}"


def report(rows: list[dict], repeat: int, argv: list[str]) -> str:
    by = {(r["boxes"], r["config"]): r for r in rows}
    counts = sorted({r["boxes"] for r in rows})
    configs = [c for c in CONFIGS if any(r["config"] == c for r in rows)]
    lines = [
        "| configure.yml | "
        + " | ".join(f"{n} box{'es' if n > 1 else ''}, {c}" for n in counts for c in configs)
        + " |",
        "|---|" + "---:|" * (len(configs) * len(counts)),
    ]
    for key, label in [
        ("first", "first converge (s)"),
        ("noop", f"no-op re-converge, median of {repeat} (s)"),
        ("noop_alone", "no-op on the first of these boxes alone (`--limit`), in turn with the runs above (s)"),
        ("noop_ratio", "no-op on all these boxes / on the first alone"),
        ("noop_tasks", "tasks that ran on a no-op (ok, summed over boxes)"),
        ("noop_controller_cpu", "no-op: CPU on the controller, median (s)"),
        ("noop_box_cpu", "no-op: CPU on the boxes, summed, median (s)"),
        ("aged", AGED_LABEL),
    ]:
        if not any(key in r for r in rows):
            continue
        cells = []
        for n in counts:
            for c in configs:
                v = by.get((n, c), {}).get(key)
                cells.append("—" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v)))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    shipped = [by[(n, "shipped")] for n in counts if (n, "shipped") in by]
    other = seconds_table(
        "shipped ansible.cfg",
        shipped,
        [
            ("provision_first", "provision.yml, launching (s)"),
            ("provision_noop", "provision.yml, nothing to do (s)"),
            ("inventory_uncached", "`ansible-inventory --graph`, uncached (s)"),
            ("inventory_cached", "`ansible-inventory --graph`, cached (s)"),
        ],
    )
    return "\n".join([*lines, "", *other])


def seconds_table(title: str, rows: list[dict], measures: list[tuple[str, str]]) -> list[str]:
    """A Markdown table with a column per run (its number of boxes) and a line per measure (key, label), in seconds."""
    lines = [
        f"| {title} | " + " | ".join(f"{r['boxes']} box{'es' if r['boxes'] > 1 else ''}" for r in rows) + " |",
        "|---|" + "---:|" * len(rows),
    ]
    return lines + [f"| {label} | " + " | ".join(f"{r[key]:.1f}" for r in rows) + " |" for key, label in measures]


# Time to notebook: from the command a person types to JupyterLab answering through the tunnel (ssh -N -L), on
# (a) a box of a stock image (every role installs), (b) a box of an image baked by image.yml (`image: my:NAME`),
# (c) a stopped box started again (start.yml). Goals on this 2-core machine: (b) <= 60 s, (c) <= 30 s.
NOTEBOOK_IMAGE = "perf-notebook"


def jupyter_through_tunnel(r: Rehearsal, box: str, timeout: float = 180) -> float:
    """Seconds until the box's JupyterLab answers its token through `ssh -N -L PORT:localhost:8888 BOX` opened
    now (the tunnel is opened again while sshd or the server are not up yet); bounded."""
    start = time.monotonic()
    token = r.jupyter_token(box)
    port, proc = free_port(), None
    cmd = ["ssh", "-F", str(r.ssh_config), "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-N"]
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/status", headers={"Authorization": f"token {token}"})
    try:
        while True:
            if proc is None or proc.poll() is not None:
                proc = subprocess.Popen([*cmd, "-L", f"{port}:localhost:8888", box], stderr=subprocess.DEVNULL)
            try:
                with urllib.request.urlopen(request, timeout=2) as answer:
                    if answer.status == 200:
                        return time.monotonic() - start
            except OSError:
                pass
            if time.monotonic() - start > timeout:
                raise SystemExit(f"JupyterLab on {box} did not answer through the tunnel within {timeout:.0f} s")
            time.sleep(0.2)
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=10)


def role_seconds(stdout: str) -> dict[str, float]:
    """ansible.posix.profile_roles' summary: seconds per role."""
    return {m[1]: float(m[2]) for m in re.finditer(r"^(\S+) -+ (\d+\.\d+)s$", stdout, re.MULTILINE)}


def notebook(n: int, repeat: int, tmp: Path) -> dict:
    """(a), (b), (c) above: the command's seconds, then the tunnel's, on one rehearsal box (and one from its
    image); (a) split by role."""
    roles = {"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_roles"}
    r = Rehearsal("perfnb", tmp / "state-notebook", tmp / "home", box_names=["box1"])
    rows: dict = {}
    try:
        r._start()
        took, proc = timed([str(BIN / "ansible-playbook"), "site.yml"], {**r.env(), **roles})
        rows["stock"] = (took, jupyter_through_tunnel(r, "box1"), changed_count(proc.stdout))
        rows["roles"] = role_seconds(proc.stdout)

        bake = ["-e", "gpubox_box=box1", "-e", f"gpubox_image_name={NOTEBOOK_IMAGE}"]
        timed([str(BIN / "ansible-playbook"), "playbooks/image.yml", *bake], r.env())
        declared = [{"name": "box1"}, {"name": "baked", "image": f"my:{NOTEBOOK_IMAGE}"}]
        boxes = json.dumps({"gpubox_boxes": declared})
        took, proc = timed([str(BIN / "ansible-playbook"), "site.yml", "-e", boxes], r.env())
        recap = proc.stdout.split("PLAY RECAP")[-1]
        baked_changed = int(re.search(r"^baked\s*:.*\bchanged=(\d+)", recap, re.MULTILINE)[1])
        rows["baked"] = (took, jupyter_through_tunnel(r, "baked"), baked_changed)

        starts = []
        for _ in range(repeat):
            timed([str(BIN / "ansible-playbook"), "playbooks/stop.yml", "-e", "gpubox_only=box1"], r.env())
            took, _ = timed([str(BIN / "ansible-playbook"), "playbooks/start.yml", "-e", "gpubox_only=box1"], r.env())
            starts.append((took, jupyter_through_tunnel(r, "box1"), None))  # no converge: nothing to count
        rows["start"] = min(starts, key=lambda run: run[0] + run[1])
        return rows
    finally:
        r.down()


def notebook_report(rows: dict, n: int) -> str:
    lines = [
        "| from the command to JupyterLab through the tunnel | command (s) | then the tunnel (s) | total (s) | goal |"
        " changed |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for key, label, goal in [
        ("stock", "(a) `site.yml`, a box of a stock image", "as it is"),
        ("baked", "(b) `site.yml`, a new box of `image: my:NAME` (baked by `image.yml`)", "<= 60 s"),
        ("start", "(c) `start.yml` of a stopped box", "<= 30 s"),
    ]:
        command, tunnel, changed = rows[key]
        changed = "—" if changed is None else changed
        lines.append(f"| {label} | {command:.1f} | {tunnel:.1f} | {command + tunnel:.1f} | {goal} | {changed} |")
    lines += ["", "| (a) by role (`ansible.posix.profile_roles`) | s |", "|---|---:|"]
    lines += [f"| {role} | {seconds:.1f} |" for role, seconds in rows["roles"].items()]
    return "\n".join(lines)


JOB_FILES = 10_000


def task_seconds(stdout: str, name: str) -> float:
    """A task's seconds from ansible.posix.profile_tasks' summary (the ten slowest tasks)."""
    found = re.search(rf"^.*{re.escape(name)}.*? -+ (\d+\.\d+)s$", stdout, re.MULTILINE)
    return float(found[1]) if found else float("nan")


def jobs(n: int, repeat: int, tmp: Path) -> dict:
    """run.yml on a rehearsal box (site.yml first): a first sync of a JOB_FILES-file tree, then no-op syncs of it
    (the whole run.yml and its sync task); and a job with restart on-interruption, stopped and started again with
    stop.yml / start.yml: seconds from the container's start (the box's boot) to the job's start (its status)."""
    r = Rehearsal("perfjob", tmp / "state-jobs", tmp / "home", box_names=["box1"])
    tree = tmp / "tree"
    for i in range(JOB_FILES):
        path = tree / f"dir{i // 100:03d}" / f"file{i % 100:03d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# file {i}\n")
    play = [str(BIN / "ansible-playbook"), "playbooks/run.yml", "-e", "gpubox_box=box1"]
    synced = [*play, "-e", f"gpubox_workdir={tree}", "-e", "gpubox_job=tree", "-e", "gpubox_cmd=true"]
    sync_task = "Sync the workdir to the box"
    rows: dict = {"noop": [], "boot": []}
    try:
        r._start()
        timed([str(BIN / "ansible-playbook"), "site.yml"], r.env())
        took, proc = timed(synced, r.env())
        assert proc.returncode == 0, proc.stdout[-3000:]
        rows["first"] = (took, task_seconds(proc.stdout, sync_task))
        container = r.container("box1")
        for _ in range(repeat):
            while (
                subprocess.run(
                    ["podman", "exec", container, "systemctl", "is-active", "-q", "gpubox-job-tree"]
                ).returncode
                == 0
            ):
                time.sleep(0.2)  # `true` ends at once; a job of that name that runs is refused
            took, proc = timed(synced, r.env())
            assert proc.returncode == 0 and "changed=" in proc.stdout, proc.stdout[-3000:]
            rows["noop"].append((took, task_seconds(proc.stdout, sync_task)))
        small = tmp / "sleeper"
        small.mkdir()
        resumed = [*play, "-e", f"gpubox_workdir={small}", "-e", "gpubox_cmd='sleep 3600'"]
        timed([*resumed, "-e", "gpubox_restart=on-interruption"], r.env())
        for _ in range(repeat):
            timed([str(BIN / "ansible-playbook"), "playbooks/stop.yml"], r.env())
            timed([str(BIN / "ansible-playbook"), "playbooks/start.yml"], r.env())
            deadline = time.monotonic() + 120
            while True:
                status = subprocess.run(
                    ["podman", "exec", container, "cat", "/home/ubuntu/jobs/sleeper/status"],
                    capture_output=True,
                    text=True,
                ).stdout
                started = json.loads(status or "{}")
                if started.get("state") == "running" and started.get("resume"):
                    break
                assert time.monotonic() < deadline, f"the job did not start again: {status}"
                time.sleep(0.5)
            booted = subprocess.run(
                ["podman", "inspect", "--format", "{{.State.StartedAt.Unix}}", container],
                capture_output=True,
                text=True,
            ).stdout.strip()
            rows["boot"].append(started["started"] - float(booted))
        return rows
    finally:
        r.down()


def jobs_report(rows: dict, n: int) -> str:
    noop, boots = min(rows["noop"]), rows["boot"]
    lines = [
        "| run.yml on one rehearsal box | whole run (s) | its sync task (s) | goal |",
        "|---|---:|---:|---|",
        f"| first run: sync of {JOB_FILES:,} files, start | {rows['first'][0]:.1f} | {rows['first'][1]:.1f} | |",
        f"| again, nothing changed (best of {len(rows['noop'])}) | {noop[0]:.1f} | {noop[1]:.1f} | sync <= 5 s |",
        "",
        "| a job with restart on-interruption, after stop.yml + start.yml | s |",
        "|---|---:|",
        f"| from the box's boot to the job running again (each start) | {', '.join(f'{b:.1f}' for b in boots)} |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the figures into this Markdown file's results section")
    parser.add_argument(
        "--task-costs",
        action="store_true",
        help="only measure what one task costs on 1 box and on the largest --boxes (a rehearsal, no roles)",
    )
    parser.add_argument(
        "--roles-curve",
        action="store_true",
        help="only time no-ops of the first 1, 2, ... all roles (--tags) on 1 box and on the largest --boxes",
    )
    parser.add_argument(
        "--notebook",
        action="store_true",
        help="only time site.yml / start.yml to JupyterLab through the tunnel: stock image, baked image, start",
    )
    parser.add_argument(
        "--jobs",
        action="store_true",
        help="only time run.yml's sync of a 10,000-file tree (first, no-op) and a job's start again after a boot",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="only time configure.yml's frame with 0, 10, ... `raw: true` tasks per box, on 1 box and on the largest",
    )
    args = parser.parse_args(argv)
    rows = []
    command = " ".join(["python -m tests.performance", *(argv or sys.argv[1:])])
    # The single measurements: each times its runs on 1 box and on the largest --boxes, and has its own section.
    single = {
        "roles_curve": (roles_curve, curve_report, CURVE),
        "task_costs": (task_costs, cost_report, COSTS),
        "floor": (floor, floor_report, FLOOR),
        "notebook": (notebook, notebook_report, NOTEBOOK),
        "jobs": (jobs, jobs_report, JOBS),
    }
    for option, (measure, render, markers) in single.items():
        if getattr(args, option):
            n = max(args.boxes)
            with tempfile.TemporaryDirectory(prefix="gpubox-perf-") as tmp:
                table = render(measure(n, args.repeat, Path(tmp)), n)
            print(table)
            if args.out:
                write_results(args.out, table, command, markers)
            return
    with tempfile.TemporaryDirectory(prefix="gpubox-perf-") as tmp:
        for n in args.boxes:
            for config in args.configs:
                print(f"== configure.yml on {n} box(es), {config} config", flush=True)
                rows.append(measure_configure(n, config, args.repeat, Path(tmp)))
                print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    table = report(rows, args.repeat, argv or sys.argv[1:])
    print(table)
    if args.out:
        write_results(args.out, table, command)


RESULTS = ("<!-- results: written by tests/performance.py -->", "<!-- end of results -->")
COSTS = ("<!-- task costs: written by tests/performance.py --task-costs -->", "<!-- end of task costs -->")
CURVE = ("<!-- roles curve: written by tests/performance.py --roles-curve -->", "<!-- end of roles curve -->")
FLOOR = ("<!-- floor: written by tests/performance.py --floor -->", "<!-- end of floor -->")
NOTEBOOK = ("<!-- notebook: written by tests/performance.py --notebook -->", "<!-- end of notebook -->")
JOBS = ("<!-- jobs: written by tests/performance.py --jobs -->", "<!-- end of jobs -->")


def write_results(path: Path, table: str, command: str, markers: tuple[str, str] = RESULTS) -> None:
    """Replace the text between the results markers of `path` (the rest of the page is written by hand); markers the
    page does not have yet are added at its end."""
    start, end = markers
    text = path.read_text() if path.exists() else "# Performance\n"
    if start not in text:
        text += f"\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    body = f"{start}\nMeasured {stamp} on {machine()}.\nCommand: `{command}`\n\n{table}\n{end}"
    path.write_text(head + body + tail)


if __name__ == "__main__":
    main()
