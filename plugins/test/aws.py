"""Jinja test `aws_region`: the value is a region AWS has (as known to the installed botocore), so a typo is refused
with a clear message instead of an endpoint error or an HTTP 500 from AWS."""

from __future__ import annotations


def aws_region(value) -> bool:
    if not isinstance(value, str):
        return False
    import botocore.session

    session = botocore.session.get_session()
    return any(value in session.get_available_regions("ec2", p) for p in session.get_available_partitions())


class TestModule:
    def tests(self):
        return {"aws_region": aws_region}
