"""CORS (off unless origins are listed) and the API docs pages, which load their assets from this server."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from app.api.server import _parser, _settings
from app.settings import load_settings, parse_origins
from tests.api.conftest import assert_error

SITE = "http://localhost:8000"
OTHER = "https://evil.example"


def _preflight(client, origin: str, method: str = "POST", headers: str = "content-type,x-api-key"):
    return client.options(
        "/tts",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


def test_cors_is_off_by_default(client):
    assert load_settings({}).cors_origins == ()
    preflight = _preflight(client, SITE)
    assert "access-control-allow-origin" not in preflight.headers
    simple = client.get("/health", headers={"Origin": SITE})
    assert "access-control-allow-origin" not in simple.headers


def test_listed_origins_may_call_the_api(make_client):
    client = make_client(cors_origins=(SITE,), api_key="sekret")
    preflight = _preflight(client, SITE)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == SITE
    assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in preflight.headers  # keys travel in headers only
    # a refusal carries the header too, so the page can read why
    refused = client.get("/presets", headers={"Origin": SITE})
    assert_error(refused, 401)
    assert refused.headers["access-control-allow-origin"] == SITE
    allowed = client.get("/presets", headers={"Origin": SITE, "X-API-Key": "sekret"})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == SITE
    assert "x-studio-notes" in allowed.headers["access-control-expose-headers"].lower()


def test_other_origins_are_denied(make_client):
    client = make_client(cors_origins=(SITE,))
    preflight = _preflight(client, OTHER)
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    simple = client.get("/health", headers={"Origin": OTHER})
    assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers
    assert _preflight(client, SITE, headers="x-custom").status_code == 400  # unlisted request header


def test_any_origin(make_client):
    client = make_client(cors_origins=("*",))
    assert client.get("/health", headers={"Origin": OTHER}).headers["access-control-allow-origin"] == "*"


def test_origins_from_the_environment_and_the_command_line():
    env = {"STUDIO_CORS_ORIGINS": f" {SITE}, https://App.Example:8443 ,"}
    assert load_settings(env).cors_origins == (SITE, "https://app.example:8443")
    args = _parser().parse_args(["--cors-origin", SITE, "--cors-origin", "http://127.0.0.1:3000,*"])
    assert _settings(args).cors_origins == (SITE, "http://127.0.0.1:3000", "*")


@pytest.mark.parametrize(
    "bad", ["null", "localhost:8000", f"{SITE}/", f"{SITE}/app", "http://", "*.example.com"]
)
def test_malformed_origins_are_refused(bad):
    with pytest.raises(ValueError, match="not an origin"):
        parse_origins(bad)
    with pytest.raises(ValueError, match="STUDIO_CORS_ORIGINS"):
        load_settings({"STUDIO_CORS_ORIGINS": bad})


# ---------------------------------------------------------------- docs pages
ASSET_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


def _asset_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(client, page):
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "cdn.jsdelivr" not in response.text and "fonts.googleapis" not in response.text
    assert not re.search(r"https?://", response.text), "the page names a remote URL"
    urls = _asset_urls(response.text)
    assert any(u.endswith(".js") for u in urls)
    for url in urls:
        assert url.startswith("/docs-assets/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        kind = ASSET_TYPES[url[url.rindex(".") :]]
        assert kind in asset.headers["content-type"], (url, asset.headers["content-type"])
        assert len(asset.content) > 1000
    assert "/openapi.json" in response.text
    assert client.get("/openapi.json").status_code == 200
    # the browser may fetch nothing elsewhere (ReDoc's bundle shows a logo from its CDN)
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy and "https:" not in policy


def test_docs_follow_a_proxy_prefix(client):
    html = TestClient(client.app, root_path="/studio").get("/docs").text
    assert "/studio/docs-assets/swagger-ui-bundle.js" in html and "/studio/openapi.json" in html


def test_swagger_oauth_redirect_page(client):
    assert client.get("/docs/oauth2-redirect").status_code == 200
