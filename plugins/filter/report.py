# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The text gpubox prints: its tables, and the lines that report what happened.

- gpubox_table(rows, right=[]): rows of cells (the header first) as aligned lines, each column as wide as its widest
  cell, two spaces apart, no trailing blanks; the columns listed in right (indexes, -1 the last) right-aligned. Every
  table gpubox prints is made by it (module_utils/table.py, which the modules' attempt tables use too).
- gpubox_launch_report(results): from the registered loop of gpubox.gpubox.ec2_box_launch, a line for each box it
  launched (its type, zone and market, and whether that was its first choice); one that was not gets the table of the
  attempts before it, and every candidate refused for a quota says which quota and where to raise it.
- gpubox_box_rows(boxes, types, live, table): the boxes table of list.yml (instances as amazon.aws describes them;
  types: their instance types as amazon.aws.ec2_instance_type_info describes them; live and table: $/h on-demand by
  type, from the Price List API and the dated table), the header first.
- gpubox_box_cost_rows(boxes, costs): the money table of list.yml, from the boxes and their gpubox_box_costs, with a
  TOTAL row.
- gpubox_kept_rows(volumes, ebs_prices): the table of the data volumes kept without a box (ec2_project_state's
  data volumes; ebs_prices: $/GB-month by volume type).
- gpubox_sweep_rows(costs, every=False): the table of costs.yml from gpubox_sweep_costs, with a PROJECT column when
  every project is listed, and a TOTAL row; its last column ($/month) is meant to be right-aligned.

Names and tags are anyone's to write: a cell that holds one shows it only when it is a plain name, else escaped as
JSON (no newline or terminal code reaches the screen).
"""

from __future__ import annotations

import json
import re

from ansible_collections.gpubox.gpubox.plugins.filter.costs import hours_text, rate, usd
from ansible_collections.gpubox.gpubox.plugins.module_utils.names import box_name, literal_name
from ansible_collections.gpubox.gpubox.plugins.module_utils.table import aligned


def table(rows, right=None) -> list[str]:
    return aligned(rows, right or ())


def launch_report(results) -> list[str]:
    lines: list[str] = []
    for result in results or []:
        if not result.get("launched"):
            continue
        choice, first = result["choice"], result["item"]["candidates"][0]
        tries = int(result.get("attempts", 1))
        head = f"Box '{result['item']['name']}': launched as {choice['instance_type']} in {choice['zone']}, "
        head += choice["market"]
        if choice["first_choice"]:
            head += ", its first choice"
        else:
            head += (
                f" - NOT its first choice ({first['instance_type']} in {first['zone']}, {first['market']})"
                f" but candidate {choice['index']} of {choice['of']}"
            )
        if tries > 1:
            head += f" (round {tries} over the candidates)"
        lines.append(head if choice["first_choice"] else f"{head}, after:")
        if not choice["first_choice"]:
            lines += [f"  {line}" for line in result["table"]]
        lines += [f"  quota: {a['advice']}" for a in result["attempt_log"] if a["outcome"] == "quota"]
    return lines


def _shown_box(name) -> str:
    return name if box_name(name) else json.dumps(name)


def _autostop(tags: dict) -> str:
    """The Autostop and MaxHours tags as the boxes table shows them: '-' (none, or not a whole number), 'off',
    '60 min', with ', 8 h cap'. The whole tag must be digits: a trailing newline is not shown."""
    idle, cap = str(tags.get("Autostop", "")), str(tags.get("MaxHours", ""))
    text = "-" if not re.fullmatch(r"[0-9]+", idle) else ("off" if idle == "0" else f"{idle} min")
    return text + (f", {cap} h cap" if re.fullmatch(r"[1-9][0-9]*", cap) else "")


BOX_HEADER = ["NAME", "INSTANCE ID", "TYPE", "GPUS", "STATE", "MARKET", "AUTOSTOP", "PUBLIC IP / DNS",
              "LAUNCHED (UTC)", "$/H ON-DEMAND"]  # fmt: skip


def box_rows(boxes, types, live, table_prices) -> list[list[str]]:
    gpus_of = {t["instance_type"]: (t.get("gpu_info") or {}).get("gpus") or [] for t in types or []}
    live, table_prices = live or {}, table_prices or {}
    rows = [BOX_HEADER]
    for box in boxes or []:
        tags, itype = box.get("tags") or {}, box["instance_type"]
        price = live[itype] if itype in live else table_prices.get(itype)
        rows.append(
            [
                _shown_box(tags.get("Name", "")),
                box["instance_id"],
                itype,
                " + ".join(f"{gpu['count']} \u00d7 {gpu['name']}" for gpu in gpus_of.get(itype, [])) or "-",
                box["state"]["name"],
                "spot" if box.get("instance_lifecycle", "") == "spot" else "on-demand",
                _autostop(tags),
                f"{box.get('public_ip_address', '-')} {box.get('public_dns_name', '')}".strip(),
                box["launch_time"][:16].replace("T", " "),
                "%.3f" % price if price is not None else "?",  # noqa: UP031 - the text Jinja's format gave
            ]
        )
    return rows


def _sum(part: dict) -> str:
    """A total, with ' + ?' when some of its parts are unknown."""
    return usd(part["usd"]) + (" + ?" if part["unknown"] else "")


def box_cost_rows(boxes, costs) -> list[list[str]]:
    rows = [["NAME", "STATE", "$/H NOW", "HOURS UP", "ACCRUED $", "DISKS", "EBS $/MONTH", "AUTOSTOP", "MAX HOURS"]]
    for box in boxes or []:
        cost = costs["boxes"][box["instance_id"]]
        running = cost["running"]
        rows.append(
            [
                _shown_box((box.get("tags") or {}).get("Name", "")),
                box["state"]["name"],
                f"{rate(cost['hourly'])} {cost['source'] or cost['market']}" if running else "-",
                hours_text(cost["hours"]) if running else "-",
                usd(cost["accrued"]) if running else "-",
                " + ".join(f"{disk['size']} GiB {disk['type']}" for disk in cost["disks"]) or "-",
                usd(cost["ebs_month"]) if cost["disks"] else "-",
                cost["autostop"],
                cost["max_hours"],
            ]
        )
    hourly = rate(costs["hourly"]["usd"]) + (" + ?" if costs["hourly"]["unknown"] else "")
    rows.append(["TOTAL", "", hourly, "", _sum(costs["accrued"]), "", _sum(costs["ebs_month"]), "", ""])
    return rows


def kept_rows(volumes, ebs_prices) -> list[list[str]]:
    rows = [["KEPT DATA VOLUME OF", "VOLUME ID", "ZONE", "SIZE", "EBS $/MONTH"]]
    for volume in volumes or []:
        rows.append(
            [
                _shown_box(volume["tags"].get("DataOf")),
                volume["id"],
                volume["zone"],
                f"{volume['size']} GiB {volume['type']}",
                usd(int(volume["size"]) * (ebs_prices or {}).get(volume["type"], 0)),
            ]
        )
    return rows


def _shown_name(value) -> str:
    if value is None or value == "":
        return "-"
    return value if literal_name(value) else json.dumps(value)


def _sweep_detail(row: dict) -> str:
    kind = row["kind"]
    if kind == "instance":
        return f"{row['state']} {row['instance_type']} {row['market']}"
    if kind == "volume":
        on = f" on {', '.join(row['instance_ids'])}" if row.get("instance_ids") else ""
        return f"{row['size']} GiB {row['volume_type']} {row['state']}{on}"
    if kind == "snapshot":
        tier = "" if row["storage_tier"] == "standard" else f" {row['storage_tier']}"
        return f"{row['size']} GiB {row['state']}{tier}"
    if kind == "image":
        snapshots = row["snapshots"]
        size = sum(snap.get("size") or 0 for snap in snapshots)
        return f"{row['state']} {size} GiB in {len(snapshots)} snapshot{'' if len(snapshots) == 1 else 's'}"
    if kind == "spot request":
        return f"{row['state']} {row.get('instance_id') or ''}".strip()
    return "-"


def sweep_rows(costs, every=False) -> list[list[str]]:
    project = ["PROJECT"] if every else []
    rows = [["REGION", *project, "KIND", "ID", "NAME", "STATE / SIZE", "$/MONTH"]]
    for row in costs["rows"]:
        if row["in_image"]:
            month = f"in {row['in_image']}"
        elif row["kind"] == "spot request":
            month = "-"
        else:
            month = usd(row["month"])
        shown = [_shown_name((row.get("tags") or {}).get("Project"))] if every else []
        rows.append(
            [row["region"], *shown, row["kind"], row["id"], _shown_name(row["name"]), _sweep_detail(row), month]
        )
    rows.append(["TOTAL", *([""] if every else []), "", "", "", "", _sum(costs["total"])])
    return rows


class FilterModule:
    def filters(self):
        return {
            "gpubox_table": table,
            "gpubox_launch_report": launch_report,
            "gpubox_box_rows": box_rows,
            "gpubox_box_cost_rows": box_cost_rows,
            "gpubox_kept_rows": kept_rows,
            "gpubox_sweep_rows": sweep_rows,
        }
