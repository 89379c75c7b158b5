"""The cuda role's platform variables, evaluated by Ansible for each production platform.

One ansible-playbook run loads the real role (defaults, vars, argument specs and its validation tasks)
for many local "hosts", each given the facts a box of one platform reports (a tiny module returns them,
as the setup module would there), and writes what the role computed: NVIDIA's repository directory,
package names, driver flavour. Nothing is installed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, run_ansible

NVIDIA = "https://developer.download.nvidia.com/compute/cuda/repos"

FAKE_FACTS_MODULE = """#!/usr/bin/python
# Returns the facts it is given, as the setup module would on a box of that platform.
from ansible.module_utils.basic import AnsibleModule

module = AnsibleModule(argument_spec={"facts": {"type": "dict", "required": True}}, supports_check_mode=True)
module.exit_json(changed=False, ansible_facts=module.params["facts"])
"""


def facts(distribution: str, version: str, arch: str = "x86_64") -> dict:
    """The minimal facts configure.yml gathers (gather_subset: min)."""
    return {
        "distribution": distribution,
        "distribution_version": version,
        "distribution_major_version": version.split(".")[0],
        "architecture": arch,
    }


INSTANCE_TYPES = ["g4dn.xlarge", "g5.2xlarge", "g6.xlarge", "g6e.xlarge", "p4d.24xlarge", "p5.48xlarge"]
INSTANCE_TYPES += ["p3.2xlarge", "p3dn.24xlarge"]

# host -> (facts, extra host vars)
HOSTS: dict[str, tuple[dict, dict]] = {
    "ubuntu2204-x86": (facts("Ubuntu", "22.04"), {}),
    "ubuntu2204-arm": (facts("Ubuntu", "22.04", "aarch64"), {}),
    "ubuntu2404-x86": (facts("Ubuntu", "24.04"), {}),
    "ubuntu2404-arm": (facts("Ubuntu", "24.04", "aarch64"), {}),
    "debian12-x86": (facts("Debian", "12.8"), {}),
    "debian13-x86": (facts("Debian", "13.1"), {}),
    "debian13-arm": (facts("Debian", "13.1", "aarch64"), {}),
    "cuda13": (facts("Ubuntu", "24.04"), {"cuda_toolkit_version": "13.0", "cuda_driver_branch": "590"}),
    # Driver flavour from the instance family (explicit, or the Nitro DMI product name the detection read).
    **{f"type-{t}": (facts("Ubuntu", "24.04"), {"cuda_instance_type": t}) for t in INSTANCE_TYPES},
    "dmi-g5": (facts("Ubuntu", "24.04"), {"test_product": "g5.xlarge"}),
    "dmi-p3": (facts("Ubuntu", "22.04"), {"test_product": "p3.8xlarge"}),
    # Unknown family: from the GPU on the PCI bus (V100 0x1db1 is Volta; H100 0x2330 is Hopper).
    "pci-volta": (facts("Ubuntu", "24.04"), {"test_product": "x9.large", "test_pci_ids": ["0x1db1"]}),
    "pci-hopper": (facts("Ubuntu", "24.04"), {"test_product": "x9.large", "test_pci_ids": ["0x2330"]}),
    "pci-none": (facts("Debian", "12.8"), {"test_product": "Standard PC (Q35 + ICH9, 2009)"}),
    # An explicit flavour wins over the family.
    "override": (facts("Ubuntu", "24.04"), {"cuda_instance_type": "g5.xlarge", "cuda_driver_flavour": "proprietary"}),
    "mirror": (facts("Debian", "12.8"), {"cuda_repo_base_url": "http://10.0.0.1:8000/nvidia/"}),
}

PLAY = """
- name: Evaluate the cuda role's platform variables
  hosts: all
  gather_facts: false
  tasks:
    - name: Facts of the platform
      gpubox_fake_facts:
        facts: "{{ platform_facts }}"

    - name: Load the role (defaults, vars, argument specs, settings check)
      ansible.builtin.include_role:
        name: cuda
        tasks_from: validate.yml
        public: true

    - name: GPUs on the PCI bus and the DMI product name, as detection would record them
      ansible.builtin.set_fact:
        cuda_gpu_pci_ids: "{{ test_pci_ids | default([]) }}"
        cuda_probe: {product_name: "{{ test_product | default('Standard PC') }}"}

    - name: Write what the role computed
      ansible.builtin.copy:
        dest: "{{ out_dir }}/{{ inventory_hostname }}.json"
        mode: "0644"
        content: >-
          {{ {'distro': cuda_repo_distro, 'arch': cuda_repo_arch, 'url': cuda_repo_url,
              'key_url': cuda_repo_key_url, 'supported': cuda_repo_distro in cuda_repo_distros,
              'toolkit_package': cuda_toolkit_package, 'home': cuda_home,
              'family': cuda_instance_family, 'flavour': cuda_driver_flavour_effective,
              'driver_packages': cuda_driver_package_list} | to_json }}
