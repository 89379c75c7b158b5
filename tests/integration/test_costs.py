"""Honest costs against the local EC2 API: costs.yml finds everything gpubox made for the project in every region
(and nothing else), list.yml says what each box costs, and image.yml deletes the project's image and its snapshots,
and only that.

One ordered story (pytest runs a module's tests in order) on a local EC2 API of its own, with resources in two regions
made through boto3 as gpubox makes them, plus lookalikes that must not be touched or listed: an untagged instance
and image, an instance tagged by another tool (ManagedBy=someone-else), another project's instance and image, and an
image of the project whose snapshot lacks the tags. Every number shown is checked against what the API says.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

import boto3
import pytest
from botocore.config import Config

from tests.ground.ec2api import CANONICAL, TEST_AGENT
from tests.ground.ec2faults import FaultProxy
from tests.integration.ec2play import home_env, playbook, tags

PROJECT = "pytest-costs"
OTHER = "pytest-costs-other"
REGIONS = ("us-west-2", "eu-west-1")
OWN = {"ManagedBy": "gpubox", "Project": PROJECT}
# prices.yml, as the local API has no Price List API
ONDEMAND = {"g4dn.xlarge": Decimal("0.526"), "g5.xlarge": Decimal("1.006"), "t3.micro": None}
EBS = {"gp3": Decimal("0.08"), "gp2": Decimal("0.10"), "standard": Decimal("0.05")}
SNAPSHOT = Decimal("0.05")
IMAGE = "pytest-costs-img"


def usd(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def tag_list(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in values.items()]


@pytest.fixture(scope="module")
def ec2s(api):
    """The tests' own clients (marked, so their calls are not counted as gpubox's), one per region."""
    return {
        region: boto3.client(
            "ec2",
            endpoint_url=api.endpoint,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(user_agent_extra=TEST_AGENT),
        )
        for region in REGIONS
    }


def launch(ec2, name: str | None, owner: dict[str, str], itype="g4dn.xlarge", size=64, vtype="gp3", **more) -> dict:
    image = ec2.describe_images(Owners=[CANONICAL], Filters=[{"Name": "name", "Values": ["*noble*amd64*"]}])
    instance_tags = dict(owner, **({"Name": name} if name else {}), **more.pop("extra_tags", {}))
    spec = [{"ResourceType": "instance", "Tags": tag_list(instance_tags)}] if instance_tags else []
    if owner:
        spec.append({"ResourceType": "volume", "Tags": tag_list(owner)})
    return ec2.run_instances(
        ImageId=image["Images"][0]["ImageId"],
        InstanceType=itype,
        MinCount=1,
        MaxCount=1,
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": size, "VolumeType": vtype}}],
        **({"TagSpecifications": spec} if spec else {}),
        **more,
    )["Instances"][0]


def bake(ec2, instance: dict, name: str, image_tags: dict, snapshot_tags: dict) -> str:
    """An image as image.yml makes it: created untagged, then the image and its snapshots tagged."""
    image_id = ec2.create_image(InstanceId=instance["InstanceId"], Name=name)["ImageId"]
    snaps = snapshots_of(ec2, image_id)
    if image_tags:
        ec2.create_tags(Resources=[image_id], Tags=tag_list(dict(image_tags, Name=name)))
    if snapshot_tags:
        ec2.create_tags(Resources=snaps, Tags=tag_list(dict(snapshot_tags, Name=name)))
    return image_id


def snapshots_of(ec2, image_id: str) -> list[str]:
    (image,) = ec2.describe_images(ImageIds=[image_id])["Images"]
    return [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "SnapshotId" in m.get("Ebs", {})]


@pytest.fixture(scope="module")
def world(api, ec2s, tmp_path_factory):
    """The project's boxes, disks, images, key pair, group and spot request in two regions, and the lookalikes."""
    west, eu = ec2s["us-west-2"], ec2s["eu-west-1"]
    alpha = launch(west, "alpha", OWN, extra_tags={"SshUser": "ubuntu", "Autostop": "60", "MaxHours": "0"})
    beta = launch(
        west,
        "beta",
        OWN,
        size=80,
        extra_tags={"Autostop": "30", "MaxHours": "8"},
        InstanceMarketOptions={"MarketType": "spot"},
    )
    gamma = launch(west, "gamma", OWN, itype="t3.micro", size=30, vtype="gp2")
    west.stop_instances(InstanceIds=[gamma["InstanceId"]])
    spec = [{"ResourceType": "key-pair", "Tags": tag_list(OWN)}]
    west.create_key_pair(KeyName=PROJECT, KeyType="ed25519", TagSpecifications=spec)
    spec = [{"ResourceType": "security-group", "Tags": tag_list(OWN)}]
    west.create_security_group(GroupName=f"gpubox-{PROJECT}-ssh", Description="ssh", TagSpecifications=spec)
    west.request_spot_instances(
        LaunchSpecification={"ImageId": alpha["ImageId"], "InstanceType": "g4dn.xlarge"},
        Type="persistent",
        TagSpecifications=[{"ResourceType": "spot-instances-request", "Tags": tag_list(dict(OWN, Name="beta"))}],
    )
    image = bake(west, alpha, IMAGE, OWN, OWN)
    half = bake(west, gamma, "pytest-costs-half", OWN, {})  # the project's image, its snapshot untagged

    delta = launch(eu, "delta", OWN, itype="g5.xlarge", size=100)
    spare = eu.create_volume(
        AvailabilityZone="eu-west-1a",
        Size=10,
        VolumeType="standard",
        TagSpecifications=[{"ResourceType": "volume", "Tags": tag_list(dict(OWN, Name="spare"))}],
    )
    eu.create_snapshot(
        VolumeId=spare["VolumeId"],
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": tag_list(dict(OWN, Name="spare-copy"))}],
    )
    eu_image = bake(eu, delta, "pytest-costs-eu", OWN, OWN)

    stranger = launch(west, None, {})
    foreign = bake(west, stranger, "pytest-costs-foreign", {}, {})
    launch(west, "intruder", {"ManagedBy": "someone-else", "Project": PROJECT})
    other_tags = {"ManagedBy": "gpubox", "Project": OTHER}
    other = launch(west, "alpha", other_tags)
    other_image = bake(eu, launch(eu, "other", other_tags), "pytest-costs-other-img", other_tags, other_tags)

    home = tmp_path_factory.mktemp("costs") / "home"
    return {
        "env": home_env(api.env, home),
        "alpha": alpha,
        "beta": beta,
        "gamma": gamma,
        "delta": delta,
        "image": image,
        "half": half,
        "eu_image": eu_image,
        "foreign": foreign,
        "other": other,
        "other_image": other_image,
    }


