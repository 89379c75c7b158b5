# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ec2_project_state: what AWS holds for one gpubox project, read in one go, on this machine.

The parts (`read`): caller (who the credentials are), network (the region's default VPC, its default subnets and
the project's security group in it), instances (the project's, in instance_states), spot_requests (open or active,
matching owner_filters), key_pair, for list.yml instance_types (of those instances) and volumes (attached to them),
and data_volumes (the project's data volumes: tag DataOf, matching owner_filters, not being deleted; in the shape
of amazon.aws.ec2_vol_info). The first five are what a provisioning run needs to know before it may create
anything, and all it needs to see that there is nothing to do. An action plugin rather than a module: it runs in
Ansible's own process, where boto3 is imported already (the inventory plugin imported it), with one boto3 session
for every call. Seven module runs took 0.6-1.0 s each (a new Python, boto3 imported anew); this
takes about 0.1 s against the local EC2 API.

Results are in the shapes the amazon.aws info modules return (snake_case keys, tags as a dict), so the tasks that
read them read the same as with those modules. Reads only, so it runs in check mode too.

Credentials that do not work are not a failure of this task: it returns caller_error (AWS's message), and the
caller refuses in its own words. Any other AWS error fails the task with AWS's message.
"""

from __future__ import annotations

import datetime

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict
from ansible.plugins.action import ActionBase
from ansible_collections.gpubox.gpubox.plugins.module_utils.tags import tag_dict

PARTS = ["caller", "network", "instances", "spot_requests", "key_pair", "instance_types", "volumes", "data_volumes"]
ARGUMENT_SPEC = {
    "region": {"type": "str", "required": True},
    "project": {"type": "str", "required": True},
    "read": {"type": "list", "elements": "str", "choices": PARTS, "default": PARTS[:5]},
    "instance_states": {"type": "list", "elements": "str", "default": ["pending", "running", "stopping", "stopped"]},
    "owner_filters": {"type": "dict", "default": {}},
    "security_group_name": {"type": "str", "default": ""},
    "key_name": {"type": "str", "default": ""},
}
REQUIRED_BY = {
    "spot_requests": "owner_filters",
    "data_volumes": "owner_filters",
    "key_pair": "key_name",
    "network": "security_group_name",
}


def plain(value):
    """As a module's JSON result would carry it: dates as ISO 8601 strings."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return value


def snake(resource: dict) -> dict:
    """amazon.aws's shape: snake_case keys, Tags as a {key: value} dict under `tags`, dates as strings."""
    tags = tag_dict(resource.get("Tags"))
    out = camel_dict_to_snake_dict(plain({k: v for k, v in resource.items() if k != "Tags"}))
    out["tags"] = tags
    return out


def filters(values: dict) -> list[dict]:
    return [{"Name": k, "Values": v if isinstance(v, list) else [v]} for k, v in values.items()]


def read_state(session, args: dict) -> dict:
    """The parts asked for, with the session's clients. Raises botocore errors, except for credentials that do not
    work (caller_error)."""
    import botocore.exceptions

    read = set(args["read"])
    state: dict = {}
    if "caller" in read:
        try:
            caller = session.client("sts").get_caller_identity()
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            return {"caller_error": str(exc)}
        state |= {"account": caller["Account"], "arn": caller["Arn"]}
    ec2 = session.client("ec2")

    if "network" in read:
        vpcs = ec2.describe_vpcs(Filters=filters({"is-default": "true"}))["Vpcs"]
        state |= {"vpc_id": vpcs[0]["VpcId"] if vpcs else "", "subnets": [], "security_groups": []}
        if vpcs:
            subnets = ec2.get_paginator("describe_subnets").paginate(
                Filters=filters({"vpc-id": state["vpc_id"], "default-for-az": "true"})
            )
            state["subnets"] = [snake(s) for page in subnets for s in page["Subnets"]]
            groups = ec2.describe_security_groups(
                Filters=filters({"group-name": args["security_group_name"], "vpc-id": state["vpc_id"]})
            )["SecurityGroups"]
            state["security_groups"] = [snake(g) for g in groups]

    if read & {"instances", "instance_types", "volumes"}:
        pages = ec2.get_paginator("describe_instances").paginate(
            Filters=filters({"tag:Project": args["project"], "instance-state-name": args["instance_states"]})
        )
        state["instances"] = [snake(i) for page in pages for r in page["Reservations"] for i in r["Instances"]]

    if "instance_types" in read:
        names = sorted({i["instance_type"] for i in state["instances"]})
        found = ec2.describe_instance_types(InstanceTypes=names)["InstanceTypes"] if names else []
        state["instance_types"] = [camel_dict_to_snake_dict(plain(t)) for t in found]

    if "volumes" in read:
        state["volumes"] = box_disks(ec2, [i["instance_id"] for i in state["instances"]])

    if "data_volumes" in read:
        pages = ec2.get_paginator("describe_volumes").paginate(
            Filters=filters(
                {**args["owner_filters"], "tag-key": "DataOf", "status": ["creating", "available", "in-use"]}
            )
        )
        state["data_volumes"] = [data_volume(v) for page in pages for v in page.get("Volumes", [])]

    if "spot_requests" in read:
        spot = ec2.describe_spot_instance_requests(
            Filters=filters({**args["owner_filters"], "state": ["open", "active"]})
        )["SpotInstanceRequests"]
        state["spot_requests"] = [snake(s) for s in spot]

    if "key_pair" in read:
        try:
            pairs = ec2.describe_key_pairs(KeyNames=[args["key_name"]])["KeyPairs"]
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvalidKeyPair.NotFound":
                raise
            pairs = []
        state["key_pairs"] = [snake(p) for p in pairs]
    return state


def box_disks(ec2, instance_ids: list[str]) -> list[dict]:
    """The volumes attached to these instances, sorted by id: id, size (GiB), type, state, instance_ids, tags."""
    if not instance_ids:
        return []
    pages = ec2.get_paginator("describe_volumes").paginate(
        Filters=[{"Name": "attachment.instance-id", "Values": sorted(set(instance_ids))}]
    )
    found = [
        {
            "id": v["VolumeId"],
            "size": v.get("Size"),
            "type": v.get("VolumeType"),
            "state": v.get("State"),
            "instance_ids": [a["InstanceId"] for a in v.get("Attachments") or [] if a.get("InstanceId")],
            "tags": tag_dict(v.get("Tags")),
        }
        for page in pages
        for v in page.get("Volumes", [])
    ]
    return sorted(found, key=lambda v: v["id"])


def data_volume(volume: dict) -> dict:
    """A volume as amazon.aws.ec2_vol_info lists it (the keys gpubox reads)."""
    return {
        "id": volume["VolumeId"],
        "size": volume.get("Size"),
        "zone": volume.get("AvailabilityZone"),
        "status": volume.get("State"),
        "type": volume.get("VolumeType"),
        "tags": tag_dict(volume.get("Tags")),
        "attachment_set": [
            {"instance_id": a.get("InstanceId"), "device": a.get("Device"), "status": a.get("State")}
            for a in volume.get("Attachments") or []
        ],
    }


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _unused, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        for part, option in REQUIRED_BY.items():
            if part in args["read"] and not args[option]:
                raise AnsibleActionFail(f"ec2_project_state: reading {part} needs {option}")
        try:
            import boto3
            import botocore.config
            import botocore.exceptions
        except ImportError as exc:
            raise AnsibleActionFail(f"ec2_project_state needs boto3 on this machine: {exc}") from exc
        # Transient errors and throttling are retried by botocore (standard mode), as in the amazon.aws modules.
        config = botocore.config.Config(retries={"mode": "standard"})
        try:
            session = boto3.session.Session(region_name=args["region"])
            state = read_state(_Configured(session, config), args)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise AnsibleActionFail(f"Reading project {args['project']} in {args['region']} failed: {exc}") from exc
        result.update(state, changed=False)
        return result


class _Configured:
    """A session whose clients all get the same botocore config."""

    def __init__(self, session, config):
        self._session, self._config = session, config

    def client(self, name: str):
        return self._session.client(name, config=self._config)
