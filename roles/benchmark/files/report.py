#!/usr/bin/env python3
"""Compare gpubox benchmark results: a Markdown report and PNG charts from the JSON files of gpubox_bench.py.

    python roles/benchmark/files/report.py RESULTS_DIR [--out DIR] [--spot-prices JSON]
        [--prices FILE | --ondemand-prices JSON --prices-date DATE]

Reads every *.json in RESULTS_DIR (one file per box and run), compares the latest run of each box, and
writes DIR/report.md and, when matplotlib is importable, DIR/charts/{throughput,scaling,cost}.png (Agg
backend, no display needed). Without matplotlib the Markdown is still written and says how to draw the
charts elsewhere. Prices: the project's dated on-demand table (inventory/group_vars/all/prices.yml, read, not
copied; the benchmark role passes it as --ondemand-prices); spot prices only when given
(--spot-prices '{"g5.xlarge": 0.45}'), never guessed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import re
import sys
from pathlib import Path

DEFAULT_PRICES = Path(__file__).resolve().parents[3] / "inventory" / "group_vars" / "all" / "prices.yml"
MATMUL_PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
TRAINING_PRECISIONS = (("fp32", "fp32"), ("amp_bf16", "AMP bf16"), ("amp_fp16", "AMP fp16"))
CHARTS = ("throughput", "scaling", "cost")
CHART_SIZE = (8.0, 4.5)  # inches, at CHART_DPI: 800 x 450 pixels
CHART_DPI = 100


# ----------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------


def load_results(results_dir: Path) -> list[dict]:
    """Every result file of the directory (oldest first); files that are not gpubox results are skipped."""
    records = []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            print(f"report: skipping {path.name}: {e}", file=sys.stderr)
            continue
        if not isinstance(record, dict) or "device" not in record or "box" not in record:
            print(f"report: skipping {path.name}: not a gpubox benchmark result", file=sys.stderr)
            continue
        record["_file"] = path.name
        records.append(record)
    return sorted(records, key=lambda r: (r.get("started") or "", r["_file"]))


def latest_per_box(records: list[dict]) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for record in records:  # oldest first: the last one wins
        latest[record["box"]] = record
    return dict(sorted(latest.items()))


def load_prices(path: Path) -> tuple[dict[str, float], str]:
    """The on-demand price table (instance type -> USD/h) and its date, from the project's prices.yml."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        import yaml

        data = yaml.safe_load(text) or {}
        prices = {str(k): float(v) for k, v in (data.get("gpubox_ondemand_prices") or {}).items()}
        return prices, str(data.get("gpubox_ondemand_prices_date", "unknown date"))
    except ImportError:  # a bare Python: the table is simple `key: value` lines under gpubox_ondemand_prices
        prices, date, inside = {}, "unknown date", False
        for line in text.splitlines():
            if m := re.match(r"gpubox_ondemand_prices_date:\s*(\S+)", line):
                date = m.group(1)
            inside = line.startswith("gpubox_ondemand_prices:") or (inside and line.startswith(" "))
            if inside and (m := re.match(r"\s+([\w.-]+):\s*([0-9.]+)\s*$", line)):
                prices[m.group(1)] = float(m.group(2))
        return prices, date


# ----------------------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------------------


def median(entry: dict | None, key: str) -> float | None:
    """entry[key]['median'] when it was measured, else None (skipped, failed or absent)."""
    if not isinstance(entry, dict) or not isinstance(entry.get(key), dict):
        return None
    return entry[key].get("median")


def is_gpu(record: dict) -> bool:
    return record.get("device") == "cuda" and isinstance(record.get("gpu"), dict)


def scaling_points(record: dict) -> list[dict]:
    if not is_gpu(record):
        return []
    points = (record.get("scaling") or {}).get("points") or []
    return [p for p in points if median(p, "images_per_s") is not None]