def owned(item: dict, owner: dict[str, str]) -> bool:
    have = tags(item)
    return all(have.get(k) == v for k, v in owner.items())


def truth(ec2s: dict, owner: dict[str, str]) -> dict[tuple[str, str, str], dict]:
    """What the API holds that carries exactly these tags, by (region, kind, id): what costs.yml must list."""
    found = {}
    for region, ec2 in ec2s.items():
        live = [{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
        for r in ec2.describe_instances(Filters=live)["Reservations"]:
            for i in r["Instances"]:
                found[(region, "instance", i["InstanceId"])] = i
        for v in ec2.describe_volumes()["Volumes"]:
            found[(region, "volume", v["VolumeId"])] = v
        for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]:
            found[(region, "snapshot", s["SnapshotId"])] = s
        for m in ec2.describe_images(Owners=["self"])["Images"]:
            found[(region, "image", m["ImageId"])] = m
        for k in ec2.describe_key_pairs()["KeyPairs"]:
            found[(region, "key pair", k["KeyPairId"])] = k
        for g in ec2.describe_security_groups()["SecurityGroups"]:
            found[(region, "security group", g["GroupId"])] = g
        for s in ec2.describe_spot_instance_requests()["SpotInstanceRequests"]:
            if s["State"] in ("open", "active", "disabled"):
                found[(region, "spot request", s["SpotInstanceRequestId"])] = s
    return {key: item for key, item in found.items() if owned(item, owner)}


def spot_price(ec2, itype: str, zone: str) -> Decimal:
    history = ec2.describe_spot_price_history(InstanceTypes=[itype], AvailabilityZone=zone)["SpotPriceHistory"]
    newest = max((h for h in history if h["AvailabilityZone"] == zone), key=lambda h: h["Timestamp"])
    return Decimal(newest["SpotPrice"])


def expected_month(ec2s: dict, key: tuple[str, str, str], item: dict, listed: dict) -> str:
    """The $/MONTH cell costs.yml must show for this resource, from the API's own facts and the price tables."""
    region, kind, rid = key
    if kind == "instance":
        if item["State"]["Name"] != "running":
            return "0.00"
        if item.get("InstanceLifecycle") == "spot":
            hourly = spot_price(ec2s[region], item["InstanceType"], item["Placement"]["AvailabilityZone"])
        else:
            hourly = ONDEMAND[item["InstanceType"]]
        return usd(hourly * 730)
    if kind == "volume":
        return usd(item["Size"] * EBS[item["VolumeType"]])
    if kind == "snapshot":
        images = [k[2] for k, m in listed.items() if k[1] == "image" and rid in snapshots_of(ec2s[k[0]], k[2])]
        return f"in {images[0]}" if images else usd(item["VolumeSize"] * SNAPSHOT)
    if kind == "image":
        return usd(sum(m["Ebs"]["VolumeSize"] for m in item["BlockDeviceMappings"] if "Ebs" in m) * SNAPSHOT)
    return "-" if kind == "spot request" else "0.00"


def shown_table(run, task: str) -> str:
    (msg,) = [result["msg"] for name, result in run.tasks() if name == task]
    return msg


def sweep_rows(msg: str) -> tuple[list[str], list[list[str]]]:
    """The titles and rows of costs.yml's table: columns start under their titles, but $/MONTH is right-aligned."""
    lines = msg.splitlines()
    at = next(n for n, line in enumerate(lines) if line.startswith("REGION"))
    header = lines[at]
    titles = [m.group() for m in re.finditer(r"\S+(?: \S+)*", header)]
    starts = [m.start() for m in re.finditer(r"\S+(?: \S+)*", header)][:-1]
    rows = []
    for line in lines[at + 1 :]:
        if line.startswith("Regions read:"):
            break
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        # the last cell holds STATE / SIZE (left-aligned), then at least two spaces, then $/MONTH (right-aligned)
        detail, _, month = line[starts[-1] :].rpartition("  ")
        rows.append([*cells[:-1], detail.strip(), month.strip()])
    return titles, rows


def listed_by_key(rows: list[list[str]], with_project: bool = False) -> dict[tuple[str, str, str], list[str]]:
    shift = 1 if with_project else 0
    return {(r[0], r[1 + shift], r[2 + shift]): r for r in rows if r[0] != "TOTAL"}


def state_of(ec2s: dict) -> dict:
    """Everything of both regions that a read-only run must leave as it was."""
    found = {}
    for region, ec2 in ec2s.items():
        found[region] = (
            sorted(
                (i["InstanceId"], i["State"]["Name"])
                for r in ec2.describe_instances()["Reservations"]
                for i in r["Instances"]
            ),
            sorted(v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]),
            sorted(s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]),
            sorted(m["ImageId"] for m in ec2.describe_images(Owners=["self"])["Images"]),
            sorted(k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]),
            sorted(g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]),
            sorted(s["SpotInstanceRequestId"] for s in ec2.describe_spot_instance_requests()["SpotInstanceRequests"]),
        )
    return found


