"""Realtime singing voice conversion: blocks of microphone samples in, blocks of converted voice out.

:class:`LiveConverter` is fed the input as it arrives and returns converted audio of the same
length (delayed by :attr:`LiveConverter.latency_samples`). The design is the one of RVC's and
so-vits-svc-fork's realtime converters (our code):

- the input is taken in fixed **blocks** of ``block`` samples at the model's rate (whole hops);
- every block, the model converts a window ``context + block + crossfade + search`` samples long
  that ends with the newest sample: the **context** (lookback) gives the content encoder, the
  pitch tracker and the synthesizer's convolutions and attention the past they need, so the newest
  part of the window sounds as it would in a whole-file conversion;
- of the converted window only the last ``block + crossfade + search`` samples are used.
  **SOLA** (synchronous overlap-add) picks the offset ``k`` in ``[0, search]`` where their start
  best matches the tail kept from the previous block (normalised cross-correlation), so the
  waveforms are in phase where they meet; the ``crossfade`` samples from ``k`` on are cross-faded
  with that tail (sin² / cos² windows: weights summing to one), then ``block`` samples are emitted
  and the ``crossfade`` samples after them are kept for the next block;
- pitch is tracked per window with a fast tracker (``pm`` by default), transposed; content
  features, the cluster blend, the speaker (or mix) and the synthesizer are the whole-file
  pipeline's (:meth:`app.infer.svc.pipeline.SVCPipeline.convert_piece`);
- a window whose newest ``block + crossfade + search`` samples are quieter than ``silence_db``
  is not converted: silence is faded in instead (no model call, no breath noise turned into voice).

Algorithmic latency = ``block + crossfade + search`` samples: a sample is heard at the earliest
once its block is complete (``block``) and the output runs ``crossfade + search - k`` behind the
input. Processing time of a block adds to it and has to stay below the block's length to keep up
(:attr:`LiveConverter.stats`).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
import torch

from app.audio.pitch import extract
from app.infer.svc.pipeline import SVCPipeline, Voice
from app.infer.svc.request import SvcInputError, SvcRequest
from app.messages import Message
from app.models.svc.synthesizer import DEFAULT_NOISE_SCALE, DEFAULT_SEED

log = logging.getLogger(__name__)

MIN_BLOCK_SECONDS = 0.05
MAX_BLOCK_SECONDS = 5.0
STATS_WINDOW = 50  # blocks the processing-time statistics look back over


@dataclass(frozen=True)
class LiveOptions:
    """One live session: the voice (as :class:`~app.infer.svc.request.SvcRequest`) and the block geometry."""

    model: Path  # G_*.pth
    config: Path | None = None  # config.json; None = the one beside the model
    speaker: str | None = None  # None = the first speaker
    mix: tuple[tuple[str, float], ...] = ()  # speaker mix (name, weight) instead of one speaker
    transpose: float = 0.0  # semitones
    f0_method: str = "pm"  # fastest tracker; fcpe is the fast neural one
    f0_threshold: float | None = None
    auto_f0: bool = False  # the model predicts the pitch (speech)
    cluster_ratio: float = 0.0
    cluster_model: Path | None = None
    noise_scale: float = DEFAULT_NOISE_SCALE
    seed: int = DEFAULT_SEED
    precision: str = "fp32"  # or "fast"
    block_seconds: float = 0.5  # new input per model call
    context_seconds: float = 1.0  # lookback the model sees before each block
    crossfade_seconds: float = 0.05  # cross-fade between consecutive blocks
    search_seconds: float = 0.012  # SOLA search range
    silence_db: float = -50.0  # blocks quieter than this (peak, dBFS) come out silent

    def request(self) -> SvcRequest:
        """The whole-file request with the same voice options (its checks and loading are shared)."""
        return SvcRequest(
            audio=b"", model=self.model, config=self.config, speaker=self.speaker, mix=self.mix,
            transpose=self.transpose, f0_method=self.f0_method, f0_threshold=self.f0_threshold,
            auto_f0=self.auto_f0, noise_scale=self.noise_scale, seed=self.seed, cluster_ratio=self.cluster_ratio,
            cluster_model=self.cluster_model, precision=self.precision,
        )  # fmt: skip


@dataclass(frozen=True)
class Geometry:
    """Block sizes in samples at the model's rate (all whole hops, ``search`` excepted)."""

    sample_rate: int
    block: int
    context: int
    crossfade: int
    search: int

    @property
    def window(self) -> int:
        """Samples converted per block."""
        return self.context + self.block + self.crossfade + self.search

    @property
    def tail(self) -> int:
        """Newest samples of the window that SOLA and the output use."""
        return self.block + self.crossfade + self.search

    @property
    def latency_samples(self) -> int:
        return self.block + self.crossfade + self.search


