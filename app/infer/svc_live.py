"""``python -m app.infer.svc_live``: realtime singing voice conversion between sound devices
(:func:`app.infer.svc.live_cli.main`)."""

import sys

from app.infer.svc.live_cli import main

if __name__ == "__main__":
    sys.exit(main())
