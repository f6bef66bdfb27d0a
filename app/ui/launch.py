"""SoVITS Studio web UI: ``python webui.py`` (or ``sovits-studio``, ``python -m app.ui``) serves http://127.0.0.1:9874.

    python webui.py [--host 127.0.0.1] [--port 9874] [--lang auto|en|zh|zh_TW|ja|ko] [--auth user:pass]
                    [--share] [--no-auth] [--max-upload-mb 200]

Binding anything but a loopback address (or --share) needs --auth, unless --no-auth says that
exposing an unauthenticated studio is intended. STUDIO_HOME moves every data folder.

This entry point makes the process's one synthesis service (the device's line) and hands it to
the page; ``python -m app.api`` does the same for the API with the page mounted on it.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence

from app.settings import DEFAULT_HOST, DEFAULT_UI_PORT, is_loopback, load_settings
from app.ui.i18n import LANGUAGES

log = logging.getLogger(__name__)

__all__ = ["exposure_problem", "is_loopback", "main", "parse_auth"]


def parse_auth(value: str) -> tuple[str, str]:
    """``user:pass`` -> (user, pass); the password may contain ':'."""
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise argparse.ArgumentTypeError("--auth takes USER:PASSWORD, both non-empty (e.g. --auth me:s3cret)")
    return user, password


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="webui.py", description="SoVITS Studio web UI")
    p.add_argument(
        "--host", default=DEFAULT_HOST, help="address to bind (default %(default)s: this machine only)"
    )
    p.add_argument("--port", type=int, default=DEFAULT_UI_PORT, help="port (default %(default)s)")
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link (needs --auth)")
    p.add_argument("--auth", type=parse_auth, metavar="USER:PASSWORD", help="require this login")
    p.add_argument(
        "--no-auth", action="store_true", help="allow a non-loopback bind or --share without a login"
    )
    p.add_argument(
        "--lang", default="auto", choices=["auto", *LANGUAGES], help="UI language (default: the browser's)"
    )
    p.add_argument(
        "--max-upload-mb", type=int, help="largest upload in MB (default STUDIO_MAX_UPLOAD_MB or 200)"
    )
    return p


def exposure_problem(host: str, share: bool, auth: tuple[str, str] | None, no_auth: bool) -> str | None:
    """Why this launch would expose an unauthenticated studio, or None when it is fine."""
    if auth is not None or no_auth:
        return None
    if share:
        return (
            "--share publishes the studio on a public URL, so a login is required. "
            "Add --auth USER:PASSWORD (or --no-auth if you really want it open)."
        )
    if not is_loopback(host):
        return (
            f"--host {host} makes the studio reachable from other machines, so a login is required. "
            "Add --auth USER:PASSWORD, bind 127.0.0.1, or pass --no-auth if the network is trusted."
        )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    problem = exposure_problem(args.host, args.share, args.auth, args.no_auth)
    if problem:
        print(f"refusing to start: {problem}", file=sys.stderr)
        return 2
    if args.no_auth and (args.share or not is_loopback(args.host)):
        log.warning(
            "serving WITHOUT a login on %s (--no-auth): anyone who can reach it can use the studio", args.host
        )
    settings = load_settings()
    if args.max_upload_mb is not None:
        if args.max_upload_mb <= 0:
            print("error: --max-upload-mb must be a positive number of megabytes", file=sys.stderr)
            return 2
        settings = dataclasses.replace(settings, max_upload_mb=args.max_upload_mb)

    # gradio and torch load only once the arguments are valid.
    from app.services.synthesis import SynthesisService
    from app.ui.app import build_app, launch_kwargs

    demo = build_app(settings, lang=args.lang, synthesis=SynthesisService.create(settings.queue_limit))
    log.info("data folder: %s", settings.home)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        auth=args.auth,
        inbrowser=False,
        show_error=True,
        **launch_kwargs(settings, args.lang),
    )
    return 0