def box_throughput(record: dict) -> tuple[float | None, str]:
    """Training images/s of the whole box, and what it is based on.

    All GPUs when the scaling run measured them; else the best single-GPU precision (which is the whole
    box only when it has one GPU, and says so when it does not).
    """
    if not is_gpu(record):
        return None, "no GPU: no training figure"
    points = scaling_points(record)
    count = record["gpu"].get("count") or 1
    if points and points[-1]["gpus"] == count and count > 1:
        precision = record["scaling"].get("precision", "?")
        return median(points[-1], "images_per_s"), f"DDP on all {count} GPUs, {precision}"
    best, label = None, ""
    for key, name in TRAINING_PRECISIONS:
        value = median((record.get("training") or {}).get(key), "images_per_s")
        if value is not None and (best is None or value > best):
            best, label = value, name
    if best is None:
        return None, "no training figure"
    return best, f"1 GPU, {label}" + (f" (of {count}: no figure for all GPUs)" if count > 1 else "")


def cost_of(record: dict, ondemand: dict[str, float], spot: dict[str, float]) -> dict:
    itype = record.get("instance_type")
    ips, basis = box_throughput(record)
    row = {"instance_type": itype, "ondemand": None, "spot": None, "images_per_s": ips, "basis": basis}
    if itype:
        row["ondemand"] = ondemand.get(itype)
        row["spot"] = spot.get(itype)
    for market in ("ondemand", "spot"):
        price = row[market]
        # USD per million images: price per hour / images per hour * 1e6
        row[f"{market}_per_m"] = price / (ips * 3600) * 1e6 if price is not None and ips else None
    return row


def fmt(value, digits: int = 1, unknown: str = "—") -> str:
    if value is None:
        return unknown
    if isinstance(value, float):
        return f"{value:.3g}" if 0 < abs(value) < 1 else f"{value:,.{digits}f}"
    return str(value)


def percent(value) -> str:
    return "—" if value is None else f"{value:.0%}"


def usd(value, unknown: str = "unknown") -> str:
    if value is None:
        return unknown
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


# ----------------------------------------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _unused in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return [*lines, ""]


def device_label(record: dict) -> str:
    if is_gpu(record):
        return "GPU (CUDA)"
    return "CPU (no GPU measured)"


