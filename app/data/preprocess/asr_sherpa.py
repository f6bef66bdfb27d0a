"""SenseVoice and Paraformer-zh through sherpa-onnx: offline ASR for Chinese, Cantonese, Japanese, Korean.

Upstream GPT-SoVITS labels Chinese with FunASR (Paraformer-large + punctuation + VAD) and added
SenseVoice for zh/yue/ja/ko/en. FunASR needs torchaudio and pulls half of ModelScope; sherpa-onnx
(one ~10 MB wheel, no torch) runs the official ONNX exports of both models from local files:

    pretrained_models/sherpa-onnx-sense-voice-zh-en-ja-ko-yue-2024-07-17/model.int8.onnx + tokens.txt
    pretrained_models/sherpa-onnx-paraformer-zh-2023-09-14/model.int8.onnx + tokens.txt

(the publisher's folder names; ``model.onnx`` in float32 is used when the int8 file is absent).
Features (80-bin fbank, low frame rate stacking 7/6, CMVN from the model's metadata) and CTC /
CIF decoding are sherpa-onnx's; we choose the model, the language and read the result.

SenseVoice writes punctuation and digits itself (its "with ITN" mode, option ``punctuation``).
Paraformer has no punctuation head; like upstream's FunASR chain (Paraformer + ct-punc), its text
goes through FunASR's CT-Transformer punctuation model when that is installed:

    pretrained_models/sherpa-onnx-punct-ct-transformer-zh-en-vocab272727-2024-04-12/model.onnx

and the engine's description says when it is not (the text then has no punctuation).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from app import assets
from app.assets.registry import DOWNLOAD_COMMAND
from app.data.preprocess.asr_base import (
    ASR_RATE,
    DEFAULT_MODEL,
    MissingModelError,
    TranscribeOptions,
    Transcript,
    TranscriptionError,
    clean_text,
    register_engine,
)

logger = logging.getLogger(__name__)

SENSEVOICE_FOLDER = "sherpa-onnx-sense-voice-zh-en-ja-ko-yue-2024-07-17"
PARAFORMER_FOLDER = "sherpa-onnx-paraformer-zh-2023-09-14"
PUNCT_FOLDER = "sherpa-onnx-punct-ct-transformer-zh-en-vocab272727-2024-04-12"
# SenseVoice's language tokens (<|zh|> ...) and the languages it can be told to use (its lang2id).
SENSEVOICE_LANGUAGES: tuple[str, ...] = ("zh", "en", "ja", "ko", "yue")
# Paraformer-zh is a Chinese model (it also writes the English words of mixed speech).
PARAFORMER_LANGUAGES: tuple[str, ...] = ("zh",)
# Model file names in the published folders, preferred first (int8: ~4x smaller, as accurate).
MODEL_FILES: tuple[str, ...] = ("model.int8.onnx", "model.onnx")
TOKENS_FILE = "tokens.txt"
# Metadata sherpa-onnx reads from each export; it ends the process on a missing key, so we check first
# (sherpa-onnx/csrc/offline-sense-voice-model.cc, offline-paraformer-model.cc).
_LFR_CMVN = ("vocab_size", "lfr_window_size", "lfr_window_shift", "neg_mean", "inv_stddev")
SENSEVOICE_METADATA: tuple[str, ...] = (
    *_LFR_CMVN,
    "normalize_samples",
    "with_itn",
    "without_itn",
    *(f"lang_{lang}" for lang in ("auto", *SENSEVOICE_LANGUAGES)),
)
PARAFORMER_METADATA: tuple[str, ...] = _LFR_CMVN
# offline-ct-transformer-model.cc
PUNCT_METADATA: tuple[str, ...] = ("tokens", "vocab_size", "punctuations", "unk_symbol")


@dataclass(frozen=True)
class OnnxModelChoice:
    """A resolved sherpa-onnx model folder."""

    model: Path  # model.int8.onnx or model.onnx
    tokens: Path  # tokens.txt
    name: str  # folder name, for messages


def resolve_onnx_model(model: str, pretrained_root: Path, folder_name: str) -> OnnxModelChoice:
    """``model`` ("default" = ``pretrained_root/folder_name``, or a folder path) -> its files; never downloads."""
    folder = Path(pretrained_root) / folder_name if model == DEFAULT_MODEL else Path(model).expanduser()
    onnx_file = next((folder / f for f in MODEL_FILES if (folder / f).is_file()), None)
    tokens = folder / TOKENS_FILE
    if onnx_file is not None and tokens.is_file():
        return OnnxModelChoice(onnx_file, tokens, folder.name)
    missing = [
        str(folder / MODEL_FILES[0]) if onnx_file is None else "",
        str(tokens) if not tokens.is_file() else "",
    ]
    head = f"{folder.name} is not installed: {' and '.join(m for m in missing if m)} not found."
    if model != DEFAULT_MODEL:
        raise MissingModelError(f"{head} Give a folder holding {' or '.join(MODEL_FILES)} and {TOKENS_FILE}.")
    try:
        asset = assets.get(folder_name)
    except assets.UnknownAsset:
        raise MissingModelError(head) from None
    how = assets.missing_message([assets.asset_status(asset, Path(pretrained_root))])
    raise MissingModelError(f"{head}\n{how or f'download: {DOWNLOAD_COMMAND} {asset.id}'}")


def installed(pretrained_root: Path, folder_name: str) -> bool:
    """Whether the published model folder ``folder_name`` is complete in ``pretrained_root``."""
    try:
        resolve_onnx_model(DEFAULT_MODEL, pretrained_root, folder_name)
    except MissingModelError:
        return False
    return True


def _threads() -> int:
    # Two to four threads is where sherpa-onnx's CPU decoding stops getting faster on short clips.
    return max(1, min(4, os.cpu_count() or 1))


def _check_cpu(options: TranscribeOptions, engine: str) -> None:
    """sherpa-onnx from PyPI runs on CPU only; a GPU request is refused rather than ignored."""
    if options.device not in ("auto", "cpu"):
        raise TranscriptionError(
            f"{engine} runs on CPU (the sherpa-onnx wheel from PyPI has no GPU build); "
            f"choose device auto or cpu instead of {options.device!r}"
        )


@lru_cache(maxsize=8)
def check_metadata(model: str, required: tuple[str, ...], kind: str) -> None:
    """Refuse an ONNX file that is not a sherpa-onnx ``kind`` export (wrong file, truncated download)."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own unexported exception types
        raise TranscriptionError(f"{model}: not a loadable ONNX model ({exc}); download it again") from exc
    present = session.get_modelmeta().custom_metadata_map
    missing = [key for key in required if key not in present]
    if missing:
        raise TranscriptionError(
            f"{model}: not a sherpa-onnx {kind} export (metadata {', '.join(missing)} missing); "
            f"use the published {kind} folder"
        )