SWEEP_TASK = "ec2_list : Print what gpubox created and what it costs"


def test_costs_lists_everything_of_the_project_in_both_regions_and_its_price(world, ec2s):
    before = state_of(ec2s)

    run = playbook("costs", world["env"], "-e", "gpubox_regions=us-west-2,eu-west-1", extra={"gpubox_project": PROJECT})

    assert run.rc == 0, run.output[-3000:]
    assert run.stats["changed"] == 0
    msg = shown_table(run, SWEEP_TASK)
    titles, rows = sweep_rows(msg)
    assert titles == ["REGION", "KIND", "ID", "NAME", "STATE / SIZE", "$/MONTH"]
    listed = listed_by_key(rows)
    expected = truth(ec2s, OWN)
    assert set(listed) == set(expected), msg
    kinds = {key[1] for key in listed}
    assert kinds == {"instance", "volume", "snapshot", "image", "key pair", "security group", "spot request"}
    assert {key[0] for key in listed} == set(REGIONS)
    # the lookalikes are not there
    for absent in (world["foreign"], world["other"]["InstanceId"], world["other_image"]):
        assert absent not in msg
    for key, item in expected.items():
        assert listed[key][-1] == expected_month(ec2s, key, item, expected), f"{key}: {listed[key]}"
    assert listed[("us-west-2", "instance", world["alpha"]["InstanceId"])][3] == "alpha"
    assert listed[("us-west-2", "instance", world["gamma"]["InstanceId"])][4] == "stopped t3.micro on-demand"
    assert listed[("us-west-2", "image", world["image"])][3] == IMAGE
    assert listed[("us-west-2", "key pair", next(k for k in listed if k[1] == "key pair")[2])][3] == PROJECT
    # the total is the exact sum of what each line costs, rounded once
    exact = Decimal(0)
    for key, item in expected.items():
        region, kind, _ = key
        if kind == "instance" and item["State"]["Name"] == "running":
            hourly = (
                spot_price(ec2s[region], item["InstanceType"], item["Placement"]["AvailabilityZone"])
                if item.get("InstanceLifecycle") == "spot"
                else ONDEMAND[item["InstanceType"]]
            )
            exact += hourly * 730
        elif kind == "volume":
            exact += item["Size"] * EBS[item["VolumeType"]]
        elif kind in ("snapshot", "image") and not expected_month(ec2s, key, item, expected).startswith("in "):
            exact += Decimal(expected_month(ec2s, key, item, expected))
    (total_row,) = [r for r in rows if r[0] == "TOTAL"]
    assert total_row[-1] == usd(exact)
    assert "Regions read: 2 (eu-west-1, us-west-2)." in msg and "NOT READ" not in msg
    assert "Read-only: nothing was changed." in msg
    assert state_of(ec2s) == before


