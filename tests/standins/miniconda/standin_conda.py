"""Stand-in for `conda` inside the stand-in Miniconda/Miniforge installers (tests/standins/miniconda/).

It implements only what gpubox's miniconda role runs, with conda's option names, messages and exit codes,
and refuses everything else the way conda would (unknown options: exit 2; conda errors: exit 1):

  conda --version
  conda init bash
  conda shell.posix|shell.bash hook | activate NAME | deactivate
  conda env create --file FILE [--name NAME | --prefix PATH] [--yes] [--quiet]
  conda env update --file FILE [--name NAME | --prefix PATH] [--prune] [--quiet]
  conda env list [--json]
  conda tos [--json] [--override-channels] [--channel URL ...]          (Miniconda only)
  conda tos accept [--override-channels] --channel URL ...             (Miniconda only)

Environments are real: the interpreter shipped in the installer (CPython, like conda's python package) is
linked into the environment, and the `pip:` section is installed by that environment's pip from PyPI.
The stand-in's channel holds only `python` (the shipped version) and `pip`; any other conda package, or a
python version it does not have, fails with PackagesNotFoundError, as conda fails for a missing package.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

PREFIX = Path(sys.prefix)
DIST = json.loads((PREFIX / "standin-distribution.json").read_text())
PY_VERSION = DIST["python_version"]
PY_MINOR = ".".join(PY_VERSION.split(".")[:2])
PIP_VERSION = next(
    (p.name.split("-")[1] for p in (PREFIX / "lib" / f"python{PY_MINOR}" / "ensurepip" / "_bundled").glob("pip-*.whl")),
    "0",
)
ANACONDA_MAIN = "https://repo.anaconda.com/pkgs/main"
ANACONDA_R = "https://repo.anaconda.com/pkgs/r"
TOS_CHANNELS = (ANACONDA_MAIN, ANACONDA_R)
BASHRC_BEGIN = "# >>> conda initialize >>>"
BASHRC_END = "# <<< conda initialize <<<"


class CondaError(Exception):
    """A conda error: printed as `Name: message`, exit status 1."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


# --- configuration ------------------------------------------------------------------------------------


def condarc() -> dict:
    """Merged .condarc settings: the installation's, then the user's (later wins), as conda reads them."""
    merged: dict = {}
    for path in (PREFIX / ".condarc", Path.home() / ".condarc"):
        if path.is_file():
            data = yaml.safe_load(path.read_text()) or {}
            if not isinstance(data, dict):
                raise CondaError("CondaError", f"Invalid configuration file {path}: not a mapping")
            merged.update(data)
    return merged


def auto_activate() -> bool:
    rc = condarc()
    return bool(rc.get("auto_activate", rc.get("auto_activate_base", True)))


def channel_urls(channels: list[str]) -> list[str]:
    urls = []
    for ch in channels:
        if ch == "nodefaults":
            continue
        if ch == "defaults":
            urls += list(TOS_CHANNELS)
        elif "://" in ch:
            urls.append(ch.rstrip("/"))
        else:
            urls.append(f"https://conda.anaconda.org/{ch}")
    return urls


def default_channels() -> list[str]:
    return list(condarc().get("channels") or ["defaults"])


# --- Terms of Service (conda-anaconda-tos, shipped with Miniconda only) ----------------------------------


def tos_root() -> Path:
    return Path.home() / ".conda" / "tos"


def tos_record(url: str) -> dict | None:
    path = tos_root() / (hashlib.sha256(url.encode()).hexdigest()[:16] + ".json")
    return json.loads(path.read_text()) if path.is_file() else None


def require_tos_plugin(args) -> None:
    if DIST["distribution"] != "miniconda":
        raise CondaError("CommandNotFoundError", "No command 'conda tos'.")


