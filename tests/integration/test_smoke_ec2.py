"""Smoke: ansible-playbook launches an instance in the local EC2 API; boto3 sees it running."""

import pytest

from tests.conftest import ROOT, run_ansible
from tests.ground.ec2api import EC2Api, api_client


@pytest.fixture(scope="module")
def smoke_api():
    """An API of its own: the smoke playbook is the ground's, not gpubox's, so its calls are not counted for the
    IAM policy check (tests/integration/test_iam_policy.py)."""
    api = EC2Api(counted=False).start()
    yield api
    api.stop()


def test_playbook_launches_instance_boto3_sees_it(smoke_api):
    run_ansible(["ansible-playbook", str(ROOT / "tests/playbooks/smoke-launch.yml")], env=smoke_api.env)
    ec2 = api_client("ec2", smoke_api.endpoint)

    reservations = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["gpubox-smoke"]}])["Reservations"]
    instances = [i for r in reservations for i in r["Instances"]]
    assert len(instances) == 1
    box = instances[0]
    assert box["State"]["Name"] == "running"
    assert box["InstanceType"] == "g4dn.xlarge"
    image = ec2.describe_images(ImageIds=[box["ImageId"]])["Images"][0]
    assert image["OwnerId"] == "099720109477"
    assert image["Name"].startswith("ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-")


def test_standin_images_beside_moto_defaults(ec2):
    canonical = ec2.describe_images(Owners=["099720109477"])["Images"]
    names = {i["Name"] for i in canonical}
    assert any("ubuntu-jammy-22.04-amd64-server" in n for n in names)
    assert any("ubuntu-noble-24.04-amd64-server" in n for n in names)
    # moto's own default images are still there
    assert ec2.describe_images(Owners=["amazon"])["Images"]


def test_validation_is_on(ec2):
    """Bad input must fail like on AWS, not sail through."""
    import botocore.exceptions
    import pytest

    image = ec2.describe_images(Owners=["099720109477"])["Images"][0]["ImageId"]
    with pytest.raises(botocore.exceptions.ClientError, match=r"InvalidInstanceType|not supported|instance type"):
        ec2.run_instances(ImageId=image, InstanceType="g4dn.huge", MinCount=1, MaxCount=1)
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidAMIID"):
        ec2.run_instances(ImageId="ami-0123456789abcdef0", InstanceType="g4dn.xlarge", MinCount=1, MaxCount=1)
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidKeyPair"):
        ec2.run_instances(ImageId=image, InstanceType="g4dn.xlarge", MinCount=1, MaxCount=1, KeyName="nope")
