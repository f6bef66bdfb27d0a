"""Download, list and check the pretrained models SoVITS Studio uses: ``python tools/download_models.py --help``.

A thin entry point: the tool is :mod:`app.assets.cli` (also ``python -m app.assets`` and the console
command ``sovits-studio-download``).
"""

from __future__ import annotations

import sys

from app.assets.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
