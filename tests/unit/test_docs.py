"""The docs describe each behaviour once, and its reference table agrees with the code that has it: the EC2 error
codes and their failover classes, the vCPU quotas, the playbooks, the settings and box keys, the IAM statements. Every
relative link resolves, to a file and to a heading in it, and the README stays short."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, load_module

DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = sorted([README, *DOCS.rglob("*.md"), *(ROOT / "roles").glob("*/README.md")])
FENCE = re.compile(r"^(```|~~~).*?^\1", re.DOTALL | re.MULTILINE)
CODE_SPAN = re.compile(r"(`+).+?\1", re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """The text without fenced code blocks and code spans, where brackets are not links."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings: lowercase, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    result = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", FENCE.sub("", page.read_text()), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        result.add(slug if n == 0 else f"{slug}-{n}")
    return result


def tables(page: Path, header: str) -> list[list[list[str]]]:
    """Each Markdown table of the page whose header row starts with `header`: its rows, as lists of cells."""
    lines = prose_lines(page)
    found = []
    for start in (i for i, line in enumerate(lines) if line.startswith(header)):
        rows = []
        for line in lines[start + 2 :]:
            if not line.startswith("|"):
                break
            rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
        found.append(rows)
    assert found, f"{page.relative_to(ROOT)}: no table with the header {header!r}"
    return found


def table(page: Path, header: str) -> list[list[str]]:
    """The rows of the one table whose header row starts with `header`."""
    (rows,) = tables(page, header)
    return rows


def prose_lines(page: Path) -> list[str]:
    return FENCE.sub("", page.read_text()).splitlines()


def ticked(cell: str) -> list[str]:
    """The `code` spans of a table cell."""
    return re.findall(r"`([^`]+)`", cell)


# -- links ------------------------------------------------------------------------------------------------------------


def links() -> list[tuple[Path, str]]:
    return [
        (page, target)
        for page in PAGES
        for target in LINK.findall(prose(page.read_text()))
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto:
    ]


@pytest.mark.parametrize(
    ("page", "target"), links(), ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else v
)
def test_every_relative_link_resolves(page, target):
    path, _, anchor = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    where = f"{page.relative_to(ROOT)}: link {target}"
    assert dest.exists(), f"{where}: no such file"
    if anchor:
        assert dest.suffix == ".md", f"{where}: an anchor into a file that is not Markdown"
        assert anchor in anchors(dest), f"{where}: no heading #{anchor} (there are: {sorted(anchors(dest))})"


def test_the_link_check_sees_links_and_skips_code():
    text = "see [a](x.md) and `[b](y.md)`\n```\n[c](z.md)\n```\n"
    assert LINK.findall(prose(text)) == ["x.md"]
    page = DOCS / "design.md"
    assert {"the-layers", "where-a-change-goes", "one-siteyml-run"} <= anchors(page)


# -- the README -------------------------------------------------------------------------------------------------------


def test_readme_is_at_most_200_lines():
    lines = len(README.read_text().splitlines())
    assert lines <= 200, f"README.md has {lines} lines; move detail into docs/ and link it"


# -- EC2's error codes ------------------------------------------------------------------------------------------------

ERRORS = DOCS / "reference" / "errors.md"


def code_sets() -> dict[str, set[str]]:
    """capacity, quota and throttled codes, from wherever the launch code keeps them (the module or module_utils)."""
    from ansible_collections.gpubox.gpubox.plugins.module_utils import gpubox_ec2

    launch = load_module(ROOT / "plugins" / "modules" / "ec2_box_launch.py", "gpubox_docs_ec2_box_launch")
    names = {"capacity": "CAPACITY", "quota": "QUOTA", "throttled": "THROTTLING"}
    found = {}
    for kind, name in names.items():
        source = next((m for m in (launch, gpubox_ec2) if hasattr(m, name)), None)
        assert source is not None, f"{name} is in neither ec2_box_launch.py nor gpubox_ec2.py"
        found[kind] = set(getattr(source, name))
    return found


def documented_codes() -> dict[str, set[str]]:
    rows = table(ERRORS, "| Class | Codes |")
    return {ticked(cls)[0]: set(ticked(codes)) for cls, codes, _ in rows}


def test_error_code_table_is_the_code_sets():
    documented, code = documented_codes(), code_sets()
    for kind, codes in code.items():
        assert documented.get(kind) == codes, (
            f"docs/reference/errors.md, class {kind}: documented {sorted(documented.get(kind, set()))}, "
            f"the code has {sorted(codes)}"
        )
    assert set(documented) == {*code, "error"}, f"classes in docs/reference/errors.md: {sorted(documented)}"


def test_every_documented_error_example_is_classed_as_its_row():
    from ansible_collections.gpubox.gpubox.plugins.module_utils.gpubox_ec2 import classify

    for kind, codes in documented_codes().items():
        for code in codes:
            assert classify(code) == kind, f"docs/reference/errors.md lists {code} as {kind}; classify says otherwise"


def test_quota_table_is_the_quotas_the_code_names():
    from ansible_collections.gpubox.gpubox.plugins.module_utils.gpubox_ec2 import QUOTAS

    rows = table(ERRORS, "| Market | Class | Quota code |")
    documented = {(market, cls): (ticked(code)[0], name) for market, cls, code, name in rows}
    assert documented == QUOTAS


# -- playbooks, settings, IAM -----------------------------------------------------------------------------------------

REFERENCE = DOCS / "reference"


def test_playbooks_reference_lists_exactly_the_playbooks():
    documented = [ticked(row[0])[0] for row in table(REFERENCE / "playbooks.md", "| Playbook |")]
    shipped = sorted(p.name for p in (ROOT / "playbooks").glob("*.yml"))
    assert sorted(documented) == shipped


def test_settings_reference_lists_exactly_the_project_settings():
    # two tables: gpubox.yml's settings, then configure.yml's
    rows = [row for rows in tables(REFERENCE / "settings.md", "| Setting | Default | What |") for row in rows]
    documented = [ticked(row[0])[0] for row in rows]
    shipped = [
        name
        for file in ("gpubox.yml", "configure.yml")
        for name in yaml.safe_load((ROOT / "inventory" / "group_vars" / "all" / file).read_text())
    ]
    assert sorted(documented) == sorted(shipped)


def test_box_keys_reference_lists_exactly_the_keys_the_preflight_allows():
    documented = [ticked(row[0])[0] for row in table(REFERENCE / "settings.md", "| Key | Default | What |")]
    allowed = yaml.safe_load((ROOT / "roles" / "ec2_preflight" / "vars" / "main.yml").read_text())
    assert sorted(documented) == sorted(allowed["ec2_preflight_box_keys"])


def test_iam_reference_explains_exactly_the_policy_statements():
    documented = [s for row in table(REFERENCE / "iam.md", "| Statement |") for s in ticked(row[0])]
    policy = json.loads((DOCS / "iam-policy.json").read_text())
    assert sorted(documented) == sorted(s["Sid"] for s in policy["Statement"])
