"""Preflight: every impossible request is refused before anything exists, naming the bad value.

Each case runs playbooks/provision.yml against a fresh local EC2 API and then asks the API (boto3) that no
instance, security group, key pair or spot request was created.
"""

from __future__ import annotations

import pytest

from tests.ground.ec2api import api_client
from tests.integration.ec2play import SSH_CIDR, home_env, instances, playbook

BOX = {"name": "d2l"}


def _box(**kw):
    return [dict(BOX, **kw)]


REFUSALS = [
    ("duplicate-names", {"gpubox_boxes": [{"name": "twin"}, {"name": "twin"}]}, ["twin", "unique"]),
    ("empty-name", {"gpubox_boxes": [{"name": ""}]}, ['"name": ""']),
    ("no-boxes", {"gpubox_boxes": []}, ["gpubox_boxes", "[]"]),
    ("typo-key", {"gpubox_boxes": _box(instnce_type="g5.xlarge")}, ["instnce_type"]),
    ("market", {"gpubox_boxes": _box(market="reserved")}, ["'reserved'", "on-demand, spot"]),
    ("volume", {"gpubox_boxes": _box(volume_size=20)}, ["volume_size 20", "30"]),
    ("project", {"gpubox_project": "my project!"}, ["gpubox_project", "my project!"]),
    ("cidr", {"gpubox_ssh_cidr": "10.1.2.300/33"}, ["10.1.2.300/33", "gpubox_ssh_cidr"]),
    ("image-alias", {"gpubox_boxes": _box(image="ubuntu-20.04")}, ["ubuntu-20.04", "ubuntu-24.04"]),
    ("image-my", {"gpubox_boxes": _box(image="my:never-baked")}, ["my:never-baked", "image.yml"]),
    ("image-ami", {"gpubox_boxes": _box(image="ami-0123456789abcdef0")}, ["ami-0123456789abcdef0"]),
    ("type-typo", {"gpubox_boxes": _box(instance_type="g4dn.huge")}, ["g4dn.huge", "us-west-2"]),
    ("type-no-gpu", {"gpubox_boxes": _box(instance_type="t3.micro")}, ["t3.micro", "allow_no_gpu"]),
    (
        "image-arch",
        {"gpubox_boxes": _box(instance_type="g4dn.xlarge", image="ami-ARM")},
        ["x86_64", "arm64"],
    ),
]


def _nothing_created(ec2, keys_before: int = 0) -> None:
    assert instances(ec2) == []
    groups = ec2.describe_security_groups()["SecurityGroups"]
    assert [g["GroupName"] for g in groups if g["GroupName"] != "default"] == []
    assert len(ec2.describe_key_pairs()["KeyPairs"]) == keys_before
    assert ec2.describe_spot_instance_requests()["SpotInstanceRequests"] == []


@pytest.mark.parametrize("extra, expected", [(e, x) for _, e, x in REFUSALS], ids=[i for i, _, _ in REFUSALS])
def test_refusal_names_the_value_and_creates_nothing(aws_env, ec2, tmp_path, extra, expected):
    extra = dict(extra)
    if extra.get("gpubox_boxes") and extra["gpubox_boxes"][0].get("image") == "ami-ARM":
        arm = ec2.describe_images(Owners=["099720109477"], Filters=[{"Name": "architecture", "Values": ["arm64"]}])
        extra["gpubox_boxes"] = _box(image=arm["Images"][0]["ImageId"])
    extra.setdefault("gpubox_ssh_cidr", SSH_CIDR)

    run = playbook("provision", home_env(aws_env, tmp_path / "home"), extra=extra)

    assert run.rc != 0, run.output[-3000:]
    message = run.failure()
    for text in expected:
        assert text in message, message
    _nothing_created(ec2)


def test_undetectable_address_asks_for_gpubox_ssh_cidr(aws_env, ec2, tmp_path):
    """No answer from the address service: stop and ask, never open SSH to the world."""
    from tests.ground.net import free_port

    closed = f"http://127.0.0.1:{free_port()}/"
    run = playbook(
        "provision", home_env(aws_env, tmp_path / "home"), extra={"gpubox_ssh_cidr": "", "gpubox_ip_check_url": closed}
    )

    assert run.rc != 0
    message = run.failure()
    assert closed in message and "gpubox_ssh_cidr" in message
    _nothing_created(ec2)


