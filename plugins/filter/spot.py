# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpubox_owned_requests(requests, owner_tags): the spot requests (amazon.aws.ec2_spot_instance_info's spot_request)
that carry every owner tag with exactly its value, each with "name": its Name tag ('' when it has none).

EC2's describe filters take wildcards, so a request the filters found is the project's only once its tags say so.
"""

from __future__ import annotations

from ansible_collections.gpubox.gpubox.plugins.module_utils.tags import tag_dict, tagged


def owned_requests(requests, owner_tags) -> list[dict]:
    owned = []
    for request in requests or []:
        own = tag_dict(request.get("tags") or [])
        if tagged(own, owner_tags):
            owned.append({**request, "name": own.get("Name", "")})
    return owned


class FilterModule:
    def filters(self):
        return {"gpubox_owned_requests": owned_requests}
