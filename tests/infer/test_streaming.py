"""Streaming: audio before the last segment (or the end of a segment) is decoded; seams are small."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import torch

from app.infer import StreamOptions, TTSRequest
from app.infer.streaming import ChunkDecoder

TEXT = "First sentence here. Second one follows, and a third closes it!"


def _request(ref, **changes) -> TTSRequest:
    fields = {
        "text": TEXT,
        "text_language": "en",
        "reference": str(ref),
        "prompt_text": "你好欢迎来到我们的节目",
        "prompt_language": "all_zh",
        "split_method": "cut5",
        "seed": 21,
        **changes,
    }
    return TTSRequest(**fields)


def _counting(pipeline, monkeypatch) -> list[int]:
    calls: list[int] = []
    real = pipeline.decode_tokens
    monkeypatch.setattr(pipeline, "decode_tokens", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_first_segment_arrives_before_the_last_is_decoded(pipeline, ref_wav, monkeypatch):
    calls = _counting(pipeline, monkeypatch)
    stream = pipeline.stream(_request(ref_wav), token_chunks=False)
    first = next(stream)
    assert first.segment == 0 and first.segment_done and first.segments == 3 and len(first.audio)
    assert len(calls) == 1  # segments 1 and 2 are not decoded yet
    rest = list(stream)
    assert len(calls) == 3 and rest[-1].result is not None
    streamed = np.concatenate([first.audio, *(c.audio for c in rest)])
    whole = pipeline.synthesize(_request(ref_wav))
    assert np.array_equal(streamed, whole.audio) and np.array_equal(rest[-1].result.audio, whole.audio)


def test_batched_stream_yields_in_segment_order(pipeline, ref_wav):
    chunks = list(pipeline.stream(_request(ref_wav, batch_size=3)))
    assert [c.segment for c in chunks if len(c.audio)] == [0, 1, 2]


def test_token_chunks_stream_within_one_segment(pipeline, ref_wav):
    request = _request(ref_wav, split_method="cut0")
    chunks = list(pipeline.stream(request, token_chunks=True))
    result = chunks[-1].result
    before_end = [c for c in chunks[:-1] if not c.segment_done and len(c.audio)]
    assert len(result.segments) == 1 and len(before_end) >= 2  # audio while the GPT still runs
    assert result.timings.first_audio < result.timings.total
    whole = pipeline.synthesize(request)
    assert torch.equal(result.tokens[0], whole.tokens[0])  # same GPT tokens for the same seed
    assert len(result.audio) == len(whole.audio)
    assert np.array_equal(np.concatenate([c.audio for c in chunks]), result.audio)


def test_token_chunk_seams_are_close_to_a_whole_decode(pipeline, ref_wav):
    plan, *_ = pipeline.plan(_request(ref_wav, split_method="cut0", pause_seconds=0.0))
    plan = dataclasses.replace(plan, noise_scale=0.0)  # deterministic: the two decodes can be compared
    whole = list(pipeline.run(plan))[-1].result.audio.astype(np.float64)
    options = StreamOptions(first_chunk=8, chunk=10)
    chunks = list(pipeline.run(plan, token_chunks=True, options=options))
    streamed = chunks[-1].result.audio.astype(np.float64)
    assert sum(1 for c in chunks if len(c.audio)) >= 4 and len(streamed) == len(whole)
    snr = 10 * np.log10((whole**2).sum() / ((whole - streamed) ** 2).sum())
    assert snr > 35.0, snr


def test_one_push_equals_the_whole_segment_decode(pipeline, ref_wav):
    plan, *_ = pipeline.plan(_request(ref_wav, split_method="cut0"))
    tokens = torch.randint(0, 1024, (30,), generator=torch.Generator().manual_seed(0))
    phones = plan.segments[0].phones
    whole = pipeline.decode_tokens(tokens, phones, plan.timbre, noise_scale=0.0)
    decoder = ChunkDecoder(pipeline.sovits, torch.tensor([phones]), plan.timbre, 0.0, None, StreamOptions())
    np.testing.assert_allclose(decoder.push(tokens, final=True), whole, atol=1e-5)
    assert decoder.push(tokens[:0], final=True).size == 0


def test_a_stream_encodes_its_phones_once_with_the_values_of_every_chunk(pipeline, ref_wav, monkeypatch):
    """The prior encoder's phone branch does not depend on the frames: one computation per
    segment, reused by every chunk, gives the audio of computing it per chunk."""
    plan, *_ = pipeline.plan(_request(ref_wav, split_method="cut0"))
    tokens = torch.randint(0, 1024, (40,), generator=torch.Generator().manual_seed(1))
    phones = torch.tensor([plan.segments[0].phones])
    enc_p = pipeline.sovits.enc_p
    real = type(enc_p).encode_text
    calls: list[int] = []
    monkeypatch.setattr(type(enc_p), "encode_text", lambda self, *a: calls.append(1) or real(self, *a))
    options = StreamOptions(first_chunk=6, chunk=6)

    def pushed() -> np.ndarray:
        decoder = ChunkDecoder(pipeline.sovits, phones, plan.timbre, 0.0, None, options)
        parts = [decoder.push(tokens[i : i + 6]) for i in range(0, 36, 6)]
        return np.concatenate([*parts, decoder.push(tokens[36:], final=True)])

    once = pushed()
    assert len(calls) == 1
    forward = type(enc_p).forward  # every chunk encodes the phones again
    monkeypatch.setattr(
        type(enc_p), "forward", lambda self, *a, encoded_text=None, **k: forward(self, *a, **k)
    )
    every = pushed()
    assert len(calls) > 3
    np.testing.assert_array_equal(once, every)


def test_closing_a_stream_stops_it_and_frees_the_pipeline(pipeline, ref_wav, monkeypatch):
    calls = _counting(pipeline, monkeypatch)
    stream = pipeline.stream(_request(ref_wav), token_chunks=False)
    next(stream)
    stream.close()
    assert len(calls) == 1
    done = []
    worker = threading.Thread(
        target=lambda: done.append(pipeline.synthesize(_request(ref_wav, text="Free.")))
    )
    worker.start()
    worker.join(timeout=60)
    assert done and done[0].duration > 0
