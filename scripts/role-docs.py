#!/usr/bin/env python3
"""Write each role's variables table into its README, from the role's meta/argument_specs.yml.

usage: role-docs.py [--check] [--roles DIR]
  (no option)  rewrite the generated section of every README that differs
  --check      change nothing; list the READMEs that differ and exit 1 if any does

The section lies between BEGIN and END below; a README without them is an error in both modes.
tests/unit/test_role_specs.py imports this file, so the test and `make docs` share one renderer.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- BEGIN role-docs: generated from meta/argument_specs.yml by scripts/role-docs.py; do not edit -->"
END = "<!-- END role-docs -->"
SECTION = re.compile(re.escape(BEGIN) + r"\n.*?" + re.escape(END), re.DOTALL)
# Ansible's documentation markup in descriptions: C(code), I(italic), B(bold), and options, values, URLs.
MARKUP = re.compile(r"\b([CIBOVU])\(([^()]*)\)")


def roles(roles_dir: Path) -> list[Path]:
    """The role directories that have an argument spec, by name."""
    return sorted(p.parents[1] for p in roles_dir.glob("*/meta/argument_specs.yml"))


def load_yaml(path: Path) -> Any:
    """A YAML file's content; a missing or empty file is an empty mapping."""
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text()) or {}


def entry_points(role: Path) -> dict[str, dict[str, Any]]:
    """The role's entry points, main first, each as written in meta/argument_specs.yml."""
    specs: dict[str, dict[str, Any]] = load_yaml(role / "meta" / "argument_specs.yml").get("argument_specs") or {}
    return dict(sorted(specs.items(), key=lambda item: (item[0] != "main", item[0])))


def is_templated(value: object) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def code(text: str) -> str:
    """An inline code span for text (a longer fence when the text has backticks)."""
    text = " ".join(text.split())
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" or text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def inline_yaml(value: object) -> str:
    """A value as one line of YAML flow style: what a spec or defaults file would say inline."""
    dumped = yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False, allow_unicode=True)
    return " ".join(line for line in dumped.splitlines() if line != "...")


def render_default(option: dict[str, Any]) -> str:
    if "default" not in option:
        return ""
    value = option["default"]
    return code(value if is_templated(value) else inline_yaml(value))


def render_type(option: dict[str, Any]) -> str:
    kind = str(option.get("type", "str"))
    return f"{kind} of {option['elements']}" if kind == "list" and "elements" in option else kind


def prose(text: str) -> str:
    """Description text as Markdown: Ansible markup converted, Markdown's own characters escaped."""
    out, last = [], 0
    for match in MARKUP.finditer(text):
        out.append(escape_prose(text[last : match.start()]))
        kind, inner = match.groups()
        if kind in "COV":
            out.append(code(inner))
        elif kind == "I":
            out.append(f"*{escape_prose(inner)}*")
        elif kind == "B":
            out.append(f"**{escape_prose(inner)}**")
        else:
            out.append(f"<{inner}>")
        last = match.end()
    out.append(escape_prose(text[last:]))
    return "".join(out)


def escape_prose(text: str) -> str:
    """Keep * and < literal (a glob, a <placeholder>); backticks stay Markdown code."""
    return text.replace("*", "\\*").replace("<", "&lt;")


def render_description(option: dict[str, Any]) -> str:
    description = option.get("description", "")
    if isinstance(description, list):
        description = " ".join(str(part) for part in description)
    text = prose(" ".join(str(description).split()))
    if option.get("choices"):
        text += (" " if text else "") + "One of " + ", ".join(code(inline_yaml(c)) for c in option["choices"]) + "."
    return text


def render_table(options: dict[str, dict[str, Any]]) -> list[str]:
    if not options:
        return ["No options."]
    lines = ["| Variable | Type | Required | Default | Description |", "|---|---|---|---|---|"]
    for name, option in options.items():
        option = option or {}
        cells = [
            code(name),
            render_type(option),
            "yes" if option.get("required") else "no",
            render_default(option),
            render_description(option),
        ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return lines


def render(role: Path) -> str:
    """The generated section of the role's README, markers included."""
    lines = [BEGIN]
    for name, entry in entry_points(role).items():
        if name != "main":
            summary = entry.get("short_description", "")
            lines += ["", f"Entry point `{name}`" + (f": {prose(summary.rstrip('.'))}" if summary else "") + "."]
        lines += ["", *render_table(entry.get("options") or {})]
    lines += ["", END]
    return "\n".join(lines)


def updated_readme(role: Path) -> str:
    """The role's README with its generated section rendered afresh."""
    text = (role / "README.md").read_text()
    if len(SECTION.findall(text)) != 1:
        raise ValueError(f"{role / 'README.md'}: needs exactly one pair of role-docs markers ({BEGIN} ... {END})")
    return SECTION.sub(lambda _: render(role), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a README differs")
    parser.add_argument("--roles", type=Path, default=ROOT / "roles", help="roles directory (default: %(default)s)")
    args = parser.parse_args(argv)
    stale, errors = [], []
    for role in roles(args.roles):
        readme = role / "README.md"
        try:
            text = updated_readme(role)
        except (OSError, ValueError) as exc:
            errors.append(str(exc))
            continue
        if text != readme.read_text():
            stale.append(readme)
            if not args.check:
                readme.write_text(text)
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    for readme in stale:
        print(f"{'differs' if args.check else 'written'}: {readme}")
    return 1 if errors or (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
