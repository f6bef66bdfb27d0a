"""``python -m app.infer.svc``: the command-line converter (:func:`app.infer.svc.cli.main`)."""

import sys

from app.infer.svc.cli import main

sys.exit(main())
