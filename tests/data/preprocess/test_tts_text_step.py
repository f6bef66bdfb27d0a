"""Step 1a on its own (phonemiser and BERT replaced by fakes): what it writes, the problems and the
progress records of BERT batches that fail, and a stop that the next run continues."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from app.data.experiment import ExperimentFiles, TextRow, read_name2text
from app.data.preprocess import tts_steps
from app.data.preprocess.tts_dataset import Item, Problem

BERT_DIM = 1024


class FakeBert:
    """Features of one vector per phone; ``bad`` texts fail, ``short`` ones get a vector too few."""

    def phone_features_batch(self, pairs: list[tuple[str, tuple[int, ...]]]) -> list[torch.Tensor]:
        return [self.phone_features(text, word2ph) for text, word2ph in pairs]

    def phone_features(self, text: str, word2ph: tuple[int, ...]) -> torch.Tensor:
        if "bad" in text:
            raise ValueError(f"cannot read {text!r}")
        return torch.ones(BERT_DIM, sum(word2ph) - ("short" in text))


def fake_phonemise(text: str, language: str, version: str) -> TextRow:
    if "unreadable" in text:
        raise ValueError("no phones")
    return TextRow("", tuple(text), (1,) * len(text) if language == "zh" else None, text)


@pytest.fixture
def fakes(monkeypatch, tmp_path) -> Path:
    """The BERT folder the step checks for; phonemiser and BERT are fakes."""
    monkeypatch.setattr(tts_steps, "phonemise", fake_phonemise)
    monkeypatch.setattr(tts_steps, "_bert", lambda *args: FakeBert())
    bert_dir = tmp_path / "bert"
    bert_dir.mkdir()
    (bert_dir / "config.json").write_text("{}")
    return bert_dir


def items(*specs: tuple[str, str]) -> list[Item]:
    return [
        Item(n, f"{n}.wav", Path(f"{n}.wav"), lang, text) for n, (lang, text) in enumerate(specs, start=1)
    ]


def run(files: ExperimentFiles, bert_dir: Path, todo: list[Item], calls: list, stop=lambda: False):
    return tts_steps.step_text(
        todo, files, version="v2", bert_dir=bert_dir, device=torch.device("cpu"), dtype=torch.float32,
        progress=lambda *record: calls.append(record), should_stop=stop,
    )  # fmt: skip


def test_failed_bert_batches_are_retried_line_by_line(tmp_path, fakes) -> None:
    files = ExperimentFiles(tmp_path / "voice")
    lines = items(("zh", "good"), ("zh", "bad"), ("zh", "short"), ("en", "hello"), ("en", "unreadable"))
    calls: list[tuple] = []
    report = run(files, fakes, lines, calls)
    assert (report.processed, report.skipped, report.stopped) == (2, 0, False)
    assert report.problems == (
        Problem("1a", 5, "5.wav", "cannot read the text: ValueError: no phones"),
        Problem("1a", 2, "2.wav", "BERT features: cannot read 'bad'"),
        Problem("1a", 3, "3.wav", "BERT gave 4 vectors for 5 phones"),
    )
    # English lines finish at once; Chinese ones when their batch has features (failures count later).
    assert calls == [("1a", 0, 5, ""), ("1a", 1, 5, "4.wav"), ("1a", 2, 5, "5.wav"), ("1a", 3, 5, "1.wav")]
    assert list(read_name2text(files.name2text)) == ["1.wav", "4.wav"]
    assert torch.load(files.bert("1.wav"), weights_only=True).shape == (BERT_DIM, 4)
    assert not files.bert("2.wav").exists() and not files.bert("3.wav").exists()
    assert not (files.root / tts_steps.PARTIAL_TEXT).exists()


def test_a_stopped_run_keeps_its_lines_for_the_next(tmp_path, fakes) -> None:
    files = ExperimentFiles(tmp_path / "voice")
    lines = items(("en", "one"), ("zh", "two"), ("en", "three"))
    first = run(files, fakes, lines, [], stop=lambda: True)
    assert (first.processed, first.stopped) == (1, True) and not files.name2text.exists()
    assert (files.root / tts_steps.PARTIAL_TEXT).is_file()
    calls: list[tuple] = []
    second = run(files, fakes, lines, calls)
    assert (second.processed, second.skipped, second.stopped) == (2, 1, False)
    assert calls == [("1a", 1, 3, ""), ("1a", 2, 3, "3.wav"), ("1a", 3, 3, "2.wav")]
    assert [row.phones for row in read_name2text(files.name2text).values()] == [
        tuple("one"),
        tuple("two"),
        tuple("three"),
    ]