"""


def write_inventory(path: Path, hosts: dict[str, tuple[dict, dict]]) -> None:
    inv = {
        "all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
            "hosts": {name: {"platform_facts": f, **extra} for name, (f, extra) in hosts.items()},
        }
    }
    path.write_text(yaml.safe_dump(inv))


def ansible_env(tmp: Path) -> dict[str, str]:
    library = tmp / "library"
    library.mkdir(exist_ok=True)
    (library / "gpubox_fake_facts.py").write_text(FAKE_FACTS_MODULE)
    return {
        "ANSIBLE_LIBRARY": str(library),
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_CACHE_PLUGIN": "memory",  # fake facts stay out of the project's fact cache
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",  # a failed result on one line
    }


@pytest.fixture(scope="module")
def computed(tmp_path_factory) -> dict[str, dict]:
    tmp = tmp_path_factory.mktemp("cuda-platform")
    out = tmp / "out"
    out.mkdir()
    write_inventory(tmp / "hosts.yml", HOSTS)
    (tmp / "play.yml").write_text(PLAY)
    run_ansible(
        ["ansible-playbook", "-i", str(tmp / "hosts.yml"), str(tmp / "play.yml"), "-e", f"out_dir={out}"],
        env=ansible_env(tmp),
    )
    return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}


@pytest.mark.parametrize(
    ("host", "distro", "arch"),
    [
        ("ubuntu2204-x86", "ubuntu2204", "x86_64"),
        ("ubuntu2204-arm", "ubuntu2204", "sbsa"),
        ("ubuntu2404-x86", "ubuntu2404", "x86_64"),
        ("ubuntu2404-arm", "ubuntu2404", "sbsa"),
        ("debian12-x86", "debian12", "x86_64"),
        ("debian13-x86", "debian13", "x86_64"),
        ("debian13-arm", "debian13", "sbsa"),
    ],
)
def test_repository_directory(computed, host, distro, arch):
    c = computed[host]
    assert (c["distro"], c["arch"], c["supported"]) == (distro, arch, True)
    assert c["url"] == f"{NVIDIA}/{distro}/{arch}/"
    assert c["key_url"] == f"{NVIDIA}/{distro}/{arch}/3bf863cc.pub"


def test_base_url_is_a_plain_variable(computed):
    assert computed["mirror"]["url"] == "http://10.0.0.1:8000/nvidia/debian12/x86_64/"


def test_default_packages(computed):
    c = computed["ubuntu2404-x86"]
    assert c["toolkit_package"] == "cuda-toolkit-12-8"
    assert c["home"] == "/usr/local/cuda-12.8"


def test_other_versions(computed):
    c = computed["cuda13"]
    assert c["toolkit_package"] == "cuda-toolkit-13-0"
    assert c["home"] == "/usr/local/cuda-13.0"
    assert c["driver_packages"] in (["nvidia-open-590"], ["cuda-drivers-590"])


@pytest.mark.parametrize(
    ("host", "family", "flavour", "packages"),
    [
        ("type-g4dn.xlarge", "g4dn", "open", ["nvidia-open-580"]),
        ("type-g5.2xlarge", "g5", "open", ["nvidia-open-580"]),
        ("type-g6.xlarge", "g6", "open", ["nvidia-open-580"]),
        ("type-g6e.xlarge", "g6e", "open", ["nvidia-open-580"]),
        ("type-p4d.24xlarge", "p4d", "open", ["nvidia-open-580"]),
        ("type-p5.48xlarge", "p5", "open", ["nvidia-open-580"]),
        ("type-p3.2xlarge", "p3", "proprietary", ["cuda-drivers-580"]),
        ("type-p3dn.24xlarge", "p3dn", "proprietary", ["cuda-drivers-580"]),
        ("dmi-g5", "g5", "open", ["nvidia-open-580"]),
        ("dmi-p3", "p3", "proprietary", ["cuda-drivers-580"]),
        ("pci-volta", "x9", "proprietary", ["cuda-drivers-580"]),
        ("pci-hopper", "x9", "open", ["nvidia-open-580"]),
        ("pci-none", "standard pc (q35 + ich9, 2009)", "open", ["nvidia-open-580"]),
        ("override", "g5", "proprietary", ["cuda-drivers-580"]),
    ],
)
def test_driver_flavour(computed, host, family, flavour, packages):
    c = computed[host]
    assert (c["family"], c["flavour"], c["driver_packages"]) == (family, flavour, packages)


def run_one(tmp_path: Path, facts_: dict, extra: dict, tasks_from: str = "validate.yml"):
    """Run one entry point of the role in check mode; it is expected to stop at its checks (and if it did
    not, its downloads would go to a closed port on loopback)."""
    write_inventory(tmp_path / "hosts.yml", {"box": (facts_, extra)})
    (tmp_path / "play.yml").write_text(
        PLAY.split("    - name: GPUs on the PCI bus")[0].replace("validate.yml", tasks_from)
    )
    return run_ansible(
        [
            *("ansible-playbook", "--check", "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")),
            *("-e", "cuda_repo_base_url=http://127.0.0.1:9/"),
        ],
        env=ansible_env(tmp_path),
        check=False,
    )


def failure_message(proc) -> str:
    """The failure messages themselves (ansible-core prints the task's source under them too)."""
    return "\n".join(
        json.loads(line.split("=> ", 1)[1]).get("msg", "")
        for line in proc.stdout.splitlines()
        if line.startswith("fatal: ")
    )


def test_unsupported_platform_is_named(tmp_path):
    proc = run_one(tmp_path, facts("Ubuntu", "20.04"), {}, tasks_from="repo.yml")
    assert proc.returncode != 0
    msg = failure_message(proc)
    assert "ubuntu2004/x86_64" in msg and "ubuntu2204, ubuntu2404, debian12, debian13" in msg


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"cuda_toolkit_version": "12"}, "cuda_toolkit_version '12' is not a CUDA release"),
        ({"cuda_driver_branch": "latest"}, "cuda_driver_branch 'latest' is not an NVIDIA driver branch"),
        ({"cuda_repo_key_fingerprint": "3bf863cc"}, "cuda_repo_key_fingerprint '3bf863cc' is not a full"),
        ({"cuda_driver_flavour_by_family": {"p3": "closed"}}, "{'p3': 'closed'}"),
    ],
)
def test_bad_settings_are_refused_with_their_value(tmp_path, extra, named):
    proc = run_one(tmp_path, facts("Ubuntu", "24.04"), extra)
    assert proc.returncode != 0
    assert named in failure_message(proc)


def test_wrong_choice_refused_by_argument_spec(tmp_path):
    proc = run_one(tmp_path, facts("Ubuntu", "24.04"), {"cuda_driver_flavour": "closed"}, tasks_from="main")
    assert proc.returncode != 0
    msg = failure_message(proc)
    assert "cuda_driver_flavour" in msg and "closed" in msg and "open, proprietary" in msg


def test_wrong_type_refused_by_argument_spec(tmp_path):
    proc = run_one(tmp_path, facts("Ubuntu", "24.04"), {"cuda_driver_force": "sometimes"}, tasks_from="main")
    assert proc.returncode != 0
    msg = failure_message(proc)
    assert "cuda_driver_force" in msg and "bool" in msg
