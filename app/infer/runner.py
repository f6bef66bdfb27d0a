"""Stages 3 and 4 of one plan: GPT batches, then the audio stage, audio chunks in segment order.

The runner owns the decoding loop and knows the stages only by their interfaces
(:mod:`app.infer.stages.base`): a token stage, an audio stage, and the whole-segment decode.

Whole-segment mode decodes a segment as soon as its GPT row has finished (rows of a batch finish
at different steps) and yields it with its pause, in order. Token-chunk mode (batch size 1,
speed 1, an audio stage that streams) feeds the tokens of the running segment to the audio
stage's :class:`~app.infer.streaming.ChunkDecoder` every :class:`~app.infer.streaming.StreamOptions`
chunk, so audio starts before the segment ends. Both modes draw the same GPT tokens for the same
seed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import torch

from app.devices import release_free_memory
from app.infer.alignment import word_times
from app.infer.inputs import SynthesisPlan
from app.infer.request import AudioChunk, ReferenceInfo, Timings, TTSResult, WordTime
from app.infer.seeds import derive_seed, generator
from app.infer.stages.base import AudioStage, SegmentDecoder, TokenAligner, TokenStage
from app.infer.streaming import StreamOptions
from app.models.gpt.sampling import TokenChunk

# GPT steps between two looks at a streamed segment's tokens (they are regrouped into chunks).
STREAM_STEP = 4
NO_REFERENCE = ReferenceInfo(0.0, 0.0, 0.0, False, "", True, False, "")


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Upstream's output format: float * 32767 as int16 (clipped first so loud samples cannot wrap)."""
    return (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)


def peak_normalise(audio: np.ndarray) -> np.ndarray:
    """Upstream's guard against 16-bit clipping: a segment louder than full scale is divided by its peak."""
    peak = float(np.abs(audio).max(initial=0.0))
    return audio / peak if peak > 1.0 else audio


