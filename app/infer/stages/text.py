"""Stage 1, text -> phones and BERT features, for the prompt text and for the target text.

The prompt text gets a final "。" (or "." for English) when it ends without punctuation; the target
text is split (``app.text.split_text``: method, merging of short pieces, final punctuation, cuts
by length); each piece is read into phones, and Chinese parts get BERT features (zeros elsewhere;
BERT loads on first use, through the ``bert`` callable the pipeline passes in).

A target piece with nothing to say (a clause in a language the mode does not read, letters of a
script no model reads) is skipped, and a note names what was skipped; only a text of which no
piece says anything is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from app.infer.cache import LRUCache
from app.infer.inputs import TextInput
from app.infer.request import TTSInputError
from app.infer.scripts import LANGUAGES, speaks, unread_letters, unreadable_letters
from app.messages import Message
from app.text import EmptyText, LanguageMode, OverrideError, UnsupportedLanguage, split_text, text_to_phones
from app.text.characters import normalize_characters
from app.text.frontend import TextResult
from app.text.split import CLAUSE_MARKS
from app.text.words import word_units

if TYPE_CHECKING:  # BERT pulls in transformers: imported where it is loaded, on first use
    from app.models.encoders.bert import BertFeaturizer

BERT_LANGUAGE = "zh"  # the only language whose segments get BERT features


class TextStage:
    """Reads text for one model version; prompt features are cached (a voice reuses its prompt)."""

    def __init__(self, text_version: str, bert_dim: int, bert: Callable[[], BertFeaturizer]) -> None:
        self.text_version = text_version
        self.bert_dim = bert_dim
        self._bert = bert
        self._prompts: LRUCache[tuple[str, str], TextInput] = LRUCache(32)

    def languages(self) -> tuple[str, ...]:
        """Language mode ids this version's models can read."""
        from app.text import modes

        return modes(self.text_version)

    def read(self, text: str, language: str, what: str = "text") -> TextResult:
        """Phones of ``text``; refuses text in which nothing can be read as ``language``."""
        result = self._phones(text, language, what)
        if not speaks(result.phones):
            raise _unreadable(text, language, what)
        return result

    def _phones(self, text: str, language: str, what: str) -> TextResult:
        try:
            return text_to_phones(text, language, self.text_version)
        except (EmptyText, UnsupportedLanguage, OverrideError) as exc:
            said = exc.args[0] if exc.args and isinstance(exc.args[0], Message) else str(exc)
            template = "{what}: {problem}"
            message = Message("tts.text.cannot_read", template, what=_named(what), problem=said)
            raise TTSInputError(message, field=_field(what)) from exc

    def features(self, results: Sequence[TextResult]) -> list[torch.Tensor]:
        """(bert_dim, n_phones) float32 per result; BERT runs only when a Chinese segment exists."""
        needs_bert = any(
            s.lang == BERT_LANGUAGE and s.word2ph is not None and s.phones
            for r in results
            for s in r.segments
        )
        if needs_bert:
            return self._bert().text_features_batch(results)
        return [torch.zeros(self.bert_dim, len(r.phones)) for r in results]

    def prompt(self, text: str, language: str) -> TextInput:
        """Phones and BERT of the prompt text, "。"/"." appended when it ends without punctuation."""
        text = normalize_characters(text).strip("\n")  # no control character decides the ending
        if text and text[-1] not in CLAUSE_MARKS:
            text += "." if LanguageMode.parse(language) is LanguageMode.EN else "。"
        key = (text, LanguageMode.parse(language).value)
        cached = self._prompts.get(key)
        if cached is None:
            result = self.read(text, language, "prompt text")
            cached = TextInput(text, result.phone_ids, self.features([result])[0])
            self._prompts.put(key, cached)
        return cached

    def segments(
        self, text: str, language: str, split_method: str, notes: list[str] | None = None
    ) -> list[TextInput]:
        """The target text split into segments, each with phones and BERT features.

        Pieces with nothing to say in ``language`` are skipped and what was skipped is added to
        ``notes``; a text of which no piece says anything is refused.
        """
        try:
            pieces = split_text(text, split_method, LanguageMode.parse(language).value)
        except (ValueError, UnsupportedLanguage) as exc:
            field = "text_language" if isinstance(exc, UnsupportedLanguage) else "split_method"
            # TTSRequest checked both already: a lower layer's own words, as they are.
            raise TTSInputError(
                Message("tts.text.split", "{problem}", problem=str(exc)), field=field
            ) from exc
        if not pieces:
            template = "the text is empty (or punctuation only): enter something to read"
            raise TTSInputError(Message("tts.text.empty", template), field="text")
        read = [(p, self._phones(p, language, "text")) for p in pieces]
        kept = [(p, r) for p, r in read if speaks(r.phones)]
        if not kept:
            raise _unreadable(text, language, "text")
        if notes is not None:
            notes += _skipped(text, language, [p for p, r in read if not speaks(r.phones)])
        feats = self.features([r for _, r in kept])
        return [TextInput(p, r.phone_ids, f, word_units(r)) for (p, r), f in zip(kept, feats, strict=True)]

    def clear(self) -> None:
        """Forget cached prompt features."""
        self._prompts.clear()