def geometry(options: LiveOptions, sample_rate: int, hop: int) -> Geometry:
    """Check the block options and round them to the model's frames; raises SvcInputError."""
    if not MIN_BLOCK_SECONDS <= options.block_seconds <= MAX_BLOCK_SECONDS:
        template = "block length {value:g} s is out of range; choose {low:g}-{high:g} s"
        fields = {"value": options.block_seconds, "low": MIN_BLOCK_SECONDS, "high": MAX_BLOCK_SECONDS}
        raise SvcInputError(Message("live.err.block", template, **fields))
    for name in ("context_seconds", "crossfade_seconds", "search_seconds"):
        if getattr(options, name) < 0:
            template = "{name} must be >= 0 s, got {value:g}"
            fields = {"name": name.removesuffix("_seconds"), "value": getattr(options, name)}
            raise SvcInputError(Message("live.err.negative", template, **fields))
    if options.crossfade_seconds > options.block_seconds:
        template = "the cross-fade ({crossfade:g} s) must not be longer than the block ({block:g} s)"
        fields = {"crossfade": options.crossfade_seconds, "block": options.block_seconds}
        raise SvcInputError(Message("live.err.crossfade", template, **fields))

    def frames(seconds: float) -> int:
        return round(seconds * sample_rate / hop) * hop

    block = max(hop, frames(options.block_seconds))
    search = round(options.search_seconds * sample_rate)
    crossfade = min(block, frames(options.crossfade_seconds))
    # The window is whole frames (the f0 and the content features are per frame).
    context = frames(options.context_seconds) + (-search) % hop
    return Geometry(sample_rate, block, context, crossfade, search)


@dataclass(frozen=True)
class LiveStats:
    """How the session keeps up (seconds)."""

    blocks: int  # blocks converted so far
    block_seconds: float  # audio per block
    latency_seconds: float  # algorithmic latency (block + cross-fade + search)
    last_seconds: float  # processing time of the last block
    mean_seconds: float  # mean over the last blocks
    max_seconds: float  # worst of the last blocks

    @property
    def realtime_factor(self) -> float:
        """Mean processing time over block length: below 1 keeps up."""
        return self.mean_seconds / self.block_seconds if self.block_seconds else 0.0


def sola_offset(previous: np.ndarray, head: np.ndarray) -> int:
    """Offset ``k`` in ``[0, len(head) - len(previous)]`` where ``head[k:k + len(previous)]`` best
    matches ``previous`` (normalised cross-correlation; 0 when ``previous`` is silent)."""
    n = len(previous)
    span = len(head) - n
    if n == 0 or span <= 0 or not np.any(previous):
        return 0
    corr = np.correlate(head.astype(np.float64), previous.astype(np.float64), mode="valid")
    energy = np.cumsum(np.concatenate([[0.0], head.astype(np.float64) ** 2]))
    norm = np.sqrt(energy[n:] - energy[:-n] + 1e-8)
    return int(np.argmax(corr / norm))


