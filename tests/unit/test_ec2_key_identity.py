"""ec2_key_identity: a local private key against an EC2 key pair's fingerprint, in each of AWS's formats.

The expected fingerprints come from elsewhere than the module: ssh-keygen for ed25519, openssl for RSA.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.conftest import ROOT, load_module

identity = load_module(ROOT / "plugins/modules/ec2_key_identity.py")

NO_PASS = serialization.NoEncryption()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _ed25519(path: Path) -> Path:
    key = ed25519.Ed25519PrivateKey.generate()
    return _write(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, NO_PASS))


def _rsa(path: Path, fmt=serialization.PrivateFormat.TraditionalOpenSSL) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _write(path, key.private_bytes(serialization.Encoding.PEM, fmt, NO_PASS))


def _ssh_keygen_sha256(path: Path) -> str:
    """What AWS shows for an ed25519 pair: ssh-keygen -l's SHA256 field, with the base64 padding AWS adds."""
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(path)], capture_output=True, text=True)
    digest = out.stdout.split()[1].removeprefix("SHA256:")
    return digest + "=" * (-len(digest) % 4)


def _openssl_colon(cmd: list[str], digest: str) -> str:
    der = subprocess.run(cmd, capture_output=True, check=True).stdout
    out = subprocess.run(["openssl", "dgst", f"-{digest}", "-c"], input=der, capture_output=True, check=True)
    return out.stdout.decode().split()[-1]


def _imported_rsa_md5(path: Path) -> str:
    """MD5 of the DER public key (what AWS shows for an imported RSA pair)."""
    return _openssl_colon(["openssl", "pkey", "-in", str(path), "-pubout", "-outform", "DER"], "md5")


def _created_rsa_sha1(path: Path) -> str:
    """SHA-1 of the PKCS#8 DER private key (what AWS shows for an RSA pair it created)."""
    return _openssl_colon(["openssl", "pkcs8", "-in", str(path), "-topk8", "-nocrypt", "-outform", "DER"], "sha1")


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("keys")
    return {
        "ed25519": _ed25519(d / "ed25519"),
        "ed25519-other": _ed25519(d / "ed25519-other"),
        "rsa": _rsa(d / "rsa.pem"),
        "rsa-pkcs8": _rsa(d / "rsa-pkcs8.pem", serialization.PrivateFormat.PKCS8),
        "rsa-other": _rsa(d / "rsa-other.pem"),
    }


def test_ed25519_created_by_aws_matches_ssh_keygen(keys):
    """AWS gives base64 SHA-256 with '=' padding; ssh-keygen prints it without: both forms match."""
    aws = _ssh_keygen_sha256(keys["ed25519"])
    assert aws.endswith("=")
    for given in (aws, aws.rstrip("=")):
        result = identity.key_identity(str(keys["ed25519"]), given, "ed25519")
        assert result["matches"] is True
        assert result["format"] == identity.SSH_SHA256 and result["local_key_type"] == "ed25519"
        assert result["local_fingerprint"].rstrip("=") == aws.rstrip("=")
        assert result["aws_fingerprint"] == given


def test_ed25519_imported_from_a_public_key(keys, tmp_path):
    """An imported ed25519 pair: same format, from the public key ssh-keygen -y derives; key_type left out."""
    pub = tmp_path / "key.pub"
    pub.write_text(
        subprocess.run(["ssh-keygen", "-y", "-f", str(keys["ed25519"])], capture_output=True).stdout.decode()
    )
    aws = _ssh_keygen_sha256(pub)
    assert identity.key_identity(str(keys["ed25519"]), aws)["matches"] is True


@pytest.mark.parametrize("name", ["rsa", "rsa-pkcs8"])
def test_rsa_imported_is_md5_of_the_public_key(keys, name):
    aws = _imported_rsa_md5(keys[name])
    result = identity.key_identity(str(keys[name]), aws.upper(), "rsa")
    assert result["matches"] is True and result["format"] == identity.SPKI_MD5
    assert result["local_fingerprint"] == aws and len(aws.split(":")) == 16


@pytest.mark.parametrize("name", ["rsa", "rsa-pkcs8"])
def test_rsa_created_by_aws_is_sha1_of_the_pkcs8_private_key(keys, name):
    aws = _created_rsa_sha1(keys[name])
    result = identity.key_identity(str(keys[name]), aws, "rsa")
    assert result["matches"] is True and result["format"] == identity.PKCS8_SHA1
    assert result["local_fingerprint"] == aws and len(aws.split(":")) == 20


