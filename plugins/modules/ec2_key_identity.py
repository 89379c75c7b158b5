#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tell whether a private key file on this machine is the one behind an EC2 key pair, by AWS's fingerprint."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ec2_key_identity
short_description: Compare a local private key with an EC2 key pair's fingerprint
author:
  - gpubox maintainers (!UNKNOWN)
description:
  - Reads a private key file (OpenSSH or PEM format, without a passphrase) and computes its fingerprint in the
    format AWS uses for the key pair (AWS documentation, "Verify your key pair's fingerprint").
  - ED25519 key pairs, created or imported, have the base64 SHA-256 of the public key, as C(ssh-keygen -l) prints
    it after C(SHA256:) (compared without the base64 padding). RSA key pairs imported into AWS have the MD5 of the
    public key (DER SubjectPublicKeyInfo), RSA key pairs created by AWS the SHA-1 of the private key (PKCS#8 DER),
    both colon-separated hex; their length tells them apart.
  - Reads nothing but the file and calls no API. Returns fingerprints only, never key material.
  - Fails, naming the file, when the file cannot be read, is not a private key or needs a passphrase, and when the
    fingerprint is in no format AWS uses for the key type.
options:
  key_file:
    description: The private key file.
    type: path
    required: true
  fingerprint:
    description: The key pair's fingerprint as AWS gives it (C(KeyFingerprint) of DescribeKeyPairs).
    type: str
    required: true
  key_type:
    description: The key pair's type as AWS gives it (C(KeyType)); left out, the fingerprint's shape decides.
    type: str
    choices: [ed25519, rsa]
requirements:
  - cryptography
"""

EXAMPLES = r"""
- name: Compare the local key with the key pair
  ec2_key_identity:
    key_file: ~/.ssh/gpubox-gpubox.pem
    fingerprint: "{{ keypairs.keypairs[0].key_fingerprint }}"
    key_type: "{{ keypairs.keypairs[0].key_type }}"
  register: identity
"""

RETURN = r"""
matches:
  description: Whether the file's fingerprint is the key pair's.
  returned: always
  type: bool
  sample: true
local_fingerprint:
  description: The file's fingerprint in the key pair's format.
  returned: always
  type: str
  sample: "d1c4Ag0Gfo+ZlIq5tV0cFD+Gl8i9n8ZVqXbtp3Vm8hY="
aws_fingerprint:
  description: The key pair's fingerprint, as given.
  returned: always
  type: str
  sample: "d1c4Ag0Gfo+ZlIq5tV0cFD+Gl8i9n8ZVqXbtp3Vm8hY="
format:
  description: What the fingerprints are a hash of.
  returned: always
  type: str
  sample: base64 SHA-256 of the public key
local_key_type:
  description: The file's key type (C(ed25519), C(rsa), or another algorithm EC2 does not offer).
  returned: always
  type: str
  sample: ed25519
"""

import base64  # noqa: E402 - Ansible modules document themselves before their imports
import hashlib  # noqa: E402
import re  # noqa: E402

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402

try:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    CRYPTOGRAPHY_ERROR = None
except ImportError as e:  # reported by main()
    CRYPTOGRAPHY_ERROR = e

# AWS's fingerprint formats: name -> what is hashed, as the results and messages say it.
SSH_SHA256 = "base64 SHA-256 of the public key"
SPKI_MD5 = "MD5 of the public key (DER SubjectPublicKeyInfo)"
PKCS8_SHA1 = "SHA-1 of the private key (PKCS#8 DER)"

_HEX = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2})+$")
_BASE64_SHA256 = re.compile(r"^[A-Za-z0-9+/]{43}=?$")

# A private key file is a few KB; anything much larger is not one and is not read whole.
MAX_KEY_FILE = 64 * 1024


class KeyIdentityError(Exception):
    """A problem to report as the module's failure message (never with key material in it)."""


def aws_format(fingerprint: str, key_type: str | None = None) -> str:
    """The format of an AWS key pair fingerprint, from its shape and (if known) the key pair's type."""
    fp = fingerprint.strip()
    if _BASE64_SHA256.match(fp):
        fmt = SSH_SHA256
    elif _HEX.match(fp.lower()) and len(fp.split(":")) in (16, 20):
        fmt = SPKI_MD5 if len(fp.split(":")) == 16 else PKCS8_SHA1
    else:
        fmt = None
    expected = {"ed25519": (SSH_SHA256,), "rsa": (SPKI_MD5, PKCS8_SHA1)}.get(key_type or "", (fmt,))
    if fmt is None or fmt not in expected:
        wanted = {
            "ed25519": "base64 SHA-256 (43 characters and '=')",
            "rsa": "colon-separated hex MD5 (16 bytes) or SHA-1 (20 bytes)",
        }
        if key_type in wanted:
            raise KeyIdentityError(
                f"The key pair's fingerprint '{fingerprint}' is not in AWS's format for a {key_type} key pair "
                f"({wanted[key_type]}), so it cannot be compared with a local key."
            )
        raise KeyIdentityError(
            f"The key pair's fingerprint '{fingerprint}' is in no format AWS uses ({wanted['ed25519']} for "
            f"ed25519, {wanted['rsa']} for rsa), so it cannot be compared with a local key."
        )
    return fmt


def load_private_key(path: str):
    """The private key in the file (OpenSSH or PEM format); KeyIdentityError naming the file otherwise."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_KEY_FILE + 1)
    except OSError as e:
        raise KeyIdentityError(f"Cannot read the key file {path}: {e.strerror or e}.") from None
    not_a_key = f"{path} is not a private key file (OpenSSH or PEM format)."
    if len(data) > MAX_KEY_FILE or b"PRIVATE KEY-----" not in data:
        if data.lstrip().startswith((b"ssh-", b"ecdsa-", b"-----BEGIN PUBLIC KEY", b"---- BEGIN SSH2 PUBLIC KEY")):
            not_a_key = f"{path} is a public key, not a private key file: point at the private key."
        raise KeyIdentityError(not_a_key)
    try:
        if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
            return serialization.load_ssh_private_key(data, password=None)
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography's way of saying "encrypted, and no password given"
        raise KeyIdentityError(
            f"The private key {path} is protected by a passphrase, so gpubox cannot read its fingerprint. Use a "
            f"key without a passphrase (gpubox's own keys have none; `ssh-keygen -p -f {path}` removes one)."
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyIdentityError(not_a_key) from None


def key_type_of(private_key) -> str:
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(private_key, rsa.RSAPrivateKey):
        return "rsa"
    return type(private_key).__name__.removeprefix("_").removesuffix("PrivateKey").lower() or "unknown"


def _colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


def fingerprint_of(private_key, fmt: str) -> str:
    """The key's fingerprint in one of AWS's formats."""
    public_key = private_key.public_key()
    if fmt == SSH_SHA256:
        line = public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        return base64.b64encode(hashlib.sha256(base64.b64decode(line.split()[1])).digest()).decode()
    if fmt == SPKI_MD5:
        der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return _colon_hex(hashlib.md5(der, usedforsecurity=False).digest())
    der = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return _colon_hex(hashlib.sha1(der, usedforsecurity=False).digest())


def same_fingerprint(a: str, b: str, fmt: str) -> bool:
    """Equal in the format's terms: base64 without its '=' padding, hex in any case."""
    if fmt == SSH_SHA256:
        return a.strip().rstrip("=") == b.strip().rstrip("=")
    return a.strip().lower() == b.strip().lower()


def key_identity(key_file: str, fingerprint: str, key_type: str | None = None) -> dict:
    """The comparison of the file with the key pair (the module's result), or KeyIdentityError."""
    fmt = aws_format(fingerprint, key_type)
    private_key = load_private_key(key_file)
    try:
        local = fingerprint_of(private_key, fmt)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyIdentityError(f"{key_file} holds a key type EC2 key pairs do not use (ed25519 or rsa).") from None
    return {
        "matches": same_fingerprint(local, fingerprint, fmt),
        "local_fingerprint": local,
        "aws_fingerprint": fingerprint,
        "format": fmt,
        "local_key_type": key_type_of(private_key),
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "key_file": {"type": "path", "required": True},
            "fingerprint": {"type": "str", "required": True},
            "key_type": {"type": "str", "choices": ["ed25519", "rsa"]},
        },
        supports_check_mode=True,
    )
    if CRYPTOGRAPHY_ERROR is not None:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=str(CRYPTOGRAPHY_ERROR))
    p = module.params
    try:
        result = key_identity(p["key_file"], p["fingerprint"], p["key_type"])
    except KeyIdentityError as e:
        module.fail_json(msg=str(e))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