def cmd_tos(args) -> int:
    require_tos_plugin(args)
    if args.override_channels and not args.channel:
        raise CondaError(
            "ArgumentError", "At least one -c / --channel flag must be supplied when using --override-channels."
        )
    channels = (args.channel or []) if args.override_channels else default_channels() + (args.channel or [])
    urls = channel_urls(channels)
    if args.tos_cmd == "accept":
        tos_root().mkdir(parents=True, exist_ok=True)
        for url in urls:
            if url not in TOS_CHANNELS:
                print(f"Terms of Service not found for {url}")
                continue
            now = _dt.datetime.now(_dt.UTC).isoformat()
            record = {"base_url": url, "tos_accepted": True, "acceptance_timestamp": now, "version": "2025-05-01"}
            path = tos_root() / (hashlib.sha256(url.encode()).hexdigest()[:16] + ".json")
            path.write_text(json.dumps(record) + "\n")
            print(f"accepted Terms of Service for {url}")
        return 0
    listing = {url: (tos_record(url) if url in TOS_CHANNELS else None) for url in urls}
    if args.json:
        print(json.dumps(listing, indent=2))
    else:
        for url, rec in listing.items():
            state = "-" if url not in TOS_CHANNELS else ("accepted" if rec else "pending")
            print(f"{url:50} {state}")
    return 0


def check_tos(urls: list[str]) -> None:
    """conda-anaconda-tos's pre-command check: unattended runs fail until the ToS is accepted."""
    if DIST["distribution"] != "miniconda":
        return
    pending = [u for u in urls if u in TOS_CHANNELS and not (tos_record(u) or {}).get("tos_accepted")]
    if pending:
        lines = "\n".join(f"    - {u}" for u in pending)
        raise CondaError(
            "CondaToSNonInteractiveError",
            "Terms of Service have not been accepted for the following channels. Please accept or remove them "
            f"before proceeding:\n{lines}\n\nTo accept these channels' Terms of Service, run the following "
            "commands:\n" + "\n".join(f"    conda tos accept --override-channels --channel {u}" for u in pending),
        )


# --- shell integration -----------------------------------------------------------------------------------


def q(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


def cmd_shell(args) -> int:
    if args.shell_cmd == "hook":
        print(f"export CONDA_EXE={q(str(PREFIX / 'bin' / 'conda'))}")
        print(f"export CONDA_PYTHON_EXE={q(str(PREFIX / 'bin' / 'python'))}")
        print(
            "conda() {\n"
            '    case "${1:-}" in\n'
            '        activate|deactivate) __conda_cmd="$1"; shift\n'
            '            __conda_out="$("$CONDA_EXE" shell.posix "$__conda_cmd" "$@")" || return $?\n'
            '            eval "$__conda_out"; unset __conda_cmd __conda_out ;;\n'
            '        *) "$CONDA_EXE" "$@" ;;\n'
            "    esac\n"
            "}"
        )
        if auto_activate():
            print("conda activate base")
        return 0
    if args.shell_cmd == "activate":
        name = args.env or "base"
        target = PREFIX if name == "base" else (Path(name) if "/" in name else PREFIX / "envs" / name)
        if not (target / "conda-meta").is_dir():
            raise CondaError("EnvironmentNameNotFound", f"Could not find conda environment: {name}")
        path = os.environ.get("PATH", "")
        old = os.environ.get("CONDA_PREFIX")
        if old:
            path = os.pathsep.join(p for p in path.split(os.pathsep) if p != f"{old}/bin")
        print(f"export PATH={q(str(target / 'bin') + os.pathsep + path)}")
        print(f"export CONDA_PREFIX={q(str(target))}")
        print(f"export CONDA_DEFAULT_ENV={q(name)}")
        print("export CONDA_SHLVL=1")
        print(f"export CONDA_PROMPT_MODIFIER={q(f'({name}) ')}")
        return 0
    old = os.environ.get("CONDA_PREFIX")
    if old:
        path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != f"{old}/bin")
        print(f"export PATH={q(path)}")
    print("unset CONDA_PREFIX CONDA_DEFAULT_ENV CONDA_PROMPT_MODIFIER")
    print("export CONDA_SHLVL=0")
    return 0


