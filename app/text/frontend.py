"""Text -> phones for synthesis: language modes, segmentation, per-segment reading, overrides.

:func:`text_to_phones` is upstream's ``TextPreprocessor.get_phones_and_bert`` without the BERT
part (see :mod:`app.models.encoders.bert` for that): split the text into language segments as
the mode says, read each segment with its language module, concatenate, and if fewer than six
phones come out, read ``"." + text`` once more (short texts are synthesised badly otherwise).

Language modes (upstream's ids):

- ``all_zh``, ``all_ja``, ``all_ko``, ``all_yue``: the text is that language; only Latin-letter
  runs are read as English. ``all_yue`` reads Chinese characters as Cantonese.
- ``en`` (alias ``all_en``): the whole text is English.
- ``zh``, ``ja``, ``ko``, ``yue``: that language mixed with English; every non-English run is
  read as the chosen language (Chinese characters cannot be told apart from kanji).
- ``auto``: the language of each run is detected; ``auto_yue`` reads detected Chinese as Cantonese.

Inline ``{text|reading}`` overrides (:mod:`app.text.overrides`) become segments of their own.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import app.text.overrides as ov
from app.messages import Message
from app.text.characters import normalize_characters
from app.text.cleaner import UnsupportedLanguage, clean_text, languages
from app.text.symbols import check_version, phones_to_ids

log = logging.getLogger(__name__)

MIN_PHONES = 6  # fewer phones: read again with a leading "."


class LanguageMode(str, Enum):
    """How the languages of a text are decided; the values are upstream's ids."""

    ALL_ZH = "all_zh"
    EN = "en"
    ALL_JA = "all_ja"
    ALL_KO = "all_ko"
    ALL_YUE = "all_yue"
    ZH = "zh"
    JA = "ja"
    KO = "ko"
    YUE = "yue"
    AUTO = "auto"
    AUTO_YUE = "auto_yue"

    @classmethod
    def parse(cls, value: str | LanguageMode) -> LanguageMode:
        """Accept a member, an id ("all_zh"), a name ("ALL_ZH") or the alias "all_en"."""
        if isinstance(value, LanguageMode):
            return value
        key = str(value).strip().lower()
        key = "en" if key == "all_en" else key
        for member in cls:
            if key in (member.value, member.name.lower()):
                return member
        ids = ", ".join(m.value for m in cls)
        template = "unknown language mode {value!r}: use one of {ids} (or all_en)"
        raise UnsupportedLanguage(Message("text.err.unknown_mode", template, value=value, ids=ids))

    @property
    def languages(self) -> frozenset[str]:
        """Languages this mode may read (besides English)."""
        base = {"auto": {"zh", "ja", "ko"}, "auto_yue": {"yue", "ja", "ko"}}.get(self.value)
        return frozenset(base or {self.value.removeprefix("all_")})


class EmptyText(ValueError):
    """The text has nothing to read (empty or whitespace only)."""


@dataclass(frozen=True)
class Segment:
    """One piece of the text read by one language module (or given by an override)."""

    # Language it was read as: zh, yue, en, ja, ko, or "raw" (override with table symbols).
    lang: str
    # The text given to the reader (for an override: the written text).
    text: str
    # Normalised text the phones were read from.
    norm_text: str
    # Phone symbol names, all in the version's table.
    phones: tuple[str, ...]
    # Their ids in the version's table.
    phone_ids: tuple[int, ...]
    # Phones per character of ``norm_text`` (zh/yue), else None.
    word2ph: tuple[int, ...] | None
    # True when the phones come from an inline {text|reading} override.
    override: bool = False


@dataclass(frozen=True)
class TextResult:
    """Phones of a text, ready for the models (and the segments BERT features need)."""

    # The text as given (control/format characters removed, full-width letters and digits made
    # ASCII: app.text.characters; runs of spaces collapsed; without the "." of a retry).
    text: str
    # Language mode id used ("all_zh", "auto", ...).
    mode: str
    # Symbol-table version ("v1" or "v2").
    version: str
    # Phone symbol names of the whole text.
    phones: tuple[str, ...]
    # Their ids (what the GPT and SoVITS text embeddings take).
    phone_ids: tuple[int, ...]
    # Concatenated word2ph when every segment has one, else None.
    word2ph: tuple[int, ...] | None
    # Concatenated normalised text.
    norm_text: str
    # The segments, in order.
    segments: tuple[Segment, ...]
    # True when the text gave fewer than 6 phones and was read again as "." + text.
    retried_with_leading_dot: bool


_MULTI_SPACE = re.compile(" {2,}")
_MIXED = frozenset({LanguageMode.ZH, LanguageMode.JA, LanguageMode.KO, LanguageMode.YUE})


def check_mode(mode: str | LanguageMode, version: str) -> LanguageMode:
    """Parse ``mode`` and require every language it needs to be readable by ``version``."""
    parsed = LanguageMode.parse(mode)
    # "auto" stays available for v1 as upstream has it: a detected Korean run reads as ",".
    missing = set() if parsed is LanguageMode.AUTO else parsed.languages - set(languages(version))
    if missing:
        template = (
            "language mode {mode!r} needs {missing}, which {version} models cannot read: use a v2 "
            "model or one of {modes}"
        )
        message = Message(
            "text.err.mode_version",
            template,
            mode=parsed.value,
            missing=", ".join(sorted(missing)),
            version=version,
            modes=", ".join(modes(version)),
        )
        raise UnsupportedLanguage(message)
    return parsed


