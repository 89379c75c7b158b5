# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tables as gpubox prints them, one way for every module and plugin: each column as wide as its widest cell, two
spaces between columns, no trailing blanks (a long name or DNS name widens its column instead of breaking it)."""

from __future__ import annotations


def aligned(rows, right=()) -> list[str]:
    """The rows (lists of cells, the header first) as lines. Cells are shown as text, left-aligned, except in the
    columns listed in right (their indexes, -1 for the last), which are right-aligned."""
    rows = [[str(cell) for cell in row] for row in rows or []]
    if not rows:
        return []
    count = max(len(row) for row in rows)
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(count)]
    rights = {int(i) % count for i in right or ()} if count else set()
    return [
        "  ".join(
            cell.rjust(width) if i in rights else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=False))
        ).rstrip()
        for row in rows
    ]
