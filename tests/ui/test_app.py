"""app.ui: the tab registry, translations and the Blocks assembly (no browser)."""

from __future__ import annotations

import gradio as gr
import pytest

from app.settings import Settings
from app.ui import i18n
from app.ui.app import app_i18n, build_app, launch_kwargs
from app.ui.tabs.registry import TABS


def test_every_tab_module_follows_the_contract():
    ids = [t.TAB_ID for t in TABS]
    assert len(ids) == len(set(ids)) and "dataset" in ids
    for tab in TABS:
        assert callable(tab.build)
        assert {"en", "zh"} <= set(tab.STRINGS) <= set(i18n.LANGUAGES), (
            f"{tab.TAB_ID}: translate every language"
        )
        assert tab.TITLE_KEY in tab.STRINGS["en"]


def test_translation_tables_are_complete_and_forced_language_applies():
    table = app_i18n("auto").translations_dict
    assert table["en"]["tab.dataset"] == "Dataset" and table["zh-CN"]["tab.dataset"] == "数据集"
    assert table["zh-TW"]["tab.dataset"] == "資料集" and table["ja-JP"]["tab.dataset"] == "データセット"
    assert table["ko"]["tab.dataset"] == "데이터셋"
    forced = app_i18n("zh").translations_dict
    assert forced["en"]["tab.dataset"] == "数据集"
    assert app_i18n("ja").translations_dict["zh-CN"]["tab.tts"] == "音声合成"
    with pytest.raises(ValueError, match="unknown language"):
        i18n.build_i18n([i18n.COMMON], "fr")


def test_merge_rejects_duplicates_and_gaps():
    with pytest.raises(ValueError, match="defined twice"):
        i18n.merge([{"en": {"k": "a"}, "zh": {"k": "b"}}, {"en": {"k": "c"}, "zh": {"k": "d"}}])
    with pytest.raises(ValueError, match="without text"):
        i18n.merge([{"en": {"k": "a"}, "zh": {}}])


def test_build_app_creates_folders_and_launch_settings(tmp_path):
    settings = Settings(home=tmp_path, max_upload_mb=7)
    demo = build_app(settings)
    assert isinstance(demo, gr.Blocks)
    assert (tmp_path / "output").is_dir() and (tmp_path / "pretrained_models").is_dir()
    kwargs = launch_kwargs(settings)
    assert kwargs["max_file_size"] == "7mb"
    assert kwargs["allowed_paths"] == [str(tmp_path / "output")]
    api = {dep.api_name for dep in demo.fns.values()}
    assert "slice" in api
