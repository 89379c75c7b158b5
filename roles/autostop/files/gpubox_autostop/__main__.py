"""`python3 -m gpubox_autostop`, and the zipapp's entry point (its own __main__.py calls main here)."""

from __future__ import annotations

import sys

from gpubox_autostop.cli import main

if __name__ == "__main__":
    sys.exit(main())
