"""The fault-injecting proxy in front of the local EC2 API (tests/ground/ec2faults.py): passes everything through,
refuses what its rules say the way EC2 does, never forwards a refused request, and logs what it saw."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import boto3
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import ROOT, run_ansible, run_local_play
from tests.ground.ec2api import REGION, TEST_AGENT, EC2Api, recorded_requests, request_params, standin_images
from tests.ground.ec2faults import FaultProxy, Rule, error_body
from tests.ground.net import free_port, wait_http

ICE = "InsufficientInstanceCapacity"
GPU = "g4dn.xlarge"
AMI = next(i["ami_id"] for i in standin_images() if i["name"].startswith("Deep Learning"))


def client(endpoint: str, attempts: int | None = 1):
    """The tests' own EC2 client (marked TEST_AGENT); attempts=1: botocore does not retry, None: its defaults."""
    retries = {"mode": "standard", "total_max_attempts": attempts} if attempts else None
    return boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(user_agent_extra=TEST_AGENT, retries=retries),
    )


@pytest.fixture
def proxy(aws_env, ec2api):
    with FaultProxy(ec2api.endpoint) as p:
        yield p


@pytest.fixture
def via(proxy):
    """boto3 through the proxy, without botocore's retries (one request per call)."""
    return client(proxy.url)


@pytest.fixture
def subnets(ec2) -> dict[str, str]:
    """The default VPC's subnet of each zone (asked of moto directly)."""
    return {s["AvailabilityZone"]: s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]}


def launch(ec2, zone: str | None = None, subnet: str | None = None, spot: bool = False, **extra):
    spec: dict = {"ImageId": AMI, "InstanceType": GPU, "MinCount": 1, "MaxCount": 1, **extra}
    if zone:
        spec["Placement"] = {"AvailabilityZone": zone}
    if subnet:
        spec["SubnetId"] = subnet
    if spot:
        spec["InstanceMarketOptions"] = {"MarketType": "spot"}
    return ec2.run_instances(**spec)["Instances"][0]


def refused(call, *args, **kwargs) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    return caught.value


def instances(ec2) -> list[dict]:
    return [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]


def forwarded(ec2api: EC2Api, action: str) -> int:
    """How many requests for `action` reached moto (its request recording)."""
    return sum(1 for e in recorded_requests(ec2api.workdir) if request_params(e).get("Action") == [action])


# --- pass-through ------------------------------------------------------------------------------------------


def test_passes_requests_through_unchanged(proxy, via, ec2, ec2api):
    assert {r["RegionName"] for r in via.describe_regions()["Regions"]} >= {"us-west-2", "us-east-1"}
    instance = launch(via, zone="us-west-2c")
    assert instance["Placement"]["AvailabilityZone"] == "us-west-2c"
    assert [i["InstanceId"] for i in instances(ec2)] == [instance["InstanceId"]]  # moto itself has it
    assert proxy.outcomes() == ["passed", "passed"]
    # moto got the client's own headers: Host names the proxy, the SigV4 signature is the client's
    entry = [e for e in recorded_requests(ec2api.workdir) if request_params(e).get("Action") == ["RunInstances"]][-1]
    headers = {k.lower(): v for k, v in entry["headers"].items()}
    assert headers["host"] == proxy.url.removeprefix("http://")
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert TEST_AGENT in headers["user-agent"]
    assert request_params(entry)["InstanceType"] == [GPU]


def test_moto_api_passes_through_too(proxy):
    req = urllib.request.Request(proxy.url + "/moto-api/reset", method="POST")
    with urllib.request.urlopen(req, timeout=10) as response:
        assert response.status == 200
    assert proxy.requests == []  # not an EC2 action: nothing to log


# --- refusals ----------------------------------------------------------------------------------------------


