# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the preflight: a box's settings as lists (gpubox_box_lists), the places it may launch
(gpubox_launch_candidates), the lines that say which candidates cannot launch and why (gpubox_unusable_candidates)
and the architecture of each of a box's instance types (gpubox_architectures).

A box declares `instance_type` and `market` as one value or an ordered list, and may narrow the zones with `zones`.
The launch tries the candidates in order: each instance type in the order given, for each of its markets in the
order given, each zone that offers the type and has a default subnet (in the order of `zones`, else by name).
"""

from __future__ import annotations


def _as_list(value) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, str | int | float) else list(value)


def box_lists(box: dict) -> dict:
    """The box with instance_types, markets and zones as lists (zones empty: every zone), and autostop (minutes,
    0 for off) and max_hours (0 for off) as whole numbers. Apply to boxes the preflight has checked."""
    autostop = box.get("autostop", 0)
    return {
        **box,
        "instance_types": _as_list(box.get("instance_type")),
        "markets": _as_list(box.get("market")),
        "zones": _as_list(box.get("zones")),
        "autostop": 0 if autostop is False else int(autostop),
        "max_hours": int(box.get("max_hours", 0)),
    }


def launch_candidates(box: dict, offered: dict, subnets: list[dict]) -> dict:
    """Where a box (as box_lists gives it) may launch.

    offered: the zones that offer each type (ec2_instance_type_offerings' `zones`); subnets: the default VPC's
    default subnets (subnet_id, availability_zone). Returns {"candidates": [{instance_type, market, zone,
    subnet_id}...] in the order they are tried, "impossible": [{instance_type, why}] for each type that has no
    zone}, where why is one of "not offered" (nowhere in the region), "not in zones" (not in a zone the box
    lists), "no subnet" (only in zones without a default subnet), with "zones" the zones that offer the type."""
    subnet_of: dict[str, str] = {}
    for subnet in sorted(subnets, key=lambda s: (s["availability_zone"], s["subnet_id"])):
        subnet_of.setdefault(subnet["availability_zone"], subnet["subnet_id"])
    wanted = box.get("zones") or sorted(subnet_of)
    candidates: list[dict] = []
    impossible: list[dict] = []
    for itype in box["instance_types"]:
        zones = list(offered.get(itype) or [])
        usable = [z for z in wanted if z in zones and z in subnet_of]
        if not usable:
            if not zones:
                why = "not offered"
            elif box.get("zones") and not set(zones) & set(box["zones"]):
                why = "not in zones"
            else:
                why = "no subnet"
            impossible.append({"instance_type": itype, "why": why, "zones": sorted(zones)})
            continue
        for market in box["markets"]:
            candidates += [
                {"instance_type": itype, "market": market, "zone": z, "subnet_id": subnet_of[z]} for z in usable
            ]
    return {"candidates": candidates, "impossible": impossible}


# What each reason of launch_candidates' "impossible" means, said of an instance type.
WHY = {
    "not offered": "is not offered in {region}",
    "not in zones": "is not offered in the box's zones",
    "no subnet": "is offered only in zones without a default subnet",
}


def unusable_candidates(boxes: list[dict], places: dict, quota_impossible: dict, region: str) -> list[str]:
    """A line for each candidate of the boxes that cannot launch: each type without a zone (places: launch_candidates
    of each box, by name) and each type and market whose quota has no room (quota_impossible: ec2_gpu_quota's
    "impossible", by box name)."""
    lines = []
    for box in boxes:
        name = box["name"]
        for out in places[name]["impossible"]:
            zones = ", ".join(out["zones"]) or "no zone"
            why = WHY[out["why"]].format(region=region)
            lines.append(f"Box '{name}': {out['instance_type']} {why} (offered in {zones})")
        for out in (quota_impossible or {}).get(name) or []:
            lines.append(f"Box '{name}': {out['instance_type']} {out['market']}: {out['why']}")
    return lines


def architectures(instance_types: list[str], types: dict) -> list[str]:
    """The architecture a box's image needs for each of its instance types (types: amazon.aws's
    ec2_instance_type_info by type): x86_64 where the type runs it, else the first it supports (arm64)."""
    found = []
    for itype in instance_types:
        supported = types[itype]["processor_info"]["supported_architectures"]
        found.append("x86_64" if "x86_64" in supported else supported[0])
    return found


class FilterModule:
    def filters(self):
        return {
            "gpubox_box_lists": box_lists,
            "gpubox_launch_candidates": launch_candidates,
            "gpubox_unusable_candidates": unusable_candidates,
            "gpubox_architectures": architectures,
        }
