"""The page's language, whole and kept: a locale picked in the footer's settings holds for every tab
and across reloads, and the server's messages follow it.

Gradio chooses the page's locale once, from ``navigator.language``, when the page starts. Its
footer switch then re-translates what is drawn, but not the titles of tabs not yet opened (gradio
translates those once, when it builds the tab list), and a reload starts again from the browser's
language. So the page works in two steps:

- :data:`LANG_SCRIPT` (the page's ``head``) keeps the shown locale in
  :data:`~app.ui.messages.LANG_COOKIE`, which every event carries (messages built on the server
  read it). When the visitor switches, it remembers the choice in :data:`CHOICE_COOKIE` (a year)
  and reloads the page, so that every part of it is drawn in the new language from the start;
- :data:`START_SCRIPT`, put first in the ``<head>`` of each HTML page the UI serves (by
  :class:`StartLanguage`, an ASGI middleware), makes ``navigator.language`` the chosen locale
  before gradio reads it.

The browser's own language applies until the visitor picks one; ``webui.py --lang`` overrides both.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from app.ui.messages import LANG_COOKIE

# The locale the visitor picked in the footer (a BCP 47 tag of gradio's language list).
CHOICE_COOKIE = "studio_lang_choice"
CHOICE_MAX_AGE_S = 365 * 24 * 3600  # kept a year, like a browser's own language setting
# The tags START_SCRIPT accepts from the cookie ("ja", "zh-CN", "zh-Hant-TW"); anything else is ignored.
_TAG_PATTERN = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$"

START_SCRIPT = f"""<script>
(() => {{
  const found = document.cookie.match(/(?:^|;\\s*){CHOICE_COOKIE}=([^;]*)/);
  const lang = found ? decodeURIComponent(found[1]) : "";
  if (!/{_TAG_PATTERN}/.test(lang)) return;
  try {{
    Object.defineProperty(navigator, "language", {{get: () => lang, configurable: true}});
    Object.defineProperty(navigator, "languages", {{get: () => [lang], configurable: true}});
  }} catch (e) {{}}  // a page that fixed them already (an embedding page) keeps its own
}})();
</script>"""

# Keeps the shown locale in the cookie on load, whenever it changes and before each click or key
# press (the last browser tab used wins when two show different languages). A change after the
# page started is the visitor's pick: remembered, and the page drawn again in it.
LANG_SCRIPT = f"""<script>
(() => {{
  const root = document.documentElement;
  const keep = () => {{
    const lang = root.getAttribute("lang");
    if (lang) document.cookie = "{LANG_COOKIE}=" + encodeURIComponent(lang) + "; path=/; SameSite=Lax";
  }};
  const picked = (records) => {{
    keep();
    const lang = root.getAttribute("lang");
    if (!lang || records.every((record) => record.oldValue === lang)) return;
    document.cookie = "{CHOICE_COOKIE}=" + encodeURIComponent(lang) +
      "; path=/; max-age={CHOICE_MAX_AGE_S}; SameSite=Lax";
    window.location.reload();
  }};
  keep();
  new MutationObserver(picked).observe(root, {{attributes: true, attributeFilter: ["lang"], attributeOldValue: true}});
  for (const kind of ["pointerdown", "keydown", "focus"]) window.addEventListener(kind, keep, true);
}})();
</script>"""

_HEAD = re.compile(rb"<head(\s[^>]*)?>", re.IGNORECASE)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def with_start_script(page: bytes) -> bytes:
    """``page`` (an HTML document) with :data:`START_SCRIPT` first inside its ``<head>``; unchanged
    when it has none."""
    found = _HEAD.search(page)
    if found is None:
        return page
    return page[: found.end()] + START_SCRIPT.encode() + page[found.end() :]


class StartLanguage:
    """ASGI middleware: every uncompressed HTML answer to a GET gets :data:`START_SCRIPT` (the
    length header follows); other answers pass untouched, streamed as they come."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] = {}
        body: list[bytes] = []

        async def send_page(message: Message) -> None:
            if message["type"] == "http.response.start" and _is_plain_html(message["headers"]):
                held["start"] = message
                return
            if "start" not in held or message["type"] != "http.response.body":
                await send(message)
                return
            body.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            page = with_start_script(b"".join(body))
            start = held.pop("start")
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(page)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": page, "more_body": False})

        await self.app(scope, receive, send_page)


def _is_plain_html(headers: list[tuple[bytes, bytes]]) -> bool:
    """An HTML answer the middleware can edit (not compressed)."""
    named = {k.lower(): v for k, v in headers}
    kind = named.get(b"content-type", b"").lower()
    return kind.startswith(b"text/html") and b"content-encoding" not in named