def test_key_pair_without_local_private_key_is_refused(aws_env, ec2, tmp_path):
    ec2.create_key_pair(KeyName="gpubox", KeyType="ed25519")

    run = playbook("provision", home_env(aws_env, tmp_path / "home"), extra={"gpubox_ssh_cidr": SSH_CIDR})

    assert run.rc != 0
    message = run.failure()
    assert "'gpubox'" in message and "gpubox-gpubox.pem" in message and "gpubox_key_name" in message
    _nothing_created(ec2, keys_before=1)


def test_credentials_that_do_not_work_are_refused(aws_env, ec2, tmp_path):
    from tests.ground.net import free_port

    nowhere = dict(aws_env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
    run = playbook("provision", home_env(nowhere, tmp_path / "home"), extra={"gpubox_ssh_cidr": SSH_CIDR})

    assert run.rc != 0
    message = run.failure()
    assert "credentials" in message and "us-west-2" in message and "aws configure" in message
    _nothing_created(ec2)


def test_detected_address_becomes_a_32(aws_env, ec2, tmp_path):
    """The address service's answer is used as /32 (preflight only: nothing is created)."""
    import http.server
    import threading

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"203.0.113.9\n")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        run = playbook(
            "provision",
            home_env(aws_env, tmp_path / "home"),
            "--tags",
            "preflight",
            extra={"gpubox_ssh_cidr": "", "gpubox_ip_check_url": f"http://127.0.0.1:{server.server_port}/"},
        )
    finally:
        server.shutdown()
    assert run.rc == 0, run.output[-3000:]
    assert run.fact("ec2_preflight_ssh_cidr") == "203.0.113.9/32"
    _nothing_created(ec2)


def test_image_aliases_resolve(aws_env, ec2, tmp_path):
    """ubuntu-22.04/24.04 resolve to Canonical's newest build, dlami through its SSM parameter, ami-... as is."""
    dlami = ec2.describe_images(Filters=[{"Name": "name", "Values": ["Deep Learning Base OSS Nvidia Driver GPU*"]}])
    dlami_id = dlami["Images"][0]["ImageId"]
    # AWS's /aws/service/... parameters are reserved names; the test publishes the same value under its own name.
    ssm = api_client("ssm", aws_env["AWS_ENDPOINT_URL"])
    ssm.put_parameter(Name="/gpubox-test/dlami/x86_64/ami-id", Value=dlami_id, Type="String")
    noble = sorted(
        ec2.describe_images(
            Owners=["099720109477"], Filters=[{"Name": "name", "Values": ["*ubuntu-noble-24.04-amd64-server-*"]}]
        )["Images"],
        key=lambda i: i["Name"],
    )
    jammy = sorted(
        ec2.describe_images(
            Owners=["099720109477"], Filters=[{"Name": "name", "Values": ["*ubuntu-jammy-22.04-amd64-server-*"]}]
        )["Images"],
        key=lambda i: i["Name"],
    )
    boxes = [
        {"name": "noble"},
        {"name": "jammy", "image": "ubuntu-22.04"},
        {"name": "dl", "image": "dlami", "volume_size": 100},
        {"name": "literal", "image": jammy[0]["ImageId"]},
        {"name": "cpu", "instance_type": "t3.micro", "allow_no_gpu": True, "volume_size": 30},
    ]

    run = playbook(
        "provision",
        home_env(aws_env, tmp_path / "home"),
        "--tags",
        "preflight",
        extra={
            "gpubox_ssh_cidr": SSH_CIDR,
            "gpubox_boxes": boxes,
            "gpubox_dlami_ssm_parameter": "/gpubox-test/dlami/{arch}/ami-id",
        },
    )

    assert run.rc == 0, run.output[-3000:]
    resolved = {b["name"]: b for b in run.fact("ec2_preflight_boxes")}
    assert resolved["noble"]["image_id"] == noble[-1]["ImageId"]
    assert resolved["jammy"]["image_id"] == jammy[-1]["ImageId"]
    assert resolved["dl"]["image_id"] == dlami_id
    assert resolved["literal"]["image_id"] == jammy[0]["ImageId"]
    assert resolved["cpu"]["gpus"] == [] and resolved["noble"]["gpus"][0]["name"] == "T4"
    # g4dn is not offered in us-west-2d: the subnet is in a zone that offers it
    assert resolved["noble"]["availability_zone"] in {"us-west-2a", "us-west-2b", "us-west-2c"}
    _nothing_created(ec2)