def _field(what: str) -> str:
    """The TTSRequest field of a text named ``what`` in messages ("text" or "prompt text")."""
    return what.replace(" ", "_")


def _named(what: str) -> Message:
    """``what`` ("text" or "prompt text") as messages name it, in the reader's language on the page."""
    if what == "prompt text":
        return Message("tts.what.prompt", "prompt text")
    return Message("tts.what.text", "text")


def _unreadable(text: str, language: str, what: str) -> TTSInputError:
    """The refusal of a text in which nothing can be read as ``language``."""
    mode = LanguageMode.parse(language).value
    shown = text.strip() if len(text.strip()) <= 60 else text.strip()[:60] + "…"
    fields = {"what": _named(what), "shown": shown, "mode": mode}
    other = unread_letters(text, mode)
    if other and not unreadable_letters(text):
        template = (
            "{what} {shown!r} cannot be read as {mode}: its letters ({letters}) are of a language "
            "this mode does not read; choose the text's language (or 'auto')"
        )
        message = Message("tts.text.other_language", template, **fields, letters=other[:12])
        return TTSInputError(message, field=_field(what))
    foreign = unreadable_letters(text)
    fields["languages"] = LANGUAGES
    if foreign:
        template = (
            "{what} {shown!r} cannot be read as {mode}: its letters ({letters}) are of a script the "
            "models cannot speak (they read {languages}); choose the text's language or write it in "
            "one of those"
        )
        message = Message("tts.text.foreign_script", template, **fields, letters=foreign[:12])
        return TTSInputError(message, field=_field(what))
    template = (
        "{what} {shown!r} cannot be read as {mode}: it is in a language the models cannot speak "
        "(they read {languages}); choose the text's language or write it in one of those"
    )
    return TTSInputError(Message("tts.text.foreign_language", template, **fields), field=_field(what))


def _skipped(text: str, language: str, pieces: list[str]) -> list[str]:
    """Notes naming what of ``text`` was not read: letters, else the ``pieces`` skipped."""
    mode = LanguageMode.parse(language).value
    notes = []
    foreign = unreadable_letters(text)
    if foreign:
        notes.append(
            Message(
                "text.note.unreadable",
                "Letters the models cannot read were skipped: {letters}",
                letters=foreign[:24],
            )
        )
    other = unread_letters(text, mode)
    if other:
        notes.append(
            Message(
                "text.note.other_language",
                "Text in a language the {mode!r} mode does not read was skipped: {letters} "
                "(the 'auto' mode reads each language in its own)",
                mode=mode,
                letters=other[:24],
            )
        )
    if pieces and not notes:
        shown = ", ".join(repr(p) for p in pieces[:3]) + (", ..." if len(pieces) > 3 else "")
        notes.append(
            Message("text.note.nothing", "Parts with nothing to read were skipped: {parts}", parts=shown)
        )
    return notes
