# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter `ssh_config_entries`: the Host entries of a project's ssh config, from what AWS and the inventory say.

Everything read back from AWS (tags, addresses, ids) is data that anyone allowed ec2:CreateTags can write, and an
ssh config line is syntax: a Name or SshUser tag with a newline and `ProxyCommand ...` would become a command run
on this machine. So every value is checked against what it must look like before it is written, and a box with a
value that does not fit is reported instead of written.

Aliases: `BOX` and `BOX-jupyter`. ssh compares host names without regard to case, and all of gpubox's files are
included into one config, so an alias that another project's file on this machine already has would silently lose
(the first match wins). Such a box gets the qualified aliases `PROJECT-BOX` and `PROJECT-BOX-jupyter` instead.
"""

from __future__ import annotations

import re

from ansible_collections.gpubox.gpubox.plugins.module_utils.names import BOX, fits
from ansible_collections.gpubox.gpubox.plugins.module_utils.names import LOGIN as USER

INSTANCE = re.compile(r"i-[0-9a-f]{8,17}")
IPV4 = re.compile(r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}")
# An address an inventory source may give instead of the public IP: an IPv4 address or a DNS name.
HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*")
HOST_LINE = re.compile(r"^\s*Host\s+(.+)$", re.IGNORECASE | re.MULTILINE)


def taken_aliases(other_files: list[str]) -> set[str]:
    """Lower-cased Host patterns of the other projects' gpubox files (their text)."""
    taken: set[str] = set()
    for text in other_files:
        for line in HOST_LINE.findall(text):
            taken.update(word.strip('"').lower() for word in line.split())
    return taken


def _seen(hostvars, name, instance_id) -> dict:
    """The address and port Ansible uses for this very instance (an inventory source may say other than EC2)."""
    if not fits(BOX, name) or name not in hostvars:
        return {}
    host = hostvars[name]
    if host.get("instance_id") != instance_id:
        return {}
    return {"host": host.get("ansible_host"), "port": host.get("ansible_port")}


def ssh_config_entries(instances, hostvars, other_files, project, default_user):
    """{'boxes': [entries for the template], 'rejected': [why each unsafe box was left out]}.

    instances: ec2_instance_info's instances of the project; hostvars: Ansible's (the address the inventory gives);
    other_files: the texts of the other projects' files; project: checked already by the settings role.
    """
    taken = taken_aliases(other_files)
    boxes, rejected = [], []
    for box in sorted(instances, key=lambda b: str((b.get("tags") or {}).get("Name", ""))):
        tags = box.get("tags") or {}
        instance_id = box.get("instance_id")
        name = tags.get("Name")
        user = tags.get("SshUser", default_user)
        state = (box.get("state") or {}).get("name", "")
        who = instance_id if fits(INSTANCE, instance_id) else "an instance with an invalid id"
        problems = []
        if not fits(INSTANCE, instance_id):
            problems.append("its instance id is not an instance id")
        if not fits(BOX, name) or name.lower().endswith("-jupyter"):
            problems.append("its Name tag is not a box name (letters, digits, '_', '-')")
        if not fits(USER, user):
            problems.append("its SshUser tag is not a login name")
        if state not in ("pending", "running", "stopping", "stopped"):
            problems.append("its state is not an instance state")
        address = None
        if state == "running":
            via = _seen(hostvars, name, instance_id) if fits(INSTANCE, instance_id) else {}
            address = via.get("host") or box.get("public_ip_address")
            if not (fits(IPV4, address) or fits(HOSTNAME, address)):
                problems.append("its address is not an IPv4 address or host name")
                address = None
            port = via.get("port")
            if port is not None and not (str(port).isdigit() and 1 <= int(port) <= 65535):
                problems.append("its port is not a port")
        if problems:
            rejected.append(f"{who}: {'; '.join(problems)}; left out of the ssh config")
            continue
        entry = {"name": name, "instance_id": instance_id, "state": state, "user": user}
        if state == "running" and address:
            aliases = [name, f"{name}-jupyter"]
            if {a.lower() for a in aliases} & taken:
                aliases = [f"{project}-{name}", f"{project}-{name}-jupyter"]
                if {a.lower() for a in aliases} & taken:
                    rejected.append(
                        f"{instance_id}: the aliases {name} and {project}-{name} are both taken by another project's "
                        "file in the gpubox ssh directory; left out of the ssh config (rename the box)"
                    )
                    continue
            entry.update(aliases=aliases, host=address, port=via.get("port"))
        boxes.append(entry)
    return {"boxes": boxes, "rejected": rejected}


class FilterModule:
    def filters(self):
        return {"ssh_config_entries": ssh_config_entries}
