"""``python -m app.train.svc``: the package name stays the command (jobs and torchrun start it)."""

import sys

from app.train.svc.trainer import main

sys.exit(main())