def test_costs_of_every_project_match_only_managed_by_gpubox(world, ec2s):
    run = playbook(
        "costs",
        world["env"],
        "-e",
        "gpubox_regions=eu-west-1,us-west-2",
        "-e",
        "gpubox_project_all=yes",
        extra={"gpubox_project": PROJECT},
    )

    assert run.rc == 0, run.output[-3000:]
    msg = shown_table(run, SWEEP_TASK)
    titles, rows = sweep_rows(msg)
    assert titles == ["REGION", "PROJECT", "KIND", "ID", "NAME", "STATE / SIZE", "$/MONTH"]
    listed = listed_by_key(rows, with_project=True)
    assert set(listed) == set(truth(ec2s, {"ManagedBy": "gpubox"}))
    assert listed[("us-west-2", "instance", world["other"]["InstanceId"])][1] == OTHER
    assert listed[("eu-west-1", "image", world["other_image"])][1] == OTHER
    assert listed[("us-west-2", "instance", world["alpha"]["InstanceId"])][1] == PROJECT
    assert world["foreign"] not in msg and "intruder" not in msg
    assert "Everything tagged ManagedBy=gpubox, of every project:" in msg


def test_costs_reads_every_region_and_reports_one_that_refuses(world, api, ec2s):
    """No gpubox_regions: every region the account has; the first region to be asked for its volumes answers as an
    opt-in region that is not enabled does. That region is reported and left out, the others are listed."""
    with FaultProxy(api.endpoint) as proxy:
        proxy.add_rule(
            "DescribeVolumes", "OptInRequired", message="You are not subscribed to this service.", status=401, times=1
        )
        env = dict(world["env"], **{k: v for k, v in proxy.env.items() if k == "AWS_ENDPOINT_URL"})
        run = playbook("costs", env, extra={"gpubox_project": PROJECT})

    assert run.rc == 0, run.output[-3000:]
    msg = shown_table(run, SWEEP_TASK)
    (refused,) = re.findall(r'^NOT READ: (\S+) answered "OptInRequired": "You are not subscribed', msg, re.MULTILINE)
    read = re.search(r"^Regions read: (\d+) \((.*)\)\.$", msg, re.MULTILINE)
    regions = read.group(2).split(", ")
    assert refused not in regions and len(regions) == int(read.group(1)) > len(REGIONS)
    listed = listed_by_key(sweep_rows(msg)[1])
    assert set(listed) == {key for key in truth(ec2s, OWN) if key[0] != refused}


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["-e", "gpubox_regions=us-west-2,mars-north-1"], '"mars-north-1" is not an AWS region'),
        (["-e", "gpubox_project_all=maybe"], 'gpubox_project_all is "maybe"'),
    ],
    ids=["unknown-region", "project-all-not-yes-or-no"],
)
def test_costs_refuses_bad_settings(world, args, named):
    run = playbook("costs", world["env"], *args, extra={"gpubox_project": PROJECT})
    assert run.rc != 0
    assert named in run.failure()
    assert not [name for name, _ in run.tasks() if name.startswith("ec2_list : Find")]


