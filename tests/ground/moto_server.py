"""moto's server, with EC2 key pair fingerprints computed as AWS computes them.

moto 5.2 fingerprints every key pair as colon-hex of a hash of the public key's DER SubjectPublicKeyInfo
(SHA-256 for ed25519, MD5 for imported RSA, SHA-1 for created RSA). AWS ("Verify your key pair's fingerprint"):

- ed25519, created or imported: base64 SHA-256 of the public key's SSH wire blob, as `ssh-keygen -l` prints it
  after `SHA256:`, with the base64 '=' padding;
- RSA imported: MD5 of the DER SubjectPublicKeyInfo, colon-hex (moto agrees);
- RSA created by AWS: SHA-1 of the private key as PKCS#8 DER, colon-hex.

A stand-in must be as strict as the real thing, so this launcher replaces the three names that
moto.ec2.models.key_pairs imported from moto.ec2.utils (the only places key pair fingerprints are made) and runs
moto's server. tests/unit/test_ec2api_fingerprints.py checks the result against ssh-keygen and `cryptography`.

With GPUBOX_TWIN_NETWORK set, the server is also the EC2 twin (tests/ground/twin.py): its instances are podman
containers on that network, named after GPUBOX_TWIN_PREFIX, with volume files under GPUBOX_TWIN_WORKDIR and the
instance metadata service on the network's host address, port GPUBOX_TWIN_IMDS_PORT.

moto 5.2's Budgets has no UpdateBudget and no DescribeSubscribersForNotification (the two calls that read and
change a budget in place, playbooks/budget.yml): the launcher adds them, answering as AWS documents them (an update
keeps the budget's notifications and its spend; a missing budget or notification is NotFoundException).

Shell:  python -m tests.ground.moto_server -H 127.0.0.1 -p PORT   # the arguments of python -m moto.server
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from moto.budgets.exceptions import NotFoundException
from moto.budgets.models import Budget, BudgetsBackend
from moto.budgets.responses import BudgetsResponse
from moto.ec2.models import key_pairs


def _colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


def ssh_sha256(public_key) -> str:
    """base64 SHA-256 of the SSH wire blob (what AWS gives for ed25519 pairs)."""
    line = public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return base64.b64encode(hashlib.sha256(base64.b64decode(line.split()[1])).digest()).decode()


def spki_md5(public_key) -> str:
    """MD5 of the DER SubjectPublicKeyInfo (what AWS gives for imported RSA pairs)."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _colon_hex(hashlib.md5(der, usedforsecurity=False).digest())


def pkcs8_sha1(private_key) -> str:
    """SHA-1 of the private key as PKCS#8 DER (what AWS gives for RSA pairs it created)."""
    der = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return _colon_hex(hashlib.sha1(der, usedforsecurity=False).digest())


_random_ed25519_key_pair = key_pairs.random_ed25519_key_pair
_random_rsa_key_pair = key_pairs.random_rsa_key_pair


def random_ed25519_key_pair():
    details = _random_ed25519_key_pair()
    public_key = serialization.load_ssh_public_key(details["material_public"])
    return {**details, "fingerprint": ssh_sha256(public_key)}


def random_rsa_key_pair():
    details = _random_rsa_key_pair()
    private_key = serialization.load_pem_private_key(details["material"], password=None)
    return {**details, "fingerprint": pkcs8_sha1(private_key)}


def imported_key_fingerprint(public_key, hash_constructor=None) -> str:
    """Stands in for public_key_fingerprint, which key_pairs calls for imported keys only."""
    return ssh_sha256(public_key) if isinstance(public_key, Ed25519PublicKey) else spki_md5(public_key)


def update_budget(self, account_id: str, new_budget: dict) -> None:
    name = new_budget["BudgetName"]
    if name not in self.budgets[account_id]:
        raise NotFoundException(f"Unable to update budget: {name} - the budget doesn't exist.")
    old = self.budgets[account_id][name]
    kept = {k: v for k, v in old.budget.items() if k in ("TimePeriod", "CalculatedSpend") and k not in new_budget}
    budget = Budget({**new_budget, **kept}, [])
    budget.notifications = old.notifications
    self.budgets[account_id][name] = budget


def describe_subscribers_for_notification(self, account_id: str, budget_name: str, notification: dict) -> list:
    if budget_name not in self.budgets[account_id]:
        raise NotFoundException(f"Unable to get subscribers: {budget_name} - the budget doesn't exist.")
    for one in self.budgets[account_id][budget_name].notifications:
        if one.details == notification:
            return one.subscribers
    raise NotFoundException("Unable to get subscribers - the notification doesn't exist.")


def _update_budget_response(self) -> str:
    self.backend.update_budget(account_id=self._get_param("AccountId"), new_budget=self._get_param("NewBudget"))
    return json.dumps({})


def _describe_subscribers_response(self) -> str:
    subscribers = self.backend.describe_subscribers_for_notification(
        account_id=self._get_param("AccountId"),
        budget_name=self._get_param("BudgetName"),
        notification=self._get_param("Notification"),
    )
    return json.dumps({"Subscribers": subscribers})


def patch() -> None:
    BudgetsBackend.update_budget = update_budget
    BudgetsBackend.describe_subscribers_for_notification = describe_subscribers_for_notification
    BudgetsResponse.update_budget = _update_budget_response
    BudgetsResponse.describe_subscribers_for_notification = _describe_subscribers_response
    key_pairs.random_ed25519_key_pair = random_ed25519_key_pair
    key_pairs.random_rsa_key_pair = random_rsa_key_pair
    key_pairs.public_key_fingerprint = imported_key_fingerprint


def main(argv: list[str] | None = None) -> None:
    from moto.server import main as moto_main

    patch()
    if os.environ.get("GPUBOX_TWIN_NETWORK"):
        from tests.ground.twin import Twin

        Twin(
            os.environ["GPUBOX_TWIN_NETWORK"],
            os.environ["GPUBOX_TWIN_PREFIX"],
            Path(os.environ["GPUBOX_TWIN_WORKDIR"]),
            int(os.environ.get("GPUBOX_TWIN_IMDS_PORT") or 0),
        ).install()
    moto_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
