"""The local EC2 API fingerprints key pairs as AWS does ("Verify your key pair's fingerprint"), not as moto does.

Expected values are computed here with ssh-keygen and `cryptography`, not with tests/ground/moto_server.py.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


def _ssh_keygen_sha256(path: Path) -> str:
    """ssh-keygen -l's SHA256 field (base64, no padding)."""
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[1].removeprefix("SHA256:")


def _colon(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


def _aws_sha256(fingerprint: str) -> str:
    """AWS's ed25519 fingerprint: base64 SHA-256 with its '=' padding; compared without it."""
    assert fingerprint.endswith("=") and len(fingerprint) == 44 and ":" not in fingerprint, fingerprint
    return fingerprint.rstrip("=")


def test_created_ed25519_is_base64_sha256_like_ssh_keygen(ec2, tmp_path):
    pair = ec2.create_key_pair(KeyName="created-ed25519", KeyType="ed25519")
    key = tmp_path / "key"
    key.write_text(pair["KeyMaterial"])
    key.chmod(0o600)

    assert _aws_sha256(pair["KeyFingerprint"]) == _ssh_keygen_sha256(key)
    listed = ec2.describe_key_pairs(KeyNames=["created-ed25519"])["KeyPairs"][0]
    assert listed["KeyFingerprint"] == pair["KeyFingerprint"] and listed["KeyType"] == "ed25519"


def test_imported_ed25519_is_base64_sha256_like_ssh_keygen(ec2, tmp_path):
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    pub = tmp_path / "key.pub"
    pub.write_bytes(key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH))

    pair = ec2.import_key_pair(KeyName="imported-ed25519", PublicKeyMaterial=pub.read_bytes())

    assert _aws_sha256(pair["KeyFingerprint"]) == _ssh_keygen_sha256(pub)


def test_imported_rsa_is_md5_of_the_der_public_key(ec2):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    openssh = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    pair = ec2.import_key_pair(KeyName="imported-rsa", PublicKeyMaterial=openssh)

    assert pair["KeyFingerprint"] == _colon(hashlib.md5(der).digest())


def test_created_rsa_is_sha1_of_the_pkcs8_private_key(ec2):
    pair = ec2.create_key_pair(KeyName="created-rsa", KeyType="rsa")
    key = serialization.load_pem_private_key(pair["KeyMaterial"].encode(), password=None)
    pkcs8 = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

    assert pair["KeyFingerprint"] == _colon(hashlib.sha1(pkcs8).digest())
    # not moto's own value (SHA-1 of the public key)
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert pair["KeyFingerprint"] != _colon(hashlib.sha1(spki).digest())
