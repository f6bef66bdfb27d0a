"""Per-language dispatch: text of one language -> normalised text, phones and ``word2ph``.

Upstream's ``clean_text`` rebuilt. Language modules (``app.text.<module>``) expose
``normalize(text, version) -> str`` and ``g2p(norm_text, version) -> G2P``. Rules kept from
upstream:

- v1 reads zh, ja and en; v2 adds ko and yue. A language the version cannot read (or an unknown
  code) is read as English text " ", which yields the single phone ",". :func:`clean_text` does
  this for parity; :func:`check_language` lets callers refuse such input with a clear error.
- In Chinese text ``￥`` and ``^`` are pause marks: they are read as a comma whose phone becomes
  ``SP2`` resp. ``SP3`` (every comma of that text then becomes the pause, as upstream does).
- English segments of fewer than four phones get a leading ``,`` (done by ``app.text.english``).
- Phones missing from the version's table become ``UNK``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from app.messages import Message
from app.text.symbols import check_version, to_known_phones
from app.text.types import G2P

# Language code -> module under app.text, per version.
LANGUAGE_MODULES: dict[str, dict[str, str]] = {
    "v1": {"zh": "chinese", "ja": "japanese", "en": "english"},
    "v2": {"zh": "chinese", "ja": "japanese", "en": "english", "ko": "korean", "yue": "cantonese"},
}
# Languages whose g2p gives phones per character (word2ph) and whose text feeds BERT (zh only).
WORD2PH_LANGUAGES = frozenset({"zh", "yue"})
# (character, language, pause phone): a pause mark read as ``,`` whose phone is replaced.
PAUSE_MARKS = (("￥", "zh", "SP2"), ("^", "zh", "SP3"))


class UnsupportedLanguage(ValueError):
    """A language code the requested symbol-table version cannot read."""


@dataclass(frozen=True)
class CleanResult:
    """One language segment after normalisation and G2P."""

    # Phone symbol names, every one in the version's table (unknown -> "UNK").
    phones: tuple[str, ...]
    # Phones per character of ``norm_text`` for zh/yue; None for other languages.
    word2ph: tuple[int, ...] | None
    # The normalised text the phones were read from.
    norm_text: str


def languages(version: str) -> tuple[str, ...]:
    """Language codes that ``version`` reads."""
    return tuple(LANGUAGE_MODULES[check_version(version)])


def check_language(language: str, version: str) -> str:
    """Return ``language`` if ``version`` reads it, else raise :class:`UnsupportedLanguage`."""
    table = LANGUAGE_MODULES[check_version(version)]
    if language not in table:
        template = "language {language!r} is not available for {version}: use one of {choices}"
        raise UnsupportedLanguage(
            Message(
                "text.err.language", template, language=language, version=version, choices=", ".join(table)
            )
        )
    return language


def language_module(language: str, version: str) -> ModuleType:
    """The ``app.text`` module that reads ``language`` for ``version``."""
    name = LANGUAGE_MODULES[check_version(version)][check_language(language, version)]
    return importlib.import_module(f"app.text.{name}")


def clean_text(text: str, language: str, version: str = "v2", *, g2pw_dir: Path | None = None) -> CleanResult:
    """Normalise and read ``text`` of one language (upstream ``clean_text``).

    ``g2pw_dir``: G2PW model folder for Mandarin polyphones (None: pypinyin's phrase dictionary).
    """
    check_version(version)
    if language not in LANGUAGE_MODULES[version]:
        language, text = "en", " "  # upstream reads unknown languages as a blank English text
    for mark, mark_language, pause in PAUSE_MARKS:
        if mark in text and language == mark_language:
            return _clean_with_pause(text, language, mark, pause, version, g2pw_dir)
    module = language_module(language, version)
    norm_text = module.normalize(text, version)
    result = _g2p(module, language, norm_text, version, g2pw_dir)
    word2ph = result.word2ph if language in WORD2PH_LANGUAGES else None
    if word2ph is not None:
        _check_alignment(result.phones, word2ph, norm_text, language)
    return CleanResult(to_known_phones(result.phones, version), word2ph, norm_text)


def _g2p(module: ModuleType, language: str, norm_text: str, version: str, g2pw_dir: Path | None) -> G2P:
    if language == "zh" and g2pw_dir is not None:
        return module.g2p(norm_text, version, g2pw_dir=g2pw_dir)
    return module.g2p(norm_text, version)


def _clean_with_pause(
    text: str, language: str, mark: str, pause: str, version: str, g2pw_dir: Path | None
) -> CleanResult:
    module = language_module(language, version)
    norm_text = module.normalize(text.replace(mark, ","), version)
    result = _g2p(module, language, norm_text, version, g2pw_dir)
    phones = tuple(pause if ph == "," else ph for ph in result.phones)
    return CleanResult(to_known_phones(phones, version), result.word2ph, norm_text)


def _check_alignment(
    phones: tuple[str, ...], word2ph: tuple[int, ...], norm_text: str, language: str
) -> None:
    # A mismatch would misalign BERT features with phones: fail loudly, naming the text.
    if len(word2ph) != len(norm_text) or sum(word2ph) != len(phones):
        template = (
            "{language} reader produced {phones} phones / {word2ph} word2ph entries for {chars} characters of "
            "{text!r}; please report this text"
        )
        fields = {
            "language": language,
            "phones": len(phones),
            "word2ph": len(word2ph),
            "chars": len(norm_text),
        }
        raise RuntimeError(Message("text.err.reader", template, **fields, text=norm_text))
