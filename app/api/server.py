"""``python -m app.api``: the HTTP API (and the web UI at ``/ui``) on one uvicorn server.

    python -m app.api [--host 127.0.0.1] [--port 9880] [--api-key KEY] [--no-ui] [--lang auto]
                      [--queue-limit 4] [--max-upload-mb 200] [--precision fp32|fast]
                      [--cors-origin http://localhost:8000] [-dr ref.wav -dt "what it says" -dl zh]

Binding anything but a loopback address needs an API key (STUDIO_API_KEY, or --api-key; the
variable keeps it out of the process list). With a key, the UI asks for it as its password.
STUDIO_HOME moves every data folder (weights, presets), e.g. to a volume shared by replicas.

The API does not import the UI: the entry point (``app/api/__main__.py``) hands :func:`main` a
:class:`MountUI` (``app.ui.mount.mount_ui``), and :func:`build_server` gives the API and the UI
one :class:`~app.services.synthesis.SynthesisService`, so both wait in one line for the device.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from app.settings import DEFAULT_API_PORT, DEFAULT_HOST, Settings, is_loopback, load_settings, parse_origins

if TYPE_CHECKING:
    from fastapi import FastAPI

    from app.services.synthesis import SynthesisService

log = logging.getLogger(__name__)

UI_PATH = "/ui"
LOGIN_MESSAGE = "Log in with any user name and the server's API key as the password."


class MountUI(Protocol):
    """Mounts the web UI at ``path`` of ``app``, its synthesis going through ``synthesis``.

    ``password`` checks a login's password (None: no login); ``login_message`` is shown above
    the login form.
    """

    def __call__(
        self,
        app: FastAPI,
        settings: Settings,
        synthesis: SynthesisService,
        *,
        path: str,
        lang: str,
        password: Callable[[str], bool] | None,
        login_message: str | None,
    ) -> FastAPI: ...


# The web UI's languages (app.ui.i18n.LANGUAGES, which this layer does not import; a test keeps them equal).
UI_LANGUAGES = ("en", "zh", "zh_TW", "ja", "ko")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app.api", description="SoVITS Studio HTTP API (+ web UI)")
    p.add_argument(
        "--host", default=DEFAULT_HOST, help="address to bind (default %(default)s: this machine only)"
    )
    p.add_argument("--port", type=int, default=DEFAULT_API_PORT, help="port (default %(default)s, as api_v2)")
    p.add_argument(
        "--api-key", help="require this key (default STUDIO_API_KEY); needed to bind beyond loopback"
    )
    p.add_argument("--no-ui", action="store_true", help="serve the API only, without the web UI at /ui")
    p.add_argument("--lang", default="auto", choices=["auto", *UI_LANGUAGES], help="UI language")
    p.add_argument("--queue-limit", type=int, help="requests waiting for the device before 503 (default 4)")
    p.add_argument("--max-upload-mb", type=int, help="largest request body in MB (default 200)")
    p.add_argument("--precision", choices=["fp32", "fast"], default="fp32", help="pipeline precision")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--cors-origin",
        action="append",
        metavar="ORIGIN",
        help="let web pages of this origin call the API (repeat or comma-separate; * = any; "
        "default STUDIO_CORS_ORIGINS, else none)",
    )
    legacy = p.add_argument_group("legacy api.py default reference (used by GET|POST / without one)")
    legacy.add_argument("-dr", "--default-refer-path", help="clip under the data folder")
    legacy.add_argument("-dt", "--default-refer-text", help="what the clip says")
    legacy.add_argument("-dl", "--default-refer-language", help="its language (中文, zh, en, ...)")
    return p


def exposure_problem(host: str, api_key: str | None) -> str | None:
    """Why this launch would expose an API without a key, or None when it is fine."""
    if api_key or is_loopback(host):
        return None
    return (
        f"--host {host} makes the API reachable from other machines, so an API key is required. "
        "Set one with the STUDIO_API_KEY environment variable (preferred; e.g. "
        "STUDIO_API_KEY=$(openssl rand -hex 24)) or --api-key KEY, or bind 127.0.0.1."
    )


def _settings(args: argparse.Namespace) -> Settings | str:
    settings = load_settings()
    changes: dict[str, object] = {}
    if args.api_key is not None:
        if not args.api_key.strip():
            return "--api-key must not be empty"
        changes["api_key"] = args.api_key
    for flag, field in (("queue_limit", "queue_limit"), ("max_upload_mb", "max_upload_mb")):
        value = getattr(args, flag)
        if value is not None:
            if value <= 0:
                return f"--{flag.replace('_', '-')} must be a positive number"
            changes[field] = value
    if args.cors_origin:
        changes["cors_origins"] = parse_origins(",".join(args.cors_origin), "--cors-origin")
    return dataclasses.replace(settings, **changes)


def _default_reference(app: FastAPI, args: argparse.Namespace) -> str | None:
    """Store upstream's ``-dr/-dt/-dl`` default reference; the problem, or None when fine."""
    given = (args.default_refer_path, args.default_refer_text, args.default_refer_language)
    if not any(given):
        return None
    if not all(given):
        return "-dr, -dt and -dl go together: the clip, what it says and its language"
    from app.api.errors import ApiError
    from app.api.routes.legacy import save_default_reference

    try:
        save_default_reference(app.state.api, *given)
    except ApiError as exc:
        return exc.message
    return None


def build_server(
    settings: Settings, *, mount_ui: MountUI | None = None, lang: str = "auto", precision: str = "fp32"
) -> FastAPI:
    """The API app, with the web UI mounted at ``/ui`` by ``mount_ui`` when one is given.

    One synthesis service serves both, so a request from either waits in the same line.
    """
    from app.api.app import create_app
    from app.api.security import key_matches
    from app.services.synthesis import SynthesisService

    synthesis = SynthesisService.create(settings.queue_limit)
    app = create_app(settings, precision=precision, synthesis=synthesis)
    if mount_ui is None:
        return app
    key = settings.api_key
    app = mount_ui(
        app,
        settings,
        synthesis,
        path=UI_PATH,
        lang=lang,
        password=(lambda given: key_matches(key, given)) if key else None,
        login_message=LOGIN_MESSAGE if key else None,
    )
    app.state.ui = True
    return app


def main(argv: Sequence[str] | None = None, *, mount_ui: MountUI | None = None) -> int:
    """Parse ``argv``, refuse an exposed launch without a key, serve; ``mount_ui`` adds the web UI
    (unless ``--no-ui``)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = _settings(args)
    except ValueError as exc:  # a malformed STUDIO_* variable
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if isinstance(settings, str):
        print(f"error: {settings}", file=sys.stderr)
        return 2
    problem = exposure_problem(args.host, settings.api_key)
    if problem:
        print(f"refusing to start: {problem}", file=sys.stderr)
        return 2
    import uvicorn

    ui = None if args.no_ui else mount_ui
    app = build_server(settings, mount_ui=ui, lang=args.lang, precision=args.precision)
    problem = _default_reference(app, args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    log.info("data folder: %s; API docs at http://%s:%d/docs", settings.home, args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, workers=1)
    return 0
