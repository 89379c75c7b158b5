# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter of the preflight: gpubox_stop_at_plan, the plan (gpubox_box_plan's) with each existing box's stop_at.

A box's stop_at is its instance's StopAt tag, which the dynamic inventory gives the autostop role. Where the declared
value differs from the tag (a box launched before the tag existed has none: no daily stop), the plan gets a row and
the tag change that ec2_update applies now, merged into the box's other tag changes; the box's agent gets it at the
next configure.yml.
"""

from __future__ import annotations

from ansible_collections.gpubox.gpubox.plugins.filter.plan import VERDICT, plan_lines


def stop_at_plan(plan: dict, wanted: list[dict], instances: list[dict], project: str = "gpubox") -> dict:
    """The plan with the stop_at rows and StopAt tag changes of the declared boxes (`wanted`) that exist."""
    by_name = {}
    for instance in instances:
        name = (instance.get("tags") or {}).get("Name")
        if name and (instance.get("state") or {}).get("name") in ("pending", "running", "stopping", "stopped"):
            by_name.setdefault(name, instance)
    rows, changes = list(plan.get("rows") or []), [dict(c) for c in plan.get("changes") or []]
    added = False
    for box in wanted:
        instance = by_name.get(box["name"])
        if instance is None:
            continue
        now = (instance.get("tags") or {}).get("StopAt", "")
        declared = str(box.get("stop_at") or "").strip()
        if now == declared:
            continue
        added = True
        rows.append(
            {
                "box": box["name"],
                "instance_id": instance["instance_id"],
                "setting": "stop_at",
                "now": now or "none",
                "declared": declared or "none",
                "verdict": "tag",
                "action": VERDICT["tag"],
            }
        )
        same = [c for c in changes if c["kind"] == "tags" and c["instance_id"] == instance["instance_id"]]
        if same:
            same[0]["tags"] = {**same[0]["tags"], "StopAt": declared}
        else:
            changes.append(
                {
                    "box": box["name"],
                    "instance_id": instance["instance_id"],
                    "kind": "tags",
                    "tags": {"StopAt": declared},
                }
            )
    if not added:
        return plan
    notes = [line[len("Next: ") :] for line in plan.get("lines") or [] if line.startswith("Next: ")]
    return {**plan, "rows": rows, "changes": changes, "lines": plan_lines(rows, notes, project)}


class FilterModule:
    def filters(self):
        return {"gpubox_stop_at_plan": stop_at_plan}