LIST_TASK = "ec2_list : Print the boxes"


def cost_rows(msg: str) -> dict[str, list[str]]:
    """list.yml's second table (what each box costs), by name; columns start under their titles."""
    lines = msg.splitlines()
    at = next(n for n, line in enumerate(lines) if line.startswith("NAME") and "$/H NOW" in line)
    header = lines[at]
    starts = [m.start() for m in re.finditer(r"\S+(?: \S+)*", header)]
    titles = [m.group() for m in re.finditer(r"\S+(?: \S+)*", header)]
    assert titles == [
        "NAME",
        "STATE",
        "$/H NOW",
        "HOURS UP",
        "ACCRUED $",
        "DISKS",
        "EBS $/MONTH",
        "AUTOSTOP",
        "MAX HOURS",
    ]
    rows = {}
    for line in lines[at + 1 :]:
        if line.startswith("$/h now:"):
            break
        for start in (s for s in starts[1:] if len(line) > s and line[s] != " "):
            assert line[start - 2 : start] == "  ", f"misaligned at {start}:\n{msg}"
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        rows[cells[0]] = cells
    return rows


def test_list_shows_what_a_running_and_a_stopped_box_cost(world, ec2s):
    run = playbook("list", world["env"], extra={"gpubox_project": PROJECT})

    assert run.rc == 0, run.output[-3000:]
    msg = shown_table(run, LIST_TASK)
    rows = cost_rows(msg)
    assert set(rows) == {"alpha", "beta", "gamma", "TOTAL"}
    west = ec2s["us-west-2"]
    alpha, beta = (
        west.describe_instances(InstanceIds=[world[n]["InstanceId"]])["Reservations"][0]["Instances"][0]
        for n in ("alpha", "beta")
    )
    # alpha: on-demand, running since its LaunchTime, price from the table (no Price List API here)
    _, state, rate, hours, accrued, disks, ebs, autostop, max_hours = rows["alpha"]
    up = (datetime.now(UTC) - alpha["LaunchTime"]).total_seconds() / 3600
    assert (state, rate, disks, ebs, autostop, max_hours) == (
        "running",
        "0.526 table",
        "64 GiB gp3",
        "5.12",
        "60 min",
        "off",
    )
    assert abs(float(hours) - up) <= 0.1
    assert abs(Decimal(accrued) - Decimal("0.526") * Decimal(hours)) <= Decimal("0.06")
    # beta: spot, priced by the current spot price of its type in its zone, as the API gives it
    spot = spot_price(west, beta["InstanceType"], beta["Placement"]["AvailabilityZone"])
    _, state, rate, hours, accrued, disks, ebs, autostop, max_hours = rows["beta"]
    assert rate.endswith(" spot") and Decimal(rate.split()[0]) == spot, rate
    assert (state, disks, ebs, autostop, max_hours) == ("running", "80 GiB gp3", "6.40", "30 min", "8 h")
    # gamma: stopped, pays for its disk only; no autostop tags
    assert rows["gamma"][1:] == ["stopped", "-", "-", "-", "30 GiB gp2", "3.00", "-", "-"]
    total = rows["TOTAL"]
    assert Decimal(total[2]) == Decimal("0.526") + spot
    assert total[6] == "14.52"
    assert "How long a box has been idle is" in msg and "gpubox-hold" in msg
    assert "price table of 2025-05" in msg


