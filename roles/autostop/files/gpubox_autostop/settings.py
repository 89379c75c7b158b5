"""The agent's settings: their defaults (Settings), the config file (KEY=VALUE lines or one JSON object), the flags on
top, and the checks that refuse a value by name (the numbers' ranges come from limits.py, shared with the
controller)."""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass, fields, replace
from urllib.parse import urlsplit

from .limits import RANGES, parse_stop_at
from .util import describe_error

CONFIG_FILE = "/etc/gpubox/autostop.conf"
SIGNALS = ("jupyter", "gpu", "ssh", "cpu", "hold", "job")


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class Settings:
    idle_minutes: float = 60.0
    grace_minutes: float = 5.0
    max_hours: float = 0.0
    poll_seconds: float = 60.0
    log_every_minutes: float = 10.0
    signals: str = ",".join(SIGNALS)
    cpu_threshold: float = 10.0
    gpu_threshold: float = 5.0
    jupyter_url: str = "http://127.0.0.1:8888"
    jupyter_token_file: str = "/home/ubuntu/.jupyter/gpubox-token"
    jupyter_server_activity: bool = True
    hold_dir: str = "/var/lib/gpubox/hold"
    max_hold_hours: float = 24.0
    jobs_dir: str = "/run/gpubox-jobs"
    status_file: str = "/run/gpubox/autostop.json"
    poweroff_command: str = "systemctl poweroff"
    wall_command: str = "wall"
    spot: bool = False
    metadata_url: str = "http://169.254.169.254"
    spot_poll_seconds: float = 5.0
    interrupt_dir: str = "/etc/gpubox/on-interrupt.d"
    interrupt_timeout: float = 30.0
    stop_at: str = ""  # "20:00" (UTC) or "20:00 Europe/Berlin": stop daily then, as max_hours does, unless held
    on_stop_dir: str = "/etc/gpubox/on-stop.d"
    on_stop_timeout: float = 30.0

    @property
    def enabled(self) -> frozenset[str]:
        return frozenset(s.strip() for s in self.signals.split(",") if s.strip())


# (lowest, highest) allowed for each number; why: a typo must not become a zero-interval loop or a 0 % threshold

BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def _coerce(key: str, value: object, default: object) -> object:
    """One setting's value (a string from KEY=VALUE or a flag, or a JSON value) as the type of its default."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word not in BOOL_WORDS:
            raise ConfigError(f"{key}: {value!r} is not true or false")
        return BOOL_WORDS[word]
    if isinstance(default, float):
        word = "" if value is None else str(value).strip().lower()
        if isinstance(value, bool):
            raise ConfigError(f"{key}: {value!r} is not a number")
        try:
            number = 0.0 if word in ("off", "none", "") else float(word)
        except ValueError:
            raise ConfigError(f"{key}: {value!r} is not a number") from None
        low, high = RANGES[key]
        if not math.isfinite(number) or not low <= number <= high:
            raise ConfigError(f"{key}: {value!r} is outside {low:g}..{high:g}")
        return number
    return "" if value is None else str(value).strip()


def _check_url(key: str, url: str, allow_empty: bool) -> None:
    if not url and allow_empty:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{key}: {url!r} is not an http:// or https:// URL")


def _check_command(key: str, command: str, allow_empty: bool) -> None:
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(f"{key}: {command!r}: {exc}") from None
    if not words and not allow_empty:
        raise ConfigError(f"{key}: empty")


def validate(settings: Settings) -> Settings:
    unknown = settings.enabled - set(SIGNALS)
    if unknown:
        raise ConfigError(f"signals: unknown {', '.join(sorted(unknown))} (known: {', '.join(SIGNALS)})")
    _check_url("jupyter_url", settings.jupyter_url, allow_empty=True)
    _check_url("metadata_url", settings.metadata_url, allow_empty=False)
    _check_command("poweroff_command", settings.poweroff_command, allow_empty=False)
    _check_command("wall_command", settings.wall_command, allow_empty=True)
    try:
        parse_stop_at(settings.stop_at)
    except ValueError as exc:
        raise ConfigError(f"stop_at: {exc}") from None
    for key in ("hold_dir", "interrupt_dir", "status_file", "jupyter_token_file", "jobs_dir", "on_stop_dir"):
        path = getattr(settings, key)
        if path and not path.startswith("/"):
            raise ConfigError(f"{key}: {path!r} is not an absolute path")
    if not settings.hold_dir or not settings.interrupt_dir:
        raise ConfigError("hold_dir and interrupt_dir must be set")
    return settings


def parse_config(text: str, source: str) -> dict[str, object]:
    """KEY=VALUE lines (# comments, optional quotes) or one JSON object -> raw values by key."""
    known = {f.name for f in fields(Settings)}
    if text.lstrip().startswith("{"):
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{source}: not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: the JSON is not an object")
        for key in raw:
            if key not in known:
                raise ConfigError(f"{source}: unknown setting {key!r}")
        return dict(raw)
    values: dict[str, object] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or key not in known:
            raise ConfigError(f"{source}:{number}: {'unknown setting ' + repr(key) if sep else 'not KEY=VALUE'}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def make_settings(file_values: dict[str, object], flags: dict[str, object], source: str = "") -> Settings:
    """Defaults, then the file's values, then the flags', each checked and named in an error."""
    defaults = Settings()
    chosen: dict[str, object] = {}
    for label, layer in ((source, file_values), ("flag", flags)):
        for key, value in layer.items():
            try:
                chosen[key] = _coerce(key, value, getattr(defaults, key))
            except ConfigError as exc:
                raise ConfigError(f"{label}: {exc}" if label else str(exc)) from None
    return validate(replace(defaults, **chosen))


def load_settings(path: str | None, flags: dict[str, object] | None = None) -> Settings:
    """The config file (the default one may be missing; a named one must exist), then the flags."""
    target = path or CONFIG_FILE
    try:
        with open(target, encoding="utf-8") as handle:
            file_values = parse_config(handle.read(), target)
    except FileNotFoundError:
        if path:
            raise ConfigError(f"{path}: no such file") from None
        file_values = {}
    except OSError as exc:
        raise ConfigError(f"{target}: {describe_error(exc)}") from None
    return make_settings(file_values, flags or {}, target)
