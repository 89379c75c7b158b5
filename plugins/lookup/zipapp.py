# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zipapp: a Python package of a role's files/, as one executable zipapp built here, on the controller.

A program that runs on the box may be a package of several modules, yet a box gets one file: the zipapp, a zip
archive behind a shebang line that Python runs as it is. It is built the same, byte for byte, from any checkout:
entries sorted, every timestamp and permission fixed, stored without compression (deflate's output differs between
zlib builds), no bytecode. So a role can compare the box's copy with it (SHA-1) and rewrite it only when the package
changed. The archive is written once into a private cache folder, named by its content's hash, and its path is
returned, for a copy task's src and the filter path_drifts' content_file.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: zipapp
short_description: Build a package of a role's files/ into a deterministic zipapp on the controller; its path
description:
  - Finds each term, a package folder (holding C(__init__.py) and a C(__main__.py) that defines C(main())), in the
    files search path (a role's C(files/) folder when called from the role).
  - Builds a zipapp of its C(.py) files (links followed), behind the shebang of I(interpreter); it runs
    C(PACKAGE.__main__.main()) and exits with what that returns.
  - The bytes depend on the files' content only (sorted entries, fixed timestamps and permissions, no compression,
    no bytecode), so two checkouts build the same archive.
  - Writes it once into a private cache folder (mode 0700; C($XDG_CACHE_HOME/gpubox/zipapp), by default
    C(~/.cache/gpubox/zipapp), or C(gpubox-zipapp-UID) in the temporary folder where that cannot be made), named by
    its SHA-256, with an atomic rename, and returns its path.
options:
  _terms:
    description: The package folders' names, e.g. gpubox_autostop.
    required: true
  interpreter:
    description: The shebang's command line (the interpreter on the box, with its options).
    type: str
    default: /usr/bin/python3
"""

EXAMPLES = r"""
- name: Install the agent (one file on the box)
  ansible.builtin.copy:
    src: "{{ lookup('gpubox.gpubox.zipapp', 'gpubox_autostop', interpreter='/usr/bin/python3 -I') }}"
    dest: /usr/local/sbin/gpubox-autostop
    mode: "0755"
"""

RETURN = r"""
_raw:
  description: The path of each built zipapp on the controller (in the cache folder).
  type: list
  elements: str
"""

import hashlib  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import stat  # noqa: E402
import tempfile  # noqa: E402
import zipfile  # noqa: E402

from ansible.errors import AnsibleError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402

# 1980-01-01 00:00, the earliest time a zip entry can hold: no file's mtime reaches the archive.
EPOCH = (1980, 1, 1, 0, 0, 0)
ENTRY_MODE = stat.S_IFREG | 0o644
MAIN = """# The zipapp's entry point, written by the zipapp lookup of gpubox.gpubox.
from {package}.__main__ import main

raise SystemExit(main())
"""


def package_sources(folder: str) -> dict[str, bytes]:
    """Archive name -> content of every .py file under the package folder (links followed, caches left out)."""
    package = os.path.basename(os.path.normpath(folder))
    sources: dict[str, bytes] = {}
    for root, subdirs, names in os.walk(folder, followlinks=True):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__" and not d.startswith("."))
        for name in names:
            if name.endswith(".py") and not name.startswith("."):
                path = os.path.join(root, name)
                relative = os.path.relpath(path, folder).replace(os.sep, "/")
                with open(path, "rb") as handle:
                    sources[f"{package}/{relative}"] = handle.read()
    if f"{package}/__init__.py" not in sources or f"{package}/__main__.py" not in sources:
        raise ValueError(f"{folder} is not a runnable package: it needs __init__.py and __main__.py")
    sources["__main__.py"] = MAIN.format(package=package).encode()
    return sources


def build(folder: str, interpreter: str = "/usr/bin/python3") -> bytes:
    """The zipapp of the package folder: the same bytes for the same sources, whatever their mtimes or modes."""
    out = io.BytesIO()
    out.write(b"#!" + interpreter.encode() + b"\n")
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, content in sorted(package_sources(folder).items()):
            entry = zipfile.ZipInfo(name, date_time=EPOCH)
            entry.create_system = 3  # Unix, whatever builds it: the permissions below are Unix ones
            entry.external_attr = ENTRY_MODE << 16
            archive.writestr(entry, content)
    return out.getvalue()


def cache_dir() -> str:
    """A folder of this user's only: another user must not swap the program that goes to the box as root. The
    user's cache folder, or, where there is no writable home (a job container), one in the temporary folder."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "gpubox", "zipapp")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError:
        folder = os.path.join(tempfile.gettempdir(), f"gpubox-zipapp-{os.geteuid()}")
        os.makedirs(folder, mode=0o700, exist_ok=True)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise AnsibleError(f"{folder} is not a folder of this user's: the zipapp lookup will not write there")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(folder, 0o700)
    return folder


def store(data: bytes, name: str) -> str:
    """The archive in the cache, as NAME-SHA256.pyz: written to a temporary file, then renamed, once."""
    path = os.path.join(cache_dir(), f"{name}-{hashlib.sha256(data).hexdigest()[:32]}.pyz")
    try:
        with open(path, "rb") as handle:
            if handle.read() == data:
                return path
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        interpreter = self.get_option("interpreter")
        paths = []
        for term in terms:
            folder = self.find_file_in_search_path(variables, "files", term, ignore_missing=True)
            if not folder or not os.path.isdir(folder):
                raise AnsibleError(f"zipapp: no package folder {term!r} in the files search path")
            try:
                data = build(folder, interpreter)
            except (OSError, ValueError) as exc:
                raise AnsibleError(f"zipapp: cannot build {term}: {exc}") from exc
            paths.append(store(data, os.path.basename(os.path.normpath(folder))))
        return paths
