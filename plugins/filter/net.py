# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter `ipv4_cidr`: what an IPv4 CIDR really covers, for the SSH rule (Python's ipaddress, no extra package)."""

from __future__ import annotations

import ipaddress


def ipv4_cidr(value) -> dict:
    """{'valid', 'cidr' (normalised: host bits cleared), 'prefix', 'addresses'}; valid is false for anything that is
    not an IPv4 address with a /prefix (a bare address is not accepted: say /32)."""
    if not isinstance(value, str) or value.count("/") != 1:
        return {"valid": False, "cidr": "", "prefix": -1, "addresses": 0}
    address, prefix = value.split("/")
    if not prefix.isdigit() or len(prefix) > 2:
        return {"valid": False, "cidr": "", "prefix": -1, "addresses": 0}
    try:
        network = ipaddress.IPv4Network(f"{address}/{int(prefix)}", strict=False)
        ipaddress.IPv4Address(address)
    except ValueError:
        return {"valid": False, "cidr": "", "prefix": -1, "addresses": 0}
    return {
        "valid": True,
        "cidr": str(network),
        "prefix": network.prefixlen,
        "addresses": network.num_addresses,
    }


class FilterModule:
    def filters(self):
        return {"ipv4_cidr": ipv4_cidr}
