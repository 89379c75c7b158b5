"""The command line: gpubox-autostop run | check-config | hold | status, with a flag for every setting; called as
gpubox-hold (the link the role installs), it is the hold command."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict, fields

import gpubox_autostop

from .hold import hold_command
from .settings import CONFIG_FILE, ConfigError, Settings, load_settings
from .util import fmt_number
from .wiring import run_agent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpubox-autostop", description=gpubox_autostop.__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("run", "run the agent"), ("check-config", "check the settings and print them")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--config", help=f"settings file (default {CONFIG_FILE})")
        for f in fields(Settings):
            cmd.add_argument("--" + f.name.replace("_", "-"), dest=f.name, metavar="VALUE", default=None)
    hold = sub.add_parser("hold", help="keep the box up for a while: 2h, 30m, 1h30m; off; nothing for status")
    hold.add_argument("--config", help=f"settings file (default {CONFIG_FILE})")
    hold.add_argument("duration", nargs="*")
    status = sub.add_parser("status", help="the holds and the agent's last decision")
    status.add_argument("--config", help=f"settings file (default {CONFIG_FILE})")
    return parser


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if os.path.basename(prog or sys.argv[0]) == "gpubox-hold":
        argv = ["hold", *argv]
    args = _parser().parse_args(argv)
    flags = {f.name: getattr(args, f.name) for f in fields(Settings) if getattr(args, f.name, None) is not None}
    try:
        settings = load_settings(args.config, flags)
    except ConfigError as exc:
        print(f"gpubox-autostop: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        for key, value in asdict(settings).items():
            shown = str(value).lower() if isinstance(value, bool) else value
            print(f"{key} = {fmt_number(shown) if isinstance(shown, float) else shown}")
        return 0
    if args.command in ("hold", "status"):
        return hold_command(getattr(args, "duration", []), settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return run_agent(settings, stop=stop)
