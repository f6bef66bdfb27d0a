"""The footer's language switch in headless Chromium: the whole page follows it (the titles of tabs not
opened yet included), and it holds after a reload and on the next visit, until switched back.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.ui.i18n import COMMON, merge
from app.ui.messages import STRINGS as MESSAGES
from app.ui.tabs.registry import TABS

pytestmark = pytest.mark.browser

# A language as the footer's menu names it (gradio's names) -> the footer's "Settings" link in the
# language shown before it is picked.
PICKS = {"日本語": "Settings", "English": "設定"}


# Words of the missing-models panel (the studio's data folder is empty), worded by the server per visit.
NO_MODEL_YET = {"en": "model yet", "ja": "モデルがまだありません"}


def titles(lang: str) -> list[str]:
    """Every tab's title in ``lang``, in the page's order."""
    table = merge([tab.STRINGS for tab in TABS])[lang]
    return [table[tab.TITLE_KEY] for tab in TABS]


def tagline(lang: str) -> str:
    """The header's second line (its first is the product's name, the same in every language)."""
    return COMMON[lang]["app.header"].splitlines()[-1]


def pick(page, name: str) -> None:
    """Choose ``name`` in the footer's Settings -> Language (the page then draws itself again)."""
    page.locator("footer").get_by_text(PICKS[name]).click()
    page.locator("input[role=combobox][aria-label=Language]:visible").click()  # gradio's, never translated
    page.get_by_role("option", name=name).click()


def expect_page_in(page, lang: str) -> None:
    """Every tab title, the header and the missing-models panel read in ``lang``."""
    expect(page.get_by_role("tab")).to_have_text(titles(lang), timeout=60_000)
    expect(page.locator("#studio-header")).to_contain_text(tagline(lang))
    expect(page.locator("#tts-missing")).to_contain_text(NO_MODEL_YET[lang], timeout=30_000)


def test_a_language_picked_in_the_footer_holds_for_every_tab_and_after_reloads(studio_browser, studio_server):
    from tests.browser import open_studio

    studio_browser.clear_cookies()
    page = open_studio(studio_browser, studio_server)  # the browser speaks en-US
    try:
        expect_page_in(page, "en")
        pick(page, "日本語")
        # Every title, those of the five tabs never opened included, and the server's messages.
        expect_page_in(page, "ja")
        page.locator("#tts-run").click()
        expect(page.get_by_text(MESSAGES["ja"]["tts.err.no_reference"]).first).to_be_visible(timeout=60_000)

        page.reload(wait_until="domcontentloaded")
        expect_page_in(page, "ja")
        page.close()
        page = open_studio(studio_browser, studio_server)  # the next visit
        expect_page_in(page, "ja")
        page.get_by_role("tab", name=titles("ja")[-1]).click()  # a tab first opened in Japanese

        pick(page, "English")
        expect_page_in(page, "en")
        page.reload(wait_until="domcontentloaded")
        expect_page_in(page, "en")
    finally:
        page.close()
        studio_browser.clear_cookies()  # the shared browser's next pages start from their own language
