"""Mandarin polyphones with the G2PW ONNX model (optional; upstream GPT-SoVITS' default reader).

Used when a ``G2PWModel`` folder is given (``pretrained_models/G2PWModel``: ``g2pW.onnx``,
``POLYPHONIC_CHARS.txt``, ``MONOPHONIC_CHARS.txt``, ``bopomofo_to_pinyin_wo_tune_dict.json``,
``config.py``) together with a BERT tokenizer (by default the sibling
``chinese-roberta-wwm-ext-large`` folder). Nothing is downloaded.

Per sentence, as upstream does: the text is converted to Taiwan-traditional characters (the
model was trained on them); each polyphonic character is classified by the model from up to
16 characters of context on either side; monophonic characters take their listed reading;
everything else (and characters the model does not know) is read by pypinyin.

One difference from upstream: upstream then overrides word readings from its own polyphone
dictionary (``polyphonic.rep``, not distributed here); we use pypinyin's phrase dictionary for
words it lists instead, and keep the model's reading otherwise.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from app.text.zh_normalize import to_simplified

log = logging.getLogger(__name__)

MODEL_FILES = ("g2pW.onnx", "g2pw.onnx")
TOKENIZER_FOLDER = "chinese-roberta-wwm-ext-large"  # sibling folder upstream passes as tokenizer
CONTEXT_CHARS = 16  # characters of context kept on each side of the polyphonic span
MAX_TOKENS = 512
# Characters upstream never sends to the model although they are in its polyphone list
# (tone sandhi handles 一/不), and two it does not take from the monophone list.
NOT_POLYPHONIC = frozenset("一不和咋嗲剖差攢倒難奔勁拗肖瘙誒泊听噢")
NOT_MONOPHONIC = frozenset("似攢")


class G2PWModelMissing(FileNotFoundError):
    """The G2PW folder or its tokenizer is missing or incomplete."""


def find_model(pretrained_dir: Path) -> Path | None:
    """``pretrained_dir/G2PWModel`` if it holds the ONNX model, else None (logs which reader)."""
    folder = Path(pretrained_dir) / "G2PWModel"
    found = any((folder / name).is_file() for name in MODEL_FILES)
    _announce(folder if found else None, folder)
    return folder if found else None


@lru_cache(maxsize=16)
def _announce(model_dir: Path | None, looked_in: Path) -> None:
    # Once per setting: which reader decides Mandarin polyphones.
    if model_dir is None:
        log.info("Mandarin polyphones: pypinyin phrase dictionary (no G2PW model in %s)", looked_in)
    else:
        log.info("Mandarin polyphones: G2PW model in %s", model_dir)


def _tokenizer_dir(model_dir: Path) -> Path:
    own = model_dir / "tokenizer"
    return own if own.is_dir() else model_dir.parent / TOKENIZER_FOLDER


def _config_flags(path: Path) -> dict[str, Any]:
    """Literal top-level assignments of the model's config.py, read without executing it."""
    if not path.is_file():
        return {}
    flags: dict[str, Any] = {}
    for node in ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                flags[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return flags


def _read_pairs(path: Path) -> list[tuple[str, str]]:
    rows = path.read_text(encoding="utf-8").strip().split("\n")
    return [tuple(row.split("\t")[:2]) for row in rows if "\t" in row]  # type: ignore[misc]


@dataclass(frozen=True)
class _Model:
    session: Any  # onnxruntime.InferenceSession
    tokenizer: Any  # transformers tokenizer
    labels: tuple[str, ...]  # bopomofo readings (or "char reading" pairs), model output order
    char_ids: dict[str, int]
    masks: dict[str, np.ndarray]  # allowed labels per polyphonic character
    use_mask: bool
    char_labels: bool  # labels are "char reading" pairs (config use_char_phoneme)
    polyphonic: frozenset[str]
    monophonic: dict[str, str]  # char -> bopomofo
    bopomofo_to_pinyin: dict[str, str]  # bopomofo without tone -> pinyin without tone
    to_traditional: Any  # OpenCC s2tw


@lru_cache(maxsize=2)
def _load(model_dir: Path) -> _Model:
    model_file = next((model_dir / n for n in MODEL_FILES if (model_dir / n).is_file()), None)
    needed = ["POLYPHONIC_CHARS.txt", "MONOPHONIC_CHARS.txt", "bopomofo_to_pinyin_wo_tune_dict.json"]
    missing = [n for n in needed if not (model_dir / n).is_file()] + ([] if model_file else ["g2pW.onnx"])
    tok_dir = _tokenizer_dir(model_dir)
    if missing or not tok_dir.is_dir():
        what = ", ".join(missing) if missing else f"the tokenizer folder {tok_dir}"
        raise G2PWModelMissing(f"G2PW model in {model_dir} is incomplete: {what} missing")
    import onnxruntime
    import opencc
    from transformers import AutoTokenizer

    flags = _config_flags(model_dir / "config.py")
    char_labels = bool(flags.get("use_char_phoneme", False))
    use_mask = bool(flags.get("use_mask", True))
    pairs = _read_pairs(model_dir / "POLYPHONIC_CHARS.txt")
    keyed = [f"{c} {p}" if char_labels else p for c, p in pairs]
    labels = tuple(sorted(set(keyed)))
    index = {label: i for i, label in enumerate(labels)}
    allowed: dict[str, list[int]] = {}
    for (char, _), key in zip(pairs, keyed, strict=True):
        allowed.setdefault(char, []).append(index[key])
    chars = sorted(allowed)
    masks = {c: np.isin(np.arange(len(labels)), allowed[c]).astype(np.float32) for c in chars}
    monophonic = {c: p for c, p in _read_pairs(model_dir / "MONOPHONIC_CHARS.txt") if c not in NOT_MONOPHONIC}
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    providers = [
        p
        for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
        if p in onnxruntime.get_available_providers()
    ]
    session = onnxruntime.InferenceSession(str(model_file), sess_options=options, providers=providers)
    log.info("Mandarin polyphones: G2PW model %s (tokenizer %s)", model_file, tok_dir)
    return _Model(
        session=session,
        tokenizer=AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True),
        labels=labels,
        char_ids={c: i for i, c in enumerate(chars)},
        masks=masks,
        use_mask=use_mask,
        char_labels=char_labels,
        polyphonic=frozenset(chars) - NOT_POLYPHONIC,
        monophonic=monophonic,
        bopomofo_to_pinyin=json.loads(
            (model_dir / "bopomofo_to_pinyin_wo_tune_dict.json").read_text(encoding="utf-8")
        ),
        to_traditional=opencc.OpenCC("s2tw"),
    )


