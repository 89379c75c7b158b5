#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check that the account's GPU vCPU quotas (Service Quotas) cover the boxes about to be launched."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ec2_gpu_quota
short_description: Refuse a launch that the account's GPU vCPU quotas cannot cover
author:
  - gpubox maintainers (!UNKNOWN)
description:
  - Groups the boxes to launch by quota (G and VT or P instances, on-demand or spot), adds the vCPUs of the
    account's instances already running under that quota, and compares the sum with the applied quota value
    from Service Quotas.
  - A box may have several candidates (instance type and market, in order of preference). The boxes are taken in
    order, each counted under its first candidate whose quota has room for it; a candidate whose quota has no
    room is left out of the box's candidates (and named in C(impossible)). A box is refused only when none of
    its candidates fits.
  - Fails, naming the boxes, the quota and the console page to request an increase, when a quota is too low for
    a box's every candidate.
  - When a quota cannot be read (Service Quotas unavailable, no permission), warns and goes on (the candidates
    it covers are kept).
  - Instance types of other families are not checked.
options:
  boxes:
    description:
      - The boxes to launch, each a dict with C(name) and either C(candidates), a list of dicts with
        C(instance_type) and C(market) (C(on-demand) or C(spot); other keys, such as the zone, are kept), or
        C(instance_type), C(vcpus) (default vCPUs of the type) and C(market) (C(on-demand), the default, or C(spot)).
      - The boxes come back in C(boxes) with the candidates that fit; other keys are kept.
    type: list
    elements: dict
    required: true
  type_vcpus:
    description: Default vCPUs of each instance type of the boxes' candidates.
    type: dict
    default: {}
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Check the GPU vCPU quotas
  ec2_gpu_quota:
    region: us-west-2
    boxes:
      - {name: d2l, instance_type: g4dn.xlarge, vcpus: 4, market: on-demand}
      - name: big
        candidates:
          - {instance_type: g5.2xlarge, market: spot, zone: us-west-2a}
          - {instance_type: g5.2xlarge, market: on-demand, zone: us-west-2a}
    type_vcpus: {g5.2xlarge: 8}
"""

RETURN = r"""
quotas:
  description: One entry per quota the boxes need.
  returned: always
  type: list
  elements: dict
  sample:
    - code: L-DB2E81BA
      name: Running On-Demand G and VT instances
      boxes: [d2l]
      requested: 4
      in_use: 0
      limit: 8
      ok: true
boxes:
  description: The boxes as given, each with the candidates that fit the quotas (all of them when none is refused).
  returned: always
  type: list
  elements: dict
impossible:
  description: For each box (by name), the candidates left out, with C(instance_type), C(market) and C(why).
  returned: always
  type: dict
  sample: {big: [{instance_type: g5.2xlarge, market: spot, why: "vCPU quota L-3819A6DF ... is 0 ..."}]}
"""

import contextlib  # noqa: E402 - Ansible modules document themselves before their imports

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.gpubox.gpubox.plugins.module_utils import gpubox_ec2  # noqa: E402
from ansible_collections.gpubox.gpubox.plugins.module_utils.gpubox_ec2 import QUOTAS, error_text  # noqa: E402
from ansible_collections.gpubox.gpubox.plugins.module_utils.gpubox_ec2 import quotas_url as console_url  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore

# The quota classes of gpubox_ec2.QUOTAS this check covers: those of GPU instances. (A CPU box's Standard quota is
# rarely short; should it be, the launch names it from the same table.)
GPU_CLASSES = ("G", "P")


def quota_class(instance_type: str) -> str | None:
    """G (G and VT families), P, or None for families this check does not cover."""
    cls = gpubox_ec2.quota_class(instance_type)
    return cls if cls in GPU_CLASSES else None


def vcpus_in_use(ec2) -> dict[tuple[str, str], int]:
    """vCPUs of the account's pending/running instances in the region, per (market, class)."""
    used: dict[tuple[str, str], int] = {}
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )
    for page in pages:
        for reservation in page.get("Reservations", []):
            for inst in reservation.get("Instances", []):
                cls = quota_class(inst["InstanceType"])
                if cls is None:
                    continue
                market = "spot" if inst.get("InstanceLifecycle") == "spot" else "on-demand"
                cpu = inst.get("CpuOptions") or {}
                vcpus = cpu.get("CoreCount", 0) * cpu.get("ThreadsPerCore", 1)
                used[(market, cls)] = used.get((market, cls), 0) + vcpus
    return used