def render(
    records: list[dict],
    latest: dict[str, dict],
    costs: dict[str, dict],
    prices_date: str,
    charts: list[str],
    charts_note: str,
) -> str:
    gpu_boxes = {b: r for b, r in latest.items() if is_gpu(r)}
    cpu_boxes = {b: r for b, r in latest.items() if not is_gpu(r)}
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# gpubox benchmark report",
        "",
        f"Written {now} from {len(records)} result file(s); the latest run of each of {len(latest)} box(es) is "
        "compared. Figures are medians of the timed repetitions (raw repetitions are in the JSON files).",
        "",
        "## Boxes",
        "",
    ]
    rows = []
    for box, r in latest.items():
        g = r.get("gpu") if is_gpu(r) else {}
        rows.append(
            [
                box,
                r.get("instance_type") or "unknown",
                device_label(r),
                fmt(g.get("model")),
                fmt(g.get("count")),
                fmt(g.get("memory_gib")),
                fmt(g.get("driver")),
                fmt(g.get("cuda")),
                fmt(r.get("torch")),
                fmt(r.get("started")),
            ]
        )
    out += table(
        ["Box", "Instance type", "Device", "GPU", "GPUs", "GiB per GPU", "Driver", "CUDA", "torch", "Run (UTC)"], rows
    )
    for box, r in cpu_boxes.items():
        out += [f"- **{box}** ran the CPU path: {r.get('reason') or 'no GPU'}.", ""]

    if gpu_boxes:
        out += ["## Dense matmul (TFLOP/s)", ""]
        rows = []
        for box, r in gpu_boxes.items():
            m = r.get("matmul") or {}
            sizes = {e.get("n") for e in m.values() if isinstance(e, dict) and e.get("n")}
            cells = [fmt(median(m.get(p), "tflops")) for p in MATMUL_PRECISIONS]
            rows.append([box, *cells, " ".join(f"{n}³" for n in sorted(sizes)) or "—"])
        out += table(["Box", *MATMUL_PRECISIONS, "Size"], rows)
        out += [
            "tf32 = fp32 inputs with TF32 tensor cores allowed; fp32 with them forbidden. 2·n³ operations per product.",
            "",
            "## Memory bandwidth (GB/s)",
            "",
        ]
        rows = []
        for box, r in gpu_boxes.items():
            bw = r.get("bandwidth") or {}
            rows.append(
                [
                    box,
                    fmt(median(bw, "device_copy_gbs")),
                    fmt(median(bw, "host_to_device_gbs")),
                    fmt(median(bw, "device_to_host_gbs")),
                ]
            )
        out += table(["Box", "Device copy (read + write)", "Host → device (pinned)", "Device → host (pinned)"], rows)
        out += ["GB = 10⁹ bytes. A device copy of B bytes counts 2·B (read and written).", ""]

        out += ["## Training throughput, one GPU (images/s)", ""]
        rows, setting = [], ""
        for box, r in gpu_boxes.items():
            t = r.get("training") or {}
            setting = setting or (
                f"{t.get('model', 'ResNet-18')}, input {'x'.join(map(str, t.get('input', [])))}, batch {t.get('batch')}"
            )
            rows.append([box, *(fmt(median(t.get(k), "images_per_s")) for k, _unused in TRAINING_PRECISIONS)])
        out += table(["Box", *(name for _unused, name in TRAINING_PRECISIONS)], rows)
        out += [f"{setting}; synthetic Fashion-MNIST-shaped data already on the GPU.", ""]

        out += ["## Multi-GPU scaling (data-parallel, one node)", ""]
        rows = []
        for box, r in gpu_boxes.items():
            scaling = r.get("scaling") or {}
            points = scaling_points(r)
            if not points and not scaling.get("points"):
                rows.append([box, "—", "—", "—", scaling.get("skipped") or "not measured"])
                continue
            base = median(points[0], "images_per_s") if points and points[0]["gpus"] == 1 else None
            for p in scaling.get("points") or []:
                if median(p, "images_per_s") is None:
                    rows.append([box, str(p.get("gpus", "?")), "—", "—", f"failed: {p.get('error', 'no figure')}"])
                    continue
                ideal = base * p["gpus"] if base else None
                rows.append(
                    [box, str(p["gpus"]), fmt(median(p, "images_per_s")), fmt(ideal), percent(p.get("efficiency"))]
                )
        out += table(["Box", "GPUs", "images/s", "ideal (k x 1 GPU)", "efficiency"], rows)

    if cpu_boxes:
        out += ["## CPU path (boxes without a GPU measured)", ""]
        rows = []
        for box, r in cpu_boxes.items():
            c = r.get("cpu") or {}
            mm = c.get("matmul") or {}
            rows.append(
                [
                    box,
                    fmt(c.get("backend")),
                    fmt(median(mm.get("fp32"), "gflops"), 2),
                    fmt(median(mm.get("fp64"), "gflops"), 2),
                    fmt(median(c.get("memory"), "copy_gbs"), 2),
                ]
            )
        out += table(["Box", "Backend", "matmul fp32 GFLOP/s", "matmul fp64 GFLOP/s", "memory copy GB/s"], rows)
        out += ["No GPU figure exists for these boxes; none is shown.", ""]

    out += ["## Cost per unit of work", ""]
    rows = []
    for box, c in costs.items():
        rows.append(
            [
                box,
                c["instance_type"] or "unknown",
                usd(c["ondemand"]),
                usd(c["spot"]),
                fmt(c["images_per_s"]),
                c["basis"],
                usd(c["ondemand_per_m"], "—"),
                usd(c["spot_per_m"], "—"),
            ]
        )
    out += table(
        [
            "Box",
            "Instance type",
            "On-demand $/h",
            "Spot $/h",
            "Box images/s",
            "Basis",
            "$ per M images (on-demand)",
            "$ per M images (spot)",
        ],
        rows,
    )
    out += [
        f"On-demand prices: gpubox's dated table (Linux, us-east-1/us-west-2, {prices_date}); other regions "
        "differ. Spot: unknown unless given (spot prices change hourly and are not in the table). "
        "$ per million images = $/h / (images/s x 3600) x 10⁶.",
        "",
        "## Charts",
        "",
    ]
    out += [f"![{name}](charts/{name}.png)" for name in charts] or [charts_note]
    if charts:
        out += ["", charts_note] if charts_note else []
    out += ["", "## All runs", ""]
    rows = [
        [r["_file"], r["box"], device_label(r), fmt(r.get("started")), fmt(r.get("seconds"))] for r in reversed(records)
    ]
    out += table(["File", "Box", "Device", "Started (UTC)", "Seconds"], rows)
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------------------
# Charts
# ----------------------------------------------------------------------------------------------------------


