"""A long-form job's voices over the session's tiny pipeline, and a Speak that counts its calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.infer.longform import Voice
from app.infer.request import TTSRequest
from tests.infer.tiny import spec_for, voice


class CountingSpeaker:
    """Speak through the tiny pipeline; ``calls`` lists (voice reference, text, seed, speed) per synthesis."""

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline
        self.calls: list[tuple[str, str, int, float]] = []

    def __call__(self, spec, request):
        self.calls.append((str(request.reference), request.text, request.seed, request.speed))
        return self.pipeline.stream(request, token_chunks=False)


@pytest.fixture
def speaker(pipeline) -> CountingSpeaker:
    return CountingSpeaker(pipeline)


@pytest.fixture(scope="session")
def voices(tiny_home: Path, ref_wav: Path, tmp_path_factory) -> tuple[Voice, ...]:
    """Two voices on the tiny models: the default ("") and "bob" (another clip, no prompt)."""
    other = voice(tmp_path_factory.mktemp("bob") / "bob.wav", 4.0, pauses=(1.8,))
    base = TTSRequest(
        text=".", reference=str(ref_wav), prompt_text="你好欢迎来到我们的节目", prompt_language="all_zh",
        text_language="en", pause_seconds=0.2,
    )  # fmt: skip
    bob = TTSRequest(
        text=".", reference=str(other), text_language="en", reference_free=True, pause_seconds=0.2
    )
    spec = spec_for(tiny_home)
    return Voice("", spec, base), Voice("bob", spec, bob)
