"""The page's language scripts and the middleware that starts each page in the picked language
(the browser side is tests/ui/test_page_language_browser.py)."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from app.settings import Settings
from app.ui.messages import LANG_COOKIE
from app.ui.page_language import (
    CHOICE_COOKIE,
    LANG_SCRIPT,
    START_SCRIPT,
    StartLanguage,
    with_start_script,
)

PAGE = "<!doctype html>\n<html lang=en>\n\t<head>\n<title>t</title></head><body>x</body></html>"


def _client() -> TestClient:
    async def page(_request):
        return HTMLResponse(PAGE)

    async def chunked(_request):
        parts = [PAGE[:10], PAGE[10:30], PAGE[30:]]  # "<head>" cut across two chunks
        return StreamingResponse(iter(p.encode() for p in parts), media_type="text/html")

    async def text(_request):
        return PlainTextResponse("<head> stays")

    async def zipped(_request):
        return Response(
            gzip.compress(PAGE.encode()), media_type="text/html", headers={"content-encoding": "gzip"}
        )

    routes = [Route(f"/{fn.__name__}", fn, methods=["GET", "POST"]) for fn in (page, chunked, text, zipped)]
    app = Starlette(routes=routes)
    app.add_middleware(StartLanguage)
    return TestClient(app)


@pytest.mark.parametrize("path", ["/page", "/chunked"])
def test_html_pages_start_with_the_script_and_a_right_length(path):
    answer = _client().get(path)
    assert answer.text.startswith("<!doctype html>\n<html lang=en>\n\t<head>" + START_SCRIPT + "\n<title>")
    assert answer.text.replace(START_SCRIPT, "", 1) == PAGE
    if "content-length" in answer.headers:
        assert int(answer.headers["content-length"]) == len(answer.content)


def test_other_answers_pass_untouched():
    client = _client()
    assert client.get("/text").text == "<head> stays"
    assert client.post("/page").text == PAGE  # only GETs are pages
    zipped = client.get("/zipped")  # compressed: left as it is (the client unzips it)
    assert zipped.text == PAGE


TAGS = st.text(alphabet='<>headrtml/="x \n', max_size=40).filter(lambda t: "<head" not in t.lower())


@given(TAGS, TAGS)
def test_the_script_goes_right_after_the_first_head_tag(before, after):
    page = before + "<head>" + after + "<head>"
    assert with_start_script(page.encode()).decode() == before + "<head>" + START_SCRIPT + after + "<head>"


@given(TAGS)
def test_a_page_without_a_head_is_unchanged(page):
    assert with_start_script(page.encode()).decode() == page


def test_the_page_head_keeps_the_language_and_the_pick(tmp_path):
    from app.ui.app import launch_kwargs

    kwargs = launch_kwargs(Settings(home=tmp_path))
    assert kwargs["head"] == LANG_SCRIPT
    assert [m.cls for m in kwargs["app_kwargs"]["middleware"]] == [StartLanguage]
    # The shown locale for the server's messages; a change after the start is a pick, kept and redrawn.
    assert f'"{LANG_COOKIE}="' in LANG_SCRIPT and f'"{CHOICE_COOKIE}="' in LANG_SCRIPT
    assert "attributeOldValue: true" in LANG_SCRIPT and "location.reload()" in LANG_SCRIPT
    assert f"{CHOICE_COOKIE}=" in START_SCRIPT and "navigator" in START_SCRIPT


def test_the_page_mounted_in_the_api_server_starts_in_the_picked_language_too(tmp_path):
    """``python -m app.api`` serves the page at /ui through gradio's mount: the middleware rides along."""
    from fastapi.testclient import TestClient

    from app.api.server import build_server
    from app.ui.mount import mount_ui

    app = build_server(Settings(home=tmp_path), mount_ui=mount_ui)
    try:
        with TestClient(app) as client:
            page = client.get("/ui/")
            assert page.status_code == 200 and START_SCRIPT in page.text
            assert page.text.index(START_SCRIPT) < page.text.index('<script type="module"')  # before gradio
            assert START_SCRIPT not in client.get("/docs").text  # the API's own pages are left alone
    finally:
        app.state.api.synthesis.shutdown()
