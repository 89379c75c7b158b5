#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Everything that carries given tags, in many regions at once: instances, volumes, snapshots, images, key pairs,
security groups and spot requests (amazon.aws has one module per kind and region; a sweep of every region would be
7 x ~17 module runs)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ec2_sweep
short_description: List the EC2 resources that carry given tags, in many regions
author:
  - gpubox maintainers (!UNKNOWN)
description:
  - In each region of O(regions) (empty - every region DescribeRegions lists for the account, asked in O(region)),
    lists the instances in any state but terminated, the volumes, the snapshots and images the account owns, the key
    pairs, the security groups and the open, active or disabled spot requests that match O(filters).
  - One boto3 session; the regions are read in parallel, each with its own client.
  - A region that answers with an error (an opt-in region not enabled - C(OptInRequired), C(AuthFailure),
    C(UnauthorizedOperation) - or any other) is left out and reported in RV(unanswered); the module fails only when
    no region answers.
  - Read-only; EC2 filters take wildcards, so the caller checks each resource's tags itself.
options:
  regions:
    description: Regions to read; empty - every region DescribeRegions lists (the account's enabled ones).
    type: list
    elements: str
    default: []
  filters:
    description: EC2 describe filters every resource must match, for example C(tag:ManagedBy=gpubox).
    type: dict
    required: true
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Everything of project d2l in two regions
  ec2_sweep:
    region: us-west-2
    regions: [us-west-2, eu-west-1]
    filters: {"tag:ManagedBy": gpubox, "tag:Project": d2l}
"""

RETURN = r"""
regions:
  description: The regions that answered, sorted.
  returned: always
  type: list
  elements: str
unanswered:
  description: The regions that answered with an error, each with the error code and the first line of its message.
  returned: always
  type: list
  elements: dict
  sample: [{"region": "me-south-1", "code": "OptInRequired", "message": "You are not subscribed to this service."}]
resources:
  description:
    - One dict per resource - region, kind (instance, volume, snapshot, image, key pair, security group, spot
      request), id, name (the Name tag; an image's or key pair's or group's own name), tags (a dict), state, and
      per kind - instance_type, zone, market (spot or on-demand), launch_time (instances); size in GiB, volume_type,
      instance_ids (volumes); size, storage_tier, volume_id (snapshots); snapshots [{id, size}] (images);
      instance_id, instance_type, zone (spot requests).
  returned: always
  type: list
  elements: dict
"""

import contextlib  # noqa: E402 - Ansible modules document themselves before their imports
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.botocore import get_aws_connection_info  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.gpubox.gpubox.plugins.module_utils.gpubox_ec2 import error_brief  # noqa: E402
from ansible_collections.gpubox.gpubox.plugins.module_utils.tags import tag_dict  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import boto3
    import botocore

# Regions are read this many at a time (each one makes 7 calls, one after the other).
WORKERS = 8
LIVE_INSTANCE_STATES = ["pending", "running", "shutting-down", "stopping", "stopped"]
LIVE_SPOT_STATES = ["open", "active", "disabled"]


def _filters(wanted: dict, **more) -> list[dict]:
    merged = {**wanted, **more}
    return [
        {"Name": k, "Values": [str(v)] if isinstance(v, str | int) else [str(x) for x in v]} for k, v in merged.items()
    ]


def _time(value) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _pages(client, operation: str, key: str, **params) -> list[dict]:
    if client.can_paginate(operation):
        return [item for page in client.get_paginator(operation).paginate(**params) for item in page.get(key, [])]
    return getattr(client, operation)(**params).get(key, [])


def _base(region: str, kind: str, rid: str, item: dict, name: str | None = None) -> dict:
    tags = tag_dict(item.get("Tags"))
    return {"region": region, "kind": kind, "id": rid, "name": tags.get("Name") if name is None else name, "tags": tags}


def sweep_region(client, region: str, wanted: dict) -> list[dict]:
    """Every resource of one region that matches the filters (EC2 filters: a value may be a wildcard)."""
    found: list[dict] = []
    reservations = _pages(
        client,
        "describe_instances",
        "Reservations",
        Filters=_filters(wanted, **{"instance-state-name": LIVE_INSTANCE_STATES}),
    )
    for i in (i for r in reservations for i in r.get("Instances", [])):
        found.append(
            _base(region, "instance", i["InstanceId"], i)
            | {
                "state": (i.get("State") or {}).get("Name"),
                "instance_type": i.get("InstanceType"),
                "zone": (i.get("Placement") or {}).get("AvailabilityZone"),
                "market": "spot" if i.get("InstanceLifecycle") == "spot" else "on-demand",
                "launch_time": _time(i.get("LaunchTime")),
            }
        )
    for v in _pages(client, "describe_volumes", "Volumes", Filters=_filters(wanted)):
        found.append(
            _base(region, "volume", v["VolumeId"], v)
            | {
                "state": v.get("State"),
                "size": v.get("Size"),
                "volume_type": v.get("VolumeType"),
                "instance_ids": [a.get("InstanceId") for a in v.get("Attachments") or [] if a.get("InstanceId")],
            }
        )
    for s in _pages(client, "describe_snapshots", "Snapshots", OwnerIds=["self"], Filters=_filters(wanted)):
        found.append(
            _base(region, "snapshot", s["SnapshotId"], s)
            | {
                "state": s.get("State"),
                "size": s.get("VolumeSize"),
                "storage_tier": s.get("StorageTier") or "standard",
                "volume_id": s.get("VolumeId"),
            }
        )
    for m in _pages(client, "describe_images", "Images", Owners=["self"], Filters=_filters(wanted)):
        snaps = [
            {"id": b["Ebs"]["SnapshotId"], "size": b["Ebs"].get("VolumeSize")}
            for b in m.get("BlockDeviceMappings") or []
            if (b.get("Ebs") or {}).get("SnapshotId")
        ]
        found.append(
            _base(region, "image", m["ImageId"], m, m.get("Name")) | {"state": m.get("State"), "snapshots": snaps}
        )
    for k in client.describe_key_pairs(Filters=_filters(wanted)).get("KeyPairs", []):
        found.append(_base(region, "key pair", k.get("KeyPairId") or k["KeyName"], k, k.get("KeyName")))
    for g in _pages(client, "describe_security_groups", "SecurityGroups", Filters=_filters(wanted)):
        found.append(_base(region, "security group", g["GroupId"], g, g.get("GroupName")) | {"vpc_id": g.get("VpcId")})
    spot_filters = _filters(wanted, state=LIVE_SPOT_STATES)
    for r in _pages(client, "describe_spot_instance_requests", "SpotInstanceRequests", Filters=spot_filters):
        found.append(
            _base(region, "spot request", r["SpotInstanceRequestId"], r)
            | {
                "state": r.get("State"),
                "instance_id": r.get("InstanceId"),
                "instance_type": (r.get("LaunchSpecification") or {}).get("InstanceType"),
                "zone": r.get("LaunchedAvailabilityZone"),
            }
        )
    return found


def sweep(clients: dict, wanted: dict, workers: int = WORKERS) -> tuple[list[str], list[dict], list[dict]]:
    """(regions that answered, regions skipped with their error, resources) over the clients by region."""

    def one(region):
        try:
            return region, sweep_region(clients[region], region, wanted), None
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            return region, [], error_brief(e)

    answered, skipped, resources = [], [], []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(clients)))) as pool:
        for region, found, error in pool.map(one, sorted(clients)):
            if error:
                skipped.append({"region": region, **error})
            else:
                answered.append(region)
                resources += found
    return answered, skipped, resources


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "regions": {"type": "list", "elements": "str", "default": []},
            "filters": {"type": "dict", "required": True},
        },
        supports_check_mode=True,
    )
    home, endpoint, params = get_aws_connection_info(module)
    profile = params.pop("profile_name", None)
    config = botocore.config.Config(
        retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=30
    ).merge(params.pop("aws_config", None) or botocore.config.Config())
    session = boto3.session.Session(profile_name=profile)

    def client(region: str):
        return session.client("ec2", region_name=region, endpoint_url=endpoint, config=config, **params)

    regions = sorted(set(module.params["regions"]))
    if not regions:
        try:
            listed = client(home).describe_regions(AllRegions=False).get("Regions", [])
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            error = error_brief(e)
            module.fail_json(
                msg=f"Could not list the regions from {home}: {error['code']}: {error['message']}. Check the AWS "
                "credentials, or name the regions: -e gpubox_regions=us-west-2,us-east-1."
            )
        regions = sorted(r["RegionName"] for r in listed if r.get("OptInStatus") != "not-opted-in")
    # boto3 sessions are not thread-safe, its clients are: make them all here, use them in the threads.
    answered, skipped, resources = sweep({r: client(r) for r in regions}, module.params["filters"])
    if not answered:
        first = skipped[0] if skipped else {"region": "-", "code": "-", "message": "no region to read"}
        module.fail_json(
            msg=f"No region answered (of {len(regions)}); {first['region']}: {first['code']}: {first['message']}. "
            "Check the AWS credentials and their permissions (docs/iam-policy.json).",
            unanswered=skipped,
        )
    module.exit_json(changed=False, regions=answered, unanswered=skipped, resources=resources)


if __name__ == "__main__":
    main()
