"""Shared, session-wide tiny TTS models (built once) and a loaded pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from app.infer import TTSPipeline
from tests.infer.tiny import build_home, spec_for, voice


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread; on a loaded 2-core machine two threads spin-wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with tiny HuBERT/BERT in pretrained_models/ and a tiny GPT + SoVITS pair."""
    return build_home(tmp_path_factory.mktemp("tts_home"))


@pytest.fixture(scope="session")
def pipeline(tiny_home: Path) -> TTSPipeline:
    return TTSPipeline.load(spec_for(tiny_home))


@pytest.fixture(scope="session")
def ref_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 s reference 'voice' with one pause."""
    return voice(tmp_path_factory.mktemp("refs") / "ref5.wav", 5.0, pauses=(2.4,))
