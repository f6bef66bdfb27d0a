"""``python -m app.api``: the entry point; composes the API's server with the web UI's mount.

This is the one place that hands the UI to the API (:mod:`app.api.server`): no other module of
``app.api`` imports ``app.ui``. Neither module imports gradio or torch until the arguments are
accepted.
"""

import sys

from app.api.server import main
from app.ui.mount import mount_ui

sys.exit(main(mount_ui=mount_ui))
