"""``/docs`` and ``/redoc`` render in headless Chromium with every request to another host refused."""

from __future__ import annotations

import pytest

from app.api.app import create_app
from app.settings import Settings
from tests.api.harness import serve
from tests.browser import chromium_context

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def offline_page(tmp_path_factory):
    """(page, base URL, requests to other hosts) for a served API; other hosts are cut off."""
    home = tmp_path_factory.mktemp("docs_home")
    with (
        serve(create_app(Settings(home=home))) as url,
        chromium_context(tmp_path_factory.mktemp("profile")) as ctx,
    ):
        remote: list[str] = []

        def route(r) -> None:
            if r.request.url.startswith(url):
                r.continue_()
            else:
                remote.append(r.request.url)
                r.abort()

        ctx.route("**/*", route)
        yield ctx.new_page(), url, remote


def test_swagger_ui_renders_offline(offline_page):
    page, url, remote = offline_page
    page.goto(f"{url}/docs")
    page.locator(".opblock-summary-path", has_text="/change_refer").first.wait_for(state="visible")
    assert page.locator(".opblock").count() > 10
    assert remote == []


def test_redoc_renders_offline(offline_page):
    page, url, remote = offline_page
    page.goto(f"{url}/redoc")
    page.get_by_text("SoVITS Studio API", exact=False).first.wait_for(state="visible")
    page.locator("[role=menuitem], li[data-item-id]").first.wait_for(state="visible")
    assert remote == []
