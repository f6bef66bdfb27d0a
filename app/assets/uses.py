"""What each catalog asset is used by (``Asset.used_by``), as Messages: the web UI words them in the
reader's language inside its "not installed" texts; the API and the CLIs say the English text."""

from __future__ import annotations

from app.messages import Message


def tts_training(stage: str) -> Message:
    """A GPT-SoVITS model that TTS and training load; ``stage`` names its use in the text ("1b")."""
    if stage == "hubert":
        return Message("use.hubert", "TTS reference encoding, training feature extraction (1b)")
    return Message("use.roberta", "TTS Chinese text, training feature extraction (1a), G2PW tokenizer")


def base_models(version: str) -> Message:
    """The pretrained GPT + SoVITS of ``version`` ("v1", "v2", "v2Pro", "v2ProPlus")."""
    return Message("use.base", "training of {version} models, base-model TTS", version=version)


def flow_models(version: str) -> Message:
    """The v3/v4 pretrained models (their LoRA voices need them too)."""
    return Message("use.flow", "{version} TTS (base and LoRA voices)", version=version)


SPEAKER = Message("use.speaker", "v2Pro/v2ProPlus TTS and training (speaker embedding)")
G2PW = Message("use.g2pw", "Chinese text frontend (v2+ polyphones); pypinyin is used without it")
LANGUAGE_ID = Message("use.lid", "Text: language detection for mixed-language input")
ASR = Message("use.asr", "Dataset: transcription (ASR)")
ASR_ENGLISH = Message("use.asr_english", "Dataset: offline default English ASR")
ASR_CJK = Message("use.asr_cjk", "Dataset: transcription (ASR) of Chinese, Cantonese, Japanese, Korean")
SEPARATION = Message("use.separation", "Dataset: vocal separation")
CLEAN_UP = Message("use.clean_up", "Dataset: vocal clean-up")
DEREVERB = Message("use.dereverb", "Dataset: vocal clean-up (de-reverb)")
VR = Message("use.vr", "Dataset: vocal separation and clean-up (UVR VR models)")
ROFORMER = Message("use.roformer", "Dataset: vocal separation (BS-RoFormer)")
DENOISER = Message("use.denoiser", "Dataset: vocal clean-up (learned denoiser)")
SVC_IMPORT = Message("use.svc_import", "SVC: importing so-vits-svc 4.1 setups that point at the fairseq file")
ENHANCER = Message("use.enhancer", "SVC: optional NSF-HiFiGAN enhancer")


def content_features(kind: str) -> Message:
    """An SVC content encoder; ``kind`` is so-vits-svc's speech_encoder wording ("4.1 vec768l12")."""
    return Message("use.content", "SVC: content features (so-vits-svc {kind})", kind=kind)


def pitch(method: str) -> Message:
    """An SVC f0 extractor (``method``: "rmvpe", "fcpe")."""
    return Message("use.pitch", "SVC: f0 extraction ({method})", method=method)
