"""SoVITS Studio web UI: ``python webui.py`` serves http://127.0.0.1:9874 (``--help`` for the options).

A thin entry point: the launcher is :mod:`app.ui.launch` (also ``python -m app.ui`` and the console
command ``sovits-studio``).
"""

from __future__ import annotations

import sys

from app.ui.launch import exposure_problem, is_loopback, main, parse_auth

__all__ = ["exposure_problem", "is_loopback", "main", "parse_auth"]

if __name__ == "__main__":
    sys.exit(main())
