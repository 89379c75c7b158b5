"""Jinja tests about AWS values.

`aws_region`: the value is a region AWS has (as known to the installed botocore), so a typo is refused with a clear
message instead of an endpoint error or an HTTP 500 from AWS.

`tagged`: the resource tags (a dict, or AWS's list of Key/Value pairs in either case) carry every wanted tag with
exactly its value. EC2's describe filters take wildcards, so a filter alone never proves that a resource is the
project's: `item.tags is tagged(gpubox_tags)`, or `selectattr('tags', 'tagged', gpubox_tags)`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping


@functools.cache
def _regions() -> frozenset[str]:
    """Every region of every partition botocore knows, from its endpoints data (read once per process: ~25 ms; a
    botocore session's region lists, built from the same data, took ~0.1 s)."""
    import botocore.loaders

    endpoints = botocore.loaders.create_loader().load_data("endpoints")
    return frozenset(region for partition in endpoints["partitions"] for region in partition["regions"])


def aws_region(value) -> bool:
    return isinstance(value, str) and value in _regions()


def _as_dict(tags) -> dict:
    if isinstance(tags, Mapping):
        return dict(tags)
    if isinstance(tags, list | tuple):
        pairs = {}
        for pair in tags:
            if isinstance(pair, Mapping):
                key = pair.get("Key", pair.get("key"))
                if key is not None:
                    pairs[key] = pair.get("Value", pair.get("value"))
        return pairs
    return {}


def tagged(tags, wanted: Mapping) -> bool:
    have = _as_dict(tags)
    return all(k in have and str(have[k]) == str(v) for k, v in dict(wanted).items())


class TestModule:
    def tests(self):
        return {"aws_region": aws_region, "tagged": tagged}