def grouped_bars(ax, groups: list[str], series: dict[str, list[float | None]], ylabel: str) -> None:
    """Bars grouped by `groups` (x), one colour per series; missing values are left out."""
    width = 0.8 / max(1, len(series))
    values = [v for vs in series.values() for v in vs if v]
    for i, (name, vs) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar([x for x, v in zip(xs, vs, strict=True) if v], [v for v in vs if v], width, label=name)
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylabel(ylabel)
    if values and max(values) / min(values) > 100:
        ax.set_yscale("log")
    if series:
        ax.legend(fontsize=7)


def bars_or_note(ax, groups: list[str], series: dict, ylabel: str, title: str, note: str) -> None:
    """Grouped bars of the series that have a value, or the note saying why there is nothing to draw."""
    series = {name: vs for name, vs in series.items() if any(vs)}
    if series:
        grouped_bars(ax, groups, series, ylabel)
    else:
        empty(ax, note)
    ax.set_title(title, fontsize=10)


def empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_charts(latest: dict[str, dict], costs: dict[str, dict], outdir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    names = list(latest)
    labels = [f"{b}\n(CPU)" if not is_gpu(r) else b for b, r in latest.items()]

    # Throughput: matmul per precision (GPU TFLOP/s; CPU boxes' GFLOP/s converted), training per precision.
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=CHART_SIZE, dpi=CHART_DPI)
    matmul: dict[str, list[float | None]] = {}
    for p in (*MATMUL_PRECISIONS, "fp64"):  # fp64: CPU boxes only
        vs = []
        for r in latest.values():
            if is_gpu(r):
                vs.append(median((r.get("matmul") or {}).get(p), "tflops"))
            else:
                g = median(((r.get("cpu") or {}).get("matmul") or {}).get(p), "gflops")
                vs.append(g / 1000 if g is not None else None)
        matmul[p] = vs
    bars_or_note(ax1, labels, matmul, "TFLOP/s", "Dense matmul", "no matmul figure")
    gpu_names = [b for b in names if is_gpu(latest[b])]
    training = {
        name: [median((latest[b].get("training") or {}).get(key), "images_per_s") for b in gpu_names]
        for key, name in TRAINING_PRECISIONS
    }
    bars_or_note(
        ax2,
        gpu_names,
        training,
        "images/s",
        "ResNet-18 training, 1 GPU",
        "no training figure:\nno box with a GPU measured",
    )
    fig.tight_layout()
    fig.savefig(outdir / "throughput.png")
    plt.close(fig)

    # Scaling: measured images/s against the ideal k x (1 GPU).
    fig, ax = plt.subplots(figsize=CHART_SIZE, dpi=CHART_DPI)
    drawn = False
    for box, r in latest.items():
        points = scaling_points(r)
        if len(points) < 2 or points[0]["gpus"] != 1:
            continue
        ks = [p["gpus"] for p in points]
        base = median(points[0], "images_per_s")
        line = ax.plot(ks, [median(p, "images_per_s") for p in points], marker="o", label=f"{box} measured")[0]
        ax.plot(ks, [base * k for k in ks], linestyle="--", color=line.get_color(), label=f"{box} ideal")
        drawn = True
    if drawn:
        ax.set_xticks(sorted({p["gpus"] for r in latest.values() for p in scaling_points(r)}))
        ax.set_xlabel("GPUs")
        ax.set_ylabel("images/s")
        ax.legend(fontsize=7)
    else:
        empty(ax, "no multi-GPU scaling measured\n(no box with 2 or more GPUs)")
    ax.set_title("Data-parallel scaling (DDP)", fontsize=10)
    fig.tight_layout()
    fig.savefig(outdir / "scaling.png")
    plt.close(fig)

    # Cost: $/h and $ per million training images, on-demand and spot where known.
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=CHART_SIZE, dpi=CHART_DPI)
    per_h = {"on-demand": [costs[b]["ondemand"] for b in names], "spot": [costs[b]["spot"] for b in names]}
    bars_or_note(
        ax1, labels, per_h, "USD per hour", "Price", "no known price\n(instance type unknown or not in the table)"
    )
    per_m = {
        "on-demand": [costs[b]["ondemand_per_m"] for b in names],
        "spot": [costs[b]["spot_per_m"] for b in names],
    }
    bars_or_note(
        ax2,
        labels,
        per_m,
        "USD per million images",
        "Cost per million training images",
        "no cost per image:\nneeds a price and a training figure",
    )
    fig.tight_layout()
    fig.savefig(outdir / "cost.png")
    plt.close(fig)
    return list(CHARTS)


