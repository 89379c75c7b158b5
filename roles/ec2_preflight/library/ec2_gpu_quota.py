#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check that the account's GPU vCPU quotas (Service Quotas) cover the boxes about to be launched."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ec2_gpu_quota
short_description: Refuse a launch that the account's GPU vCPU quotas cannot cover
description:
  - Groups the boxes to launch by quota (G and VT or P instances, on-demand or spot), adds the vCPUs of the
    account's instances already running under that quota, and compares the sum with the applied quota value
    from Service Quotas.
  - Fails, naming the boxes, the quota and the console page to request an increase, when a quota is too low.
  - When a quota cannot be read (Service Quotas unavailable, no permission), warns and goes on.
  - Instance types of other families are not checked.
options:
  boxes:
    description:
      - The boxes to launch, each a dict with C(name), C(instance_type), C(vcpus) (default vCPUs of the type) and
        C(market) (C(on-demand), the default, or C(spot)); other keys are ignored.
    type: list
    elements: dict
    required: true
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
"""

import contextlib  # noqa: E402 - Ansible modules document themselves before their imports

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore

# (market, class) -> (quota code, quota name as Service Quotas shows it)
QUOTAS = {
    ("on-demand", "G"): ("L-DB2E81BA", "Running On-Demand G and VT instances"),
    ("on-demand", "P"): ("L-417A185B", "Running On-Demand P instances"),
    ("spot", "G"): ("L-3819A6DF", "All G and VT Spot Instance Requests"),
    ("spot", "P"): ("L-7212CCBC", "All P Spot Instance Requests"),
}


def quota_class(instance_type: str) -> str | None:
    """G (G and VT families), P, or None for families these quotas do not cover."""
    family = instance_type.split(".", 1)[0].lower()
    if family.startswith(("g", "vt")):
        return "G"
    if family.startswith("p"):
        return "P"
    return None


def console_url(region: str, code: str) -> str:
    return f"https://{region}.console.aws.amazon.com/servicequotas/home/services/ec2/quotas/{code}"


def _error_text(exc: Exception) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'error')}: {err.get('Message', exc)}"
    return str(exc)


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


def check_quotas(sq, ec2, region: str, boxes: list[dict]) -> tuple[list[dict], list[str], list[str]]:
    """Return (quota report, refusals, warnings) for launching `boxes`."""
    wanted: dict[tuple[str, str], list[dict]] = {}
    for box in boxes:
        cls = quota_class(box["instance_type"])
        if cls is not None:
            wanted.setdefault((box.get("market") or "on-demand", cls), []).append(box)
    report: list[dict] = []
    refusals: list[str] = []
    warnings: list[str] = []
    if not wanted:
        return report, refusals, warnings

    try:
        used = vcpus_in_use(ec2)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        used = {}
        warnings.append(f"Could not count the vCPUs already running ({_error_text(e)}); checking the new boxes alone.")

    for key in sorted(wanted):
        code, name = QUOTAS[key]
        group = wanted[key]
        requested = sum(int(b["vcpus"]) for b in group)
        in_use = used.get(key, 0)
        entry = {"code": code, "name": name, "boxes": [b["name"] for b in group], "requested": requested}
        entry["in_use"] = in_use
        try:
            limit = int(sq.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"])
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            entry.update(limit=None, ok=None)
            warnings.append(
                f"Could not read the vCPU quota {code} ({name}) in {region}: {_error_text(e)}. Going on without "
                f"the check; if the launch fails with VcpuLimitExceeded, request an increase at "
                f"{console_url(region, code)}"
            )
            report.append(entry)
            continue
        entry.update(limit=limit, ok=in_use + requested <= limit)
        report.append(entry)
        if not entry["ok"]:
            listing = ", ".join(f"'{b['name']}' ({b['instance_type']}, {b['vcpus']} vCPUs)" for b in group)
            refusals.append(
                f"vCPU quota {code} ({name}) in {region} is {limit}, but {listing} need {requested} vCPUs on top of "
                f"{in_use} already running ({in_use + requested} in all). Request an increase to at least "
                f"{in_use + requested} at {console_url(region, code)} , or choose a smaller instance_type, "
                f"another market or another region (gpubox_region)."
            )
    return report, refusals, warnings


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={"boxes": {"type": "list", "elements": "dict", "required": True}},
        supports_check_mode=True,
    )
    boxes = []
    for box in module.params["boxes"]:
        missing = [k for k in ("name", "instance_type", "vcpus") if box.get(k) in (None, "")]
        if missing or box.get("market", "on-demand") not in ("on-demand", "spot"):
            module.fail_json(msg=f"Each box needs name, instance_type, vcpus and a market on-demand|spot: {box}")
        boxes.append({k: box.get(k) for k in ("name", "instance_type", "vcpus", "market")})
    report, refusals, warnings = check_quotas(
        module.client("service-quotas"), module.client("ec2"), module.region, boxes
    )
    for warning in warnings:
        module.warn(warning)
    if refusals:
        module.fail_json(msg=" ".join(refusals), quotas=report)
    module.exit_json(changed=False, quotas=report)


if __name__ == "__main__":
    main()