def test_a_zone_without_capacity_refuses_like_ec2_and_creates_nothing(proxy, via, ec2, ec2api, subnets):
    proxy.add_rule("RunInstances", ICE, instance_type=GPU, zone="us-west-2a")
    runs = forwarded(ec2api, "RunInstances")
    error = refused(launch, via, zone="us-west-2a")
    assert error.response["Error"]["Code"] == ICE
    assert "sufficient g4dn.xlarge capacity" in error.response["Error"]["Message"]
    assert "(us-west-2a)" in error.response["Error"]["Message"]
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert error.response["ResponseMetadata"]["RequestId"]
    # the zone is the subnet's when the launch names a subnet (as gpubox's does), or a network interface's
    assert refused(launch, via, subnet=subnets["us-west-2a"]).response["Error"]["Code"] == ICE
    nic = {"DeviceIndex": 0, "SubnetId": subnets["us-west-2a"], "AssociatePublicIpAddress": True}
    assert refused(launch, via, NetworkInterfaces=[nic]).response["Error"]["Code"] == ICE
    assert forwarded(ec2api, "RunInstances") == runs and instances(ec2) == []  # never forwarded

    other = launch(via, subnet=subnets["us-west-2b"])
    assert other["Placement"]["AvailabilityZone"] == "us-west-2b"
    assert launch(via, zone="us-west-2a", InstanceType="t3.micro")["Placement"]["AvailabilityZone"] == "us-west-2a"
    assert len(instances(ec2)) == 2
    assert [(e["zone"], e["instance_type"], e["outcome"]) for e in proxy.requests if e["action"] == "RunInstances"] == [
        ("us-west-2a", GPU, ICE),
        ("us-west-2a", GPU, ICE),
        ("us-west-2a", GPU, ICE),
        ("us-west-2b", GPU, "passed"),
        ("us-west-2a", "t3.micro", "passed"),
    ]


def test_starting_a_stopped_box_in_a_zone_without_capacity_is_refused(proxy, via, ec2, ec2api):
    """StartInstances is matched on the instance's own type, zone and market (asked of moto), as EC2 refuses a
    start like a launch when the zone has no capacity."""
    box = launch(ec2, zone="us-west-2a")
    elsewhere = launch(ec2, zone="us-west-2b")
    ids = [box["InstanceId"], elsewhere["InstanceId"]]
    ec2.stop_instances(InstanceIds=ids)
    proxy.add_rule("StartInstances", ICE, instance_type="g4dn.*", zone="us-west-2a", market="on-demand", times=1)
    starts = forwarded(ec2api, "StartInstances")
    error = refused(via.start_instances, InstanceIds=[box["InstanceId"]])
    assert error.response["Error"]["Code"] == ICE and "(us-west-2a)" in error.response["Error"]["Message"]
    assert forwarded(ec2api, "StartInstances") == starts  # never forwarded: the box stays stopped
    assert {i["InstanceId"]: i["State"]["Name"] for i in instances(ec2)} == dict.fromkeys(ids, "stopped")
    seen = [e for e in proxy.requests if e["action"] == "StartInstances"]
    assert seen[0] | {"status": None} == {
        "action": "StartInstances",
        "instance_type": GPU,
        "zone": "us-west-2a",
        "market": "on-demand",
        "outcome": ICE,
        "status": None,
    }
    via.start_instances(InstanceIds=[elsewhere["InstanceId"]])  # another zone: passed
    via.start_instances(InstanceIds=[box["InstanceId"]])  # the rule's one time is spent
    assert proxy.outcomes("StartInstances") == [ICE, "passed", "passed"]
    assert {i["State"]["Name"] for i in instances(ec2)} == {"running"}


def test_times_then_passes(proxy, via, ec2):
    proxy.add_rule("RunInstances", ICE, zone="us-west-2a", times=2)
    for _ in range(2):
        assert refused(launch, via, zone="us-west-2a").response["Error"]["Code"] == ICE
    launch(via, zone="us-west-2a")
    assert proxy.outcomes("RunInstances") == [ICE, ICE, "passed"]
    assert proxy.rules()[0]["times"] == 0
    assert len(instances(ec2)) == 1


def test_rules_answer_in_order(proxy, via):
    proxy.add_rule("RunInstances", "VcpuLimitExceeded", times=1)
    proxy.add_rule("RunInstances", "Unsupported", instance_type="g4dn.*")
    assert refused(launch, via).response["Error"]["Code"] == "VcpuLimitExceeded"
    error = refused(launch, via, zone="us-west-2d")
    assert error.response["Error"]["Code"] == "Unsupported"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "(g4dn.xlarge) is not supported" in error.response["Error"]["Message"]
    proxy.clear()
    launch(via)
    assert proxy.rules() == [] and proxy.outcomes() == ["passed"]


