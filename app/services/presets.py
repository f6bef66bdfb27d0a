"""Saved voices: a reference clip, what it says, its language, the models and synthesis defaults.

On disk (under the data root, so several API replicas on one shared volume see the same voices)::

    presets/<name>/preset.json      the :class:`VoicePreset` fields
    presets/<name>/reference.wav    the clip as uploaded (extension from its sniffed format)
    presets/<name>/extra-1.flac     optional more clips of the same voice

Every write is atomic: a preset is assembled in a hidden temporary folder and renamed into place,
so a reader sees the old preset, the new one, or none; never half of one. Two writers racing for
one name: the first rename wins, the second gets :class:`PresetExists`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import logging
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from app import config_io
from app.audio.io import AudioError, audio_info, load_audio
from app.messages import Message
from app.paths import resolve_inside, safe_name
from app.text import LanguageMode, SplitMethod, UnsupportedLanguage

log = logging.getLogger(__name__)

PRESET_FILE = "preset.json"
MAX_NAME_CHARS = 64
# Longest clip kept: the pipeline uses 3-10 s (longer clips are trimmed at pauses); beyond this
# an upload is a mistake, not a reference.
MAX_CLIP_SECONDS = 60.0
# Formats libsndfile names in its header info -> the extension the clip is stored under.
SNIFFED_EXTENSIONS = {"WAV": ".wav", "WAVEX": ".wav", "FLAC": ".flac", "OGG": ".ogg", "MP3": ".mp3"}
# Attempts of one overwrite racing others for the same name before it gives up.
OVERWRITE_TRIES = 20
_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


class PresetError(ValueError):
    """A preset cannot be created or read as asked; the message says what to change.

    ``field``: the :class:`VoicePreset` field at fault (``reference``, ``extra_references``,
    ...; by default ``name``: most errors are about the named preset), or None; interfaces name
    it in their own words.
    """

    def __init__(self, message: str, field: str | None = "name") -> None:
        super().__init__(message)
        self.field = field


class PresetNotFound(PresetError):
    """No preset of that name exists."""


class PresetExists(PresetError):
    """A preset of that name exists already (delete it first, or overwrite)."""


@dataclass(frozen=True)
class VoicePreset:
    """One saved voice; synthesis fields use :class:`app.infer.TTSRequest` names, None = its default."""

    # Folder name, also the ``voice`` of the OpenAI endpoint and ``preset`` of /tts.
    name: str
    # File name of the reference clip inside the preset folder.
    reference: str
    # What the clip says ("" = reference-free: timbre only).
    prompt_text: str = ""
    # Language mode of prompt_text (app.text.LanguageMode id).
    prompt_language: str = "auto"
    # Default language mode of the texts spoken with this voice.
    text_language: str = "auto"
    # More clips of the same voice (file names inside the folder); timbres are averaged.
    extra_references: tuple[str, ...] = ()
    # GPT weights file relative to the data root ("" = the server's current GPT).
    gpt_weights: str = ""
    # SoVITS weights file relative to the data root ("" = the server's current SoVITS).
    sovits_weights: str = ""
    # Synthesis defaults; a request's explicit value wins over these.
    top_k: int | None = None
    top_p: float | None = None
    temperature: float | None = None
    repetition_penalty: float | None = None
    speed: float | None = None
    pause_seconds: float | None = None
    split_method: str | None = None
    seed: int | None = None
    # Free text shown in voice lists.
    description: str = ""
    # When it was saved, ISO 8601 UTC.
    created: str = ""

    def defaults(self) -> dict[str, object]:
        """The synthesis defaults this preset sets (fields that are not None)."""
        names = ("top_k", "top_p", "temperature", "repetition_penalty", "speed", "pause_seconds")
        out: dict[str, object] = {n: getattr(self, n) for n in (*names, "split_method", "seed")}
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class ClipUpload:
    """An uploaded audio file: its bytes and the file name the client gave (only its suffix is used)."""

    data: bytes
    filename: str = ""


def check_name(name: str) -> str:
    """A preset name usable as one folder name; raises :class:`PresetError` otherwise."""
    try:
        cleaned = safe_name(name)
    except ValueError as exc:
        raise PresetError(Message("preset.err.name", "preset name: {problem}", problem=_said(exc))) from None
    if cleaned.startswith(".") or len(cleaned) > MAX_NAME_CHARS:
        template = "preset name {name!r}: must not start with '.' and must be at most {most} characters"
        raise PresetError(Message("preset.err.name_form", template, name=name, most=MAX_NAME_CHARS))
    return cleaned


def _clip_suffix(clip: ClipUpload, what: str, field: str) -> str:
    """The extension to store ``clip`` under, from its content (the client's name is a fallback)."""
    try:
        info = audio_info(clip.data)
        # Decode it all once: a damaged, silent or overlong clip is refused now, not at synthesis.
        load_audio(clip.data, info.sample_rate, max_seconds=MAX_CLIP_SECONDS)
    except AudioError as exc:
        raise PresetError(
            Message("preset.err.clip", "{what}: {problem}", what=what, problem=_said(exc)), field
        ) from None
    sniffed = SNIFFED_EXTENSIONS.get(info.format.upper())
    if sniffed:
        return sniffed
    suffix = Path(clip.filename).suffix.lower()
    return suffix if _SAFE_SUFFIX.match(suffix) else ".audio"


def _check_fields(preset: VoicePreset) -> None:
    for field in ("prompt_language", "text_language"):
        try:
            LanguageMode.parse(getattr(preset, field))
        except UnsupportedLanguage as exc:
            message = Message("preset.err.language", "{field}: {problem}", field=field, problem=_said(exc))
            raise PresetError(message, field) from None
    if preset.split_method is not None:
        try:
            SplitMethod.parse(preset.split_method)
        except ValueError as exc:
            message = Message("preset.err.split", "split_method: {problem}", problem=_said(exc))
            raise PresetError(message, "split_method") from None


class PresetStore:
    """The presets under ``root`` (``Layout.presets``); safe to share between processes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def folder(self, name: str) -> Path:
        return self.root / check_name(name)

    def list(self) -> list[VoicePreset]:
        """Every readable preset, sorted by name; broken folders are logged and left out."""
        if not self.root.is_dir():
            return []
        out = []
        for folder in sorted(self.root.iterdir()):
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            try:
                out.append(self.get(folder.name))
            except PresetError as exc:
                log.warning("skipping preset folder %s: %s", folder, exc)
        return out

    def get(self, name: str) -> VoicePreset:
        """The preset ``name``; :class:`PresetNotFound` when there is none."""
        folder = self.folder(name)
        path = folder / PRESET_FILE
        if not path.is_file():
            known = ", ".join(p.name for p in self.list_names())
            if not known:
                template = "no voice preset named {name!r} (known: none saved yet)"
                raise PresetNotFound(Message("preset.err.none_saved", template, name=name))
            template = "no voice preset named {name!r} (known: {known})"
            raise PresetNotFound(Message("preset.err.not_found_known", template, name=name, known=known))
        try:
            preset = config_io.load(VoicePreset, path)
        except config_io.ConfigError as exc:
            template = "preset {name!r} is damaged: {problem}"
            raise PresetError(
                Message("preset.err.damaged", template, name=name, problem=_said(exc))
            ) from None
        if preset.name != folder.name:
            preset = dataclasses.replace(preset, name=folder.name)
        return preset

    def list_names(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def reference_path(self, preset: VoicePreset) -> Path:
        """Absolute path of the preset's clip (inside its folder; a link out of it is refused)."""
        return self._member(preset, preset.reference)

    def extra_paths(self, preset: VoicePreset) -> tuple[Path, ...]:
        return tuple(self._member(preset, name) for name in preset.extra_references)

    def _member(self, preset: VoicePreset, name: str) -> Path:
        folder = self.folder(preset.name)
        try:
            path = resolve_inside(name, folder)
        except ValueError as exc:
            template = "preset {name!r}: {problem}"
            raise PresetError(
                Message("preset.err.member", template, name=preset.name, problem=_said(exc))
            ) from None
        if not path.is_file():
            template = "preset {name!r}: its clip {clip} is missing; save the preset again"
            raise PresetError(Message("preset.err.clip_missing", template, name=preset.name, clip=name))
        return path

    def create(
        self,
        preset: VoicePreset,
        reference: ClipUpload,
        extra: tuple[ClipUpload, ...] = (),
        overwrite: bool = False,
    ) -> VoicePreset:
        """Save ``preset`` with its clips (``reference``/``extra_references`` fields are filled here).

        Raises :class:`PresetExists` when the name is taken and not ``overwrite``, and
        :class:`PresetError` for an unusable name, clip or field.
        """
        name = check_name(preset.name)
        _check_fields(preset)
        ref_name = "reference" + _clip_suffix(
            reference, Message("preset.what.reference", "reference clip"), "reference"
        )
        extra_names = tuple(
            f"extra-{i}"
            + _clip_suffix(
                clip, Message("preset.what.extra", "extra reference clip {i}", i=i), "extra_references"
            )
            for i, clip in enumerate(extra, 1)
        )
        created = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
        saved = dataclasses.replace(
            preset, name=name, reference=ref_name, extra_references=extra_names, created=created
        )
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            (tmp / ref_name).write_bytes(reference.data)
            for clip, clip_name in zip(extra, extra_names, strict=True):
                (tmp / clip_name).write_bytes(clip.data)
            config_io.save(saved, tmp / PRESET_FILE)
            self._publish(tmp, self.root / name, overwrite)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        log.info("saved voice preset %s", name)
        return saved

    def _publish(self, tmp: Path, target: Path, overwrite: bool) -> None:
        # Writers racing to overwrite one name (two replicas, say) take turns: when another moved
        # the old preset aside first, or put its own in between, this one tries again.
        for _ in range(OVERWRITE_TRIES):
            try:
                os.rename(tmp, target)
                return
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                if not overwrite:
                    template = "a voice preset named {name!r} exists already: delete it first or overwrite it"
                    raise PresetExists(Message("preset.err.exists", template, name=target.name)) from None
            # Overwrite: move the old one aside, then the new one in (the name is briefly absent).
            try:
                trash = self._trash(target)
            except PresetNotFound:
                continue  # another writer moved it aside: its new one comes, or the name is free
            try:
                os.rename(tmp, target)
                return
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
            finally:
                shutil.rmtree(trash, ignore_errors=True)
        template = "preset {name!r} is being overwritten by others; try again"
        raise PresetError(Message("preset.err.contended", template, name=target.name))

    def _trash(self, folder: Path) -> Path:
        trash = self.root / f".trash-{uuid.uuid4().hex}"
        try:
            os.rename(folder, trash)
        except FileNotFoundError:
            raise PresetNotFound(
                Message("preset.err.not_found", "no voice preset named {name!r}", name=folder.name)
            ) from None
        return trash

    def delete(self, name: str) -> None:
        """Remove the preset ``name`` (atomically: it disappears in one rename)."""
        folder = self.folder(name)
        if not (folder / PRESET_FILE).is_file():
            raise PresetNotFound(Message("preset.err.not_found", "no voice preset named {name!r}", name=name))
        shutil.rmtree(self._trash(folder), ignore_errors=True)
        log.info("deleted voice preset %s", name)


def _said(exc: BaseException) -> str:
    """What a lower layer said: its Message when it gave one (the page translates it), else its text."""
    said = exc.args[0] if exc.args else None
    return said if isinstance(said, Message) else str(exc)
