# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Is this a region AWS has? One answer for the controller's plugins (the `aws_region` test, the settings lookup): a
typo is refused with a clear message instead of an endpoint error or an HTTP 500 from AWS."""

from __future__ import annotations

import functools


@functools.cache
def regions() -> frozenset[str]:
    """Every region of every partition botocore knows, from its endpoints data (read once per process: ~25 ms; a
    botocore session's region lists, built from the same data, took ~0.1 s)."""
    import botocore.loaders

    endpoints = botocore.loaders.create_loader().load_data("endpoints")
    return frozenset(region for partition in endpoints["partitions"] for region in partition["regions"])


def aws_region(value) -> bool:
    return isinstance(value, str) and value in regions()
