"""Mandarin tone sandhi on jieba words: 不, 一, third-tone sandhi and the neutral tone.

Finals are pypinyin's toned finals ("ao3", "i5"); each rule rewrites the tone digit. The rules,
their order and their corner cases follow upstream GPT-SoVITS (PaddleSpeech's ``ToneSandhi``),
because pretrained models learned those tones. Two steps:

- :func:`merge_words` regroups jieba's words so the rules see whole units (不 + next word,
  看一看, reduplications, runs of third tones, 儿 suffixes);
- :func:`apply_sandhi` rewrites the finals of one word.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from app.text.zh_lexicon import NEUTRAL_TONE_WORDS, NOT_NEUTRAL_WORDS
from app.text.zh_pinyin import finals_of, search_words

log = logging.getLogger(__name__)

Word = list[str]  # [text, part-of-speech], mutable while merging

# Punctuation after which 一 keeps its first tone ("一，").
_PUNCT = "：，；。？！“”‘’':,;.?!"
_NEUTRAL_PARTICLES = "吧呢哈啊呐噻嘛吖嗨呐哦哒额滴哩哟喽啰耶喔诶"
_DIRECTION_HEADS = "上下进出回过起开"
_GE_COUNTERS = "几有两半多各整每做是"


def _retone(final: str, tone: str) -> str:
    return final[:-1] + tone


def _all_third(finals: list[str]) -> bool:
    return all(f[-1] == "3" for f in finals)


def _split_in_two(word: str) -> list[str]:
    """Cut a word into two parts at its shortest dictionary sub-word (first or last part)."""
    parts = sorted(search_words(word), key=len)
    first = parts[0]
    if word.find(first) == 0:
        return [first, word[len(first) :]]
    return [word[: -len(first)], first]


# ---- per-word rules ------------------------------------------------------------------------------
def _bu(word: str, finals: list[str]) -> list[str]:
    if len(word) == 3 and word[1] == "不":  # 看不懂: neutral
        finals[1] = _retone(finals[1], "5")
        return finals
    for i, ch in enumerate(word):
        if ch == "不" and i + 1 < len(word) and finals[i + 1][-1] == "4":  # 不怕: bu2
            finals[i] = _retone(finals[i], "2")
    return finals


def _yi(word: str, finals: list[str]) -> list[str]:
    if "一" in word and all(ch.isnumeric() for ch in word if ch != "一"):
        return finals  # 一 alone or inside a number (一零一): first tone
    if len(word) == 3 and word[1] == "一" and word[0] == word[-1]:  # 看一看: neutral
        finals[1] = _retone(finals[1], "5")
    elif word.startswith("第一"):  # ordinal: first tone
        finals[1] = _retone(finals[1], "1")
    else:
        for i, ch in enumerate(word):
            if ch == "一" and i + 1 < len(word):
                if finals[i + 1][-1] == "4":  # 一段: yi2
                    finals[i] = _retone(finals[i], "2")
                elif word[i + 1] not in _PUNCT:  # 一天: yi4
                    finals[i] = _retone(finals[i], "4")
    return finals


def _is_neutral_word(word: str) -> bool:
    return word in NEUTRAL_TONE_WORDS or word[-2:] in NEUTRAL_TONE_WORDS


def _neutral_index(word: str, pos: str) -> int | None:
    """Index of the syllable a neutral-tone rule applies to (first matching rule), or None."""
    last = word[-1:]
    if last and (last in _NEUTRAL_PARTICLES or last in "的地得"):
        return -1
    if len(word) == 1 and word in "了着过" and pos in {"ul", "uz", "ug"}:  # 走了, 看着, 去过
        return -1
    if len(word) > 1 and last in "们子" and pos in {"r", "n"} and word not in NOT_NEUTRAL_WORDS:
        return -1
    if len(word) > 1 and last in "上下里" and pos in {"s", "l", "f"}:  # 桌上, 地下, 家里
        return -1
    if len(word) > 1 and last in "来去" and word[-2] in _DIRECTION_HEADS:  # 上来, 下去
        return -1
    ge = word.find("个")
    if (ge >= 1 and (word[ge - 1].isnumeric() or word[ge - 1] in _GE_COUNTERS)) or word == "个":
        return ge  # 个 as a measure word
    if _is_neutral_word(word):
        return -1
    return None


def _neutral(word: str, pos: str, finals: list[str]) -> list[str]:
    # Reduplicated nouns, verbs and adjectives: 奶奶, 试试, 旺旺.
    for j in range(1, len(word)):
        if word[j] == word[j - 1] and pos[0] in "nva" and word not in NOT_NEUTRAL_WORDS:
            finals[j] = _retone(finals[j], "5")
    index = _neutral_index(word, pos)
    if index is not None:
        finals[index] = _retone(finals[index], "5")
    # Each half of a compound may end in a conventional neutral-tone word.
    halves = _split_in_two(word)
    parts = [finals[: len(halves[0])], finals[len(halves[0]) :]]
    for half, part in zip(halves, parts, strict=True):
        if _is_neutral_word(half):
            part[-1] = _retone(part[-1], "5")
    return parts[0] + parts[1]


def _third(word: str, finals: list[str]) -> list[str]:
    if len(word) == 2 and _all_third(finals):
        finals[0] = _retone(finals[0], "2")
    elif len(word) == 3:
        halves = _split_in_two(word)
        if _all_third(finals):
            if len(halves[0]) == 2:  # 蒙古/包
                finals[0] = _retone(finals[0], "2")
                finals[1] = _retone(finals[1], "2")
            elif len(halves[0]) == 1:  # 纸/老虎
                finals[1] = _retone(finals[1], "2")
        else:
            parts = [finals[: len(halves[0])], finals[len(halves[0]) :]]
            for i, part in enumerate(parts):
                if _all_third(part) and len(part) == 2:  # 所有/人
                    part[0] = _retone(part[0], "2")
                elif i == 1 and not _all_third(part) and part[0][-1] == "3" and parts[0][-1][-1] == "3":
                    parts[0][-1] = _retone(parts[0][-1], "2")  # 好/喜欢
            finals = parts[0] + parts[1]
    elif len(word) == 4:  # idioms: two halves of two syllables
        parts = [finals[:2], finals[2:]]
        for part in parts:
            if _all_third(part):
                part[0] = _retone(part[0], "2")
        finals = parts[0] + parts[1]
    return finals


def apply_sandhi(word: str, pos: str, finals: list[str]) -> list[str]:
    """Tone sandhi of one word: 不, then 一, then the neutral tone, then third tones."""
    finals = _bu(word, finals)
    finals = _yi(word, finals)
    finals = _neutral(word, pos, finals)
    return _third(word, finals)


# ---- regrouping of jieba's words -------------------------------------------------------------
def _merge_bu(words: list[Word]) -> list[Word]:
    out: list[Word] = []
    last = ""
    for text, pos in words:
        if last == "不":
            text = last + text
        if text != "不":
            out.append([text, pos])
        last = text
    if last == "不":
        out.append([last, "d"])
    return out


def _merge_yi(words: list[Word]) -> list[Word]:
    # 听 一 听 -> 听一听 (both sides the same verb).
    out: list[Word] = []
    i = 0
    while i < len(words):
        text, pos = words[i]
        if i >= 1 and text == "一" and i + 1 < len(words):
            left = out[-1] if out else words[i - 1]
            right = words[i + 1]
            if left[0] == right[0] and left[1] == "v" and right[1] == "v":
                out[-1] = [left[0] + "一" + right[0], left[1]]
                i += 2
                continue
        out.append([text, pos])
        i += 1
    # A lone 一 joins the word after it.
    merged: list[Word] = []
    for text, pos in out:
        if merged and merged[-1][0] == "一":
            merged[-1][0] += text
        else:
            merged.append([text, pos])
    return merged


def _merge_reduplication(words: list[Word]) -> list[Word]:
    out: list[Word] = []
    for text, pos in words:
        if out and text == out[-1][0]:
            out[-1][0] += text
        else:
            out.append([text, pos])
    return out


def _is_reduplication(word: str) -> bool:
    return len(word) == 2 and word[0] == word[1]


def _merge_third_tones(words: list[Word], whole: bool) -> list[Word]:
    """Join a word to the previous one when both are third tone (``whole``: every syllable;
    otherwise the last syllable before and the first after), up to three syllables."""
    finals = [finals_of(text) for text, _ in words]
    out: list[Word] = []
    merged_last = [False] * len(words)
    for i, (text, pos) in enumerate(words):
        if i >= 1:
            # Readings are tested before the merged flag, as upstream does (an empty reading
            # raises here and the whole step is skipped by the caller).
            if whole:
                joinable = _all_third(finals[i - 1]) and _all_third(finals[i])
            else:
                joinable = finals[i - 1][-1][-1] == "3" and finals[i][0][-1] == "3"
            prev = words[i - 1][0]
            # A reduplication stays alone: it needs the neutral-tone rule.
            fits = not _is_reduplication(prev) and len(prev) + len(text) <= 3
            if joinable and not merged_last[i - 1] and fits:
                out[-1][0] += text
                merged_last[i] = True
                continue
        out.append([text, pos])
    return out


def _merge_er(words: list[Word]) -> list[Word]:
    out: list[Word] = []
    for i, (text, pos) in enumerate(words):
        if i >= 1 and text == "儿" and words[i - 1][0] != "#":
            out[-1][0] += text
        else:
            out.append([text, pos])
    return out


def _guarded(step: Callable[[list[Word]], list[Word]], words: list[Word]) -> list[Word]:
    # Upstream skips a merge step that fails (an empty reading); keep the words unmerged then.
    try:
        return step(words)
    except IndexError:
        log.debug("tone-sandhi merge %s skipped for %r", step.__name__, words)
        return words


def merge_words(words: list[tuple[str, str]]) -> list[Word]:
    """Regroup jieba (word, pos) pairs into the units the sandhi rules work on."""
    seg = _merge_bu([[w, p] for w, p in words])
    seg = _guarded(_merge_yi, seg)
    seg = _merge_reduplication(seg)
    seg = _guarded(lambda s: _merge_third_tones(s, whole=True), seg)
    seg = _guarded(lambda s: _merge_third_tones(s, whole=False), seg)
    return _merge_er(seg)
