"""Write the stand-in D2L notebooks archive: real nbformat-4 notebooks in the real archive's layout.

The cells use only what every D2L environment has (numpy, pandas, matplotlib, d2l's pinned stack), so they
run whatever framework the environment was built for. Usage: python3 make_zip.py OUT.zip
"""

import json
import sys
import zipfile

FRAMEWORKS = ("pytorch", "tensorflow", "jax", "mxnet")
NOTEBOOKS = {
    "chapter_preliminaries/ndarray.ipynb": [
        ("markdown", "# Data Manipulation\n\nStand-in for the D2L notebook of the same name."),
        ("code", "import numpy as np\nx = np.arange(12, dtype=np.float32)\nx.reshape(3, 4).sum(axis=0)"),
    ],
    "chapter_preliminaries/pandas.ipynb": [
        ("markdown", "# Data Preprocessing\n\nStand-in for the D2L notebook of the same name."),
        (
            "code",
            "import pandas as pd\ndata = pd.DataFrame({'rooms': [3, 2, 4], 'price': [127500, 106000, 178100]})\n"
            "data.describe()",
        ),
    ],
    "chapter_introduction/index.ipynb": [
        ("markdown", "# Introduction\n\nStand-in for the D2L notebook of the same name."),
        ("code", "import sys\nprint(sys.version)"),
    ],
}


def notebook(cells):
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [
            {"cell_type": kind, "id": f"cell-{i}", "metadata": {}, "source": src}
            | ({"execution_count": None, "outputs": []} if kind == "code" else {})
            for i, (kind, src) in enumerate(cells)
        ],
    }


def main(out: str) -> None:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for fw in FRAMEWORKS:
            for path, cells in sorted(NOTEBOOKS.items()):
                info = zipfile.ZipInfo(f"{fw}/{path}", date_time=(2023, 8, 18, 0, 0, 0))
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, json.dumps(notebook(cells), indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