def _pinyin_of(model: _Model, bopomofo: str) -> str | None:
    base = model.bopomofo_to_pinyin.get(bopomofo[:-1])
    return base + bopomofo[-1] if base and bopomofo[-1] in "12345" else None


def _tokens_and_positions(tokenizer: Any, text: str) -> tuple[list[str], list[int | None]]:
    """Word-piece tokens of ``text`` and, per character, the index of its token (None: space).

    Latin/digit runs are tokenised as words, everything else one character at a time; a word
    the tokenizer cannot read becomes one [UNK] token.
    """
    tokens: list[str] = []
    char_token: list[int | None] = []
    for m in re.finditer(r" +|[a-zA-Z0-9]+|.", text, flags=re.S):
        piece = m.group(0)
        if piece.startswith(" "):
            char_token += [None] * len(piece)
            continue
        pieces = tokenizer.tokenize(piece)
        if not pieces or pieces == ["[UNK]"]:
            char_token += [len(tokens)] * len(piece)
            tokens.append("[UNK]")
            continue
        start = len(char_token)
        char_token += [len(tokens)] * len(piece)  # fallback if the pieces do not cover the word
        pos = start
        for p in pieces:
            width = len(p.removeprefix("##"))
            for k in range(pos, min(pos + width, start + len(piece))):
                char_token[k] = len(tokens)
            pos += width
            tokens.append(p)
    return tokens, char_token


