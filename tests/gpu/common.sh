# Shared by the scripts that run a playbook on the real GPU machine with -c local (tests/gpu/run.sh,
# tests/gpu/benchmark.sh): that machine has no network, no systemd, the driver's tools and libcuda under
# /usr/local/nvidia, and a python3 (3.12 venv) without ansible-core. Source it; it defines functions only.

# Find the driver's tools and libcuda, and run with a UTF-8 locale and unbuffered Python.
gpu_machine_env() {
  export LC_ALL=C.UTF-8 LANG=C.UTF-8 PYTHONUNBUFFERED=1
  local d
  for d in /usr/local/nvidia/bin; do [[ -d $d ]] && PATH=$d:$PATH; done
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    [[ -d $d ]] && LD_LIBRARY_PATH=$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  done
  export PATH LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
}

# install_carried_ansible WHEELS_DIR SITE_DIR: install the wheels carried from tests/gpu/fetch-wheels.sh into
# SITE_DIR with python3 (no index, no dependencies resolved) and put SITE_DIR on PYTHONPATH. Prints the
# ansible-core version; returns non-zero, with the reason on stderr, when that cannot be done.
install_carried_ansible() {
  local wheels=$1 site=$2
  local whl=()
  shopt -s nullglob
  whl=("$wheels"/*.whl)
  shopt -u nullglob
  if ((${#whl[@]} == 0)); then
    echo "no wheels in $wheels: run tests/gpu/fetch-wheels.sh where PyPI is reachable" >&2
    return 1
  fi
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "${whl[@]}" \
    || { echo "could not install the carried wheels into $site" >&2; return 1; }
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
  python3 -c 'import ansible.release as r; print("ansible-core", r.__version__)' \
    || { echo "ansible-core does not import" >&2; return 1; }
}

# write_local_ansible_cfg CFG ROOT INVENTORY: an ansible.cfg for -c local runs with the project's roles (the
# project's own ansible.cfg enables a callback from a collection that ansible-core alone lacks).
write_local_ansible_cfg() {
  cat >"$1" <<CFG
[defaults]
roles_path = $2/roles
inventory = $3
callback_result_format = yaml
interpreter_python = $(command -v python3)
retry_files_enabled = false
gathering = implicit
CFG
}