def test_spot_and_on_demand_are_told_apart(proxy, via, ec2):
    proxy.add_rule("RunInstances", ICE, market="spot", message="There is no Spot capacity available that matches")
    error = refused(launch, via, zone="us-west-2a", spot=True)
    assert error.response["Error"]["Message"] == "There is no Spot capacity available that matches"
    launch(via, zone="us-west-2a")
    proxy.clear()
    proxy.add_rule("RunInstances", ICE, market="on-demand")
    launch(via, zone="us-west-2a", spot=True)
    assert refused(launch, via, zone="us-west-2a").response["Error"]["Code"] == ICE
    assert [(e["market"], e["outcome"]) for e in proxy.requests] == [("spot", "passed"), ("on-demand", ICE)]
    assert {i.get("InstanceLifecycle", "on-demand") for i in instances(ec2)} == {"spot", "on-demand"}


def test_request_spot_instances_is_matched_on_its_launch_specification(proxy, via, ec2, ec2api, subnets):
    proxy.add_rule("RequestSpotInstances", "MaxSpotInstanceCountExceeded", instance_type=GPU, zone="us-west-2a")

    def request(zone: str):
        spec = {"ImageId": AMI, "InstanceType": GPU, "SubnetId": subnets[zone]}
        return via.request_spot_instances(InstanceCount=1, LaunchSpecification=spec)["SpotInstanceRequests"]

    error = refused(request, "us-west-2a")
    assert error.response["Error"] == {
        "Code": "MaxSpotInstanceCountExceeded",
        "Message": "Max spot instance count exceeded",
    }
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert forwarded(ec2api, "RequestSpotInstances") == 0
    assert ec2.describe_spot_instance_requests()["SpotInstanceRequests"] == []
    assert len(request("us-west-2b")) == 1
    assert [(e["action"], e["instance_type"], e["zone"], e["market"], e["outcome"]) for e in proxy.requests] == [
        ("RequestSpotInstances", GPU, "us-west-2a", "spot", "MaxSpotInstanceCountExceeded"),
        ("RequestSpotInstances", GPU, "us-west-2b", "spot", "passed"),
    ]


def test_any_action_can_fail(proxy, via):
    proxy.add_rule("DescribeInstanceTypeOfferings", "InternalError", times=1)
    error = refused(via.describe_instance_type_offerings)
    assert error.response["Error"]["Code"] == "InternalError"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert via.describe_instance_type_offerings()["InstanceTypeOfferings"]


# --- botocore's retries ------------------------------------------------------------------------------------