def modes(version: str) -> tuple[str, ...]:
    """Language mode ids available for ``version``."""
    out = []
    for m in LanguageMode:
        if m is LanguageMode.AUTO or m.languages <= set(languages(version)):
            out.append(m.value)
    return tuple(out)


def _language_runs(text: str, mode: LanguageMode) -> list[tuple[str, str]]:
    """(text, language) runs of ``text`` as ``mode`` decides them (upstream's segmentation)."""
    if mode is LanguageMode.EN:
        return [(text, "en")]
    import app.text.langsegment as langsegment  # lazy: loads the language detector

    if mode in (LanguageMode.ALL_ZH, LanguageMode.ALL_YUE, LanguageMode.ALL_JA, LanguageMode.ALL_KO):
        default = {"all_zh": "zh", "all_yue": "zh", "all_ja": "ja", "all_ko": "ko"}[mode.value]
        pairs = langsegment.segment(text, default)
    else:
        pairs = langsegment.segment(text)
    runs = [(piece, lang) for lang, piece in pairs]  # the segmenter gives (lang, text)
    if mode in (LanguageMode.ALL_YUE, LanguageMode.AUTO_YUE):
        return [(t, "yue" if lang == "zh" else lang) for t, lang in runs]
    if mode not in _MIXED:
        return list(runs)
    # Mixed modes: English runs stay English, every other run is the chosen language; neighbours
    # of the same kind are joined.
    out: list[tuple[str, str]] = []
    for t, lang in runs:
        kind = "en" if lang == "en" else mode.value
        if out and out[-1][1] == kind:
            out[-1] = (out[-1][0] + t, kind)
        else:
            out.append((t, kind))
    return out


def _read(text: str, lang: str, version: str, g2pw_dir: Path | None) -> Segment:
    r = clean_text(text, lang, version, g2pw_dir=g2pw_dir)
    return Segment(lang, text, r.norm_text, r.phones, tuple(phones_to_ids(r.phones, version)), r.word2ph)


def _override_segment(written: str, reading: str, mode: LanguageMode, version: str) -> Segment:
    yue = mode in (LanguageMode.ALL_YUE, LanguageMode.YUE, LanguageMode.AUTO_YUE)
    o = ov.resolve(written, reading, version, yue=yue)
    return Segment(o.lang, o.text, o.text, o.phones, tuple(phones_to_ids(o.phones, version)), o.word2ph, True)


def _segments(text: str, mode: LanguageMode, version: str, g2pw_dir: Path | None) -> list[Segment]:
    out: list[Segment] = []
    for piece in ov.split_overrides(text):
        if isinstance(piece, tuple):
            out.append(_override_segment(*piece, mode, version))
        else:
            out += [_read(t, lang, version, g2pw_dir) for t, lang in _language_runs(piece, mode)]
    return out


def _result(
    text: str, mode: LanguageMode, version: str, segments: list[Segment], retried: bool
) -> TextResult:
    phones = tuple(p for s in segments for p in s.phones)
    word2ph = None
    if segments and all(s.word2ph is not None for s in segments):
        word2ph = tuple(n for s in segments for n in s.word2ph or ())
    return TextResult(
        text=text,
        mode=mode.value,
        version=version,
        phones=phones,
        phone_ids=tuple(i for s in segments for i in s.phone_ids),
        word2ph=word2ph,
        norm_text="".join(s.norm_text for s in segments),
        segments=tuple(segments),
        retried_with_leading_dot=retried,
    )


def text_to_phones(
    text: str,
    mode: str | LanguageMode = LanguageMode.AUTO,
    version: str = "v2",
    *,
    g2pw_dir: Path | None = None,
) -> TextResult:
    """Read ``text`` in language ``mode`` into phones of the ``version`` symbol table.

    ``g2pw_dir``: folder of the G2PW ONNX model for Mandarin polyphones (e.g.
    ``pretrained_models/G2PWModel``); None uses pypinyin's phrase dictionary. Control and format
    characters are removed first and full-width letters and digits made ASCII
    (:func:`~app.text.characters.normalize_characters`).
    Raises :class:`EmptyText` for text with nothing left (empty, blank, control characters
    only), :class:`UnsupportedLanguage` for a mode the version cannot read, and
    :class:`~app.text.overrides.OverrideError` for a bad override.
    """
    check_version(version)
    parsed = check_mode(mode, version)
    if not isinstance(text, str):
        raise TypeError(
            Message("text.err.not_str", "text must be a str, not {kind}", kind=type(text).__name__)
        )
    text = normalize_characters(text)
    if not text.strip():
        raise EmptyText(Message("text.err.empty", "the text is empty: enter something to read"))
    text = _MULTI_SPACE.sub(" ", text)
    segments = _segments(text, parsed, version, g2pw_dir)
    if sum(len(s.phones) for s in segments) >= MIN_PHONES:
        return _result(text, parsed, version, segments, retried=False)
    log.debug("fewer than %d phones for %r; reading '.' + text", MIN_PHONES, text)
    return _result(text, parsed, version, _segments("." + text, parsed, version, g2pw_dir), retried=True)
