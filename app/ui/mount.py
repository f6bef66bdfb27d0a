"""The web UI mounted on another ASGI app: the HTTP API serves it at ``/ui`` of its own server.

The API never imports this module; its entry point (``python -m app.api``) hands
:func:`mount_ui` to the API's server, which passes the synthesis service it uses itself, so a
request from the page and one from a client wait in the same line for the device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from app.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from app.services.synthesis import SynthesisService


def mount_ui(
    app: FastAPI,
    settings: Settings,
    synthesis: SynthesisService,
    *,
    path: str,
    lang: str,
    password: Callable[[str], bool] | None,
    login_message: str | None,
) -> FastAPI:
    """``app`` with the page at ``path``; ``password`` (None: no login) checks a login's password."""
    # gradio and the tabs load here, not at import: the CLI refuses a bad launch before they do.
    import gradio as gr

    from app.ui.app import build_app, launch_kwargs

    auth = (lambda _user, given: password(given)) if password is not None else None
    return gr.mount_gradio_app(
        app,
        build_app(settings, lang=lang, synthesis=synthesis),
        path=path,
        auth=auth,
        auth_message=login_message,
        show_error=True,
        **launch_kwargs(settings, lang),
    )
