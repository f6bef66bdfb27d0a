"""``python -m app.ui``: the web UI (:func:`app.ui.launch.main`)."""

import sys

from app.ui.launch import main

sys.exit(main())
