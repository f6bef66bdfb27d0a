"""Sentence splitting: upstream's cut0..cut5 pieces, pre/post-processing, preview."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.text.split import MAX_PIECE_CHARS, SplitMethod, cut, preview, split_text

CLAUSES = "一，二，三，四，五，六。七！八？九。"


@pytest.mark.parametrize(
    ("method", "pieces"),
    [
        (SplitMethod.NONE, [CLAUSES]),
        (SplitMethod.FOUR_SENTENCES, ["一，二，三，四，", "五，六。七！八？九。"]),
        (SplitMethod.FIFTY_CHARS, [CLAUSES]),
        (SplitMethod.ZH_PERIOD, ["一，二，三，四，五，六", "七！八？九"]),
        (SplitMethod.EN_PERIOD, [CLAUSES]),
        (SplitMethod.PUNCTUATION, ["一，", "二，", "三，", "四，", "五，", "六。", "七！", "八？", "九。"]),
    ],
)
def test_each_method_cuts_like_upstream(method: SplitMethod, pieces: list[str]) -> None:
    assert cut(CLAUSES, method) == pieces
    assert preview(CLAUSES, method) == "\n".join(pieces)


def test_decimal_points_are_not_cut() -> None:
    text = "第一句话。第二句话。Pi is 3.14. The end."
    assert cut(text, "cut5") == ["第一句话。", "第二句话。", "Pi is 3.14.", " The end."]
    assert cut(text, "cut4") == ["第一句话。第二句话。Pi is 3.14. The end"]
    assert cut("A. B. C.", "cut4") == ["A", " B", " C"]


def test_fifty_chars_groups_clauses() -> None:
    clause = "这是一个比较长的句子，我们要看看它在凑五十字的时候会怎么切分，"
    pieces = cut(clause * 4 + "尾巴。", "cut2")
    assert "".join(pieces) == clause * 4 + "尾巴。"
    assert all(len(p) > 50 for p in pieces)  # a short tail joins the piece before it


def test_method_names_parse() -> None:
    assert SplitMethod.parse("cut1") is SplitMethod.FOUR_SENTENCES
    assert SplitMethod.parse("punctuation") is SplitMethod.PUNCTUATION
    with pytest.raises(ValueError, match="unknown text split method 'cut9'"):
        SplitMethod.parse("cut9")


def test_split_text_pre_and_post_processing() -> None:
    # A short first clause gets a lead-in mark, short pieces merge, a final mark is added.
    assert split_text("好的", "cut1") == ["。好的。"]
    assert split_text("好。今天天气不错，我们出去走走", "cut5") == ["好。今天天气不错，", "我们出去走走。"]
    assert split_text("Hi. How are you", "cut5", "en") == ["Hi. How are you."]
    assert split_text("这是第一句话...这是第二句话", "cut0") == ["这是第一句话.这是第二句话。"]
    assert split_text("!!!...", "cut1") == []  # symbols only: nothing to read
    assert split_text("", "cut1") == []


def test_long_pieces_are_cut_for_bert() -> None:
    text = ("很长的句子" * 6 + "，") * 25  # 775 characters, one clause mark per 31
    pieces = split_text(text, "cut0")
    assert "".join(pieces) == text
    assert [len(p) for p in pieces] == [496, 279]  # upstream's cut at clause marks before 510


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("你好ab1.,。，！？…—~: \n😀")), max_size=80),
    st.sampled_from(list(SplitMethod)),
)
def test_never_crashes_and_keeps_text(text: str, method: SplitMethod) -> None:
    pieces = split_text(text, method)
    assert all(p and len(p) <= MAX_PIECE_CHARS for p in pieces)
    assert isinstance(preview(text, method), str)
