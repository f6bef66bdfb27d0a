"""``python -m app.assets``: the download tool (:mod:`app.assets.cli`)."""

import sys

from app.assets.cli import main

sys.exit(main())
