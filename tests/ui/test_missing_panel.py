"""The missing-models panel and the base-model check before a job."""

from __future__ import annotations

import gradio as gr
import pytest

from app.assets import asset_status, get
from app.paths import Layout
from app.ui.tabs.missing import asset_text, check_before_job, missing_ids, missing_text


def test_the_panel_names_folders_relative_and_one_command(tmp_path):
    layout = Layout(tmp_path, tmp_path / "pretrained_models").ensure()
    text = asset_text(layout, ("chinese-hubert-base", "content-vec-best"))
    assert (
        "`pretrained_models/chinese-hubert-base/`" in text and "`pretrained_models/content-vec-best/`" in text
    )
    assert "`python tools/download_models.py chinese-hubert-base content-vec-best`" in text
    assert str(tmp_path) not in text  # file names relative to the data folder, no absolute paths
    assert "copy the `pretrained_models/` folder" in text
    listing = missing_text(layout, [asset_status(get("gpt-sovits-v2"), layout.pretrained)], ("GPT", "SoVITS"))
    assert listing.startswith("No GPT + SoVITS model yet") and "`GPT_weights/`" in listing


def test_present_files_of_another_size_are_not_missing(tmp_path):
    layout = Layout(tmp_path, tmp_path / "pretrained_models").ensure()
    status = asset_status(get("content-vec-best"), layout.pretrained)
    for fs in status.files:
        fs.path.parent.mkdir(parents=True, exist_ok=True)
        fs.path.write_bytes(b"a smaller, converted model")
    assert missing_ids(layout, ("content-vec-best",)) == []
    assert asset_text(layout, ("content-vec-best",)) == ""
    check_before_job(layout, ("content-vec-best",), required=True)  # nothing to refuse
    (layout.pretrained / "content-vec-best" / "pytorch_model.bin").rename(
        layout.pretrained / "content-vec-best" / "model.safetensors"
    )
    assert missing_ids(layout, ("content-vec-best",)) == []  # the other weight format the loaders read


def test_a_job_without_its_base_models_is_refused_or_warned(tmp_path):
    layout = Layout(tmp_path, tmp_path / "pretrained_models").ensure()
    with pytest.raises(gr.Error, match=r"python tools/download_models\.py rmvpe"):
        check_before_job(layout, ("rmvpe",), required=True)
    with pytest.warns(UserWarning, match="Missing base models: rmvpe"):
        check_before_job(layout, ("rmvpe",), required=False)


def test_the_panel_says_what_each_model_is_in_the_readers_language(tmp_path):
    """The describing words come from the catalog's Message, in the page's language; the id, files
    and command stay as they are."""
    from types import SimpleNamespace

    from gradio.context import LocalContext

    from app.ui.i18n import LANGUAGES
    from app.ui.messages import STRINGS

    layout = Layout(tmp_path, tmp_path / "pretrained_models").ensure()
    english = get("rmvpe").description
    assert english == "RMVPE pitch estimator" and english.key == "asset.rmvpe"  # the API/CLI keep English
    for lang in LANGUAGES:
        token = LocalContext.blocks.set(SimpleNamespace(studio_lang=lang))  # as ``webui.py --lang`` does
        try:
            text = asset_text(layout, ("rmvpe", "demucs-htdemucs"))
        finally:
            LocalContext.blocks.reset(token)
        assert f"**rmvpe** ({STRINGS[lang]['asset.rmvpe']}) → `pretrained_models/`: `rmvpe.pt`" in text
        assert STRINGS[lang]["asset.demucs"].format(name="htdemucs") in text
        assert "`python tools/download_models.py rmvpe demucs-htdemucs`" in text
        if lang != "en":
            assert english not in text and "source separation" not in text and "copy the" not in text
