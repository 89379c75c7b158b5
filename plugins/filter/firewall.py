# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter `firewall_drift`: how a security group, as EC2 describes it (amazon.aws's snake_case shape), differs from
gpubox's one SSH rule, so that a group already as wanted costs no module run. An empty list: nothing to change."""

from __future__ import annotations


def _ranges(perm: dict) -> list[tuple[str, str]]:
    return sorted((r.get("cidr_ip", ""), r.get("description", "")) for r in perm.get("ip_ranges", []))


def firewall_drift(group, vpc_id: str, cidr: str, description: str, tags: dict) -> list[str]:
    if not isinstance(group, dict) or not group:
        return ["the group was not read, or does not exist"]
    drift = []
    if group.get("vpc_id") != vpc_id:
        drift.append(f"in VPC {group.get('vpc_id')}, not {vpc_id}")
    ingress = [
        (p.get("ip_protocol"), p.get("from_port"), p.get("to_port"), _ranges(p))
        for p in group.get("ip_permissions", [])
    ]
    others = [
        p
        for p in group.get("ip_permissions", [])
        if p.get("user_id_group_pairs") or p.get("prefix_list_ids") or p.get("ipv6_ranges")
    ]
    if ingress != [("tcp", 22, 22, [(cidr, description)])] or others:
        drift.append("ingress is not tcp/22 from " + cidr + " alone")
    # The module keeps a VPC group's default egress (everything out) when given no egress rules.
    egress = [(p.get("ip_protocol"), _ranges(p)) for p in group.get("ip_permissions_egress", [])]
    if [(proto, [c for c, _unused in ranges]) for proto, ranges in egress] != [("-1", ["0.0.0.0/0"])]:
        drift.append("egress is not the VPC default (everything out)")
    have = group.get("tags") or {}
    missing = [k for k, v in tags.items() if have.get(k) != v]
    if missing:
        drift.append("tags " + ", ".join(missing) + " differ")
    return drift


class FilterModule:
    def filters(self):
        return {"firewall_drift": firewall_drift}