@pytest.fixture
def botocore_defaults(monkeypatch, tmp_path):
    """botocore's own retry defaults, whatever this shell or ~/.aws/config says."""
    for name in ("AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))


@pytest.mark.parametrize(
    ("code", "status", "attempts"),
    [
        (ICE, 500, 3),  # a server error: botocore retries every 500
        ("RequestLimitExceeded", 503, 3),  # a throttling code, and a 503
        ("Unsupported", 400, 1),
        ("VcpuLimitExceeded", 400, 1),
        ("SpotMaxPriceTooLow", 400, 1),
    ],
)
def test_botocore_default_retries(proxy, botocore_defaults, code, status, attempts):
    proxy.add_rule("RunInstances", code)
    once = refused(launch, client(proxy.url, attempts=1))
    assert once.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert proxy.outcomes() == [code]
    proxy.clear_log()

    default = client(proxy.url, attempts=None)
    assert default.meta.config.retries["mode"] == "standard"
    error = refused(launch, default)
    assert error.response["Error"]["Code"] == code
    assert error.response["ResponseMetadata"]["RetryAttempts"] == attempts - 1
    assert proxy.outcomes() == [code] * attempts


def test_botocore_retries_hide_a_short_refusal(proxy, botocore_defaults):
    """times=2 with botocore's default retries: one run_instances call, three requests, and it launches."""
    proxy.add_rule("RunInstances", ICE, times=2)
    launch(client(proxy.url, attempts=None))
    assert proxy.outcomes() == [ICE, ICE, "passed"]


# --- the pieces --------------------------------------------------------------------------------------------


def test_error_body_is_ec2s_and_escaped():
    body = error_body("Unsupported", "a < b & c").decode()
    assert body.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    error = "<Error><Code>Unsupported</Code><Message>a &lt; b &amp; c</Message></Error>"
    assert f"<Response><Errors>{error}</Errors><RequestID>" in body
    assert "<RequestID>" in body


def test_rules_are_checked():
    assert Rule("RunInstances", ICE).status == 500
    assert Rule("RunInstances", "RequestLimitExceeded").status == 503
    assert Rule("RunInstances", "InstanceLimitExceeded").status == 400
    assert Rule("RunInstances", ICE, status=503).status == 503
    with pytest.raises(ValueError):
        Rule("RunInstances", ICE, market="spotty")
    with pytest.raises(ValueError):
        Rule("RunInstances", ICE, times=0)


# --- from the shell ----------------------------------------------------------------------------------------


def control(url: str, method: str, path: str, body=None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_shell_and_control_endpoints(aws_env, ec2api, ec2):
    port = free_port()
    first = json.dumps({"action": "RunInstances", "code": ICE, "zone": "us-west-2a"})
    command = [sys.executable, "-m", "tests.ground.ec2faults", "--upstream", ec2api.endpoint, "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--rule", first],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert proc.stdout.readline().strip() == f"export AWS_ENDPOINT_URL={url}"
        wait_http(url + "/_faults/log", timeout=20)
        via = client(url)
        assert control(url, "GET", "/_faults/rules")[1]["rules"][0]["code"] == ICE
        rule = {"action": "RunInstances", "code": "Unsupported", "instance_type": "g4dn.*", "times": 1}
        status, answer = control(url, "POST", "/_faults/rules", [rule])
        assert status == 200 and [r["code"] for r in answer["rules"]] == [ICE, "Unsupported"]
        assert refused(launch, via, zone="us-west-2a").response["Error"]["Code"] == ICE
        assert refused(launch, via, zone="us-west-2b").response["Error"]["Code"] == "Unsupported"
        launch(via, zone="us-west-2b")
        log = control(url, "GET", "/_faults/log")[1]["requests"]
        assert [(e["zone"], e["outcome"]) for e in log] == [
            ("us-west-2a", ICE),
            ("us-west-2b", "Unsupported"),
            ("us-west-2b", "passed"),
        ]
        assert control(url, "DELETE", "/_faults/rules") == (200, {"rules": []})
        assert control(url, "DELETE", "/_faults/log") == (200, {"requests": []})
        launch(via, zone="us-west-2a")
        assert [e["outcome"] for e in control(url, "GET", "/_faults/log")[1]["requests"]] == ["passed"]
        assert len(instances(ec2)) == 2
        assert control(url, "POST", "/_faults/rules", {"action": "RunInstances"})[0] == 400  # no code
        assert control(url, "POST", "/_faults/rules", {"action": "RunInstances", "code": ICE, "market": "x"})[0] == 400
        assert control(url, "GET", "/_faults/nothing")[0] == 404
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


# --- Ansible through the proxy -----------------------------------------------------------------------------


def test_ansible_modules_and_inventory_go_through_it(tmp_path):
    """amazon.aws's ec2_instance and the aws_ec2 inventory reach EC2 through the proxy. ec2_instance retries
    InsufficientInstanceCapacity itself (AWSRetry, on top of botocore's 3 attempts), so 3 refusals still launch.
    Its own local EC2 API: what Ansible asks here is not gpubox's playbooks' (IAM policy check)."""
    api = EC2Api(counted=False).start()
    try:
        zones = {s["AvailabilityZone"]: s["SubnetId"] for s in client(api.endpoint).describe_subnets()["Subnets"]}
        with FaultProxy(api.endpoint) as proxy:
            proxy.add_rule("RunInstances", ICE, instance_type=GPU, zone="us-west-2a", times=3)
            task = {
                "amazon.aws.ec2_instance": {
                    "name": "faulty",
                    "image_id": AMI,
                    "instance_type": GPU,
                    "vpc_subnet_id": zones["us-west-2a"],
                    "wait": False,
                }
            }
            play = [{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]
            run = run_local_play(tmp_path / "launch.yml", play, env=proxy.env)
            assert run.returncode == 0, run.stdout[-3000:]
            assert proxy.outcomes("RunInstances") == [ICE, ICE, ICE, "passed"]

            inventory = tmp_path / "faults.aws_ec2.yml"
            inventory.write_text(
                yaml.safe_dump({"plugin": "amazon.aws.aws_ec2", "regions": [REGION], "hostnames": ["tag:Name"]})
            )
            listed = run_ansible(["ansible-inventory", "-i", str(inventory), "--list"], env=proxy.env)
            assert "faulty" in json.loads(listed.stdout)["_meta"]["hostvars"]
            assert "DescribeInstances" in {e["action"] for e in proxy.requests}
    finally:
        api.stop()
