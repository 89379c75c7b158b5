# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The arithmetic of what gpubox's resources cost, for list.yml (per box) and costs.yml (everything, every region).

Money is added up exactly (Decimal, from each price's shortest decimal form) and rounded once, half up, when shown:
0.125 shows as 0.13, and a total is the rounded sum of the exact amounts, not the sum of rounded ones.

- gpubox_hours_since(start, now=None): hours from an ISO time (AWS's LaunchTime) to now, never negative; None when
  the time cannot be read.
- gpubox_accrued(hourly, hours), gpubox_per_month(hourly): hourly price times hours, times HOURS_PER_MONTH (730, the
  month AWS's own estimates use); None when either is unknown.
- gpubox_gb_month(size_gib, per_gb_month): a disk or snapshot per month; None for an unknown price.
- gpubox_total(amounts): {"usd": the sum of the known amounts, "unknown": how many were unknown (None)}.
- gpubox_usd(amount, places=2), gpubox_rate(hourly), gpubox_hours_text(hours): the text shown, "?" for unknown.
- gpubox_tag_minutes(tags, key, unit): an Autostop/MaxHours tag as shown: "-" absent, "off" for 0, "60 min",
  or the untrusted value escaped as JSON.
- gpubox_running_spot(instances): the {instance_type, zone} of each pending or running spot instance, whether from
  amazon.aws.ec2_instance_info or from ec2_sweep (each pair once): what to ask ec2_spot_price.
- gpubox_box_costs(boxes, volumes, prices, now=None): per box of list.yml: $/h now and its source, hours since it
  last started, accrued, disks and their $/month, autostop and max hours; and the totals.
- gpubox_sweep_costs(resources, prices): per resource of costs.yml: $/month and what it is, and the total.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

# AWS's monthly estimates (pricing calculator, price pages) count 730 hours in a month.
HOURS_PER_MONTH = 730
# Instance states that bill the instance itself (pending is not billed, but is on its way).
BILLED_STATES = ("pending", "running")


def _decimal(value) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _time(value) -> datetime | None:
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, str) and value:
        try:
            stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def hours_since(start, now=None) -> float | None:
    begun, until = _time(start), _time(now) if now is not None else datetime.now(UTC)
    if begun is None or until is None:
        return None
    return max(0.0, (until - begun).total_seconds() / 3600)


def accrued(hourly, hours) -> float | None:
    price, spent = _decimal(hourly), _decimal(hours)
    return None if price is None or spent is None else _float(price * spent)


def per_month(hourly) -> float | None:
    price = _decimal(hourly)
    return None if price is None else _float(price * HOURS_PER_MONTH)


def gb_month(size_gib, per_gb_month) -> float | None:
    size, price = _decimal(size_gib), _decimal(per_gb_month)
    return None if size is None or price is None else _float(size * price)


def total(amounts) -> dict:
    known = [_decimal(a) for a in amounts if a is not None]
    unknown = sum(1 for a in amounts if a is None) + sum(1 for k in known if k is None)
    return {"usd": _float(sum((k for k in known if k is not None), Decimal(0))), "unknown": unknown}


def usd(amount, places: int = 2) -> str:
    value = _decimal(amount)
    if value is None:
        return "?"
    return str(value.quantize(Decimal(1).scaleb(-int(places)), rounding=ROUND_HALF_UP))


def rate(hourly) -> str:
    """An hourly price as shown: at least 3 decimals, up to 5 when the price has them (0.526, 0.1578, 2.24208)."""
    value = _decimal(hourly)
    if value is None:
        return "?"
    text = str(value.quantize(Decimal("0.00001"), rounding=ROUND_HALF_UP))
    whole, _unused, fraction = text.partition(".")
    return f"{whole}.{fraction.rstrip('0').ljust(3, '0')}"


def hours_text(hours) -> str:
    value = _decimal(hours)
    return "?" if value is None else str(value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def tag_minutes(tags, key: str, unit: str) -> str:
    """An instance's Autostop (minutes) or MaxHours tag as shown. Tags are anyone's to write: a value that is not a
    whole number is shown escaped (JSON, at most 24 characters), never as it is."""
    value = (tags or {}).get(key)
    if value is None:
        return "-"
    text = str(value)
    if text.isascii() and text.isdigit() and len(text) <= 7:
        return "off" if int(text) == 0 else f"{int(text)} {unit}"
    return json.dumps(text[:24])


def running_spot(instances) -> list[dict]:
    wanted = set()
    for item in instances or []:
        state = item.get("state")
        state = state.get("name") if isinstance(state, dict) else state
        spot = item.get("market") == "spot" or item.get("instance_lifecycle") == "spot"
        zone = item.get("zone") or (item.get("placement") or {}).get("availability_zone")
        if (
            spot
            and state in BILLED_STATES
            and zone
            and item.get("instance_type")
            and item.get("kind", "instance") == "instance"
        ):
            wanted.add((item["instance_type"], zone))
    return [{"instance_type": t, "zone": z} for t, z in sorted(wanted)]


def _instance_hourly(instance_type, market, zone, region_prices: dict) -> tuple[float | None, str | None]:
    """The $/h a running instance pays now and where that price came from: spot (the zone's current spot price),
    live (Price List API) or table (the dated table); (None, None) when no price is known."""
    if market == "spot":
        price = (region_prices.get("spot") or {}).get(zone, {}).get(instance_type)
        return (price, "spot") if price is not None else (None, None)
    live = (region_prices.get("ondemand") or {}).get(instance_type)
    if live is not None:
        return live, "live"
    table = (region_prices.get("table") or {}).get(instance_type)
    return (table, "table") if table is not None else (None, None)


def _ebs_price(volume_type, region_prices: dict) -> tuple[float | None, str | None]:
    live = (region_prices.get("ebs") or {}).get(volume_type)
    if live is not None:
        return live, "live"
    table = (region_prices.get("ebs_table") or {}).get(volume_type)
    return (table, "table") if table is not None else (None, None)


def box_costs(boxes, volumes, prices, now=None) -> dict:
    """What each box of list.yml costs.

    boxes: instances as amazon.aws describes them; volumes: ec2_project_state's (id, size, type, instance_ids);
    prices: {"ondemand": {type: $/h} live, "table": {type: $/h}, "spot": {zone: {type: $/h}},
    "ebs": {volume type: $/GB-month} live, "ebs_table": {volume type: $/GB-month}}.
    Returns {"boxes": {instance id: {...}}, "hourly", "accrued", "ebs_month": totals (gpubox_total)}."""
    disks: dict[str, list[dict]] = {}
    for volume in volumes or []:
        for instance_id in volume.get("instance_ids") or []:
            disks.setdefault(instance_id, []).append(volume)
    found: dict[str, dict] = {}
    for box in boxes or []:
        state = (box.get("state") or {}).get("name", "")
        market = "spot" if box.get("instance_lifecycle") == "spot" else "on-demand"
        zone = (box.get("placement") or {}).get("availability_zone")
        running = state in BILLED_STATES
        hourly, source = _instance_hourly(box.get("instance_type"), market, zone, prices)
        hours = hours_since(box.get("launch_time"), now) if running else None
        own = sorted(disks.get(box.get("instance_id"), []), key=lambda v: v.get("id") or "")
        months, ebs_sources = [], set()
        for volume in own:
            per_gb, ebs_source = _ebs_price(volume.get("type"), prices)
            months.append(gb_month(volume.get("size"), per_gb))
            ebs_sources.add(ebs_source)
        ebs = total(months)
        found[box.get("instance_id")] = {
            "market": market,
            "running": running,
            "hourly": hourly if running else None,
            "source": source if running else None,
            "hours": hours,
            "accrued": accrued(hourly, hours) if running else None,
            "disks": [{"size": v.get("size"), "type": v.get("type")} for v in own],
            "ebs_month": ebs["usd"] if own and not ebs["unknown"] else None,
            "ebs_sources": sorted(s for s in ebs_sources if s),
            "autostop": tag_minutes(box.get("tags"), "Autostop", "min"),
            "max_hours": tag_minutes(box.get("tags"), "MaxHours", "h"),
        }
    running = [b for b in found.values() if b["running"]]
    return {
        "boxes": found,
        "hourly": total([b["hourly"] for b in running]),
        "accrued": total([b["accrued"] for b in running]),
        "ebs_month": total([b["ebs_month"] for b in found.values() if b["disks"]]),
    }


def _region_prices(prices: dict, region: str) -> dict:
    return {
        "ondemand": (prices.get("ondemand") or {}).get(region) or {},
        "table": prices.get("table") or {},
        "spot": (prices.get("spot") or {}).get(region) or {},
        "ebs": (prices.get("ebs") or {}).get(region) or {},
        "ebs_table": prices.get("ebs_table") or {},
    }


KIND_ORDER = ("instance", "volume", "snapshot", "image", "spot request", "key pair", "security group")


def sweep_costs(resources, prices) -> dict:
    """What every resource of costs.yml costs a month.

    resources: ec2_sweep's (region, kind, id, ...); prices: {"ondemand": {region: {type: $/h}} live,
    "spot": {region: {zone: {type: $/h}}}, "ebs": {region: {volume type: $/GB-month}} live, "table": {type: $/h},
    "ebs_table": {volume type: $/GB-month}, "snapshot": {storage tier: $/GB-month}}.

    Instances: $/h x 730 while pending or running, 0 otherwise (their disks are the volumes). Volumes: GiB x
    $/GB-month of their type. Snapshots: GiB of the volume they copy x $/GB-month of their tier, an upper bound (AWS
    bills the blocks they hold). Images: their snapshots; a snapshot of a listed image is counted there, not twice.
    Key pairs, security groups: free. Spot requests: nothing of their own (their instance is listed).
    Returns {"rows": [... with "month" (None: unknown), "counted" and "in_image"], "total": gpubox_total of the
    counted rows, "sources": {"instance": {"live", "table", "spot", "none"}, "volume": {"live", "table", "none"}}:
    how many running instances and volumes were priced from where}."""
    resources = list(resources or [])
    snapshot_prices = prices.get("snapshot") or {}
    snapshots = {r["id"]: r for r in resources if r.get("kind") == "snapshot"}
    in_image: dict[str, str] = {}
    for image in (r for r in resources if r.get("kind") == "image"):
        for snap in image.get("snapshots") or []:
            in_image.setdefault(snap.get("id"), image["id"])
    rows = []
    sources = {"instance": {"live": 0, "table": 0, "spot": 0, "none": 0}, "volume": {"live": 0, "table": 0, "none": 0}}
    for res in resources:
        kind, region = res.get("kind"), res.get("region")
        here = _region_prices(prices, region)
        month: float | None = 0.0
        counted = True
        if kind == "instance":
            if res.get("state") in BILLED_STATES:
                hourly, source = _instance_hourly(res.get("instance_type"), res.get("market"), res.get("zone"), here)
                month = per_month(hourly)
                sources["instance"][source or "none"] += 1
        elif kind == "volume":
            per_gb, source = _ebs_price(res.get("volume_type"), here)
            month = gb_month(res.get("size"), per_gb)
            sources["volume"][source or "none"] += 1
        elif kind == "snapshot":
            month = gb_month(res.get("size"), snapshot_prices.get(res.get("storage_tier") or "standard"))
            counted = res.get("id") not in in_image
        elif kind == "image":
            parts = []
            for snap in res.get("snapshots") or []:
                tier = (snapshots.get(snap.get("id")) or {}).get("storage_tier") or "standard"
                parts.append(gb_month(snap.get("size"), snapshot_prices.get(tier)))
            summed = total(parts)
            month = None if summed["unknown"] else summed["usd"]
        rows.append({**res, "month": month, "counted": counted, "in_image": in_image.get(res.get("id"))})
    rows.sort(key=lambda r: (r.get("region") or "", _kind_rank(r.get("kind")), r.get("name") or "", r.get("id")))
    return {"rows": rows, "total": total([r["month"] for r in rows if r["counted"]]), "sources": sources}


def _kind_rank(kind) -> int:
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


class FilterModule:
    def filters(self):
        return {
            "gpubox_hours_since": hours_since,
            "gpubox_accrued": accrued,
            "gpubox_per_month": per_month,
            "gpubox_gb_month": gb_month,
            "gpubox_total": total,
            "gpubox_usd": usd,
            "gpubox_rate": rate,
            "gpubox_hours_text": hours_text,
            "gpubox_tag_minutes": tag_minutes,
            "gpubox_running_spot": running_spot,
            "gpubox_box_costs": box_costs,
            "gpubox_sweep_costs": sweep_costs,
        }
