"""Incremental SoVITS decoding of one segment's tokens as the GPT produces them.

Upstream's token streaming re-encodes and re-decodes the whole token sequence for every chunk, so
its cost grows with the square of the length. Here every chunk decodes only new frames:

- the prior encoder (``enc_p``, attention over frames) sees the new tokens plus ``encoder_context``
  tokens before them, not the whole history;
- the flow and the HiFi-GAN decoder (non-causal convolutions) run on the new frames plus
  ``decoder_context`` frames before them; those context samples are computed but not sent again;
- the last ``hold`` frames of a chunk lack right context, so they are held back and sent with the
  next chunk, whose fresh computation of them is cross-faded (raised cosine) with the held copy.

The prior noise of every frame is drawn once and reused when the frame is decoded again as
context, so overlapping computations agree. With ``noise_scale = 0`` the streamed audio can be
compared sample by sample with a whole-segment decode; ``tests/infer/test_streaming.py`` and
``bench/tts_cpu.py`` measure that seam error.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from app.models.sovits.model import SoVITS, Timbre


@dataclass(frozen=True)
class StreamOptions:
    """Chunking of token streaming; sizes are in 25 Hz semantic tokens unless named frames."""

    # Tokens before the first audio is decoded (8 tokens = 0.32 s of speech, 0.24 s of it sent:
    # the rest is held for the cross-fade).
    first_chunk: int = 8
    # Tokens of the second chunk; each later chunk doubles, up to ``max_chunk``: small chunks start
    # the audio early, larger ones later cost less context overhead per second of audio. 8 tokens
    # with their decoder context still fit the fast decoder's 32-frame window, so the second
    # chunk comes before the first one's 0.24 s have played (2 threads: ~0.12 s; 1 thread ~0.2 s);
    # the third (16 tokens) before the second's 0.32 s.
    chunk: int = 8
    # Largest chunk.
    max_chunk: int = 96
    # Earlier tokens the prior encoder sees with each chunk.
    encoder_context: int = 16
    # Earlier 50 Hz frames the flow and decoder see with each chunk (their receptive field).
    decoder_context: int = 16
    # 50 Hz frames held back at each chunk's end and cross-faded with the next chunk (80 ms).
    hold: int = 4

    def __post_init__(self) -> None:
        if min(self.first_chunk, self.chunk) < 1 or self.max_chunk < self.chunk:
            raise ValueError("stream chunks must hold at least one token and max_chunk >= chunk")
        if min(self.encoder_context, self.decoder_context, self.hold) < 0:
            raise ValueError("stream contexts and hold must be >= 0")

    def chunk_sizes(self) -> Iterator[int]:
        """Tokens per chunk: first_chunk, chunk, then doubling up to max_chunk."""
        yield self.first_chunk
        size = self.chunk
        while True:
            yield size
            size = min(2 * size, self.max_chunk)


class ChunkDecoder:
    """Decodes one segment piece by piece; :meth:`push` returns the samples that are final.

    Args:
        model: the SoVITS synthesizer (inference mode).
        phones: (1, P) phone ids of the segment's text (without the prompt's).
        timbre: the reference's :class:`Timbre`.
        noise_scale: prior sampling temperature (upstream 0.5).
        generator: random source of the prior noise.
        options: chunk sizes and contexts.
    """

    def __init__(
        self,
        model: SoVITS,
        phones: torch.Tensor,
        timbre: Timbre,
        noise_scale: float,
        generator: torch.Generator | None,
        options: StreamOptions,
    ) -> None:
        self.model = model
        self.phones = phones
        self.timbre = timbre
        self.noise_scale = noise_scale
        self.generator = generator
        self.options = options
        c = model.config
        self.frames_per_token = 2 if c.semantic_frame_rate == "25hz" else 1
        self.hop = c.hop_length
        self.tokens = torch.empty(0, dtype=torch.long, device=phones.device)
        self.noise = torch.empty(1, c.inter_channels, 0, device=phones.device)
        self.sent = 0  # frames whose samples were returned
        self.tail: torch.Tensor | None = None  # held samples of frames [sent, decoded end)
        self.decoded = 0  # frames decoded so far
        self.encoded_text: tuple[torch.Tensor, torch.Tensor] | None = None  # the phones' branch, once

    def push(self, tokens: torch.Tensor, final: bool = False) -> np.ndarray:
        """Add ``tokens (n,)``; returns float32 samples ready to play (possibly empty).

        With ``final`` every remaining sample is returned.
        """
        if tokens.numel():
            self.tokens = torch.cat([self.tokens, tokens.to(self.tokens.device)])
        frames = self.tokens.numel() * self.frames_per_token
        end = frames if final else frames - self.options.hold
        if frames == self.decoded:
            # Nothing new to decode; at the end, the held tail is final (no right context exists).
            if not final or self.tail is None:
                return np.zeros(0, np.float32)
            out, self.tail, self.sent = self.tail, None, frames
            return out.float().cpu().numpy()
        if end <= self.sent:
            return np.zeros(0, np.float32)
        audio, start = self._decode(frames)
        new = audio[(self.sent - start) * self.hop : (end - start) * self.hop].clone()
        if self.tail is not None and self.tail.numel():
            n = min(self.tail.numel(), new.numel())
            fade_in = _fade(n, new.device)
            new[:n] = self.tail[:n] * (1 - fade_in) + new[:n] * fade_in
        self.tail = audio[(end - start) * self.hop :]
        self.sent = end
        self.decoded = frames
        return new.float().cpu().numpy()

    @torch.inference_mode()
    def _decode(self, frames: int) -> tuple[torch.Tensor, int]:
        """Samples of frames [start, frames) and start, decoding from a little before ``sent``."""
        o, m = self.options, self.model
        fpt = self.frames_per_token
        start = max(0, self.sent - o.decoder_context)
        first_token = max(0, start // fpt - o.encoder_context)
        codes = self.tokens[first_token:].view(1, 1, -1)
        quantized = m.quantizer.decode(codes)  # (1, 768, T)
        if fpt == 2:
            quantized = F.interpolate(quantized, size=quantized.shape[-1] * 2, mode="nearest")
        n = quantized.shape[-1]
        lengths = torch.tensor([n], device=codes.device)
        text_lengths = torch.tensor([self.phones.shape[-1]], device=codes.device)
        if self.encoded_text is None:
            self.encoded_text = m.enc_p.encode_text(self.phones, text_lengths, quantized.dtype)
        m_p, logs_p, _ = m.enc_p(
            quantized, lengths, self.phones, text_lengths, self.timbre.ge_text, encoded_text=self.encoded_text
        )
        skip = start - first_token * fpt
        m_p, logs_p = m_p[:, :, skip:], logs_p[:, :, skip:]  # frames [start, frames)
        missing = frames - self.noise.shape[-1]
        if missing > 0:
            fresh = torch.randn(
                (1, self.noise.shape[1], missing), generator=self.generator, device=self.noise.device
            )
            self.noise = torch.cat([self.noise, fresh], dim=-1)
        z_p = m_p + self.noise[:, :, start:frames].to(m_p.dtype) * torch.exp(logs_p) * self.noise_scale
        mask = torch.ones(1, 1, z_p.shape[-1], dtype=z_p.dtype, device=z_p.device)
        z = m.flow(z_p, mask, g=self.timbre.ge, reverse=True)
        audio = m.dec(z, g=self.timbre.ge)[0, 0]
        return audio.float(), start


def _fade(n: int, device: torch.device) -> torch.Tensor:
    """Raised-cosine ramp from 0 to 1 over ``n`` samples (equal-gain crossfade of correlated audio)."""
    if n == 0:
        return torch.zeros(0, device=device)
    t = (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n
    return 0.5 - 0.5 * torch.cos(torch.pi * t)