def cmd_init(args) -> int:
    if args.shells != ["bash"]:
        raise CondaError("CondaError", f"this stand-in conda initializes bash only, not {args.shells}")
    block = (
        f"{BASHRC_BEGIN}\n"
        "# !! Contents within this block are managed by 'conda init' !!\n"
        f"__conda_setup=\"$('{PREFIX}/bin/conda' 'shell.bash' 'hook' 2> /dev/null)\"\n"
        "if [ $? -eq 0 ]; then\n"
        '    eval "$__conda_setup"\n'
        "else\n"
        f'    if [ -f "{PREFIX}/etc/profile.d/conda.sh" ]; then\n'
        f'        . "{PREFIX}/etc/profile.d/conda.sh"\n'
        "    else\n"
        f'        export PATH="{PREFIX}/bin:$PATH"\n'
        "    fi\n"
        "fi\n"
        "unset __conda_setup\n"
        f"{BASHRC_END}\n"
    )
    bashrc = Path.home() / ".bashrc"
    text = bashrc.read_text() if bashrc.exists() else ""
    pattern = re.compile(re.escape(BASHRC_BEGIN) + r".*?" + re.escape(BASHRC_END) + r"\n?", re.S)
    new = pattern.sub(lambda _m: block, text) if pattern.search(text) else text + ("\n" if text else "") + block
    for path in ("condabin/conda", "bin/conda", "etc/profile.d/conda.sh"):
        print(f"no change     {PREFIX / path}")
    if new == text:
        print(f"no change     {bashrc}")
        print("No action taken.")
        return 0
    if not args.dry_run:
        bashrc.write_text(new)
    print(f"modified      {bashrc}")
    print("\n==> For changes to take effect, close and re-open your current shell. <==\n")
    return 0


# --- environments ------------------------------------------------------------------------------------------

SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)\s*(?:(?P<op>==|=|>=|<=|>|<|!=)\s*(?P<ver>[0-9][0-9A-Za-z.*]*))?$")


def vtuple(v: str) -> tuple:
    return tuple(int(x) if x.isdigit() else x for x in v.split("."))


def satisfies(version: str, op: str | None, want: str | None) -> bool:
    if op is None:
        return True
    if op == "=" or want.endswith("*"):  # conda's fuzzy match: 3.11 means 3.11.*
        stem = want.rstrip("*").rstrip(".")
        return version == stem or version.startswith(stem + ".")
    have, need = vtuple(version), vtuple(want)
    return {
        "==": have == need,
        "!=": have != need,
        ">=": have >= need,
        "<=": have <= need,
        ">": have > need,
        "<": have < need,
    }[op]


def resolve(deps: list, channels: list[str]) -> tuple[dict[str, str], list[str]]:
    """The packages of the stand-in channel that satisfy the conda specs, and the pip requirements."""
    index = {"python": PY_VERSION, "pip": PIP_VERSION}
    chosen: dict[str, str] = {}
    missing: list[str] = []
    pip_reqs: list[str] = []
    for dep in deps:
        if isinstance(dep, dict) and set(dep) == {"pip"} and isinstance(dep["pip"], list):
            pip_reqs += [str(r) for r in dep["pip"]]
            continue
        if not isinstance(dep, str):
            raise CondaError("CondaValueError", f"invalid dependency in environment file: {dep!r}")
        m = SPEC.match(dep.strip())
        if not m:
            raise CondaError("InvalidMatchSpec", f"Invalid spec '{dep}'")
        name = m["name"].lower()
        if name in index and satisfies(index[name], m["op"], m["ver"]):
            chosen[name] = index[name]
        else:
            missing.append(dep)
    if missing:
        lines = "\n".join(f"  - {d}" for d in missing)
        chans = "\n".join(f"  - {c}" for c in channels)
        raise CondaError(
            "PackagesNotFoundError",
            f"The following packages are not available from current channels:\n\n{lines}\n\n"
            f"Current channels:\n\n{chans}\n\n"
            f"(This stand-in's channel holds only python {PY_VERSION} and pip {PIP_VERSION}.)\n\n"
            "To search for alternate channels that may provide the conda package you're\n"
            "looking for, navigate to\n\n    https://anaconda.org\n",
        )
    if "python" not in chosen:
        raise CondaError("CondaValueError", "the stand-in conda creates Python environments only: list python")
    return chosen, pip_reqs