def _options(box: dict, type_vcpus: dict) -> list[dict]:
    """The box's distinct (instance type, market) candidates, in order, each with its vCPUs."""
    given = box.get("candidates")
    if given is None:
        given = [{"instance_type": box["instance_type"], "market": box.get("market") or "on-demand"}]
    options: list[dict] = []
    for candidate in given:
        itype, market = candidate["instance_type"], candidate.get("market") or "on-demand"
        if any(o["instance_type"] == itype and o["market"] == market for o in options):
            continue
        vcpus = type_vcpus.get(itype, box.get("vcpus") if itype == box.get("instance_type") else None)
        options.append({"instance_type": itype, "market": market, "vcpus": int(vcpus or 0)})
    return options


def check_quotas(sq, ec2, region: str, boxes: list[dict]) -> tuple[list[dict], list[str], list[str]]:
    """Return (quota report, refusals, warnings) for launching `boxes` (see plan_quotas)."""
    return plan_quotas(sq, ec2, region, boxes)[:3]


def plan_quotas(
    sq, ec2, region: str, boxes: list[dict], type_vcpus: dict | None = None
) -> tuple[list[dict], list[str], list[str], dict[str, list[dict]]]:
    """Return (quota report, refusals, warnings, candidates left out per box) for launching `boxes`.

    Boxes are taken in order; each is counted under its first candidate whose quota has room (or cannot be read).
    A box none of whose candidates fits is refused: a box with one quota-bound candidate in the message of its
    quota, which names every box counted under it (as when each box had one type), any other box on its own."""
    type_vcpus = type_vcpus or {}
    options = {box["name"]: _options(box, type_vcpus) for box in boxes}
    keys = sorted(
        {(o["market"], cls) for opts in options.values() for o in opts if (cls := quota_class(o["instance_type"]))}
    )
    report: list[dict] = []
    refusals: list[str] = []
    warnings: list[str] = []
    impossible: dict[str, list[dict]] = {}
    if not keys:
        return report, refusals, warnings, impossible

    try:
        used = vcpus_in_use(ec2)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        used = {}
        warnings.append(f"Could not count the vCPUs already running ({error_text(e)}); checking the new boxes alone.")

    limits: dict[tuple[str, str], int | None] = {}
    for key in keys:
        code, name = QUOTAS[key]
        try:
            limits[key] = int(sq.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"])
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            limits[key] = None
            warnings.append(
                f"Could not read the vCPU quota {code} ({name}) in {region}: {error_text(e)}. Going on without "
                f"the check; if the launch fails with VcpuLimitExceeded, request an increase at "
                f"{console_url(region, code)}"
            )

    counted: dict[tuple[str, str], list[tuple[dict, dict]]] = {key: [] for key in keys}
    taken = dict.fromkeys(keys, 0)
    refused_alone: list[tuple[dict, list[tuple[dict, tuple[str, str]]]]] = []
    for box in boxes:
        short: list[tuple[dict, tuple[str, str]]] = []
        for option in options[box["name"]]:
            cls = quota_class(option["instance_type"])
            if cls is None:
                break
            key = (option["market"], cls)
            limit = limits[key]
            if limit is None or used.get(key, 0) + taken[key] + option["vcpus"] <= limit:
                taken[key] += option["vcpus"]
                counted[key].append((box, option))
                break
            short.append((option, key))
        else:
            # no candidate fits: the box counts under each quota that refused it (once, with its first candidate there)
            for key in dict.fromkeys(k for _unused, k in short):
                counted[key].append((box, next(o for o, k in short if k == key)))
            if len(short) != 1:
                refused_alone.append((box, short))
        if short:
            impossible[box["name"]] = [
                {
                    "instance_type": o["instance_type"],
                    "market": o["market"],
                    "why": _shortfall(region, key, limits[key], used.get(key, 0) + taken[key], o["vcpus"]),
                }
                for o, key in short
            ]

    alone = {box["name"] for box, _unused in refused_alone}
    for key in keys:
        code, name = QUOTAS[key]
        group = counted[key]
        if not group:
            continue
        requested = sum(o["vcpus"] for _unused, o in group)
        in_use = used.get(key, 0)
        limit = limits[key]
        entry = {"code": code, "name": name, "boxes": [b["name"] for b, _unused in group], "requested": requested}
        entry.update(in_use=in_use, limit=limit, ok=None if limit is None else in_use + requested <= limit)
        report.append(entry)
        # refused here: a box whose only quota-bound candidate is under this quota and does not fit
        single = [
            b["name"]
            for b, _unused in group
            if b["name"] in impossible
            and b["name"] not in alone
            and len(impossible[b["name"]]) == len(options[b["name"]])
        ]
        if limit is not None and single:
            listing = ", ".join(f"'{b['name']}' ({o['instance_type']}, {o['vcpus']} vCPUs)" for b, o in group)
            refusals.append(
                f"vCPU quota {code} ({name}) in {region} is {limit}, but {listing} need {requested} vCPUs on top of "
                f"{in_use} already running ({in_use + requested} in all). Request an increase to at least "
                f"{in_use + requested} at {console_url(region, code)} , or choose a smaller instance_type, "
                f"another market or another region (gpubox_region)."
            )
    for box, _unused in refused_alone:
        reasons = "; ".join(f"{i['instance_type']} {i['market']}: {i['why']}" for i in impossible[box["name"]])
        refusals.append(
            f"Box '{box['name']}' fits none of its candidates' vCPU quotas in {region}: {reasons}. Request an "
            f"increase of one of them, or declare an instance_type or market whose quota has room."
        )
    return report, refusals, warnings, impossible


def _shortfall(region: str, key: tuple[str, str], limit: int | None, counted: int, vcpus: int) -> str:
    """Why a candidate does not fit: `counted` vCPUs (running, and the boxes before it) plus its own exceed the
    quota."""
    code, name = QUOTAS[key]
    return (
        f"vCPU quota {code} ({name}) is {limit}, and {counted} in use (running, or for the boxes before) plus "
        f"{vcpus} would be {counted + vcpus}; raise it at {console_url(region, code)}"
    )


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "boxes": {"type": "list", "elements": "dict", "required": True},
            "type_vcpus": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    type_vcpus = module.params["type_vcpus"] or {}
    boxes = module.params["boxes"]
    for box in boxes:
        candidates = box.get("candidates")
        if candidates is None:
            missing = [k for k in ("name", "instance_type", "vcpus") if box.get(k) in (None, "")]
            bad = missing or box.get("market", "on-demand") not in ("on-demand", "spot")
        else:
            bad = (
                not box.get("name")
                or not candidates
                or any(
                    not c.get("instance_type")
                    or c.get("market", "on-demand") not in ("on-demand", "spot")
                    or c["instance_type"] not in type_vcpus
                    for c in candidates
                )
            )
        if bad:
            module.fail_json(
                msg="Each box needs a name and either candidates (instance_type and a market on-demand|spot, each "
                f"type in type_vcpus) or instance_type, vcpus and a market on-demand|spot: {box}"
            )
    report, refusals, warnings, impossible = plan_quotas(
        module.client("service-quotas"), module.client("ec2"), module.region, boxes, type_vcpus
    )
    for warning in warnings:
        module.warn(warning)
    if refusals:
        module.fail_json(msg=" ".join(refusals), quotas=report, impossible=impossible)
    kept = []
    for box in boxes:
        out = [(o["instance_type"], o["market"]) for o in impossible.get(box["name"], [])]
        if box.get("candidates") is not None:
            box = dict(
                box,
                candidates=[
                    c for c in box["candidates"] if (c["instance_type"], c.get("market") or "on-demand") not in out
                ],
            )
        kept.append(box)
    module.exit_json(changed=False, quotas=report, boxes=kept, impossible=impossible)


if __name__ == "__main__":
    main()
