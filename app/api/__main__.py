"""``python -m app.api``: the entry point; composes the API's server with the web UI's mount.

This is the one place that hands the UI to the API (:mod:`app.api.server`): no other module of
``app.api`` imports ``app.ui``. Neither module imports gradio or torch until the arguments are
accepted.
"""

import sys
from collections.abc import Sequence

from app.api import server
from app.ui.mount import mount_ui


def main(argv: Sequence[str] | None = None) -> int:
    """The API server with the web UI at ``/ui`` (the console command ``sovits-studio-api``)."""
    return server.main(argv, mount_ui=mount_ui)


if __name__ == "__main__":
    sys.exit(main())