def test_rsa_key_in_openssh_format(keys, tmp_path):
    """The same RSA key converted to OpenSSH format keeps both RSA fingerprints."""
    key = serialization.load_pem_private_key(keys["rsa"].read_bytes(), None)
    converted = _write(
        tmp_path / "rsa-openssh",
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, NO_PASS),
    )
    assert identity.key_identity(str(converted), _imported_rsa_md5(keys["rsa"]), "rsa")["matches"]
    assert identity.key_identity(str(converted), _created_rsa_sha1(keys["rsa"]), "rsa")["matches"]


@pytest.mark.parametrize(
    "file, pair, aws_fingerprint",
    [
        ("ed25519-other", "ed25519", _ssh_keygen_sha256),
        ("rsa-other", "rsa", _imported_rsa_md5),
        ("rsa-other", "rsa", _created_rsa_sha1),
        ("rsa", "ed25519", _ssh_keygen_sha256),  # an RSA file for an ed25519 pair
        ("ed25519", "rsa", _imported_rsa_md5),  # an ed25519 file for an RSA pair
    ],
    ids=["ed25519", "rsa-imported", "rsa-created", "rsa-file-ed25519-pair", "ed25519-file-rsa-pair"],
)
def test_another_key_does_not_match(keys, file, pair, aws_fingerprint):
    aws = aws_fingerprint(keys[pair])
    result = identity.key_identity(str(keys[file]), aws, pair)
    assert result["matches"] is False
    assert result["local_fingerprint"] != aws and result["aws_fingerprint"] == aws


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "is not a private key file"),
        (b"hello\n", "is not a private key file"),
        (b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n", "is not a private key"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "is not a private key file"),
        (b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA user@host\n", "is a public key"),
    ],
    ids=["empty", "text", "bad-openssh", "bad-pem", "public-key"],
)
def test_a_file_that_is_not_a_private_key_is_named(keys, tmp_path, content, expected):
    bad = _write(tmp_path / "not-a-key", content)
    with pytest.raises(identity.KeyIdentityError) as err:
        identity.key_identity(str(bad), _ssh_keygen_sha256(keys["ed25519"]), "ed25519")
    assert str(bad) in str(err.value) and expected in str(err.value)


def test_missing_file_is_named(keys, tmp_path):
    with pytest.raises(identity.KeyIdentityError, match=r"Cannot read the key file .*/nowhere\.pem"):
        identity.key_identity(str(tmp_path / "nowhere.pem"), _ssh_keygen_sha256(keys["ed25519"]), "ed25519")


@pytest.mark.parametrize("fmt", ["openssh", "pem"])
def test_passphrase_protected_key_is_named_and_not_leaked(tmp_path, fmt):
    key = tmp_path / "locked"
    args = ["-t", "ed25519"] if fmt == "openssh" else ["-t", "rsa", "-b", "2048", "-m", "PEM"]
    subprocess.run(["ssh-keygen", "-q", *args, "-N", "s3cret-pass", "-f", str(key)], check=True)
    with pytest.raises(identity.KeyIdentityError) as err:
        identity.key_identity(str(key), _ssh_keygen_sha256(Path(f"{key}.pub")))
    message = str(err.value)
    assert str(key) in message and "passphrase" in message
    assert "s3cret" not in message and "PRIVATE KEY" not in message


def test_key_type_ec2_does_not_offer_never_matches(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    path = _write(
        tmp_path / "ecdsa", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, NO_PASS)
    )
    result = identity.key_identity(str(path), "0" * 43 + "=")
    assert result["matches"] is False and result["local_key_type"] not in ("ed25519", "rsa")


@pytest.mark.parametrize(
    "fingerprint, key_type",
    [
        # what moto 5.2 returns for ed25519 unpatched: colon-hex SHA-256 of the DER public key
        (":".join(["ab"] * 32), "ed25519"),
        (":".join(["ab"] * 32), None),
        ("SHA256:" + "A" * 43, "ed25519"),
        ("A" * 43 + "=", "rsa"),
        (":".join(["ab"] * 16), "ed25519"),
        ("", None),
    ],
)
def test_fingerprint_in_no_aws_format_is_refused(keys, fingerprint, key_type):
    with pytest.raises(identity.KeyIdentityError, match="cannot be compared"):
        identity.key_identity(str(keys["ed25519"]), fingerprint, key_type)


def test_result_holds_no_key_material(keys):
    result = identity.key_identity(str(keys["rsa"]), _created_rsa_sha1(keys["rsa"]), "rsa")
    text = repr(result)
    assert "PRIVATE" not in text and "MII" not in text
    assert set(result) == {"matches", "local_fingerprint", "aws_fingerprint", "format", "local_key_type"}