def load_env_file(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise CondaError("EnvironmentFileNotFound", f"'{p.resolve()}' file not found")
    data = yaml.safe_load(p.read_text())
    if not isinstance(data, dict):
        raise CondaError("CondaValueError", f"invalid environment file {p}: not a mapping")
    for key in set(data) - {"name", "channels", "dependencies", "prefix", "variables"}:
        print(f"EnvironmentSectionNotValid: The following section on '{p}' is invalid and will be ignored:\n - {key}")
    if not isinstance(data.get("dependencies", []), list) or not isinstance(data.get("channels", []), list):
        raise CondaError("CondaValueError", f"invalid environment file {p}: dependencies and channels are lists")
    return data


def target_prefix(args, data: dict) -> Path:
    if args.prefix:
        return Path(args.prefix).expanduser().resolve()
    name = args.name or data.get("name")
    if not name:
        raise CondaError("CondaValueError", "please specify a name or a prefix (--name / --prefix)")
    if name == "base":
        raise CondaError("CondaValueError", "'base' is a reserved environment name")
    if not re.fullmatch(r"[^/\s:#]+", name):
        raise CondaError("CondaValueError", f"Invalid environment name: '{name}'")
    return PREFIX / "envs" / name


def link_python(env: Path) -> None:
    """Hard-link the interpreter and its standard library into the environment (conda links packages)."""
    lib = f"python{PY_MINOR}"
    (env / "bin").mkdir(parents=True)
    files = [PREFIX / "bin" / f"python{PY_MINOR}", *sorted((PREFIX / "lib").glob("libpython*"))]
    for src in files:
        dst = env / src.relative_to(PREFIX)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        else:
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
    for alias in ("python3", "python"):
        (env / "bin" / alias).symlink_to(f"python{PY_MINOR}")

    def ignore(directory: str, names: list[str]) -> list[str]:
        skip = {"__pycache__"}
        if Path(directory) == PREFIX / "lib" / lib:
            skip.add("site-packages")
        return [n for n in names if n in skip]

    shutil.copytree(PREFIX / "lib" / lib, env / "lib" / lib, ignore=ignore, copy_function=_link_or_copy)
    (env / "lib" / lib / "site-packages").mkdir()


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def record(env: Path, packages: dict[str, str], argv: list[str]) -> None:
    meta = env / "conda-meta"
    meta.mkdir(exist_ok=True)
    for name, version in packages.items():
        (meta / f"{name}-{version}-standin_0.json").write_text(
            json.dumps({"name": name, "version": version, "build": "standin_0", "channel": "stand-in"}) + "\n"
        )
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    with (meta / "history").open("a") as h:
        h.write(f"==> {stamp} <==\n# cmd: {' '.join(argv)}\n# conda version: {DIST['conda_version']}\n")
        h.writelines(f"+stand-in::{n}-{v}-standin_0\n" for n, v in packages.items())


def pip_install(env: Path, reqs: list[str], quiet: bool) -> None:
    """What conda does with an environment file's pip section: `python -m pip install -U -r FILE`."""
    python = str(env / "bin" / "python")
    if not (env / "bin" / "pip").exists():
        subprocess.run([python, "-m", "ensurepip", "--default-pip"], check=True, capture_output=True)
    with tempfile.NamedTemporaryFile("w", prefix="condaenv.", suffix=".requirements.txt", delete=False) as f:
        f.write("\n".join(reqs) + "\n")
    print("Installing pip dependencies: ...working...", flush=True)
    proc = subprocess.run(
        [python, "-m", "pip", "install", "-U", "-r", f.name, "--exists-action=b"], capture_output=True, text=True
    )
    os.unlink(f.name)
    if proc.returncode != 0:
        print(f"Pip subprocess error:\n{proc.stderr}{proc.stdout[-4000:]}", file=sys.stderr)
        raise CondaError("CondaEnvException", "Pip failed")
    print(" done")
    if not quiet:
        print(proc.stdout[-2000:])


def cmd_env_create(args, update: bool) -> int:
    data = load_env_file(args.file)
    env = target_prefix(args, data)
    channels = [str(c) for c in data.get("channels") or default_channels()]
    urls = channel_urls(channels)
    check_tos(urls)
    is_env = (env / "conda-meta").is_dir()
    if not update and env.exists():
        if is_env and not args.yes:
            raise CondaValueErrorExists(env)
        if not is_env and any(env.iterdir()):
            raise CondaError(
                "DirectoryNotACondaEnvironmentError",
                f"The target directory exists, but it is not a "
                f"conda environment.\nUse 'conda create' to convert the directory to a conda "
                f"environment.\n  target directory: {env}",
            )
    if update and env.exists() and not is_env:
        raise CondaError("DirectoryNotACondaEnvironmentError", f"not a conda environment: {env}")
    print("Channels:\n" + "".join(f" - {c}\n" for c in channels) + "Platform: linux-64")
    print("Collecting package metadata (repodata.json): done\nSolving environment: done")
    packages, pip_reqs = resolve(list(data.get("dependencies") or []), channels)
    if pip_reqs and "pip" not in packages:
        raise CondaError("CondaEnvException", "the environment file has a pip section but does not list pip")
    if not is_env or not update:
        if env.exists():
            shutil.rmtree(env)
        try:
            link_python(env)
            record(env, packages, ["conda", *sys.argv[1:]])
        except BaseException:
            shutil.rmtree(env, ignore_errors=True)  # conda rolls back a failed transaction
            raise
    else:
        record(env, {}, ["conda", *sys.argv[1:]])
    if pip_reqs:
        pip_install(env, pip_reqs, args.quiet)
    if not update:
        name = env.name if env.parent == PREFIX / "envs" else env
        print(
            f"\n#\n# To activate this environment, use\n#\n#     $ conda activate {name}\n#\n"
            "# To deactivate an active environment, use\n#\n#     $ conda deactivate\n"
        )
    return 0


def CondaValueErrorExists(env: Path) -> CondaError:  # noqa: N802 - named after conda's error
    return CondaError("CondaValueError", f"prefix already exists: {env}")


def cmd_env_list(args) -> int:
    envs = [PREFIX, *sorted(p for p in (PREFIX / "envs").glob("*") if (p / "conda-meta").is_dir())]
    if args.json:
        print(json.dumps({"envs": [str(e) for e in envs]}, indent=2))
        return 0
    print("# conda environments:\n#")
    for e in envs:
        print(f"{'base' if e == PREFIX else e.name:25}{'*' if str(e) == os.environ.get('CONDA_PREFIX') else ' '}  {e}")
    return 0


def cmd_record_install(args) -> int:
    """Called once by the installer: the base environment's history, and Miniforge's channel setting."""
    record(PREFIX, {"python": PY_VERSION, "conda": DIST["conda_version"]}, [args.installer])
    if DIST["distribution"] == "miniforge":
        (PREFIX / ".condarc").write_text("channels:\n  - conda-forge\n")
    return 0


# --- command line --------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="conda", description="stand-in conda (see the module docstring)")
    p.add_argument("-V", "--version", action="version", version=f"conda {DIST['conda_version']}")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    init = sub.add_parser("init")
    init.add_argument("shells", nargs="+")
    init.add_argument("-d", "--dry-run", action="store_true")

    for shell in ("shell.posix", "shell.bash"):
        sh = sub.add_parser(shell)
        sh.add_argument("shell_cmd", choices=["hook", "activate", "deactivate"])
        sh.add_argument("env", nargs="?")

    env = sub.add_parser("env").add_subparsers(dest="env_cmd", required=True, metavar="COMMAND")
    for name in ("create", "update"):
        e = env.add_parser(name)
        e.add_argument("-f", "--file", default="environment.yml")
        target = e.add_mutually_exclusive_group()
        target.add_argument("-n", "--name")
        target.add_argument("-p", "--prefix")
        e.add_argument("-q", "--quiet", action="store_true")
        if name == "create":
            e.add_argument("-y", "--yes", action="store_true")
        else:
            e.add_argument("--prune", action="store_true")
    lst = env.add_parser("list")
    lst.add_argument("--json", action="store_true")

    tos = sub.add_parser("tos")
    tos_sub = tos.add_subparsers(dest="tos_cmd", metavar="COMMAND")
    for t in (tos, tos_sub.add_parser("accept")):
        t.add_argument("-c", "--channel", action="append")
        t.add_argument("--override-channels", action="store_true")
        t.add_argument("--json", action="store_true")

    rec = sub.add_parser("_standin_record_install")
    rec.add_argument("--reinstall", default="0")
    rec.add_argument("--installer", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    sys.stdout.reconfigure(line_buffering=True)  # progress lines and errors in order, as conda prints them
    args = parser().parse_args(argv)
    try:
        if args.cmd == "init":
            return cmd_init(args)
        if args.cmd.startswith("shell."):
            return cmd_shell(args)
        if args.cmd == "tos":
            return cmd_tos(args)
        if args.cmd == "_standin_record_install":
            return cmd_record_install(args)
        if args.env_cmd == "list":
            return cmd_env_list(args)
        if args.env_cmd == "update":
            args.yes = False
        return cmd_env_create(args, update=args.env_cmd == "update")
    except CondaError as err:
        print(f"\n{err.name}: {err}\n", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
