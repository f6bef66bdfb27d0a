"""Entry point of ``python -m app.text``."""

from __future__ import annotations

import sys

from app.text.cli import main

sys.exit(main())