class Runner:
    """Runs one :class:`SynthesisPlan` through a token stage and an audio stage; :meth:`chunks` is
    the generator.

    Args:
        plan: what to synthesise.
        generate: stage 3, the GPT.
        audio: stage 4 (rate, device, whether it streams token chunks, the chunk decoder).
        options: token-chunk sizes.
        token_chunks: stream segments in token chunks where the plan and the audio stage allow.
        decode: the whole-segment decode; ``audio.decode`` unless the caller wraps it (the
            pipeline passes its own ``decode_tokens``, so one wrapper there counts or times
            every decode).
        align: the attention of a segment's tokens over its phones, for plans that ask for word
            timestamps (refused without it).
    """

    def __init__(
        self,
        plan: SynthesisPlan,
        generate: TokenStage,
        audio: AudioStage,
        options: StreamOptions,
        token_chunks: bool,
        decode: SegmentDecoder | None = None,
        align: TokenAligner | None = None,
    ) -> None:
        if plan.word_timestamps and align is None:
            raise ValueError("word timestamps need the GPT's attention: pass align")
        self.plan = plan
        self.align = align
        self.generate = generate
        self.audio = audio
        self.decode: SegmentDecoder = decode or audio.decode
        self.options = options
        # Token chunks need an audio stage that decodes incrementally (v3/v4 stream whole segments).
        self.chunked = (
            token_chunks and plan.batch_size == 1 and plan.speed == 1.0 and audio.streams_token_chunks
        )
        self.pause = np.zeros(round(audio.sample_rate * plan.pause_seconds), np.int16)
        self.tokens: list[torch.Tensor | None] = [None] * len(plan.segments)
        # Word timestamps: each segment's (N, n_phones) attention, then its words with times.
        self.attention: list[torch.Tensor | None] = [None] * len(plan.segments)
        self.words: list[tuple[WordTime, ...]] = [()] * len(plan.segments)
        self.parts: list[np.ndarray] = []
        # Whole-segment mode: audio of finished segments waiting for the earlier ones (batches
        # of similar-length segments finish out of text order).
        self.waiting: dict[int, np.ndarray] = {}
        self.next_segment = 0
        self.gpt_s = 0.0
        self.sovits_s = 0.0
        self.first_audio: float | None = None
        self.begin = 0.0
        self.notes: tuple[str, ...] = ()

    def chunks(
        self, info: ReferenceInfo | None, notes: tuple[str, ...], timings: Timings, begin: float
    ) -> Iterator[AudioChunk]:
        self.begin = begin
        self.notes = notes
        plan = self.plan
        for batch, batch_rows in enumerate(plan.batch_rows()):
            rows = list(batch_rows)
            prompt = plan.prompt
            phones = [(prompt.phones if prompt else ()) + plan.segments[i].phones for i in rows]
            berts = [
                torch.cat([prompt.bert, plan.segments[i].bert], dim=1) if prompt else plan.segments[i].bert
                for i in rows
            ]
            options = replace(plan.sampling, seed=derive_seed(plan.seed, "gpt", batch))
            step = STREAM_STEP if self.chunked else None
            it = self.generate(phones, berts, plan.prompt_tokens, options, chunk_tokens=step)
            try:
                if self.chunked:
                    yield from self._stream_segment(it, rows[0])
                else:
                    yield from self._whole_segments(it, rows)
            finally:
                it.close()  # type: ignore[attr-defined]
        yield self._final(info or NO_REFERENCE, notes, timings)

    # ------------------------------------------------------------------------------------
    def _timed(self, it: Iterator[TokenChunk]) -> Iterator[TokenChunk]:
        while True:
            t0 = time.perf_counter()
            try:
                chunk = next(it)
            except StopIteration:
                self.gpt_s += time.perf_counter() - t0
                return
            self.gpt_s += time.perf_counter() - t0
            yield chunk

    def _emit(self, audio: np.ndarray, segment: int, done: bool) -> AudioChunk:
        if self.first_audio is None and len(audio):
            self.first_audio = time.perf_counter() - self.begin
        self.parts.append(audio)
        return AudioChunk(
            audio, self.audio.sample_rate, segment, len(self.plan.segments), done, notes=self.notes
        )

    def _whole_segments(self, it: Iterator[TokenChunk], rows: list[int]) -> Iterator[AudioChunk]:
        """Decode each row's segment when its tokens are complete; yield segments in text order."""
        parts: list[list[torch.Tensor]] = [[] for _ in rows]
        done = [False] * len(rows)
        r = 0  # rows decoded so far, in batch order
        for chunk in self._timed(it):
            for i, t in enumerate(chunk.tokens):
                parts[i].append(t)
                done[i] = done[i] or chunk.finished[i]
            while r < len(rows) and done[r]:
                seg = rows[r]
                tokens = torch.cat(parts[r]).cpu()
                self.tokens[seg] = tokens
                self._attend(seg, tokens)
                t0 = time.perf_counter()
                audio = self.decode(
                    tokens,
                    self.plan.segments[seg].phones,
                    self.plan.timbre,
                    self.plan.speed,
                    self.plan.noise_scale,
                    generator(self.plan.seed, "sovits", seg, self.audio.device),
                    self.plan.sample_steps,
                )
                self.sovits_s += time.perf_counter() - t0
                self._time_words(seg, len(audio))
                r += 1
                self.waiting[seg] = np.concatenate([to_int16(peak_normalise(audio)), self.pause])
                while self.next_segment in self.waiting:
                    seg_now = self.next_segment
                    self.next_segment += 1
                    yield self._emit(self.waiting.pop(seg_now), seg_now, True)

    def _stream_segment(self, it: Iterator[TokenChunk], seg: int) -> Iterator[AudioChunk]:
        o = self.options
        gen = generator(self.plan.seed, "sovits", seg, self.audio.device)
        decoder = self.audio.chunk_decoder(
            self.plan.segments[seg].phones, self.plan.timbre, self.plan.noise_scale, gen, o
        )
        pending: list[torch.Tensor] = []
        all_tokens: list[torch.Tensor] = []
        speech = 0  # samples of the segment so far (its pause excluded)
        sizes = o.chunk_sizes()
        wanted = next(sizes)
        for chunk in self._timed(it):
            tokens, final = chunk.tokens[0].cpu(), chunk.finished[0]
            pending.append(tokens)
            all_tokens.append(tokens)
            if sum(t.numel() for t in pending) < wanted and not final:
                continue
            t0 = time.perf_counter()
            audio = decoder.push(torch.cat(pending), final=final)
            # The chunk's decoder activations are done with; left in glibc's heap they would sit
            # under the next chunk's (streaming peaks 50-100 MB higher). Costs ~1 ms.
            release_free_memory()
            self.sovits_s += time.perf_counter() - t0
            pending = []
            wanted = next(sizes)
            samples = to_int16(audio)
            speech += len(samples)
            if final:
                self._attend(seg, torch.cat(all_tokens))
                self._time_words(seg, speech)
                samples = np.concatenate([samples, self.pause])
            yield self._emit(samples, seg, final)
            if final:
                break
        self.tokens[seg] = torch.cat(all_tokens) if all_tokens else torch.zeros(0, dtype=torch.long)

    def _attend(self, seg: int, tokens: torch.Tensor) -> None:
        """Word timestamps: the attention of segment ``seg``'s tokens over its own phones."""
        if not self.plan.word_timestamps or self.align is None:
            return
        t0 = time.perf_counter()
        prompt = self.plan.prompt
        segment = self.plan.segments[seg]
        phones = (prompt.phones if prompt else ()) + segment.phones
        bert = torch.cat([prompt.bert, segment.bert], dim=1) if prompt else segment.bert
        attention = self.align(phones, bert, self.plan.prompt_tokens, tokens)  # (N, prompt + segment)
        self.attention[seg] = attention[:, len(phones) - len(segment.phones) :]
        self.gpt_s += time.perf_counter() - t0  # a GPT pass: counted with the GPT's time

    def _time_words(self, seg: int, samples: int) -> None:
        """Word timestamps of segment ``seg`` once its speech is ``samples`` long."""
        attention = self.attention[seg]
        if attention is None:
            return
        segment = self.plan.segments[seg]
        seconds = samples / self.audio.sample_rate
        self.words[seg] = word_times(attention.numpy(), segment.words, segment.text, seconds)
        self.attention[seg] = None

    def _final(self, info: ReferenceInfo, notes: tuple[str, ...], timings: Timings) -> AudioChunk:
        total = time.perf_counter() - self.begin
        tokens = tuple(t if t is not None else torch.zeros(0, dtype=torch.long) for t in self.tokens)
        result = TTSResult(
            audio=np.concatenate(self.parts) if self.parts else np.zeros(0, np.int16),
            sample_rate=self.audio.sample_rate,
            seed=self.plan.seed,
            segments=tuple(s.text for s in self.plan.segments),
            tokens=tokens,
            reference=info,
            words=tuple(self.words) if self.plan.word_timestamps else (),
            notes=notes,
            timings=replace(
                timings,
                gpt=self.gpt_s,
                sovits=self.sovits_s,
                total=total,
                tokens=sum(int(t.numel()) for t in tokens),
                first_audio=self.first_audio if self.first_audio is not None else total,
            ),
        )
        last = len(self.plan.segments) - 1
        return AudioChunk(
            np.zeros(0, np.int16),
            self.audio.sample_rate,
            max(last, 0),
            len(self.plan.segments),
            True,
            result,
            notes,
        )