def _window(tokens: list[str], char_token: list[int | None], query: int) -> tuple[int, int]:
    """Token range of at most MAX_TOKENS - 2 tokens centred on the query character."""
    budget = MAX_TOKENS - 2
    if len(tokens) <= budget:
        return 0, len(tokens)
    centre = char_token[query] or 0
    start = min(max(0, centre - budget // 2), len(tokens) - budget)
    return start, start + budget


def _classify(model: _Model, texts: list[str], queries: list[int]) -> list[str]:
    tok = model.tokenizer
    rows, positions, char_ids, masks = [], [], [], []
    for text, query in zip(texts, queries, strict=True):
        lowered = text.lower()
        tokens, char_token = _tokens_and_positions(tok, lowered)
        start, end = _window(tokens, char_token, query)
        rows.append(tok.convert_tokens_to_ids(["[CLS]", *tokens[start:end], "[SEP]"]))
        positions.append((char_token[query] or 0) - start + 1)  # +1: [CLS] comes first
        char = lowered[query]
        char_ids.append(model.char_ids[char])
        masks.append(model.masks[char] if model.use_mask else np.ones(len(model.labels), np.float32))
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), np.int64)
    attention = np.zeros((len(rows), width), np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        attention[i, : len(r)] = 1
    probs = model.session.run(
        None,
        {
            "input_ids": ids,
            "token_type_ids": np.zeros_like(ids),
            "attention_mask": attention,
            "phoneme_mask": np.stack(masks),
            "char_ids": np.asarray(char_ids, np.int64),
            "position_ids": np.asarray(positions, np.int64),
        },
    )[0]
    labels = [model.labels[i] for i in np.argmax(probs, axis=1)]
    return [label.split(" ")[1] for label in labels] if model.char_labels else labels


def _traditional(model: _Model, text: str) -> str:
    out = model.to_traditional.convert(text)
    # Phrase conversions can change the length; fall back to one character at a time.
    return out if len(out) == len(text) else "".join(model.to_traditional.convert(c)[:1] or c for c in text)


def predict(sentence: str, model_dir: Path) -> list[str | None]:
    """Toned pinyin ("hao3", neutral "5") per character of ``sentence``; non-Chinese characters
    come back as pypinyin returns them (themselves), None where no reading was found."""
    from pypinyin import Style, pinyin

    model = _load(Path(model_dir))
    trad = _traditional(model, sentence)
    fallback = pinyin(to_simplified(trad), neutral_tone_with_five=True, style=Style.TONE3)
    out: list[str | None] = []
    queries = []
    for i, ch in enumerate(trad):
        if ch in model.polyphonic:
            out.append(None)
            queries.append(i)
        elif ch in model.monophonic:
            out.append(_pinyin_of(model, model.monophonic[ch]))
        else:
            out.append(fallback[i][0] if i < len(fallback) else None)
    if queries:
        left = max(0, queries[0] - CONTEXT_CHARS)
        right = min(len(trad), queries[-1] + CONTEXT_CHARS + 1)
        context = trad[left:right]
        for i, bopomofo in zip(
            queries, _classify(model, [context] * len(queries), [q - left for q in queries]), strict=True
        ):
            out[i] = _pinyin_of(model, bopomofo)
    return out


@lru_cache(maxsize=1)
def _phrases() -> dict[str, list[list[str]]]:
    from pypinyin.phrases_dict import phrases_dict

    return phrases_dict


def word_initials_finals(word: str, pinyins: list[str | None]) -> tuple[list[str], list[str]]:
    """Initials and toned finals of one jieba word from the model's per-character pinyin."""
    from pypinyin import Style, lazy_pinyin
    from pypinyin.contrib.tone_convert import to_finals_tone3, to_initials

    if len(word) > 1 and word in _phrases():
        # A listed phrase has one reading for its polyphones: prefer it (see module docstring).
        pinyins = list(lazy_pinyin(word, style=Style.TONE3, neutral_tone_with_five=True))
    initials, finals = [], []
    for ch, py in zip(word, pinyins, strict=False):
        if py is None:
            py = lazy_pinyin(ch, style=Style.TONE3, neutral_tone_with_five=True)[0]
        if py[:1].isalpha():
            initials.append(to_initials(py))
            finals.append(to_finals_tone3(py, neutral_tone_with_five=True))
        else:
            initials.append(py)
            finals.append(py)
    return initials, finals
