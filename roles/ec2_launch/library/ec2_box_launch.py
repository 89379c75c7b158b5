#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Launch one gpubox box, on-demand or spot, with one RunInstances call that carries all of its settings."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ec2_box_launch
short_description: Launch one gpubox box (on-demand or spot) complete from its first second
description:
  - Looks for the box first, an instance tagged C(Name=name) and every tag of I(owner_tags) (gpubox's
    C(ManagedBy) and C(Project)) in state pending, running, stopping or stopped. When there is one, nothing is
    launched (a pending one is waited for).
  - An instance with the box's Name and Project tags but not all of I(owner_tags) is not the box; it is never
    adopted, changed or counted, and a warning names it.
  - Otherwise launches the box with a single RunInstances call that carries everything it needs, so there is no
    window in which it runs without them and nothing is changed after the launch
    (no CreateTags, ModifyInstanceMetadataOptions or ModifyInstanceAttribute).
    The settings are IMDSv2 required (hop limit 2), the security group,
    a public IP, an encrypted gp3 root volume deleted with the instance, instance-initiated shutdown
    C(stop), and tags on the instance, its volumes, its network interface and (spot) its spot request.
  - A spot box is a persistent spot request made by RunInstances itself (C(InstanceMarketOptions)), with
    interruption behaviour C(stop). When the request restarts the box after an interruption it is the same
    instance, with the same settings, tags, volumes and security group.
  - The call carries a ClientToken derived from the box and its launch generation, so repeating it after a
    timeout returns the instance already launched instead of launching a second one (see I(notes)).
  - Waits until the instance runs, at most I(wait_timeout) seconds.
notes:
  - "ClientToken: C(gpubox-) and a hash of region, project, box name, the launch request and a generation
    number. EC2 keeps a token for at least 24 hours after the instance it launched was terminated, and repeating
    a token returns that (terminated) instance. The module therefore skips the tokens of the box's terminated
    instances that EC2 still lists, and when RunInstances answers with a terminated instance, it moves on to the
    next generation. A retried run walks the same generations and ends at the same instance."
options:
  name:
    description: The box's name (tag C(Name)).
    type: str
    required: true
  owner_tags:
    description:
      - The tags that make an instance the project's (gpubox_tags); must include C(Project). With C(Name) they
        identify the box.
    type: dict
    required: true
  instance_type:
    description: EC2 instance type.
    type: str
    required: true
  image_id:
    description: AMI id.
    type: str
    required: true
  key_name:
    description: EC2 key pair name.
    type: str
    required: true
  subnet_id:
    description: Subnet to launch into.
    type: str
    required: true
  security_group_ids:
    description: Security groups of the box's network interface.
    type: list
    elements: str
    required: true
  root_device_name:
    description: The image's root device name.
    type: str
    default: /dev/sda1
  volume_size:
    description: Root volume size in GiB (gp3, encrypted, deleted on termination).
    type: int
    required: true
  market:
    description: C(on-demand), or C(spot) for a persistent spot request whose interruption stops the box.
    type: str
    choices: [on-demand, spot]
    default: on-demand
  tags:
    description:
      - Tags of the instance, its volumes, its network interface and its spot request. I(owner_tags) and
        C(Name=name) are always added; other values for these keys are refused.
    type: dict
    default: {}
  wait:
    description: Wait until the instance runs.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for the instance to run.
    type: int
    default: 600
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Launch a spot box
  ec2_box_launch:
    region: us-west-2
    name: d2l
    owner_tags: {ManagedBy: gpubox, Project: d2l-course}
    instance_type: g5.xlarge
    image_id: ami-0123456789abcdef0
    key_name: gpubox
    subnet_id: subnet-0123456789abcdef0
    security_group_ids: [sg-0123456789abcdef0]
    volume_size: 80
    market: spot
    tags: {SshUser: ubuntu}
"""

RETURN = r"""
instance:
  description: The box's instance (absent in check mode when it would be launched).
  returned: when the box exists or was launched
  type: dict
  sample:
    instance_id: i-0123456789abcdef0
    state: running
    lifecycle: spot
    instance_type: g5.xlarge
    availability_zone: us-west-2a
    public_ip_address: 203.0.113.10
    public_dns_name: ec2-203-0-113-10.us-west-2.compute.amazonaws.com
    private_ip_address: 172.31.0.10
    client_token: gpubox-3f0c...
