"""SentenceCutter: sentences out of text that arrives in fragments."""

from __future__ import annotations

import pytest

from app.text.sentences import MAX_WAIT_UNITS, SentenceCutter
from app.text.split import spoken_units


def by_chars(text: str, cutter: SentenceCutter | None = None) -> tuple[list[str], list[str]]:
    """Sentences handed back while ``text`` arrives a character at a time, and those of the flush."""
    cutter = cutter or SentenceCutter()
    out: list[str] = []
    for ch in text:
        out += cutter.feed(ch)
    return out, cutter.flush()


def test_cjk_and_ascii_sentence_ends():
    text = "Hello there. It costs 3.14 dollars! 你好。欢迎光临！“好的。”他说 OK?"
    fed, rest = by_chars(text)
    assert fed == ["Hello there.", "It costs 3.14 dollars!", "你好。", "欢迎光临！", "“好的。”"]
    assert rest == ["他说 OK?"]


def test_the_end_is_decided_by_the_next_character():
    cutter = SentenceCutter()
    assert cutter.feed("It is 3.") == []  # a decimal point or a full stop?
    assert cutter.feed("5 m long. ") == ["It is 3.5 m long."]
    assert cutter.feed("你好。") == []  # a closing quote may follow
    assert cutter.feed("今") == ["你好。"]
    assert cutter.pending == "今"


def test_fragments_of_any_size_give_the_same_sentences():
    text = "第一句话。Second one here? 第三句！Fourth... and the last line\nNext line."
    whole = SentenceCutter()
    once = whole.feed(text) + whole.flush()
    assert by_chars(text)[0] + by_chars(text)[1] == once
    assert once == [
        "第一句话。",
        "Second one here?",
        "第三句！",
        "Fourth...",
        "and the last line",
        "Next line.",
    ]


def test_short_sentences_join_the_next_and_a_short_tail_the_one_before():
    fed, rest = by_chars("Hi. OK! How are you today? Yes.")
    assert fed == ["Hi. OK! How are you today?"]
    assert rest == ["Yes."]
    cutter = SentenceCutter()
    assert cutter.feed("How are you today? Yes.") == ["How are you today?"]
    assert cutter.flush() == ["Yes."]  # alone: nothing before it waits
    assert cutter.feed("Tell me about it?") == []  # a quote may follow
    assert cutter.flush() == ["Tell me about it?"]
    fed, rest = by_chars("How are you today? OK")
    assert fed == ["How are you today?"] and rest == ["OK"]
    assert SentenceCutter().flush() == []
    assert by_chars("... !!")[1] == []  # nothing to read


def test_a_long_clause_is_cut_at_its_last_comma_then_by_length():
    fed, _ = by_chars("这是一个很长的句子，" * 30)
    assert fed and all(s.endswith("，") for s in fed)
    assert all(spoken_units(s) <= MAX_WAIT_UNITS for s in fed)
    fed, rest = by_chars("word " * 200)
    assert len(fed) >= 4 and all(spoken_units(s) <= MAX_WAIT_UNITS for s in fed)
    assert " ".join(fed + rest).split() == ["word"] * 200  # nothing lost, cut between words
    fed, _ = by_chars("长" * 400)
    assert "".join(fed) == "长" * (len(fed) * 50) and len(fed) >= 7


@pytest.mark.parametrize("text", ["1,000,000 people", "a?b and c", "e.g.x"])
def test_ascii_marks_inside_words_do_not_cut(text):
    fed, rest = by_chars(text + " and some more words")
    assert fed == [] and rest == [text + " and some more words"]


def test_clear_drops_the_pending_text():
    cutter = SentenceCutter()
    cutter.feed("没说完的话")
    assert cutter.clear() == "没说完的话"
    assert cutter.flush() == []
