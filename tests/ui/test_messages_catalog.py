"""What each catalog asset is used by (``Asset.used_by``), in every language: a Message the web UI
words in the reader's language, whose English (the API's, the CLIs') is the catalog's text unchanged."""

from __future__ import annotations

from app.messages import Message
from app.ui.i18n import LANGUAGES
from app.ui.messages import render

# The catalog's English texts before they became Messages: the API and `python -m app.assets` say these.
ENGLISH = {
    "TTS reference encoding, training feature extraction (1b)",
    "TTS Chinese text, training feature extraction (1a), G2PW tokenizer",
    "training of v1 models, base-model TTS",
    "training of v2 models, base-model TTS",
    "training of v2Pro models, base-model TTS",
    "training of v2ProPlus models, base-model TTS",
    "v3 TTS (base and LoRA voices)",
    "v4 TTS (base and LoRA voices)",
    "v2Pro/v2ProPlus TTS and training (speaker embedding)",
    "Chinese text frontend (v2+ polyphones); pypinyin is used without it",
    "Dataset: transcription (ASR)",
    "Dataset: offline default English ASR",
    "Dataset: vocal separation",
    "SVC: content features (so-vits-svc 4.1 vec768l12)",
    "SVC: importing so-vits-svc 4.1 setups that point at the fairseq file",
    "SVC: content features (so-vits-svc hubertsoft)",
    "SVC: f0 extraction (rmvpe)",
    "SVC: f0 extraction (fcpe)",
    "SVC: optional NSF-HiFiGAN enhancer",
    "Text: language detection for mixed-language input",
    "Dataset: transcription (ASR) of Chinese, Cantonese, Japanese, Korean",
    "Dataset: vocal clean-up",
    "Dataset: vocal clean-up (de-reverb)",
    "Dataset: vocal separation and clean-up (UVR VR models)",
    "Dataset: vocal separation (BS-RoFormer)",
    "Dataset: vocal clean-up (learned denoiser)",
}


def test_every_assets_use_reads_in_every_language_and_keeps_its_english():
    from app.assets import all_assets

    assets = all_assets()
    assert {str(asset.used_by) for asset in assets} == ENGLISH
    for asset in assets:
        assert isinstance(asset.used_by, Message), asset.id
        shown = {lang: render(asset.used_by, lang) for lang in LANGUAGES}
        assert shown["en"] == str(asset.used_by)
        for lang, text in shown.items():
            assert all(str(v) in text for v in asset.used_by.params.values()), (asset.id, lang)
            if lang != "en":
                assert text != shown["en"], (asset.id, lang)


def test_the_not_installed_text_words_the_use_in_the_readers_language(tmp_path):
    """A separation model that is not installed: the UI says what it is for in the reader's words,
    the API the catalog's English."""
    from app.assets import asset_status, get, missing_message

    said = missing_message([asset_status(get("roformer-bs-viperx-1297"), tmp_path)], command="fetch")
    assert "used by Dataset: vocal separation (BS-RoFormer))" in str(said)
    for lang in LANGUAGES[1:]:
        shown = render(said, lang)
        assert "vocal separation" not in shown and "Dataset:" not in shown, (lang, shown)
        assert "BS-RoFormer" in shown and "fetch roformer-bs-viperx-1297" in shown, (lang, shown)
