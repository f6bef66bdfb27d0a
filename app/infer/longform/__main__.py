"""``python -m app.infer.longform``: see :mod:`app.infer.longform.cli`."""

import sys

from app.infer.longform.cli import main

sys.exit(main())
