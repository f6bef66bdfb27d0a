"""Pure proofreading edits: text, language, delete, merge/split plans, filters, undo."""

from __future__ import annotations

import pytest

from app.data.filelist import make_row
from app.data.labeling import (
    EditError,
    EditHistory,
    MergePlan,
    SplitPlan,
    delete,
    filter_rows,
    join_texts,
    plan_merge,
    plan_split,
    relang,
    retext,
)

ROWS = (
    make_row("/d/a.wav", "v", "en", "Hello there."),
    make_row("/d/b.wav", "v", "en", "General Kenobi."),
    make_row("/d/c.wav", "v", "zh", "你好。"),
    make_row("/d/d.wav", "v", "zh", "再见。"),
    make_row("/d/e.wav", "w", "zh", "别人。"),
)


def test_retext_and_relang_change_only_their_row():
    rows = retext(ROWS, 1, "  General\nKenobi!  ")
    assert rows[1].text == "General Kenobi!"
    assert rows[:1] + rows[2:] == ROWS[:1] + ROWS[2:]
    rows = relang(rows, 0, "JP")
    assert rows[0].lang == "JA" and rows[0].language == "ja"
    with pytest.raises(EditError, match="empty"):
        retext(ROWS, 0, "   ")
    with pytest.raises(EditError, match="field separator"):
        retext(ROWS, 0, "a | b")
    with pytest.raises(EditError, match="unknown language"):
        relang(ROWS, 0, "fr")
    with pytest.raises(EditError, match="row 9 does not exist"):
        retext(ROWS, 9, "x")


def test_delete_removes_exactly_the_selected_rows():
    assert delete(ROWS, [0, 3]) == (ROWS[1], ROWS[2], ROWS[4])
    with pytest.raises(EditError):
        delete(ROWS, [])
    with pytest.raises(EditError):
        delete(ROWS, [5])


def test_merge_plan_joins_neighbours_by_language():
    edited = plan_merge(ROWS, [1, 0], 0.25, "/d/a_merged.wav")
    assert edited.plan == MergePlan(("/d/a.wav", "/d/b.wav"), 0.25, "/d/a_merged.wav")
    assert edited.rows[0].text == "Hello there. General Kenobi."
    assert edited.rows[0].wav_path == "/d/a_merged.wav"
    assert edited.rows[1:] == ROWS[2:]
    zh = plan_merge(ROWS, [2, 3], 0.0, "/d/cd.wav").rows
    assert zh[2].text == "你好。再见。" and len(zh) == 4
    assert join_texts(["a ", " b"], "ko") == "a b"


@pytest.mark.parametrize(
    ("indices", "message"),
    [
        ([0], "at least two"),
        ([0, 2], "not adjacent"),
        ([1, 2], "different languages"),
        ([3, 4], "different speakers"),
    ],
)
def test_merge_refuses_what_cannot_be_merged(indices, message):
    with pytest.raises(EditError, match=message):
        plan_merge(ROWS, indices, 0.1, "/d/new.wav")


def test_merge_refuses_bad_gap_and_used_target():
    with pytest.raises(EditError, match="gap"):
        plan_merge(ROWS, [0, 1], -1, "/d/new.wav")
    with pytest.raises(EditError, match="already used"):
        plan_merge(ROWS, [0, 1], 0.1, "/d/c.wav")


def test_split_plan():
    edited = plan_split(ROWS, 2, 1.5, 3.0, ("/d/c_1.wav", "/d/c_2.wav"), ("你", "好。"))
    assert edited.plan == SplitPlan("/d/c.wav", 1.5, "/d/c_1.wav", "/d/c_2.wav")
    assert [r.wav_path for r in edited.rows][1:5] == ["/d/b.wav", "/d/c_1.wav", "/d/c_2.wav", "/d/d.wav"]
    assert [r.text for r in edited.rows[2:4]] == ["你", "好。"]
    same = plan_split(ROWS, 0, 0.5, 1.0, ("/d/x.wav", "/d/y.wav"))
    assert same.rows[0].text == same.rows[1].text == ROWS[0].text
    for at in (0.0, 3.0, 4.0):
        with pytest.raises(EditError, match="inside the clip"):
            plan_split(ROWS, 2, at, 3.0, ("/d/p.wav", "/d/q.wav"))
    with pytest.raises(EditError, match="new, different"):
        plan_split(ROWS, 2, 1.0, 3.0, ("/d/a.wav", "/d/q.wav"))


def test_filter_by_text_and_duration():
    durations = {"/d/a.wav": 1.0, "/d/b.wav": 5.0, "/d/c.wav": 3.0}
    assert filter_rows(ROWS) == (0, 1, 2, 3, 4)
    assert filter_rows(ROWS, "KENOBI") == (1,)
    assert filter_rows(ROWS, min_s=2.0, durations=durations) == (1, 2)
    assert filter_rows(ROWS, max_s=3.0, durations=durations) == (0, 2)
    assert filter_rows(ROWS, "好", max_s=10, durations=durations) == (2,)


def test_history_undo_restores_each_state():
    history = EditHistory(ROWS)
    assert not history.can_undo
    with pytest.raises(EditError, match="nothing to undo"):
        history.undo()
    h1 = history.apply(retext(history.rows, 0, "Hi."), "edit text of row 0")
    h2 = h1.apply(delete(h1.rows, [4]), "delete row 4")
    assert h2.apply(h2.rows, "no-op") is h2
    assert h2.last_edit == "delete row 4"
    assert h2.undo().rows == h1.rows
    assert h2.undo().undo().rows == ROWS
    limited = EditHistory(ROWS, limit=2)
    for i in range(4):
        limited = limited.apply(retext(limited.rows, 0, f"v{i}"), f"v{i}")
    assert len(limited.past) == 2
    assert limited.undo().undo().rows[0].text == "v1"
