"""The page in each language, in headless Chromium: labels, a synthesis error, result summaries, the footer switch.

The browser's language is set per page (``navigator.language`` and the ``Accept-Language`` header, as
a browser set to that language sends them); one studio with tiny random models serves them all.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.infer.tiny import build_home, voice

pytestmark = pytest.mark.browser

# Browser locale -> (TTS tab title, the missing-reference error, the reference check shown on
# upload, the Dataset tab title, the slicing result summary).
LOCALES = {
    "en-US": (
        "Text to speech",
        "no reference clip: upload or record",
        "a good length",
        "Dataset",
        "clips from 1 file(s)",
    ),
    "zh-CN": ("语音合成", "没有参考音频：请上传或录制", "适合作为参考音频", "数据集", "来自 1 个文件"),
    "zh-TW": ("語音合成", "沒有參考音訊：請上傳或錄製", "適合作為參考音訊", "資料集", "來自 1 個檔案"),
    "ja-JP": ("音声合成", "参照音声がありません", "ちょうどよい長さ", "データセット", "1 ファイルから"),
    "ko-KR": ("음성 합성", "참조 음성이 없습니다", "알맞은 길이", "데이터셋", "파일 1개에서"),
}


@pytest.fixture(scope="module")
def locale_server(tmp_path_factory):
    from tests.browser import run_studio

    home = build_home(tmp_path_factory.mktemp("locale_home"))
    with run_studio(home, env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}) as server:
        yield server


def open_in(context, server, locale: str):
    """The studio in a page whose browser speaks ``locale`` (as open_studio, with the language set first;
    no language picked in the footer before)."""
    context.clear_cookies()
    page = context.new_page()
    page.add_init_script(
        f"Object.defineProperty(navigator, 'language', {{get: () => '{locale}', configurable: true}});"
        f"Object.defineProperty(navigator, 'languages', {{get: () => ['{locale}'], configurable: true}});"
    )
    page.set_extra_http_headers({"Accept-Language": f"{locale},{locale.split('-')[0]};q=0.9"})
    page.goto(server.url, wait_until="domcontentloaded")
    page.get_by_role("tab").first.wait_for(state="visible", timeout=60_000)
    return page


@pytest.mark.parametrize("locale", list(LOCALES))
def test_the_page_speaks_the_browsers_language(studio_browser, locale_server, locale, tmp_path):
    tts_title, refused, checked, dataset_title, sliced = LOCALES[locale]
    clip = voice(tmp_path / "ref.wav", 4.0, pauses=(2.0,))
    page = open_in(studio_browser, locale_server, locale)
    try:
        page.get_by_role("tab", name=tts_title).click()
        # A synthesis refused before any model loads: the toast says why in this language.
        page.locator("#tts-run").click()
        expect(page.get_by_text(refused).first).to_be_visible(timeout=60_000)
        # The reference is checked as soon as it is uploaded, before any model loads.
        page.locator("#tts-reference input[type=file]").set_input_files(str(clip))
        expect(page.locator("#tts-ref-check")).to_contain_text(checked, timeout=60_000)
        expect(page.locator("#tts-ref-check")).to_contain_text("4.0")
        # A result summary: slicing a recording on the Dataset tab.
        page.get_by_role("tab", name=dataset_title).click()
        page.locator("#dataset-files input[type=file]").set_input_files(str(clip))
        expect(page.locator("#dataset-files")).to_contain_text("KB", timeout=30_000)
        page.locator("#dataset-run").click()
        expect(page.locator("#dataset-status")).to_contain_text(sliced, timeout=60_000)
    finally:
        page.close()


def test_the_footer_language_switch_reaches_the_server_messages(studio_browser, locale_server):
    """An English browser switched to Japanese in the footer's settings: labels and the toasts built
    on the server (a refused synthesis) both speak Japanese."""
    context = studio_browser
    page = open_in(context, locale_server, "en-US")
    try:
        page.locator("footer").get_by_text("Settings").click()
        page.locator("input[role=combobox][aria-label=Language]:visible").click()
        page.get_by_role("option", name="日本語").click()
        # The page draws itself again in Japanese: a tab not opened yet has its Japanese title.
        expect(page.get_by_role("tab", name=LOCALES["ja-JP"][3])).to_be_visible(timeout=60_000)
        expect(page.get_by_role("dialog")).to_be_hidden()
        page.get_by_role("tab", name="音声合成").click()
        page.locator("#tts-run").click()
        expect(page.get_by_text(LOCALES["ja-JP"][1]).first).to_be_visible(timeout=60_000)
        expect(page.get_by_text(LOCALES["en-US"][1])).to_have_count(0)
    finally:
        page.close()
        context.clear_cookies()  # the pick is kept; the next pages start from their browser's language


# Browser locale -> words of the synthesis result line (its time and its seed).
RESULT_WORDS = {"zh-CN": ("合成用时", "种子"), "ja-JP": ("合成時間", "シード")}


@pytest.mark.parametrize("locale", list(RESULT_WORDS))
def test_a_synthesis_result_summary_reads_in_the_pages_language(
    studio_browser, locale_server, locale, tmp_path
):
    """A whole synthesis with the tiny models (about 10 s): the result line under the player is translated."""
    clip = voice(tmp_path / "ref.wav", 4.0, pauses=(2.0,))
    page = open_in(studio_browser, locale_server, locale)
    try:
        page.locator("#tts-reference input[type=file]").set_input_files(str(clip))
        expect(page.locator("#tts-ref-check")).to_contain_text(LOCALES[locale][2], timeout=60_000)
        page.locator("#tts-prompt textarea").first.fill("你好欢迎来到我们的节目")
        page.locator("#tts-text textarea").first.fill("今天天气很不错。")
        page.locator("#tts-run").click()
        info = page.locator("#tts-info")
        took, seed = RESULT_WORDS[locale]
        expect(info).to_contain_text(took, timeout=180_000)
        expect(info).to_contain_text(seed)
        expect(info).not_to_contain_text("seed")
    finally:
        page.close()
