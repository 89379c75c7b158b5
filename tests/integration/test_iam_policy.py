"""docs/iam-policy.json grants exactly the AWS actions gpubox's playbooks call: every action the local EC2 API
saw during the lifecycle tests (tests/integration, tests/e2e), and nothing more than those and the few listed
below that no local API can show. Every action that changes something is tied to gpubox's tags by a condition
(read here, structurally: the local API does not evaluate conditions; tests/unit/test_iam_lint.py checks the keys
against AWS's catalog)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT
from tests.ground.ec2api import EC2Api

POLICY = ROOT / "docs" / "iam-policy.json"

# Granted although no test here makes the local API see them, each with the reason.
NOT_SEEN_HERE: dict[str, str] = {
    "pricing:GetProducts": "list.yml and costs.yml ask the Price List API; the local API has none (its requests fail "
    "unrecorded)",
}
# The tests whose AWS calls make up "everything the playbooks call".
LIFECYCLE = {
    "tests/integration/test_provision.py",
    "tests/integration/test_preflight.py",
    "tests/integration/test_safety.py",
    "tests/integration/test_spot_launch.py",
    "tests/integration/test_failover.py",
    "tests/integration/test_key_identity.py",
    "tests/integration/test_costs.py",
    "tests/integration/test_start.py",
    "tests/integration/test_update.py",
    "tests/integration/test_data_volume.py",
    "tests/integration/test_budget.py",
    "tests/e2e/test_site.py",
}

# The tags gpubox puts on what it creates (ManagedBy and Project on everything) and the only keys it may set.
OWNER = "gpubox"
TAG_KEYS = {"ManagedBy", "Project", "Name", "SshUser", "SourceBox"}
# What a launch also sets on the instance (roles/ec2_launch): the box's autostop settings and the candidate it was
# launched as. Only RunInstances (and its CreateTags) may set them.
INSTANCE_TAG_KEYS = {"Autostop", "MaxHours", "StopAt", "InstanceType", "Zone", "Market", "Image"}
# Of those, what follows a box after its launch (its autostop settings, the type start.yml or the plan change, the
# data volume ec2_data attaches), on its own instance only.
RETAG_KEYS = {"Autostop", "DataVolume", "InstanceType", "MaxHours", "StopAt"}
# A data volume (roles/ec2_data), made apart from its box, also names the box it belongs to.
VOLUME_TAG_KEYS = {"DataOf"}
# A mutating statement must tie what it allows to gpubox's tags: through the tags on the resource, the tags in the
# request, or (CreateTags) the create call the tags come with.
OWNERSHIP_KEYS = {"aws:ResourceTag/ManagedBy", "aws:RequestTag/ManagedBy", "ec2:CreateAction"}
# Actions on existing resources (change, stop, destroy): only on what gpubox tagged as its own.
TAG_BOUND = {
    "ec2:AttachVolume",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:CancelSpotInstanceRequests",
    "ec2:DeleteSnapshot",
    "ec2:DeleteVolume",
    "ec2:DeregisterImage",
    "ec2:ModifyInstanceAttribute",
    "ec2:ModifyVolume",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:StartInstances",
    "ec2:StopInstances",
    "ec2:TerminateInstances",
}
# The only mutating grants without a tag condition: existing resources a launch or a new group merely uses.
USED_AS_THEY_ARE = {"ec2:RunInstances": {"image", "snapshot", "subnet", "key-pair"}, "ec2:CreateSecurityGroup": {"vpc"}}
# Mutating grants bound by name instead of tags: an AWS Budgets budget carries no tag IAM checks here, and gpubox's
# are named gpubox-PROJECT (budget.yml), so they may act on those names only.
NAME_BOUND = {"budgets:ModifyBudget": "arn:aws:budgets::*:budget/gpubox-*"}


def listed(value) -> list:
    return [value] if isinstance(value, str) else list(value)


def granted(policy: dict) -> dict[str, list[dict]]:
    """Each granted action and the statements that grant it."""
    found: dict[str, list[dict]] = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in listed(statement["Action"]):
            found.setdefault(action, []).append(statement)
    return found


def read_only(action: str) -> bool:
    return action.split(":", 1)[1].startswith(("Describe", "Get", "List", "View"))


def resource_types(statement: dict) -> set[str]:
    """`instance` for arn:aws:ec2:*:*:instance/*, `*` for Resource "*"."""
    return {"*" if r == "*" else r.split(":", 5)[5].split("/", 1)[0] for r in listed(statement["Resource"])}


def condition(statement: dict, operator: str, key: str):
    return statement.get("Condition", {}).get(operator, {}).get(key)


def condition_keys(statement: dict) -> set[str]:
    return {key for block in statement.get("Condition", {}).values() for key in block}


def test_policy_is_a_least_privilege_iam_document():
    policy = json.loads(POLICY.read_text())
    assert policy["Version"] == "2012-10-17"
    actions = granted(policy)
    assert not [a for a in actions if "*" in a], "no wildcard actions"
    mutating = {a for a in actions if not read_only(a)}
    assert not TAG_BOUND - mutating, f"not granted at all: {sorted(TAG_BOUND - mutating)}"

    for action in sorted(mutating):
        if action in NAME_BOUND:
            assert all(listed(s["Resource"]) == [NAME_BOUND[action]] for s in actions[action]), action
            continue
        assert any(condition_keys(s) & OWNERSHIP_KEYS for s in actions[action]), f"{action}: never tied to gpubox"
    for statement in policy["Statement"]:
        sid, keys, types = statement["Sid"], condition_keys(statement), resource_types(statement)
        changes = [a for a in listed(statement["Action"]) if a in mutating and a not in NAME_BOUND]
        if not changes:
            continue
        assert "*" not in types or keys, f"{sid}: {changes} on Resource * without a condition"
        if not keys & OWNERSHIP_KEYS:
            assert all(types <= USED_AS_THEY_ARE.get(a, set()) for a in changes), f"{sid}: {changes} on {types}"
        # Tags in the request: ManagedBy=gpubox, a Project, and no key gpubox does not set.
        if condition(statement, "StringEquals", "aws:RequestTag/ManagedBy"):
            assert condition(statement, "StringEquals", "aws:RequestTag/ManagedBy") == OWNER, sid
            assert condition(statement, "Null", "aws:RequestTag/Project") == "false", f"{sid}: Project may be absent"
        if keys & {"aws:RequestTag/ManagedBy"}:
            tag_keys = condition(statement, "ForAllValues:StringEquals", "aws:TagKeys")
            allowed = TAG_KEYS | (INSTANCE_TAG_KEYS if {"ec2:RunInstances", "ec2:CreateTags"} & set(changes) else set())
            allowed |= VOLUME_TAG_KEYS if types == {"volume"} else set()
            assert tag_keys and set(tag_keys) <= allowed, f"{sid}: request may set other tag keys: {tag_keys}"
        for action in changes:
            if action in TAG_BOUND:
                assert condition(statement, "StringEquals", "aws:ResourceTag/ManagedBy") == OWNER, f"{sid}: {action}"
                assert condition(statement, "Null", "aws:ResourceTag/Project") == "false", f"{sid}: {action}"
            if action == "ec2:CreateTags" and types == {"instance"} and not keys & {"ec2:CreateAction"}:
                # Tags after a launch: only the keys that follow the box, only on the project's own instance.
                tag_keys = condition(statement, "ForAllValues:StringEquals", "aws:TagKeys")
                assert tag_keys and set(tag_keys) <= RETAG_KEYS, f"{sid}: retags {tag_keys}"
                assert condition(statement, "StringEquals", "aws:ResourceTag/ManagedBy") == OWNER, sid
                assert condition(statement, "Null", "aws:ResourceTag/Project") == "false", sid
            elif action == "ec2:CreateTags" and not condition(statement, "StringEquals", "ec2:CreateAction"):
                # Tags after creation: only gpubox's tags, only on images and snapshots (an image is tagged after
                # CreateImage), never on a resource another tool manages.
                assert types <= {"image", "snapshot"}, f"{sid}: CreateTags outside a create call on {types}"
                assert condition(statement, "StringEquals", "aws:RequestTag/ManagedBy") == OWNER, sid
                assert condition(statement, "StringEqualsIfExists", "aws:ResourceTag/ManagedBy") == OWNER, sid
            if action == "ec2:RunInstances" and types & {"instance", "volume"}:
                assert len(types) == 1, f"{sid}: RunInstances on instances or volumes needs a statement of its own"
                assert condition(statement, "StringEquals", "aws:RequestTag/ManagedBy") == OWNER, sid
            if action == "ec2:RunInstances" and "instance" in types:
                assert condition(statement, "StringEquals", "ec2:MetadataHttpTokens") == "required", f"{sid}: IMDSv2"
            if action in ("ec2:RunInstances", "ec2:CreateVolume") and "volume" in types:
                assert condition(statement, "Bool", "ec2:Encrypted") == "true", f"{sid}: unencrypted volumes"
            if action == "ec2:RunInstances" and "security-group" in types:
                assert condition(statement, "StringEquals", "aws:ResourceTag/ManagedBy") == OWNER, sid


@pytest.mark.after_all_aws_calls
def test_policy_covers_every_action_the_playbooks_called_and_no_more(request):
    ran = {str(item.path.relative_to(ROOT)) for item in request.session.items}
    if not ran >= LIFECYCLE:
        pytest.skip(f"needs the lifecycle tests in the same run: {sorted(LIFECYCLE - ran)}")
    seen = EC2Api.all_actions()
    actions = set(granted(json.loads(POLICY.read_text())))
    assert not sorted(seen - actions), f"called by the playbooks but not granted: {sorted(seen - actions)}"
    unused = actions - seen - set(NOT_SEEN_HERE)
    assert not unused, f"granted but never called: {sorted(unused)} (seen: {sorted(seen)})"