@lru_cache(maxsize=4)
def _sensevoice(model: str, tokens: str, language: str, itn: bool, threads: int):
    import sherpa_onnx

    logger.info("loading SenseVoice from %s (language %s, ITN %s)", model, language or "auto", itn)
    try:
        return sherpa_onnx.OfflineRecognizer.from_sense_voice(
            model=model, tokens=tokens, num_threads=threads, language=language, use_itn=itn
        )
    except (RuntimeError, ValueError) as exc:
        raise TranscriptionError(f"cannot load the SenseVoice model {model}: {exc}") from exc


@lru_cache(maxsize=2)
def _paraformer(model: str, tokens: str, threads: int):
    import sherpa_onnx

    logger.info("loading Paraformer from %s", model)
    try:
        return sherpa_onnx.OfflineRecognizer.from_paraformer(
            paraformer=model, tokens=tokens, num_threads=threads
        )
    except (RuntimeError, ValueError) as exc:
        raise TranscriptionError(f"cannot load the Paraformer model {model}: {exc}") from exc


@lru_cache(maxsize=1)
def _punctuator(model: str, threads: int):
    import sherpa_onnx

    logger.info("loading CT-Transformer punctuation from %s", model)
    config = sherpa_onnx.OfflinePunctuationModelConfig(ct_transformer=model, num_threads=threads)
    return sherpa_onnx.OfflinePunctuation(sherpa_onnx.OfflinePunctuationConfig(model=config))