def images(ec2) -> dict[str, dict]:
    return {m["ImageId"]: m for m in ec2.describe_images(Owners=["self"])["Images"]}


def snapshot_ids(ec2) -> set[str]:
    return {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}


@pytest.mark.parametrize(
    ("region", "args", "settings", "named"),
    [
        (
            "us-west-2",
            ["-e", f"gpubox_image_name={IMAGE}"],
            {"gpubox_boxes": [{"name": "d2l"}, {"name": "again", "image": f"my:{IMAGE}"}]},
            ['box "again"', f"image: my:{IMAGE}", "another image"],
        ),
        ("us-west-2", ["-e", "gpubox_image_name=pytest-costs-foreign"], {}, ["has the tags {}", "deregister-image"]),
        (
            "eu-west-1",
            ["-e", "gpubox_image_name=pytest-costs-other-img", "-e", "gpubox_region=eu-west-1"],
            {},
            [f'"Project": "{OTHER}"', f"-e gpubox_project={OTHER}"],
        ),
        ("us-west-2", ["-e", "gpubox_image_name=pytest-costs-half"], {}, ["lacks gpubox's tags", "create-tags"]),
        ("us-west-2", ["-e", f"gpubox_image_name={IMAGE}", "-e", "gpubox_image_state=gone"], {}, ['is "gone"']),
    ],
    ids=["in-use", "foreign", "other-project", "untagged-snapshot", "bad-state"],
)
def test_image_delete_refuses_and_deletes_nothing(world, ec2s, region, args, settings, named):
    ec2 = ec2s[region]
    before = (images(ec2), snapshot_ids(ec2))
    state = [] if "gpubox_image_state=gone" in args else ["-e", "gpubox_image_state=absent"]

    run = playbook("image", world["env"], *args, *state, extra={"gpubox_project": PROJECT, **settings})

    assert run.rc != 0
    message = run.failure()
    for text in named:
        assert text in message, message
    name = next(a.split("=", 1)[1] for a in args if a.startswith("gpubox_image_name="))
    image_ids = [i for i, m in before[0].items() if m["Name"] == name]
    if "gone" not in message:
        assert image_ids and all(i in message for i in image_ids), message
    assert (images(ec2), snapshot_ids(ec2)) == before


def test_image_delete_removes_the_image_and_its_snapshots_once(world, ec2s):
    west = ec2s["us-west-2"]
    snaps = snapshots_of(west, world["image"])
    others = set(images(west)) - {world["image"]}
    args = ("-e", f"gpubox_image_name={IMAGE}", "-e", "gpubox_image_state=absent")

    run = playbook("image", world["env"], *args, extra={"gpubox_project": PROJECT})

    assert run.rc == 0, run.output[-3000:]
    assert run.stats["changed"] >= 1
    assert world["image"] not in images(west) and set(images(west)) == others
    assert snaps and not set(snaps) & snapshot_ids(west)
    assert world["eu_image"] in images(ec2s["eu-west-1"])

    again = playbook("image", world["env"], *args, extra={"gpubox_project": PROJECT})
    assert again.rc == 0, again.output[-3000:]
    assert again.stats["changed"] == 0
    assert "nothing to delete" in again.output
