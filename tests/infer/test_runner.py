"""The decoding loop on stand-in stages: the runner knows a token stage and an audio stage only by
their interfaces (app.infer.stages.base), so scripted ones show what it does with them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest
import torch

from app.infer.inputs import SynthesisPlan, TextInput
from app.infer.request import DEFAULT_SAMPLE_STEPS, Timings, TTSInputError
from app.infer.runner import Runner
from app.infer.stages.audio import VitsAudio
from app.infer.streaming import StreamOptions
from app.models.gpt.sampling import SamplingOptions, TokenChunk

RATE = 100  # samples per second of the stand-in audio stage
SAMPLES_PER_TOKEN = 10


def _segment(n_phones: int) -> TextInput:
    return TextInput("x" * n_phones, tuple(range(1, n_phones + 1)), torch.zeros(4, n_phones))


def _plan(lengths: Sequence[int], batch_size: int = 1, **changes: float) -> SynthesisPlan:
    return SynthesisPlan(
        segments=tuple(_segment(n) for n in lengths),
        prompt=None,
        prompt_tokens=None,
        timbre=None,  # type: ignore[arg-type]  # the stand-in audio stage ignores it
        sampling=SamplingOptions(),
        seed=0,
        batch_size=batch_size,
        pause_seconds=float(changes.get("pause_seconds", 0.1)),
        speed=float(changes.get("speed", 1.0)),
    )


def scripted_tokens(
    phones: Sequence[Sequence[int]],
    berts: Sequence[torch.Tensor],
    prompt_tokens: torch.Tensor | None,
    options: SamplingOptions,
    chunk_tokens: int | None = None,
) -> Iterator[TokenChunk]:
    """Row i gets 2 * len(phones[i]) tokens of value len(phones[i]); short rows finish first."""
    want = [2 * len(p) for p in phones]
    done = [0] * len(phones)
    step = chunk_tokens or max(want)
    while min(d - w for d, w in zip(done, want, strict=True)) < 0:
        tokens, finished = [], []
        for i, p in enumerate(phones):
            n = min(step, want[i] - done[i])
            tokens.append(torch.full((n,), len(p), dtype=torch.long))
            done[i] += n
            finished.append(n > 0 and done[i] == want[i])
        yield TokenChunk(tuple(tokens), tuple(finished), tuple(finished), max(done))


class PushDecoder:
    """Returns one sample per pushed token (value 0.5), everything at the end."""

    def push(self, tokens: torch.Tensor, final: bool = False) -> np.ndarray:
        return np.full(tokens.numel(), 0.5, np.float32)


class ScriptedAudio:
    """An audio stage whose decode is SAMPLES_PER_TOKEN samples per token at amplitude 2 (too loud)."""

    version = "test"
    sample_rate = RATE
    device = torch.device("cpu")

    def __init__(self, streams: bool) -> None:
        self.streams_token_chunks = streams
        self.decoded: list[int] = []

    def decode(self, tokens, phones, timbre, speed, noise_scale, generator, sample_steps) -> np.ndarray:
        self.decoded.append(len(phones))
        return np.full(tokens.numel() * SAMPLES_PER_TOKEN, 2.0, np.float32)

    def chunk_decoder(self, phones, timbre, noise_scale, generator, options) -> PushDecoder:
        return PushDecoder()


def _run(plan: SynthesisPlan, audio: ScriptedAudio, token_chunks: bool = False) -> list:
    runner = Runner(plan, scripted_tokens, audio, StreamOptions(first_chunk=2, chunk=2), token_chunks)
    return list(runner.chunks(None, (), Timings(), 0.0))


def test_whole_segments_come_in_text_order_peak_normalised_with_their_pause() -> None:
    audio = ScriptedAudio(streams=False)
    plan = _plan([5, 2, 3])
    chunks = _run(plan, audio)
    assert [c.segment for c in chunks[:-1]] == [0, 1, 2]
    pause = round(RATE * plan.pause_seconds)
    for chunk, n in zip(chunks[:-1], (5, 2, 3), strict=True):
        assert len(chunk.audio) == 2 * n * SAMPLES_PER_TOKEN + pause
        assert chunk.audio.max() == 32767 and not chunk.audio[-pause:].any()  # louder than full scale: / peak
    result = chunks[-1].result
    assert result.sample_rate == RATE and [len(t) for t in result.tokens] == [10, 4, 6]
    assert np.array_equal(result.audio, np.concatenate([c.audio for c in chunks[:-1]]))


def test_a_batch_decodes_rows_as_they_finish_and_still_yields_in_order() -> None:
    audio = ScriptedAudio(streams=False)
    plan = _plan([4, 1], batch_size=2)
    chunks = _run(plan, audio)
    assert audio.decoded == [4, 1] and [c.segment for c in chunks[:-1]] == [0, 1]


def test_token_chunks_need_an_audio_stage_that_streams() -> None:
    plan = _plan([6], pause_seconds=0.0)
    streamed = _run(plan, ScriptedAudio(streams=True), token_chunks=True)
    whole = _run(plan, ScriptedAudio(streams=False), token_chunks=True)
    assert sum(1 for c in streamed[:-1] if len(c.audio)) > 1 and len(streamed[-1].result.audio) == 12
    assert len(whole) == 2 and len(whole[0].audio) == 12 * SAMPLES_PER_TOKEN


def test_the_decode_the_caller_passes_is_the_one_called() -> None:
    audio = ScriptedAudio(streams=False)
    calls: list[int] = []

    def counted(*args, **kwargs) -> np.ndarray:
        calls.append(1)
        return audio.decode(*args, **kwargs)

    runner = Runner(_plan([2, 2]), scripted_tokens, audio, StreamOptions(), False, decode=counted)
    list(runner.chunks(None, (), Timings(), 0.0))
    assert len(calls) == 2


def test_a_v2_pipeline_decodes_with_the_vits_audio_stage(pipeline) -> None:
    audio = pipeline.audio
    assert isinstance(audio, VitsAudio) and audio.streams_token_chunks
    assert audio.sample_rate == pipeline.sample_rate == 32000
    assert audio.sample_steps(None) == audio.sample_steps(DEFAULT_SAMPLE_STEPS) == DEFAULT_SAMPLE_STEPS
    with pytest.raises(TTSInputError, match="sample_steps applies to v3/v4") as refused:
        audio.sample_steps(8)
    assert refused.value.field == "sample_steps"
