"""Each role's meta/argument_specs.yml is the one description of its settings: defaults/main.yml agrees with it,
vars/main.yml does not shadow it, and the README's variables table is rendered from it (scripts/role-docs.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, load_module

docs = load_module(ROOT / "scripts" / "role-docs.py", "role_docs")
ROLES = docs.roles(ROOT / "roles")

# A literal default's Python type per spec type (bool is checked before int: True is an int to Python).
TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "path": (str,),
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


def same(a: Any, b: Any) -> bool:
    """Equal as loaded YAML, types included (True is not 1, 1 is not 1.0, '12' is not 12)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def type_problem(kind: str, value: Any, elements: str | None = None) -> str | None:
    """Why a literal value does not fit the spec type, or None (templated strings and raw are not checked)."""
    if docs.is_templated(value) or kind not in TYPES:
        return None
    if isinstance(value, bool) and kind != "bool":
        return f"{value!r} is a bool, not {kind}"
    if not isinstance(value, TYPES[kind]):
        return f"{value!r} is a {type(value).__name__}, not {kind}"
    if kind == "list" and elements:
        for item in value:
            if problem := type_problem(elements, item):
                return f"element {problem}"
    return None


def options(role: Path) -> dict[str, dict[str, Any]]:
    """Every entry point's options, by name (main's first)."""
    found: dict[str, dict[str, Any]] = {}
    for entry in docs.entry_points(role).values():
        for name, option in (entry.get("options") or {}).items():
            found.setdefault(name, option or {})
    return found


def defaults(role: Path) -> dict[str, Any]:
    return docs.load_yaml(role / "defaults" / "main.yml")


def show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@pytest.fixture(params=ROLES, ids=[role.name for role in ROLES])
def role(request) -> Path:
    return request.param


def test_readme_table_is_generated_from_spec(role):
    readme = role / "README.md"
    assert readme.read_text() == docs.updated_readme(role), (
        f"{readme.relative_to(ROOT)}: variables table differs from meta/argument_specs.yml; run `make docs`"
    )


def test_defaults_are_spec_options(role):
    known = options(role)
    missing = [name for name in defaults(role) if name not in known]
    assert not missing, f"{role.name}: in defaults/main.yml but not an option of meta/argument_specs.yml: {missing}"


def test_spec_defaults_equal_defaults_file(role):
    values = defaults(role)
    problems = []
    for name, option in options(role).items():
        if "default" in option and name not in values:
            problems.append(f"{name}: spec default {show(option['default'])}, not in defaults/main.yml")
        elif name in values and "default" not in option:
            problems.append(f"{name}: no spec default, defaults/main.yml has {show(values[name])}")
        elif name in values and not same(option["default"], values[name]):
            problems.append(f"{name}: spec default {show(option['default'])} != defaults/main.yml {show(values[name])}")
    assert not problems, f"{role.name}:\n" + "\n".join(problems)


def test_required_options_have_no_default(role):
    values = defaults(role)
    both = []
    for name, option in options(role).items():
        if option.get("required") and ("default" in option or name in values):
            both.append(f"{name} ({'spec default' if 'default' in option else 'defaults/main.yml'})")
    assert not both, f"{role.name}: required and defaulted: {both}"


def test_literal_defaults_fit_spec_type(role):
    values = defaults(role)
    problems = []
    for name, option in options(role).items():
        kind, elements = str(option.get("type", "str")), option.get("elements")
        for where, present, value in (
            ("spec default", "default" in option, option.get("default")),
            ("defaults/main.yml", name in values, values.get(name)),
        ):
            if present and (problem := type_problem(kind, value, elements)):
                problems.append(f"{name} ({where}): {problem}")
    assert not problems, f"{role.name}:\n" + "\n".join(problems)


def test_vars_are_not_options(role):
    shadowed = [name for name in docs.load_yaml(role / "vars" / "main.yml") if name in options(role)]
    assert not shadowed, (
        f"{role.name}: vars/main.yml sets options of the spec, which then cannot be set (vars win): {shadowed}"
    )
