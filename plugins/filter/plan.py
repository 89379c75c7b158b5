# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter of the preflight: the plan (gpubox_box_plan), what a run does about each declared box that exists already.

The declaration is the truth. For each box that exists, each setting whose declared value differs from what AWS has
is a row of the plan, with what this run does about it:

  autostop, max_hours,  the instance's Autostop / MaxHours / StopAt tags are set to the declared values now; the
  stop_at               box's agent gets them at the next configure.yml (site.yml runs it right after); a box
                        without a StopAt tag has no daily stop
  instance_type         (the box's type is not among the declared ones) the first declared type that its zone offers
                        and that fits its image: set now on a stopped box; on a running one only with
                        gpubox_allow_restart=yes (stop, change, start), else the plan says how; a spot box cannot
  volume_size           larger: the root volume grows now, online, and its filesystem at the next configure.yml;
                        smaller: cannot (EBS volumes never shrink)
  data_volume           none attached: the box's kept data volume (tag DataOf) is attached now, or a new one made;
                        larger: it grows now, online; smaller: cannot; 0 with one attached: it stays (never deleted
                        unasked). ec2_data applies these (`data`), ec2_update the rest (`changes`)
  market, image, zones  cannot change in place: the plan gives the way (bake an image, terminate, provision)

A setting whose value AWS does not show is not compared (an instance launched before its tag existed).
"""

from __future__ import annotations

import functools

from ansible_collections.gpubox.gpubox.plugins.module_utils.table import aligned

VERDICT = {
    "now": "changes now",
    "tag": "changes now; the box gets it at the next configure.yml",
    "grow": "grows now; its filesystem at the next configure.yml",
    "restart": "changes now: stop, change, start",
    "wait": "no change while it runs (see below)",
    "cannot": "cannot change in place (see below)",
    "later": "no change now (see below)",
    "data": "attached now (the kept one, through a snapshot if it is in another zone; else a new one)",
}


def _root_size(instance: dict, volumes: list[dict]) -> int | None:
    root = instance.get("root_device_name")
    for mapping in instance.get("block_device_mappings") or []:
        if mapping.get("device_name") == root:
            volume_id = (mapping.get("ebs") or {}).get("volume_id")
            return next((v["size"] for v in volumes if v["id"] == volume_id), None)
    return None


def _root_volume(instance: dict) -> str | None:
    root = instance.get("root_device_name")
    for mapping in instance.get("block_device_mappings") or []:
        if mapping.get("device_name") == root:
            return (mapping.get("ebs") or {}).get("volume_id")
    return None


def _usable(box: dict, instance: dict, offered: dict, types: dict) -> str:
    """The first declared type the box's zone offers, of its image's architecture, with a GPU unless the box
    allows none ('' if none)."""
    zone = instance["placement"]["availability_zone"]
    arch = instance.get("architecture") or "x86_64"
    for name in box["instance_types"]:
        info = types.get(name)
        if zone not in (offered.get(name) or []) or not info:
            continue
        if arch not in info.get("processor_info", {}).get("supported_architectures", []):
            continue
        if not box.get("allow_no_gpu") and not info.get("gpu_info", {}).get("gpus"):
            continue
        return name
    return ""


def box_plan(
    wanted: list[dict],
    instances: list[dict],
    volumes: list[dict],
    allow_restart: bool = False,
    offered: dict | None = None,
    types: list[dict] | None = None,
    project: str = "gpubox",
) -> dict:
    """The plan for the declared boxes (`wanted`, as gpubox_box_lists gives them) that exist among `instances` (the
    project's own, as ec2_project_state reads them; `volumes`: their disks, box_disks).

    offered (zones per type, ec2_instance_type_offerings) and types (ec2_instance_type_info's list) answer which
    declared type a box whose type is not declared may take; until they are given, such a box's types are listed in
    `check`. Returns {rows: [{box, instance_id, setting, now, declared, action, verdict}], changes: [what
    ec2_update applies: {box, instance_id, kind: tags|type|volume, ...}], check: {box: [types]}, lines: the plan
    as aligned text with what to run for each row that changes nothing, data: the boxes whose data volume ec2_data
    attaches or grows: {name, data_volume}}."""
    by_name = {}
    for instance in instances:
        name = (instance.get("tags") or {}).get("Name")
        state = instance.get("state", {}).get("name")
        if name and state in ("pending", "running", "stopping", "stopped"):
            by_name.setdefault(name, instance)
    type_info = {t["instance_type"]: t for t in types or []}
    rows: list[dict] = []
    changes: list[dict] = []
    check: dict[str, list[str]] = {}
    notes: list[str] = []
    data: list[dict] = []

    def row(box, instance, setting, now, declared, verdict, note=""):
        rows.append(
            {
                "box": box["name"],
                "instance_id": instance["instance_id"],
                "setting": setting,
                "now": str(now),
                "declared": str(declared),
                "verdict": verdict,
                "action": VERDICT[verdict],
            }
        )
        if note:
            notes.append(f"{box['name']} {setting}: {note}")

    for box in wanted:
        instance = by_name.get(box["name"])
        if instance is None:
            continue
        name, instance_id = box["name"], instance["instance_id"]
        say = functools.partial(row, box, instance)
        retype = {"box": name, "instance_id": instance_id, "kind": "type", "instance_types": box["instance_types"]}

        state = instance["state"]["name"]
        tags = instance.get("tags") or {}
        spot = instance.get("instance_lifecycle") == "spot"
        zone = instance["placement"]["availability_zone"]
        bake = (
            f"bake it (ansible-playbook playbooks/image.yml -e gpubox_box={name} -e gpubox_image_name={name}-keep), "
            f"declare image: my:{name}-keep, then terminate it (ansible-playbook playbooks/terminate.yml -e "
            f"gpubox_only={name} -e gpubox_confirm=yes) and run site.yml, which launches it anew with its files"
        )

        # autostop, max_hours and stop_at: the instance's tags, which the dynamic inventory gives the autostop role
        retag = {}
        for setting, key in (("autostop", "Autostop"), ("max_hours", "MaxHours")):
            declared = str(int(box.get(setting) or 0))
            if key in tags and tags[key] != declared:
                say(setting, tags[key], declared, "tag")
                retag[key] = declared
        stop_at = str(box.get("stop_at") or "").strip()
        if tags.get("StopAt", "") != stop_at:
            say("stop_at", tags.get("StopAt") or "none", stop_at or "none", "tag")
            retag["StopAt"] = stop_at
        if retag:
            changes.append({"box": name, "instance_id": instance_id, "kind": "tags", "tags": retag})

        # instance type
        current = instance["instance_type"]
        if box["instance_types"] and current not in box["instance_types"]:
            declared = ", ".join(box["instance_types"])
            if spot:
                say(
                    "instance_type",
                    current,
                    declared,
                    "cannot",
                    f"a spot box's type cannot change (its spot request fixes it); to change it, {bake}.",
                )
            elif offered is None:
                check[name] = box["instance_types"]
                say("instance_type", current, declared, "later", "not checked yet")
            elif not (target := _usable(box, instance, offered, type_info)):
                say(
                    "instance_type",
                    current,
                    declared,
                    "cannot",
                    f"none of {declared} is offered in its zone {zone} with a GPU for its image; a box cannot leave "
                    f"its zone in place: to move it, {bake} (with zones: that offer the type).",
                )
            elif state == "stopped":
                say("instance_type", current, target, "now")
                changes.append({**retype, "instance_type": target, "restart": False})
            elif state == "running" and allow_restart:
                say(
                    "instance_type",
                    current,
                    target,
                    "restart",
                    "its address changes; the ssh config and the inventory follow.",
                )
                changes.append({**retype, "instance_type": target, "restart": True})
            elif state == "running":
                say(
                    "instance_type",
                    current,
                    target,
                    "wait",
                    f"EC2 changes a type only while the box is stopped. Run ansible-playbook site.yml -e "
                    f"gpubox_allow_restart=yes (stops it, changes it, starts it), or stop it first (ansible-playbook "
                    f"playbooks/stop.yml -e gpubox_only={name}) and run site.yml.",
                )
            else:
                say(
                    "instance_type",
                    current,
                    target,
                    "later",
                    f"it is {state}; run site.yml again once it is stopped or running.",
                )

        # root volume size
        size = _root_size(instance, volumes)
        declared_size = int(box.get("volume_size") or 0)
        if size is not None and declared_size and declared_size != size:
            if declared_size > size:
                say("volume_size", size, declared_size, "grow")
                changes.append(
                    {
                        "box": name,
                        "instance_id": instance_id,
                        "kind": "volume",
                        "volume_id": _root_volume(instance),
                        "size": declared_size,
                    }
                )
            else:
                say(
                    "volume_size",
                    size,
                    declared_size,
                    "cannot",
                    f"an EBS volume never shrinks: declare volume_size: {size} or more, or, for a smaller disk, "
                    f"start a new box (terminate it and run site.yml; its files go with it unless you keep them "
                    f"elsewhere first).",
                )

        # the data volume: the project's volume tagged DataOf=NAME attached to the instance
        declared_data = int(box.get("data_volume") or 0)
        attached = [
            v
            for v in volumes
            if instance_id in v.get("instance_ids", []) and (v.get("tags") or {}).get("DataOf") == name
        ]
        data_size = attached[0]["size"] if attached else 0
        if declared_data and not attached:
            say("data_volume", "none", declared_data, "data")
            data.append({"name": name, "data_volume": declared_data})
        elif attached and tags.get("DataVolume") != attached[0]["id"]:
            data.append({"name": name, "data_volume": max(declared_data, data_size)})  # the instance names it again
        elif declared_data > data_size:
            say("data_volume", data_size, declared_data, "grow")
            data.append({"name": name, "data_volume": declared_data})
        elif attached and declared_data < data_size:
            keep = (
                f"its data volume {attached[0]['id']} stays as it is: an EBS volume never shrinks, and gpubox never "
                f"deletes a data volume unasked. Declare data_volume: {data_size}"
            )
            if not declared_data:
                keep += (
                    f", or, to delete it, terminate the box with ansible-playbook playbooks/terminate.yml -e "
                    f"gpubox_only={name} -e gpubox_confirm=yes -e gpubox_delete_data=yes"
                )
            say("data_volume", data_size, declared_data, "cannot", keep + ".")

        # what only a new launch can change
        market = "spot" if spot else "on-demand"
        image = [box["image"]] if "Image" in tags and box.get("image") else []
        for setting, now, declared, why in (
            ("market", market, box.get("markets"), f"a box keeps the market it was launched in; to change it, {bake}."),
            (
                "image",
                tags.get("Image"),
                image,
                f"a box keeps the image it was launched from; to start over from {box.get('image')}, terminate it "
                f"(ansible-playbook playbooks/terminate.yml -e gpubox_only={name} -e gpubox_confirm=yes; its files "
                f"go with it) and run site.yml.",
            ),
            (
                "zones",
                zone,
                box.get("zones"),
                f"a box cannot leave its zone in place (its disk is there); to move it, {bake}.",
            ),
        ):
            if declared and now not in declared:
                say(setting, now, ", ".join(declared), "cannot", why)

    return {"rows": rows, "changes": changes, "check": check, "data": data, "lines": plan_lines(rows, notes, project)}


def plan_lines(rows: list[dict], notes: list[str], project: str) -> list[str]:
    if not rows:
        return []
    table = [("BOX", "SETTING", "NOW", "DECLARED", "THIS RUN")] + [
        (r["box"], r["setting"], r["now"], r["declared"], r["action"]) for r in rows
    ]
    lines = [f"Project {project}: what is declared differs from what the boxes are.", *aligned(table)]
    lines += [f"Next: {note}" for note in notes]
    return lines


class FilterModule:
    def filters(self):
        return {"gpubox_box_plan": box_plan}