def punctuation_model(pretrained_root: Path) -> Path | None:
    """FunASR's CT-Transformer export in ``pretrained_models/``, None when not installed."""
    folder = Path(pretrained_root) / PUNCT_FOLDER
    return next((folder / f for f in MODEL_FILES if (folder / f).is_file()), None)


def _decode(recognizer, wav: np.ndarray):
    """Run one clip ``(T,)`` float32 at 16 kHz through a sherpa-onnx offline recognizer; its result."""
    stream = recognizer.create_stream()
    stream.accept_waveform(ASR_RATE, np.ascontiguousarray(wav, dtype=np.float32))
    recognizer.decode_stream(stream)
    return stream.result


class SenseVoiceEngine:
    """SenseVoice-Small (CTC, 50 languages detected, 5 named): zh, en, ja, ko, yue."""

    multilingual = True

    def __init__(self, choice: OnnxModelChoice, options: TranscribeOptions) -> None:
        _check_cpu(options, "SenseVoice")
        check_metadata(str(choice.model), SENSEVOICE_METADATA, "SenseVoice")
        self.choice = choice
        self.options = options
        self.description = f"SenseVoice {choice.model.name} ({choice.name}, cpu)"

    def supports(self, language: str) -> bool:
        return language in SENSEVOICE_LANGUAGES

    def transcribe(self, wav: np.ndarray, language: str | None) -> Transcript:
        recognizer = _sensevoice(
            str(self.choice.model),
            str(self.choice.tokens),
            language or "",
            self.options.punctuation,
            _threads(),
        )
        result = _decode(recognizer, wav)
        # The first output token names the language heard: "<|zh|>", ... or "<|nospeech|>".
        heard = result.lang.strip("<|>") or (language or "")
        if heard not in SENSEVOICE_LANGUAGES:
            return Transcript("", heard, 0)
        return Transcript(clean_text(result.text), heard, 0)


class ParaformerEngine:
    """Paraformer-large zh (non-autoregressive, CIF): Chinese with the English words of mixed speech."""

    multilingual = False

    def __init__(self, choice: OnnxModelChoice, options: TranscribeOptions, punct: Path | None) -> None:
        _check_cpu(options, "Paraformer")
        check_metadata(str(choice.model), PARAFORMER_METADATA, "Paraformer")
        self.choice = choice
        self.punct = punct if options.punctuation else None
        if self.punct is not None:
            check_metadata(str(self.punct), PUNCT_METADATA, "CT-Transformer punctuation")
        if self.punct is not None:
            marks = "+ CT-Transformer punctuation"
        elif options.punctuation:
            marks = f"without punctuation ({PUNCT_FOLDER} not installed)"
        else:
            marks = "without punctuation"
        self.description = f"Paraformer-zh {choice.model.name} ({choice.name}, cpu) {marks}"

    def supports(self, language: str) -> bool:
        return language in PARAFORMER_LANGUAGES

    def transcribe(self, wav: np.ndarray, language: str | None) -> Transcript:
        recognizer = _paraformer(str(self.choice.model), str(self.choice.tokens), _threads())
        text = clean_text(_decode(recognizer, wav).text)
        if text and self.punct is not None:
            text = clean_text(_punctuator(str(self.punct), _threads()).add_punctuation(text))
        # Upstream's FunASR labeller writes every Paraformer row as ZH.
        return Transcript(text, "zh", 0)


@register_engine("sensevoice")
def load_sensevoice(options: TranscribeOptions, pretrained_root: Path) -> SenseVoiceEngine:
    """SenseVoice from ``pretrained_models/`` (or the folder ``options.model``)."""
    return SenseVoiceEngine(resolve_onnx_model(options.model, pretrained_root, SENSEVOICE_FOLDER), options)


@register_engine("paraformer-zh")
def load_paraformer(options: TranscribeOptions, pretrained_root: Path) -> ParaformerEngine:
    """Paraformer-zh from ``pretrained_models/`` (or the folder ``options.model``)."""
    choice = resolve_onnx_model(options.model, pretrained_root, PARAFORMER_FOLDER)
    return ParaformerEngine(choice, options, punctuation_model(pretrained_root))
