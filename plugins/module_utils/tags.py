# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tags, one way for every module and plugin of gpubox: AWS's list of Key/Value pairs as a dict and back (amazon.aws's
tagging helpers), and whether a resource carries the tags that make it the project's.

EC2's describe filters take wildcards, so a filter alone never proves that a resource is the project's: `tagged`
compares each wanted tag with its exact value."""

from __future__ import annotations

from collections.abc import Mapping

from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
)


def tag_dict(tags) -> dict:
    """Tags as {key: value}: from AWS's list of Key/Value pairs (either case; malformed pairs are skipped: tags are
    anyone's to write who may call CreateTags) or a dict; anything else has none."""
    if isinstance(tags, Mapping):
        return dict(tags)
    if not isinstance(tags, list | tuple):
        return {}
    pairs = [p for p in tags if isinstance(p, Mapping) and p.get("Key", p.get("key")) is not None]
    return boto3_tag_list_to_ansible_dict(pairs) if pairs else {}


def tag_list(tags: Mapping) -> list[dict[str, str]]:
    """{key: value} as AWS's list of Key/Value pairs, in key order (the same tags are always the same request)."""
    return ansible_dict_to_boto3_tag_list({str(k): str(v) for k, v in sorted(dict(tags).items())})


def tagged(tags, wanted: Mapping) -> bool:
    """The tags carry every wanted tag with exactly its value."""
    have = tag_dict(tags)
    return all(k in have and str(have[k]) == str(v) for k, v in dict(wanted).items())