# ----------------------------------------------------------------------------------------------------------


def write_report(
    results_dir: Path,
    out: Path,
    prices: tuple[dict[str, float], str] | Path = DEFAULT_PRICES,
    spot: dict[str, float] | None = None,
) -> Path:
    records = load_results(results_dir)
    if not records:
        raise SystemExit(f"report: no gpubox benchmark result (*.json) in {results_dir}")
    latest = latest_per_box(records)
    ondemand, prices_date = prices if isinstance(prices, tuple) else load_prices(prices)
    costs = {box: cost_of(r, ondemand, spot or {}) for box, r in latest.items()}
    out.mkdir(parents=True, exist_ok=True)
    try:
        charts, note = draw_charts(latest, costs, out / "charts"), ""
    except ImportError as e:
        charts = []
        note = (
            f"Charts not drawn here ({e}). Draw them where matplotlib is installed, e.g. on the controller: "
            f"`python roles/benchmark/files/report.py RESULTS_DIR --out DIR`."
        )
    report = out / "report.md"
    report.write_text(render(records, latest, costs, prices_date, charts, note) + "\n", encoding="utf-8")
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("results_dir", type=Path, help="directory of the JSON results (one file per box and run)")
    p.add_argument("--out", type=Path, help="where report.md and charts/ go (default: RESULTS_DIR)")
    p.add_argument("--prices", type=Path, default=DEFAULT_PRICES, help="YAML with gpubox_ondemand_prices (USD/h)")
    p.add_argument("--ondemand-prices", help="JSON object of on-demand USD/h (instead of --prices)")
    p.add_argument("--prices-date", default="unknown date", help="when the --ondemand-prices were published")
    p.add_argument("--spot-prices", default="{}", help='JSON object of spot USD/h, e.g. {"g5.xlarge": 0.45}')
    return p.parse_args(argv)


def price_table(text: str, option: str) -> dict[str, float]:
    """A JSON object of instance type -> USD per hour, or a SystemExit naming the option."""
    table = json.loads(text or "{}")
    if not isinstance(table, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and not math.isnan(v) for v in table.values()
    ):
        raise SystemExit(f"report: {option} must be a JSON object of instance type -> USD per hour")
    return {str(k): float(v) for k, v in table.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spot = price_table(args.spot_prices, "--spot-prices")
    prices = args.prices
    if args.ondemand_prices is not None:
        prices = (price_table(args.ondemand_prices, "--ondemand-prices"), args.prices_date)
    report = write_report(args.results_dir, args.out or args.results_dir, prices, spot)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
