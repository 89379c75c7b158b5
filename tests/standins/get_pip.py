"""
Stand-in for pip's bootstrap script (get-pip.py), which ansible-test downloads from ci-files.testing.ansible.com
(unreachable here) to put pip into each virtual environment it makes for `ansible-test sanity --venv`.

It is called as get-pip.py is: `python get_pip.py [pip options] PACKAGES...` (ansible-test asks for exactly one pip
version, `pip==X.Y`, plus --no-setuptools / --no-wheel, which are get-pip's own flags). Python's own ensurepip puts
its bundled pip into the environment, and that pip installs the version asked for from PyPI. Anything else asked of
it is refused: it is not a general installer."""

import subprocess
import sys

GET_PIP_FLAGS = {"--no-setuptools", "--no-wheel"}
PIP_FLAGS = {"--disable-pip-version-check", "--quiet", "-q"}


def main(args: list[str]) -> int:
    packages = [a for a in args if not a.startswith("-")]
    unknown = [a for a in args if a.startswith("-") and a not in GET_PIP_FLAGS | PIP_FLAGS]
    if unknown or len(packages) != 1 or not packages[0].startswith("pip=="):
        print(f"get_pip stand-in: asked for {args}; it installs exactly one pip==VERSION", file=sys.stderr)
        return 2
    # In a process of its own: ensurepip turns off pip's configuration (PIP_CONFIG_FILE=/dev/null) for the process
    # it runs in, and the install from PyPI needs it (an index, a proxy's certificate).
    ensurepip = subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=False)
    if ensurepip.returncode:
        return ensurepip.returncode
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--quiet", packages[0]]
    return subprocess.run(pip, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