launched:
  description: Whether this run launched the instance.
  returned: always
  type: bool
client_token:
  description: The ClientToken of the launch (only when the module launched or would launch).
  returned: when a launch was needed
  type: str
"""

import contextlib  # noqa: E402 - Ansible modules document themselves before their imports
import hashlib  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore

LIVE_STATES = ["pending", "running", "stopping", "stopped"]
GONE_STATES = ["shutting-down", "terminated"]
# Generations tried before giving up: each is a box of this name launched and terminated within the
# last 24 hours or so (EC2 keeps a token that long after the instance's termination).
MAX_GENERATIONS = 50
POLL_SECONDS = 5


# What to do about the errors a launch meets most (codes as EC2 gives them).
HINTS = {
    "InsufficientInstanceCapacity": "AWS has no capacity for this type in this zone right now: try again later, "
    "or another instance_type, zone or region (for spot: market on-demand).",
    "InsufficientHostCapacity": "AWS has no capacity for this type in this zone right now: try again later.",
    "Unsupported": "this instance type or option is not offered in this zone: choose another type or region.",
    "VcpuLimitExceeded": "the account's vCPU quota for this instance family is used up: request an increase in "
    "Service Quotas (EC2) or stop other instances.",
    "AuthFailure.ServiceLinkedRoleCreationNotPermitted": "the account's first spot launch creates the "
    "service-linked role AWSServiceRoleForEC2Spot: allow iam:CreateServiceLinkedRole for spot.amazonaws.com, or "
    "create it once with `aws iam create-service-linked-role --aws-service-name spot.amazonaws.com`.",
    "MaxSpotInstanceCountExceeded": "the account's spot quota is used up: request an increase in Service Quotas "
    "(EC2) or use market on-demand.",
}


class LaunchError(Exception):
    """A launch that cannot go on; the message says why."""


def box_tags(name: str, owner: dict, tags: dict) -> dict[str, str]:
    """The box's tags: the caller's, plus the owner tags and its Name, which make it the project's box (conflicts
    refused)."""
    own = {**{str(k): str(v) for k, v in owner.items()}, "Name": name}
    clash = {k: v for k, v in tags.items() if k in own and str(v) != own[k]}
    if clash:
        raise LaunchError(f"tags may not set {', '.join(sorted(clash))} to other values than {own}: {clash}")
    return {**{str(k): str(v) for k, v in tags.items()}, **own}


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def _tags(resource: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def launch_request(box: dict, subnet_maps_public_ip: bool) -> dict:
    """RunInstances parameters (all but ClientToken) for the box.

    A subnet that gives instances a public IP (a default subnet does) gets SubnetId + SecurityGroupIds: EC2
    creates the primary network interface with these groups, and every EC2 API reads them back as the
    instance's groups. A subnet that does not needs an explicit interface specification, the only place
    where AssociatePublicIpAddress can be asked for; the groups then belong there too (EC2 refuses
    SecurityGroupIds next to NetworkInterfaces).
    """
    tags = _tag_list(box["tags"])
    resource_types = ["instance", "volume", "network-interface"]
    request = {
        "ImageId": box["image_id"],
        "InstanceType": box["instance_type"],
        "KeyName": box["key_name"],
        "MinCount": 1,
        "MaxCount": 1,
        "BlockDeviceMappings": [
            {
                "DeviceName": box["root_device_name"],
                "Ebs": {
                    "VolumeSize": box["volume_size"],
                    "VolumeType": "gp3",
                    "Encrypted": True,
                    "DeleteOnTermination": True,
                },
            }
        ],
        # IMDSv2 only; hop limit 2 so containers on the box reach the metadata service too.
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 2},
        # `sudo poweroff` (or an idle-stop timer) on the box stops it instead of destroying its disk. For a spot
        # box this is allowed because its request is persistent (a one-time request could only terminate).
        "InstanceInitiatedShutdownBehavior": "stop",
    }
    if subnet_maps_public_ip:
        request["SubnetId"] = box["subnet_id"]
        request["SecurityGroupIds"] = list(box["security_group_ids"])
    else:
        request["NetworkInterfaces"] = [
            {
                "DeviceIndex": 0,
                "SubnetId": box["subnet_id"],
                "Groups": list(box["security_group_ids"]),
                "AssociatePublicIpAddress": True,
                "DeleteOnTermination": True,
            }
        ]
    if box["market"] == "spot":
        # Persistent with stop: an interruption stops the box (its disk stays) and EC2 starts the same
        # instance again when capacity returns. No ValidUntil: the request lasts until it is cancelled.
        request["InstanceMarketOptions"] = {
            "MarketType": "spot",
            "SpotOptions": {"SpotInstanceType": "persistent", "InstanceInterruptionBehavior": "stop"},
        }
        resource_types.append("spot-instances-request")
    request["TagSpecifications"] = [{"ResourceType": t, "Tags": tags} for t in resource_types]
    return request


def client_token(region: str, project: str, name: str, request: dict, generation: int) -> str:
    """Token of one launch of the box: the same box, request and generation always give the same token.

    The request is part of it so that a changed box (type, image, size...) never repeats an earlier token
    with other parameters (EC2 would answer IdempotentParameterMismatch); the generation tells apart the
    launches of the same box after terminations (see the module's notes). 55 characters (EC2 allows 64).
    """
    seed = json.dumps([region, project, name, request, generation], sort_keys=True, default=str)
    return "gpubox-" + hashlib.sha256(seed.encode()).hexdigest()[:48]


def _describe(ec2, filters: list[dict]) -> list[dict]:
    pages = ec2.get_paginator("describe_instances").paginate(Filters=filters)
    return [i for page in pages for r in page.get("Reservations", []) for i in r.get("Instances", [])]


def find_box(ec2, name: str, owner: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """(the box's live instances, its terminated ones EC2 still lists, lookalikes without all the owner tags)."""
    project = owner["Project"]
    found = _describe(
        ec2,
        [
            {"Name": "tag:Name", "Values": [name]},
            {"Name": "tag:Project", "Values": [project]},
            {"Name": "instance-state-name", "Values": LIVE_STATES + GONE_STATES},
        ],
    )
    live, gone, foreign = [], [], []
    for inst in found:
        tags = _tags(inst)
        if tags.get("Name") != name or tags.get("Project") != project:
            continue
        state = inst["State"]["Name"]
        if any(tags.get(k) != str(v) for k, v in owner.items()):
            if state in LIVE_STATES:
                foreign.append(inst)
        elif state in LIVE_STATES:
            live.append(inst)
        else:
            gone.append(inst)
    return live, gone, foreign


def launch(ec2, region: str, box: dict, request: dict, gone: list[dict]) -> tuple[dict, str]:
    """Launch the box with the first token of a generation that launched nothing yet; (instance, token)."""
    used = {inst.get("ClientToken") for inst in gone} - {None, ""}
    generation = 0
    calls = 0
    while generation < MAX_GENERATIONS:
        token = client_token(region, box["project"], box["name"], request, generation)
        generation += 1
        if token in used:
            continue
        calls += 1
        instance = ec2.run_instances(ClientToken=token, **request)["Instances"][0]
        if instance["State"]["Name"] not in GONE_STATES:
            return instance, token
        # EC2 repeated the answer of an earlier launch with this token: that box is gone, take the next one.
        used.add(token)
    raise LaunchError(
        f"Box {box['name']}: the first {MAX_GENERATIONS} launch tokens all belong to instances that were "
        f"terminated ({calls} RunInstances calls answered with one); wait a day or rename the box."
    )


def wait_running(ec2, instance_id: str, timeout: int, sleep=time.sleep, clock=time.monotonic) -> dict:
    """Describe the instance until it runs; fail when it ends or the time is up."""
    deadline = clock() + timeout
    while True:
        try:
            found = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        except botocore.exceptions.ClientError as e:
            # Right after RunInstances the instance may not be visible yet (eventual consistency).
            if e.response.get("Error", {}).get("Code") != "InvalidInstanceID.NotFound":
                raise
            found = []
        instance = found[0]["Instances"][0] if found and found[0].get("Instances") else None
        if instance is not None:
            state = instance["State"]["Name"]
            if state == "running":
                return instance
            if state in GONE_STATES:
                reason = instance.get("StateReason", {}).get("Message", "no reason given")
                raise LaunchError(f"Instance {instance_id} is {state} instead of running: {reason}")
        if clock() >= deadline:
            now = instance["State"]["Name"] if instance else "not visible yet"
            raise LaunchError(f"Instance {instance_id} is not running after {timeout} s (it is {now}).")
        sleep(min(POLL_SECONDS, max(deadline - clock(), 0)))


def summary(instance: dict) -> dict:
    return {
        "instance_id": instance["InstanceId"],
        "state": instance["State"]["Name"],
        "lifecycle": instance.get("InstanceLifecycle") or "on-demand",
        "instance_type": instance.get("InstanceType"),
        "availability_zone": instance.get("Placement", {}).get("AvailabilityZone"),
        "public_ip_address": instance.get("PublicIpAddress"),
        "public_dns_name": instance.get("PublicDnsName"),
        "private_ip_address": instance.get("PrivateIpAddress"),
        "client_token": instance.get("ClientToken"),
    }


def ensure_box(module, ec2, box: dict) -> dict:
    """The module's work, as the result to exit with."""
    name, project = box["name"], box["project"]
    live, gone, foreign = find_box(ec2, name, box["owner_tags"])
    lacking = " and ".join(f"{k}={v}" for k, v in box["owner_tags"].items() if k != "Project")
    for inst in foreign:
        module.warn(
            f"Instance {inst['InstanceId']} has the tags Name={name} and Project={project} but not "
            f"{lacking}: it is not box {name}, and gpubox leaves it alone."
        )
    if live:
        live.sort(key=lambda i: str(i.get("LaunchTime", "")))
        if len(live) > 1:
            ids = ", ".join(i["InstanceId"] for i in live)
            module.warn(f"Box {name} of project {project} has {len(live)} instances ({ids}); using the oldest.")
        instance = live[0]
        if instance["State"]["Name"] == "pending" and box["wait"] and not module.check_mode:
            instance = wait_running(ec2, instance["InstanceId"], box["wait_timeout"])
        return {"changed": False, "launched": False, "instance": summary(instance)}

    subnet = ec2.describe_subnets(SubnetIds=[box["subnet_id"]])["Subnets"][0]
    request = launch_request(box, bool(subnet.get("MapPublicIpOnLaunch")))
    if module.check_mode:
        token = client_token(module.region, project, name, request, 0)
        return {"changed": True, "launched": False, "client_token": token}
    instance, token = launch(ec2, module.region, box, request, gone)
    if box["wait"]:
        instance = wait_running(ec2, instance["InstanceId"], box["wait_timeout"])
    return {"changed": True, "launched": True, "client_token": token, "instance": summary(instance)}


ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "owner_tags": {"type": "dict", "required": True},
    "instance_type": {"type": "str", "required": True},
    "image_id": {"type": "str", "required": True},
    "key_name": {"type": "str", "required": True, "no_log": False},
    "subnet_id": {"type": "str", "required": True},
    "security_group_ids": {"type": "list", "elements": "str", "required": True},
    "root_device_name": {"type": "str", "default": "/dev/sda1"},
    "volume_size": {"type": "int", "required": True},
    "market": {"type": "str", "choices": ["on-demand", "spot"], "default": "on-demand"},
    "tags": {"type": "dict", "default": {}},
    "wait": {"type": "bool", "default": True},
    "wait_timeout": {"type": "int", "default": 600},
}


def main() -> None:
    module = AnsibleAWSModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    box = dict(module.params)
    if not box["security_group_ids"]:
        module.fail_json(msg=f"Box {box['name']}: security_group_ids is empty; a box needs its security group.")
    if not box["owner_tags"].get("Project"):
        module.fail_json(msg=f"Box {box['name']}: owner_tags must include Project (gpubox_tags).")
    box["project"] = str(box["owner_tags"]["Project"])
    try:
        box["tags"] = box_tags(box["name"], box["owner_tags"], box["tags"] or {})
        result = ensure_box(module, module.client("ec2"), box)
    except LaunchError as e:
        module.fail_json(msg=str(e))
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        code = getattr(e, "response", {}).get("Error", {}).get("Code", "")
        hint = f": {HINTS[code]}" if code in HINTS else ""
        module.fail_json_aws(
            e, msg=f"Could not launch box {box['name']} ({box['instance_type']}, {box['market']}){hint}"
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
