"""OpenAI's built-in voice names (``alloy``, ``nova``, ...) -> saved presets.

OpenAI clients and apps send a built-in voice name; this server speaks with saved presets. The
table lives beside the presets (so replicas on one shared volume agree), hand-editable or
replaced through the API::

    presets/openai_voices.json   {"voices": {"alloy": "narrator", "nova": "anna"}, "default": "narrator"}

How a ``voice`` is resolved, first match wins:

1. a saved preset of that name (a preset called ``alloy`` beats the table);
2. the table's entry for the name (any name may be listed, not only OpenAI's);
3. for OpenAI's built-in names only, the default voice: the table's ``default``, else the
   server's setting (``STUDIO_OPENAI_VOICE``), else the one preset when exactly one is saved;
4. otherwise :class:`VoiceUnresolved`, saying how to create a preset or set the default.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from app import config_io
from app.services.presets import PresetError, PresetNotFound, PresetStore, check_name

# OpenAI's built-in voices of /v1/audio/speech (its API reference, 2025).
OPENAI_VOICES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "nova",
    "onyx",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)
TABLE_FILE = "openai_voices.json"


class VoiceUnresolved(PresetNotFound):
    """No preset answers this voice name; the message says how to make one answer."""

    def __init__(self, message: str) -> None:
        super().__init__(message, None)


@dataclass(frozen=True)
class VoiceTable:
    """The table of ``presets/openai_voices.json``."""

    # Voice name (OpenAI's or any alias) -> preset name.
    voices: dict[str, str] = field(default_factory=dict)
    # Preset spoken for OpenAI's built-in names the table does not list ("" = none).
    default: str = ""


@dataclass(frozen=True)
class ResolvedVoice:
    """Which preset a voice name speaks with, and why."""

    # The preset's name.
    preset: str
    # How it was chosen: "preset", "table", "default", "setting" or "only preset".
    via: str

    def note(self, name: str) -> str | None:
        """A sentence for the client when the name is not the preset's own."""
        if self.via == "preset":
            return None
        return (
            f"voice: {name!r} spoke with the preset {self.preset!r} ({self.via}; see GET /v1/audio/voice_map)"
        )


class VoiceTableStore:
    """Reads and writes :data:`TABLE_FILE` under the presets folder."""

    def __init__(self, presets: PresetStore) -> None:
        self.presets = presets
        self.path = Path(presets.root) / TABLE_FILE

    def load(self) -> VoiceTable:
        """The table; an empty one when the file is absent. :class:`PresetError` when damaged."""
        if not self.path.is_file():
            return VoiceTable()
        try:
            return config_io.load(VoiceTable, self.path)
        except config_io.ConfigError as exc:
            raise PresetError(f"presets/{TABLE_FILE} is damaged: {exc}", "voice_map") from None

    def save(self, table: VoiceTable) -> VoiceTable:
        """Write ``table`` atomically after checking every name it gives is a saved preset."""
        for name, preset in table.voices.items():
            try:
                check_name(name)
            except PresetError as exc:
                raise PresetError(f"voices: {name!r} cannot be a voice name: {exc}", "voices") from None
            self._existing(preset, f"voices.{name}")
        if table.default:
            self._existing(table.default, "default")
        table = replace(table, voices=dict(sorted(table.voices.items())))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        config_io.save(table, self.path)
        return table

    def _existing(self, preset: str, where: str) -> None:
        try:
            self.presets.get(preset)
        except PresetNotFound as exc:
            raise PresetError(f"{where}: {exc}", where) from None
        except PresetError as exc:
            raise PresetError(f"{where}: {exc}", where) from None

    def default_voice(self, setting: str | None) -> ResolvedVoice | None:
        """The preset spoken for unlisted built-in names, or None when nothing decides one."""
        table = self.load()
        if table.default:
            return ResolvedVoice(table.default, "default")
        if setting:
            return ResolvedVoice(setting, "setting")
        names = self.presets.list_names()
        if len(names) == 1:
            return ResolvedVoice(names[0].name, "only preset")
        return None

    def resolve(self, name: str, setting: str | None = None) -> ResolvedVoice:
        """The preset ``name`` speaks with (module docstring); PresetError / VoiceUnresolved otherwise."""
        try:
            self.presets.get(name)
            return ResolvedVoice(name, "preset")
        except PresetNotFound:
            pass
        listed = self.load().voices.get(name)
        if listed is not None:
            return self._saved(name, ResolvedVoice(listed, "table"))
        if name not in OPENAI_VOICES:
            self.presets.get(name)  # raises the usual "no voice preset named ..."
        found = self.default_voice(setting)
        if found is not None:
            return self._saved(name, found)
        saved = ", ".join(p.name for p in self.presets.list_names())
        have = f"the saved presets are {saved}" if saved else "no preset is saved yet"
        raise VoiceUnresolved(
            f"voice: {name!r} is one of OpenAI's built-in voices and no preset answers it ({have}). "
            "Save a voice with POST /presets (a 3-10 s clip and what it says), then map it with "
            'PUT /v1/audio/voice_map {"voices": {"' + name + '": "<preset>"}} or make it the '
            'default for every built-in name ({"default": "<preset>"}, or STUDIO_OPENAI_VOICE)'
        )

    def _saved(self, name: str, found: ResolvedVoice) -> ResolvedVoice:
        try:
            self.presets.get(found.preset)
        except PresetError as exc:
            where = {"table": f"presets/{TABLE_FILE}", "setting": "STUDIO_OPENAI_VOICE"}.get(
                found.via, f"the {found.via} of presets/{TABLE_FILE}"
            )
            raise VoiceUnresolved(
                f"voice: {name!r} maps to the preset {found.preset!r} ({where}), which cannot be used: "
                f"{exc}. Save that preset (POST /presets) or change the mapping (PUT /v1/audio/voice_map)"
            ) from None
        return found

    def effective(self, setting: str | None = None) -> dict[str, str | None]:
        """Each built-in name (and each listed alias) -> the preset it speaks with now, or None."""
        out: dict[str, str | None] = {}
        for name in (*OPENAI_VOICES, *self.load().voices):
            try:
                out[name] = self.resolve(name, setting).preset
            except PresetError:
                out[name] = None
        return out
