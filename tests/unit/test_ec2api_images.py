"""The stand-in Canonical images are shaped like the real ones."""

import re

from tests.ground.ec2api import CANONICAL, standin_images


def test_ids_and_names_look_real():
    images = standin_images()
    assert len({i["ami_id"] for i in images}) == len(images)
    for image in images:
        assert re.fullmatch(r"ami-[0-9a-f]{17}", image["ami_id"])
    canonical = [i["name"] for i in images if i["owner_id"] == CANONICAL]
    pattern = r"ubuntu/images/hvm-ssd(-gp3)?/ubuntu-(jammy-22\.04|noble-24\.04)-(amd64|arm64)-server-\d{8}"
    assert all(re.fullmatch(pattern, n) for n in canonical)
    assert {n.split("-server-")[0].split("/")[-1] for n in canonical} >= {
        "ubuntu-jammy-22.04-amd64",
        "ubuntu-noble-24.04-amd64",
    }
