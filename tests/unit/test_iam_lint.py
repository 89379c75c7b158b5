"""docs/iam-policy.json passes parliament, offline: every action, resource ARN and condition key is checked against
the AWS action/resource/condition catalog parliament ships (unknown actions or condition keys, a condition an action
does not support, malformed ARNs, Resource "*" where the action takes an ARN, ...). Any finding fails, except the
one kind explained at ACCEPTED below."""

from __future__ import annotations

import copy
import json
import warnings

import pytest

from tests.conftest import ROOT

# parliament 1.6.4 finds its catalog through pkg_resources (hence setuptools<82 in requirements-dev.txt), which warns
# on import that it is deprecated. The warning is about parliament's code, not about the policy.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    import parliament

POLICY = ROOT / "docs" / "iam-policy.json"

# The only finding allowed, and only when it is a false positive:
# RESOURCE_MISMATCH says "this statement grants ACTION but lacks an ARN for one of its required resource types".
# parliament checks each statement on its own, but the policy grants ec2:RunInstances (and CreateImage,
# CreateSecurityGroup) with one statement per resource type, as AWS's own examples do,
# because each resource type needs its own condition (request tags and IMDSv2 on the instance, encryption on the
# volume, the gpubox tag on the security group, none on the image or subnet). One statement listing every type could
# only carry conditions that hold for all of them. So the finding is accepted only if another statement of the
# policy grants the same action on an ARN of the missing type; otherwise the action could never be authorised
# and the finding stands.
ACCEPTED = "RESOURCE_MISMATCH"


def analyze(policy: dict) -> list:
    return parliament.analyze_policy_string(json.dumps(policy, indent=2), include_community_auditors=True).findings


def resources_granted(policy: dict, action: str) -> list[str]:
    found = []
    for statement in policy["Statement"]:
        actions = statement["Action"]
        if action in ([actions] if isinstance(actions, str) else actions):
            resources = statement["Resource"]
            found += [resources] if isinstance(resources, str) else resources
    return found


def covered_elsewhere(policy: dict, missing: dict) -> bool:
    """Another statement grants missing['action'] on an ARN of the format the finding asks for."""
    return any(
        parliament.is_arn_strictly_valid("", missing["required_format"], resource)
        for resource in resources_granted(policy, missing["action"])
        if resource != "*"
    )


def findings(policy: dict) -> list[str]:
    """Every finding, as text, but the split-statement RESOURCE_MISMATCH explained at ACCEPTED."""
    left = []
    for finding in analyze(policy):
        if finding.issue == ACCEPTED and all(covered_elsewhere(policy, m) for m in finding.detail):
            continue
        left.append(f"{finding.issue}: {finding.detail} at {finding.location}")
    return left


def test_parliament_finds_nothing_wrong_with_the_policy():
    assert findings(json.loads(POLICY.read_text())) == []


def statement(policy: dict, sid: str) -> dict:
    return next(s for s in policy["Statement"] if s["Sid"] == sid)


def broken_key(policy: dict) -> None:
    statement(policy, "GpuboxRunInstanceTaggedWithImdsv2")["Condition"]["StringEquals"]["ec2:MetadataHttpToken"] = "x"


def key_the_action_lacks(policy: dict) -> None:
    statement(policy, "GpuboxCreateSecurityGroupTagged")["Condition"]["Bool"] = {"ec2:Encrypted": "true"}


def misspelt_action(policy: dict) -> None:
    statement(policy, "GpuboxRulesOfOwnSecurityGroupOnly")["Action"].append("ec2:AuthorizeSecurityGroupIngres")


def no_subnet_anywhere(policy: dict) -> None:
    existing = statement(policy, "GpuboxRunFromAnyImageSubnetKeyPair")
    existing["Resource"] = [r for r in existing["Resource"] if ":subnet/" not in r]


def star_for_an_arn_action(policy: dict) -> None:
    statement(policy, "GpuboxReadAttributes")["Resource"] = "*"


@pytest.mark.parametrize(
    ("mutate", "issue"),
    [
        (broken_key, "UNKNOWN_CONDITION_FOR_ACTION"),
        (key_the_action_lacks, "UNKNOWN_CONDITION_FOR_ACTION"),
        (misspelt_action, "UNKNOWN_ACTION"),
        (no_subnet_anywhere, "RESOURCE_MISMATCH"),
        (star_for_an_arn_action, "RESOURCE_STAR"),
    ],
)
def test_the_lint_fails_on_a_broken_policy(mutate, issue):
    """The check is not vacuous: each kind of mistake it should catch, made once, is reported."""
    policy = copy.deepcopy(json.loads(POLICY.read_text()))
    mutate(policy)
    assert [f for f in findings(policy) if f.startswith(issue + ":")], findings(policy)
