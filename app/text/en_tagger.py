"""A small context-rule part-of-speech guesser for English homographs.

g2p_en picks the reading of a homograph ("record", "present", "read", ...) from NLTK's averaged
perceptron tagger, whose model is a separate NLTK data download that we never make. Only the
distinction verb / past participle / adjective / noun matters for that choice, and the word
before the homograph usually settles it ("to record", "the record", "have read", "is complex").
This module returns Penn Treebank style tags from such rules; every word without a deciding
context gets ``NN``, which selects g2p_en's second (usually noun) reading.
"""

from __future__ import annotations

# "to record", "will read", "don't use": the base form of a verb follows.
_BEFORE_BASE_VERB = frozenset(
    [
        "to",
        "will",
        "would",
        "shall",
        "should",
        "can",
        "could",
        "may",
        "might",
        "must",
        "do",
        "does",
        "did",
        "don't",
        "doesn't",
        "didn't",
        "won't",
        "wouldn't",
        "can't",
        "cannot",
        "couldn't",
        "shouldn't",
        "mustn't",
        "let's",
        "please",
        "never",
    ]
)
# "I read", "they record": present tense, non-third person.
_PLURAL_SUBJECTS = frozenset(["i", "you", "we", "they"])
# "he read": past tense is likelier in narration (present would be "reads").
_SINGULAR_SUBJECTS = frozenset(["he", "she", "it"])
# "have read", "has used": past participle.
_PERFECT = frozenset(["have", "has", "had", "having", "'ve"])
# "is complex", "was present": predicative adjective or passive participle.
_COPULA = frozenset(
    [
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "am",
        "'s",
        "'re",
        "'m",
        "seems",
        "seem",
        "become",
        "became",
    ]
)
# "the record", "my present": a noun or an adjective follows these.
_DETERMINERS = frozenset(
    [
        "the",
        "a",
        "an",
        "this",
        "that",
        "these",
        "those",
        "my",
        "your",
        "his",
        "her",
        "its",
        "our",
        "their",
        "some",
        "any",
        "no",
        "every",
        "each",
        "another",
        "of",
        "in",
        "on",
        "at",
        "for",
        "with",
        "from",
        "by",
        "about",
        "into",
    ]
)
# Words after a determiner+homograph that show the homograph was the noun itself.
_NOUN_FOLLOWERS = frozenset(
    [
        "of",
        "is",
        "was",
        "are",
        "were",
        "and",
        "or",
        "but",
        "to",
        "in",
        "on",
        "at",
        "for",
        "with",
        "has",
        "have",
        "had",
    ]
)


def _is_word(token: str) -> bool:
    return any(c.isalpha() for c in token)


def _tag_one(tokens: list[str], i: int) -> str:
    prev = tokens[i - 1].lower() if i > 0 else ""
    nxt = tokens[i + 1].lower() if i + 1 < len(tokens) else ""
    if prev in _BEFORE_BASE_VERB:
        return "VB"
    if prev in _PLURAL_SUBJECTS:
        return "VBP"
    if prev in _SINGULAR_SUBJECTS:
        return "VBD"
    if prev in _PERFECT:
        return "VBN"
    if prev in _COPULA:
        return "JJ"
    if prev in _DETERMINERS:
        return "JJ" if _is_word(nxt) and nxt not in _NOUN_FOLLOWERS else "NN"
    if (not prev or not _is_word(prev)) and nxt in _DETERMINERS:
        return "VB"  # sentence-initial imperative: "Record the show."
    return "NN"


def tag(tokens: list[str]) -> list[str]:
    """One Penn-style tag per token (only as fine as homograph choice needs)."""
    return [_tag_one(tokens, i) for i in range(len(tokens))]