def fade_windows(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(fade in, fade out) of ``n`` samples: sin² and cos², summing to one."""
    fade_in = (np.sin(0.5 * np.pi * (np.arange(n) + 0.5) / max(n, 1)) ** 2).astype(np.float32)
    return fade_in, (1.0 - fade_in).astype(np.float32)


class LiveConverter:
    """Stateful block converter (module doc). Not thread-safe: one caller feeds it."""

    def __init__(
        self,
        pipeline: SVCPipeline,
        options: LiveOptions,
        *,
        input_rate: int | None = None,
        output_rate: int | None = None,
    ) -> None:
        self.options = options
        self.pipeline = pipeline
        self._request = options.request()
        self.voice: Voice = pipeline.load_voice(self._request)
        sr, hop = self.voice.ckpt.config.data.sampling_rate, self.voice.ckpt.model.hop_length
        self.geometry = geometry(options, sr, hop)
        self.input_rate = input_rate or sr
        self.output_rate = output_rate or sr
        self._in_rs = _StreamResampler(self.input_rate, sr)
        self._out_rs = _StreamResampler(sr, self.output_rate)
        g = self.geometry
        self._window = np.zeros(g.window, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._tail = np.zeros(g.crossfade, dtype=np.float32)  # kept from the previous block
        self._fade_in, self._fade_out = fade_windows(g.crossfade)
        self._silence_peak = 10 ** (options.silence_db / 20)
        self._times: deque[float] = deque(maxlen=STATS_WINDOW)
        self._last = 0.0
        self.blocks = 0

    @property
    def sample_rate(self) -> int:
        """The model's rate (what :meth:`process_block` takes and returns)."""
        return self.geometry.sample_rate

    @property
    def latency_seconds(self) -> float:
        return self.geometry.latency_samples / self.sample_rate

    @property
    def stats(self) -> LiveStats:
        times = list(self._times) or [0.0]
        g = self.geometry
        return LiveStats(
            blocks=self.blocks, block_seconds=g.block / g.sample_rate, latency_seconds=self.latency_seconds,
            last_seconds=self._last, mean_seconds=float(np.mean(times)), max_seconds=float(np.max(times)),
        )  # fmt: skip

    def feed(self, samples: np.ndarray) -> np.ndarray:
        """Input of any length at ``input_rate`` -> the converted audio completed by it, at
        ``output_rate`` (whole blocks; empty until a block is complete)."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._pending = np.concatenate([self._pending, self._in_rs.push(samples)])
        out = []
        block = self.geometry.block
        while len(self._pending) >= block:
            out.append(self.process_block(self._pending[:block]))
            self._pending = self._pending[block:]
        converted = np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
        return self._out_rs.push(converted)

    def process_block(self, block: np.ndarray) -> np.ndarray:
        """Exactly ``geometry.block`` samples at the model's rate -> as many converted samples."""
        g = self.geometry
        block = np.asarray(block, dtype=np.float32)
        if block.shape != (g.block,):
            template = "a block is {samples} samples at {rate} Hz, got shape {shape}"
            fields = {"samples": g.block, "rate": g.sample_rate, "shape": block.shape}
            raise SvcInputError(Message("live.err.shape", template, **fields))
        if not np.isfinite(block).all():
            raise SvcInputError(
                Message("live.err.not_finite", "the input block contains NaN or infinite samples")
            )
        t0 = time.perf_counter()
        self._window = np.concatenate([self._window[g.block :], block])
        newest = self._window[-g.tail :]
        if float(np.abs(newest).max(initial=0.0)) < self._silence_peak:
            head = np.zeros(g.tail, dtype=np.float32)
        else:
            head = self._convert_window()[-g.tail :]
        k = sola_offset(self._tail, head[: g.crossfade + g.search])
        out = head[k : k + g.block].copy()
        n = g.crossfade
        out[:n] = out[:n] * self._fade_in + self._tail * self._fade_out
        self._tail = head[k + g.block : k + g.block + n].copy()
        self._last = time.perf_counter() - t0
        self._times.append(self._last)
        self.blocks += 1
        return out

    def _convert_window(self) -> np.ndarray:
        """The whole window through pitch tracking and the whole-file pipeline's piece conversion."""
        g, request = self.geometry, self._request
        hop = self.voice.ckpt.model.hop_length
        with torch.inference_mode():
            f0, uv = extract(
                self._window, g.sample_rate, hop, request.f0_method, threshold=request.f0_threshold,
                device=str(self.pipeline.device), rmvpe_path=self.pipeline.pretrained_root / "rmvpe.pt",
            )  # fmt: skip
            return self.pipeline.convert_piece(self._window, f0, uv, request, self.voice)

    def flush(self) -> np.ndarray:
        """Pad the pending input with silence to a whole block and convert it, then the
        ``latency`` worth of silence that brings the last input out (at ``output_rate``)."""
        g = self.geometry
        pending = np.concatenate([self._pending, self._in_rs.flush()])
        self._pending = np.zeros(0, dtype=np.float32)
        total = len(pending) + g.crossfade + g.search
        blocks = -(-total // g.block)
        padded = np.pad(pending, (0, blocks * g.block - len(pending)))
        out = [self.process_block(padded[i * g.block : (i + 1) * g.block]) for i in range(blocks)]
        converted = np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
        return np.concatenate([self._out_rs.push(converted), self._out_rs.flush()])


class _StreamResampler:
    """soxr's streaming resampler (no seams between pushes), or a pass-through at equal rates."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        self._stream = (
            None
            if rate_in == rate_out
            else soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality="HQ")
        )

    def push(self, samples: np.ndarray) -> np.ndarray:
        if self._stream is None:
            return samples.astype(np.float32, copy=False)
        return self._stream.resample_chunk(samples.astype(np.float32, copy=False))

    def flush(self) -> np.ndarray:
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        return self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


def convert_stream(converter: LiveConverter, wav: np.ndarray, chunk: int | None = None) -> np.ndarray:
    """Feed ``wav`` (at the converter's input rate) through in chunks of ``chunk`` samples (default: a
    block) and flush: what a live session would play, ``latency`` longer than the input."""
    step = chunk or converter.geometry.block
    parts = [converter.feed(wav[i : i + step]) for i in range(0, len(wav), step)]
    parts.append(converter.flush())
    return np.concatenate(parts)
