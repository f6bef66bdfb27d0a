"""Label tab in headless Chromium: edit, merge and delete rows, save, and find exactly that on disk."""

from __future__ import annotations

import pytest
import soundfile as sf
from playwright.sync_api import expect

from app.data.filelist import make_row, read_list, write_list
from tests.synth import tone

pytestmark = pytest.mark.browser

SR = 32000


@pytest.fixture(scope="module")
def proof_list(studio_server):
    """output/proof/proof.list in the server's data folder: five clips of 1.0 .. 1.4 s."""
    clips = studio_server.home / "output" / "proof" / "clips"
    clips.mkdir(parents=True)
    rows = []
    for i in range(5):
        path = clips / f"clip{i}.wav"
        sf.write(path, tone(1.0 + i / 10, SR, 200 + 50 * i), SR)
        rows.append(make_row(path, "proof", "en", f"Sentence number {i}."))
    listing = studio_server.home / "output" / "proof" / "proof.list"
    write_list(listing, rows)
    return listing, tuple(rows)


def _status(page):
    return page.locator("#label-status")


def test_edit_merge_delete_and_save(studio_page, proof_list):
    listing, rows = proof_list
    original = listing.read_bytes()
    page = studio_page
    page.get_by_role("tab", name="Label").click()
    page.locator("#label-list textarea, #label-list input").first.fill("output/proof/proof.list")
    page.locator("#label-open").click()
    expect(_status(page)).to_contain_text("5 rows", timeout=30_000)
    expect(page.locator("#label-row-4")).to_be_visible()
    expect(page.locator("#label-row-5")).to_be_hidden()
    expect(page.locator("#label-check-0")).to_contain_text("clip0.wav")

    # Edit the text of row 2 and the language of row 1 (taken in by the next action).
    page.locator("#label-text-1 textarea").fill("An edited second sentence.")
    page.locator("#label-lang-0 input").click()
    page.get_by_role("option", name="日本語 ja").click()

    # Merge rows 3 and 4 with a 0.3 s gap.
    page.locator("#label-check-2 input[type=checkbox]").check()
    page.locator("#label-check-3 input[type=checkbox]").check()
    page.locator("#label-merge").click()
    expect(_status(page)).to_contain_text("4 rows", timeout=30_000)
    expect(page.locator("#label-text-2 textarea")).to_have_value("Sentence number 2. Sentence number 3.")
    # The edit made before the merge is still there.
    expect(page.locator("#label-text-1 textarea")).to_have_value("An edited second sentence.")

    # Delete the last row (originally row 5).
    page.locator("#label-check-3 input[type=checkbox]").check()
    page.locator("#label-delete").click()
    expect(_status(page)).to_contain_text("3 rows", timeout=30_000)

    page.locator("#label-save").click()
    expect(_status(page)).to_contain_text("saved 3 rows", timeout=30_000)

    saved = read_list(listing)
    assert saved.errors == ()
    merged_path = listing.parent / "clips" / "clip2_merged.wav"
    assert saved.rows == (
        rows[0].with_language("ja"),
        rows[1].with_text("An edited second sentence."),
        make_row(merged_path, "proof", "en", "Sentence number 2. Sentence number 3."),
    )
    assert sf.info(merged_path).duration == pytest.approx(1.2 + 0.3 + 1.3, abs=1e-3)
    backups = list(listing.parent.glob("proof.list.*.bak"))
    assert len(backups) == 1 and backups[0].read_bytes() == original
    # The clips of the merged rows are untouched (undo stays truthful).
    assert sf.info(rows[2].wav_path).duration == pytest.approx(1.2, abs=1e-3)


def test_filter_and_undo(studio_page, proof_list):
    listing, _ = proof_list
    page = studio_page
    page.get_by_role("tab", name="Label").click()
    page.locator("#label-list textarea, #label-list input").first.fill(
        str(listing.relative_to(listing.parents[2]))
    )
    page.locator("#label-open").click()
    expect(_status(page)).to_contain_text("rows", timeout=30_000)
    page.locator("#label-filter-text textarea, #label-filter-text input").first.fill("edited")
    page.locator("#label-filter").click()
    expect(_status(page)).to_contain_text("1 match the filter", timeout=30_000)
    expect(page.locator("#label-row-0")).to_be_visible()
    expect(page.locator("#label-row-1")).to_be_hidden()
    page.locator("#label-text-0 textarea").fill("Changed again.")
    page.locator("#label-undo").click()  # takes in the edit, then undoes it
    expect(page.locator("#label-text-0 textarea")).to_have_value("An edited second sentence.")
    expect(_status(page)).not_to_contain_text("unsaved")


def test_one_click_from_a_recording_to_the_editor(studio_page, studio_server, espeak_wav):
    raw = studio_server.home / "raw"
    raw.mkdir()
    (raw / espeak_wav.name).write_bytes(espeak_wav.read_bytes())
    page = studio_page
    page.get_by_role("tab", name="Label").click()
    page.locator("#label-pipeline").get_by_text("Build a dataset").click()
    page.locator("#label-pipe-folder textarea, #label-pipe-folder input").first.fill("raw")
    page.locator("#label-pipe-name textarea, #label-pipe-name input").first.fill("narrator")
    expect(page.locator("#label-pipe-asr-note")).to_contain_text("tiny.en")
    page.locator("#label-pipe-run").click()
    expect(page.locator("#label-pipe-status")).to_contain_text("rows written", timeout=120_000)
    listing = studio_server.home / "output" / "datasets" / "narrator" / "narrator.list"
    rows = read_list(listing).rows
    assert len(rows) == 3 and all(r.speaker == "narrator" and r.lang == "EN" for r in rows)
    # The new list opens in the editor.
    expect(page.locator("#label-list textarea, #label-list input").first).to_have_value(
        "output/datasets/narrator/narrator.list"
    )
    expect(_status(page)).to_contain_text("3 rows", timeout=30_000)
    expect(page.locator("#label-text-0 textarea")).to_have_value(rows[0].text)


def test_a_list_pointing_outside_and_repeating_a_clip_is_reported(studio_page, studio_server, tmp_path):
    # Issue 18 through the UI: a line whose audio leads out of the data folder (a symbolic link) is
    # not read but reported by line number; a repeated clip name is reported; the good rows open.
    folder = studio_server.home / "output" / "issues"
    (folder / "clips").mkdir(parents=True)
    sf.write(folder / "clips" / "good.wav", tone(1.0, SR, 300), SR)
    sf.write(tmp_path / "secret.wav", tone(1.0, SR, 400), SR)
    (folder / "clips" / "leak.wav").symlink_to(tmp_path / "secret.wav")
    listing = folder / "issues.list"
    listing.write_text(
        "clips/good.wav|spk|EN|A good line.\n"
        "clips/leak.wav|spk|EN|A link out of the data folder.\n"
        "clips/good.wav|spk|EN|The same clip again.\n",
        encoding="utf-8",
    )
    page = studio_page
    page.get_by_role("tab", name="Label").click()
    page.locator("#label-list textarea, #label-list input").first.fill("output/issues/issues.list")
    page.locator("#label-open").click()
    expect(_status(page)).to_contain_text("2 rows", timeout=30_000)
    expect(_status(page)).to_contain_text("1 repeated clip names")
    report = page.locator("#label-bad-lines")
    expect(report).to_contain_text("audio outside the data folder")
    expect(report).to_contain_text("clip name used by an earlier line")
    expect(report).to_contain_text("leak.wav")
    expect(page.locator("#label-row-1")).to_be_visible()
    expect(page.locator("#label-row-2")).to_be_hidden()
