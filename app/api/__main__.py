"""``python -m app.api``: see :mod:`app.api.server`."""

import sys

from app.api.server import main

sys.exit(main())
