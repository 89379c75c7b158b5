"""Each role that owns a unit (or sshd's configuration) removes the drop-ins it did not write: its table of writes,
as vars/main.yml derives it from what the one read found, holds each foreign *.conf of the unit's drop-in folders
in /etc and /run as an absent entry with a handler of the role that reloads systemd (or sshd), and keeps its own
and the allowed ones."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import ROOT, run_local_play

ETC, RUN = "/etc/systemd/system", "/run/systemd/system"
# role: (the variable the read registers, how it holds the listing, the folder, the role's own drop-in or None,
#        the allow setting, the table of what it writes, the handler)
ROLES = {
    "jupyter": ("jupyter_found", None, f"{ETC}/jupyter.service.d", None, "jupyter_allowed_drop_ins",
                "jupyter_writes", "Restart jupyter"),
    "autostop": ("autostop_found", None, f"{ETC}/gpubox-autostop.service.d", None, "autostop_allowed_drop_ins",
                 "autostop_writes", "Restart gpubox-autostop"),
    "base": ("base_found", None, "/etc/ssh/sshd_config.d", "/etc/ssh/sshd_config.d/00-gpubox.conf",
             "base_sshd_allowed_drop_ins", "base_writes", "Reload sshd"),
    "cuda": ("cuda_probe", "persistenced.dropins", f"{ETC}/nvidia-persistenced.service.d",
             f"{ETC}/nvidia-persistenced.service.d/gpubox.conf", "cuda_allowed_drop_ins", "cuda_persistenced_foreign",
             None),
}  # fmt: skip


def handlers(role: str) -> list[str]:
    return [h["name"] for h in yaml.safe_load((ROOT / f"roles/{role}/handlers/main.yml").read_text())]


@pytest.mark.parametrize("role", sorted(ROLES))
def test_a_role_removes_the_drop_ins_it_did_not_write(tmp_path, role):
    found_var, nested, folder, own, allow, writes, handler = ROLES[role]
    runtime = folder.replace(ETC, RUN) if folder.startswith(ETC) else None
    listed = [own, f"{folder}/override.conf", f"{folder}/50-kept.conf", f"{folder}/notes.txt"]
    listed += [f"{runtime}/60-runtime.conf"] if runtime else []
    listing = {"files": [{"path": p} for p in listed if p]}
    found = listing
    if nested:  # the cuda probe's answer: the listing under persistenced.dropins
        outer, inner = nested.split(".")
        found = {outer: {inner: listing}}
    table = [{"path": own, "state": "file", "content": "x"}] if own else []
    extra = {found_var: found, allow: ["50-kept.conf"], f"{role}_files": table, "base_files": table}
    extra.update({"cuda_persistenced_dropin": own} if role == "cuda" else {})
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    play = [
        {
            "name": "Derive",
            "hosts": "localhost",
            "gather_facts": False,
            "vars_files": [str(ROOT / f"roles/{role}/defaults/main.yml"), str(ROOT / f"roles/{role}/vars/main.yml")],
            "tasks": [
                {
                    "name": "Keep",
                    "ansible.builtin.copy": {
                        "content": f"{{{{ {writes} | selectattr('state', 'equalto', 'absent') | list | to_json }}}}",
                        "dest": str(tmp_path / "writes.json"),
                        "mode": "0600",
                    },
                }
            ],
        }
    ]
    out = run_local_play(tmp_path / "play.yml", play, args=("-e", f"@{tmp_path / 'extra.json'}"))
    assert out.returncode == 0, out.stdout[-3000:]
    removed = json.loads((tmp_path / "writes.json").read_text())
    assert [r["path"] for r in removed] == [f"{folder}/override.conf"] + (
        [f"{runtime}/60-runtime.conf"] if runtime else []
    )
    for entry in removed:
        if handler:
            assert entry["notify"] == [handler] and handler in handlers(role)
