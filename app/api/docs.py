"""``/docs`` and ``/redoc`` that work offline, and CORS for browser clients on other origins.

FastAPI's docs pages load Swagger UI and ReDoc from a CDN (and ReDoc's fonts from Google); on a
machine without internet they stay blank. Here the pages point at the copies the PyPI package
``fastapi-offline`` ships (Swagger UI bundle + CSS, ReDoc standalone, a favicon), served from
:data:`ASSETS_PATH`; only that package's files are used, not its FastAPI subclass.

CORS is off unless ``Settings.cors_origins`` lists origins (``STUDIO_CORS_ORIGINS`` /
``--cors-origin``): then those origins may call the API from a browser, sending the API key in
``Authorization`` or ``X-API-Key`` (never cookies: credentials mode stays off), and may read the
audio headers (``X-Studio-Notes``, ``X-Sample-Rate``, ...).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

# Where the docs assets are served (outside /docs so the page and its files do not collide).
ASSETS_PATH = "/docs-assets"
ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
# The asset files the pages load (all in ASSETS_DIR).
SWAGGER_JS = "swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui.css"
REDOC_JS = "redoc.standalone.js"
FAVICON = "favicon.png"
# Headers a browser client may send and read across origins.
CORS_REQUEST_HEADERS = ["Authorization", "X-API-Key", "Content-Type"]
CORS_EXPOSED_HEADERS = ["X-Studio-Notes", "X-Sample-Rate", "X-Seed", "X-Audio-Seconds", "Retry-After"]
CORS_MAX_AGE_S = 600  # how long a browser may cache a preflight answer
# The docs pages may load nothing from other hosts: ReDoc's bundle shows a logo from its CDN, and
# Swagger UI may show an online validator's badge. Their inline start-up scripts and styles, data:
# images and ReDoc's search worker (a blob:) are allowed.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


def _prefix(request: Request) -> str:
    """The path the app is mounted under (behind a proxy's root_path), "" at the root."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page


def install_docs(app: FastAPI) -> None:
    """Serve the assets and the two pages (create ``app`` with ``docs_url=None, redoc_url=None``)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    oauth_redirect = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger(request: Request) -> HTMLResponse:
        root = _prefix(request)
        return _local_only(
            get_swagger_ui_html(
                openapi_url=root + (app.openapi_url or "/openapi.json"),
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{root}{ASSETS_PATH}/{SWAGGER_JS}",
                swagger_css_url=f"{root}{ASSETS_PATH}/{SWAGGER_CSS}",
                swagger_favicon_url=f"{root}{ASSETS_PATH}/{FAVICON}",
                oauth2_redirect_url=root + oauth_redirect,
            )
        )

    @app.get(oauth_redirect, include_in_schema=False)
    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = _prefix(request)
        return _local_only(
            get_redoc_html(
                openapi_url=root + (app.openapi_url or "/openapi.json"),
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{ASSETS_PATH}/{REDOC_JS}",
                redoc_favicon_url=f"{root}{ASSETS_PATH}/{FAVICON}",
                with_google_fonts=False,
            )
        )


def install_cors(app: FastAPI, origins: tuple[str, ...]) -> None:
    """Allow ``origins`` (``("*",)``: any) to call the API from browsers; nothing when empty.

    Add it last, so it is the outermost layer: refusals (401, 413) carry its headers too and the
    browser shows the client the reason instead of a CORS failure.
    """
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_credentials=False,  # the key travels in a header, never in cookies
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=CORS_REQUEST_HEADERS,
        expose_headers=CORS_EXPOSED_HEADERS,
        max_age=CORS_MAX_AGE_S,
    )
