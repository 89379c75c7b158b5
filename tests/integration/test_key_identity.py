"""Key identity: provision refuses a key file that is not the key pair's private key, before creating anything.

The local EC2 API fingerprints key pairs as AWS does (tests/ground/moto_server.py), so the preflight compares
fingerprints in AWS's formats here too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from tests.integration.ec2play import SSH_CIDR, home_env, instances, playbook

KEY_NAME = "gpubox"  # gpubox_key_name's default; gpubox_key_file is then ~/.ssh/gpubox-gpubox.pem


def _key_file(home: Path, private_pem: bytes) -> Path:
    """Write the private key where gpubox looks for it in this HOME (mode 0400, as gpubox keeps it)."""
    path = home / ".ssh" / f"gpubox-{KEY_NAME}.pem"
    path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    path.write_bytes(private_pem)
    path.chmod(0o400)
    return path


def _openssh_private(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )


def _openssh_public(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)


def _nothing_created(ec2) -> None:
    assert instances(ec2) == []
    groups = ec2.describe_security_groups()["SecurityGroups"]
    assert [g["GroupName"] for g in groups if g["GroupName"] != "default"] == []
    assert [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]] == [KEY_NAME]
    assert ec2.describe_spot_instance_requests()["SpotInstanceRequests"] == []


def test_key_file_of_another_key_is_refused(aws_env, ec2, tmp_path):
    home = tmp_path / "home"
    key_a, key_b = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    ec2.import_key_pair(KeyName=KEY_NAME, PublicKeyMaterial=_openssh_public(key_a))
    _key_file(home, _openssh_private(key_b))

    run = playbook("provision", home_env(aws_env, home), extra={"gpubox_ssh_cidr": SSH_CIDR})

    assert run.rc != 0, run.output[-3000:]
    message = run.failure()
    assert "gpubox-gpubox.pem" in message and f"'{KEY_NAME}'" in message and "us-west-2" in message, message
    assert "gpubox_key_file" in message and "gpubox_key_name" in message and "delete-key-pair" in message, message
    assert "PRIVATE KEY" not in run.output
    _nothing_created(ec2)


def _imported_ed25519(ec2) -> bytes:
    key = ed25519.Ed25519PrivateKey.generate()
    ec2.import_key_pair(KeyName=KEY_NAME, PublicKeyMaterial=_openssh_public(key))
    return _openssh_private(key)


def _created_ed25519(ec2) -> bytes:
    return ec2.create_key_pair(KeyName=KEY_NAME, KeyType="ed25519")["KeyMaterial"].encode()


def _imported_rsa(ec2) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec2.import_key_pair(KeyName=KEY_NAME, PublicKeyMaterial=_openssh_public(key))
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def _created_rsa(ec2) -> bytes:
    return ec2.create_key_pair(KeyName=KEY_NAME, KeyType="rsa")["KeyMaterial"].encode()


@pytest.mark.parametrize(
    "make_pair",
    [_imported_ed25519, _created_ed25519, _imported_rsa, _created_rsa],
    ids=["imported-ed25519", "created-ed25519", "imported-rsa", "created-rsa"],
)
def test_the_key_pairs_own_key_passes(aws_env, ec2, tmp_path, make_pair):
    home = tmp_path / "home"
    _key_file(home, make_pair(ec2))

    run = playbook("provision", home_env(aws_env, home), "--tags", "preflight", extra={"gpubox_ssh_cidr": SSH_CIDR})

    assert run.rc == 0, run.output[-3000:]
    compared = [
        result for name, result in run.tasks() if name.endswith("Compare the private key here with the key pair")
    ]
    assert len(compared) == 1 and compared[0]["matches"] is True, compared
    _nothing_created(ec2)
