"""The SoVITS synthesizer (GPT-SoVITS stage 2): semantic tokens + phonemes + timbre -> 32 kHz audio.

Inference path (``decode``): codes -> codebook vectors (25 -> 50 Hz) -> prior encoder with MRTE ->
``z_p = m_p + noise * exp(logs_p) * noise_scale`` -> reverse flow -> HiFi-GAN. The timbre vector
``ge`` comes from the reference encoder on a reference spectrogram (v2Pro*: plus a
speaker-verification embedding). Training path (``forward``): posterior encoder on the target
spectrogram, flow to the prior, decoder on a random window.

Module names and registration order equal upstream's ``SynthesizerTrn`` so state dicts load as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from app.models.nn.flow import ResidualCouplingBlock
from app.models.nn.hifigan import HiFiGANGenerator
from app.models.nn.masks import length_mask, rand_slice_segments
from app.models.nn.norm import fold_weight_norm
from app.models.sovits.config import CODEBOOK_SIZE, MRTE_HIDDEN, SSL_DIM, SoVITSConfig
from app.models.sovits.encoders import PosteriorEncoder, TextEncoder
from app.models.sovits.quantizer import ResidualVectorQuantizer
from app.models.sovits.style import MelStyleEncoder

# Shape of the flow and the posterior WaveNets, fixed upstream (not in the config).
FLOW_KERNEL, FLOW_LAYERS = 5, 4
POSTERIOR_KERNEL, POSTERIOR_LAYERS = 5, 16


@dataclass(frozen=True)
class Timbre:
    """The reference voice as the decoder uses it; compute once per reference, reuse per sentence."""

    ge: torch.Tensor  # (1, gin, 1) conditioning of flow and decoder
    ge_text: torch.Tensor  # (1, 512, 1) conditioning of MRTE (= ge for v1/v2)


@dataclass(frozen=True)
class DecodeResult:
    """Everything ``synthesize`` computed, for callers that want more than the audio."""

    audio: torch.Tensor  # (B, 1, L * hop) waveform in [-1, 1]
    ge: torch.Tensor  # (B, gin, 1) timbre vector used by flow and decoder
    ge_text: torch.Tensor  # (B, 512, 1) timbre vector given to MRTE (= ge for v1/v2)
    m_p: torch.Tensor  # (B, inter, L) prior mean
    logs_p: torch.Tensor  # (B, inter, L) prior log-std
    z: torch.Tensor  # (B, inter, L) latent after the reverse flow
    y_mask: torch.Tensor  # (B, 1, L)


@dataclass(frozen=True)
class TrainOutput:
    """Outputs of the training forward that the losses need."""

    audio: torch.Tensor  # (B, 1, segment_size) decoded random window
    slice_starts: torch.Tensor  # (B,) window starts in latent frames
    y_mask: torch.Tensor  # (B, 1, T) valid spectrogram frames
    z: torch.Tensor  # (B, inter, T) posterior sample
    z_p: torch.Tensor  # (B, inter, T) posterior sample mapped through the flow
    m_p: torch.Tensor  # (B, inter, T) prior mean
    logs_p: torch.Tensor  # (B, inter, T) prior log-std
    m_q: torch.Tensor  # (B, inter, T) posterior mean
    logs_q: torch.Tensor  # (B, inter, T) posterior log-std
    commit_loss: torch.Tensor  # scalar, 0 while the quantizer is frozen
    codes: torch.Tensor  # (n_q, B, T/2) semantic codes of the batch


def build_posterior_encoder(config: SoVITSConfig) -> PosteriorEncoder:
    """The training-only ``enc_q`` of a model with this config (exported files do not carry it)."""
    return PosteriorEncoder(
        config.spec_channels,
        config.inter_channels,
        config.hidden_channels,
        POSTERIOR_KERNEL,
        1,
        POSTERIOR_LAYERS,
        gin_channels=config.gin_channels,
    )


class SoVITS(nn.Module):
    """GPT-SoVITS v1/v2/v2Pro/v2ProPlus synthesizer built from a :class:`SoVITSConfig`."""

    def __init__(self, config: SoVITSConfig) -> None:
        super().__init__()
        if config.is_cfm:
            raise ValueError(
                f"SoVITS builds the VITS-decoder versions; {config.version} uses "
                "app.models.sovits.cfm_model.CfmSoVITS"
            )
        self.config = config
        c = config
        self.enc_p = TextEncoder(
            c.inter_channels,
            c.hidden_channels,
            c.filter_channels,
            c.n_heads,
            c.n_layers,
            c.kernel_size,
            c.p_dropout,
            c.n_symbols,
        )
        self.dec = HiFiGANGenerator(
            c.inter_channels,
            c.resblock,
            c.resblock_kernel_sizes,
            c.resblock_dilation_sizes,
            c.upsample_rates,
            c.upsample_initial_channel,
            c.upsample_kernel_sizes,
            gin_channels=c.gin_channels,
        )
        self.enc_q = build_posterior_encoder(c)
        self.flow = ResidualCouplingBlock(
            c.inter_channels, c.hidden_channels, FLOW_KERNEL, 1, FLOW_LAYERS, gin_channels=c.gin_channels
        )
        self.ref_enc = MelStyleEncoder(c.ref_enc_bins, c.gin_channels)
        # 25 Hz tokens: a stride-2 conv halves the 50 Hz HuBERT frames.
        stride = 2 if c.semantic_frame_rate == "25hz" else 1
        self.ssl_proj = nn.Conv1d(SSL_DIM, SSL_DIM, stride, stride=stride)
        self.quantizer = ResidualVectorQuantizer(SSL_DIM, CODEBOOK_SIZE, n_q=1)
        if c.is_pro:
            self.sv_emb = nn.Linear(c.sv_dim, c.gin_channels)
            self.ge_to512 = nn.Linear(c.gin_channels, MRTE_HIDDEN)
            self.prelu = nn.PReLU(num_parameters=c.gin_channels)

    # ----------------------------------------------------------------- inference

    def prepare_for_inference(self) -> SoVITS:
        """eval(), drop the training-only posterior encoder, fold weight norm once. Returns self.

        The folding is in place (no second copy of the kernels, ~100 MB less for v2): the model
        computes the same, but its weight-norm parameters are rescaled, so a state dict saved
        from it is equivalent to, not byte-equal with, the file it came from.
        """
        self.eval()
        if hasattr(self, "enc_q"):
            del self.enc_q
        fold_weight_norm(self, in_place=True)
        return self

    @torch.inference_mode()
    def extract_codes(self, ssl: torch.Tensor) -> torch.Tensor:
        """HuBERT features -> semantic tokens.

        Args:
            ssl: (B, 768, T) content features at 50 Hz.

        Returns:
            (B, 1, T/2) int64 codes (upstream ``extract_latent``; ``[0, 0]`` is the GPT prompt).
        """
        return self.quantizer.encode(self.ssl_proj(ssl)).transpose(0, 1)

    @torch.inference_mode()
    def timbre(
        self, refer_specs: Sequence[torch.Tensor], sv_embs: Sequence[torch.Tensor] | None = None
    ) -> Timbre:
        """Timbre vectors from one or more reference spectrograms, averaged over references.

        Args:
            refer_specs: each (1, 1025, F) linear spectrogram (see ``reference_spectrogram``).
            sv_embs: v2Pro* only: one (1, sv_dim) speaker-verification embedding per reference
                (sv_dim 20480 for upstream's models).

        Returns:
            :class:`Timbre`: ge (1, gin, 1) for flow/decoder, ge_text (1, 512, 1) for MRTE.
        """
        if not refer_specs:
            raise ValueError("decode needs at least one reference spectrogram")
        if self.config.is_pro and (sv_embs is None or len(sv_embs) != len(refer_specs)):
            raise ValueError(f"{self.config.version} needs one speaker embedding per reference spectrogram")
        ges = []
        for i, spec in enumerate(refer_specs):
            mask = torch.ones(spec.size(0), 1, spec.size(2), dtype=spec.dtype, device=spec.device)
            ge = self.ref_enc(spec[:, : self.config.ref_enc_bins] * mask, mask)  # (1, gin, 1)
            if self.config.is_pro:
                assert sv_embs is not None
                ge = self.prelu(ge + self.sv_emb(sv_embs[i]).unsqueeze(-1))
            ges.append(ge)
        ge = ges[0] if len(ges) == 1 else torch.stack(ges, 0).mean(0)
        ge_text = self.ge_to512(ge.transpose(2, 1)).transpose(2, 1) if self.config.is_pro else ge
        return Timbre(ge=ge, ge_text=ge_text)

    @torch.inference_mode()
    def synthesize(
        self,
        codes: torch.Tensor,
        phones: torch.Tensor,
        refer_specs: torch.Tensor | Sequence[torch.Tensor] | Timbre,
        speed: float = 1.0,
        noise_scale: float = 0.5,
        sv_emb: torch.Tensor | Sequence[torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> DecodeResult:
        """Decode semantic tokens to audio, keeping the intermediate tensors.

        Args:
            codes: (1, 1, T) semantic tokens at 25 Hz (n_q first, as upstream's ``decode``).
            phones: (1, P) phoneme ids of the text these tokens speak.
            refer_specs: one (1, 1025, F) reference spectrogram, a list (timbres averaged), or
                a :class:`Timbre` from :meth:`timbre` (then ``sv_emb`` is not needed).
            speed: speaking-rate factor (> 1 faster).
            noise_scale: prior sampling temperature (0 = deterministic).
            sv_emb: v2Pro*: (1, 20480) speaker embedding, or one per reference.
            generator: random source for the prior noise.

        Returns:
            :class:`DecodeResult` with audio (1, 1, L * hop).
        """
        if isinstance(refer_specs, Timbre):
            timbre = refer_specs
        else:
            specs = [refer_specs] if isinstance(refer_specs, torch.Tensor) else list(refer_specs)
            svs = (
                [sv_emb]
                if isinstance(sv_emb, torch.Tensor)
                else (list(sv_emb) if sv_emb is not None else None)
            )
            timbre = self.timbre(specs, svs)
        ge, ge_text = timbre.ge, timbre.ge_text
        quantized = self.quantizer.decode(codes)  # (1, 768, T)
        if self.config.semantic_frame_rate == "25hz":
            quantized = F.interpolate(quantized, size=quantized.shape[-1] * 2, mode="nearest")
        y_lengths = torch.tensor([quantized.size(2)], device=codes.device)
        text_lengths = torch.tensor([phones.size(-1)], device=phones.device)
        m_p, logs_p, y_mask = self.enc_p(quantized, y_lengths, phones, text_lengths, ge_text, speed)
        if noise_scale:
            noise = torch.randn(m_p.shape, generator=generator, device=m_p.device, dtype=m_p.dtype)
            z_p = m_p + noise * torch.exp(logs_p) * noise_scale
        else:
            z_p = m_p
        z = self.flow(z_p, y_mask, g=ge, reverse=True)
        audio = self.dec(z * y_mask, g=ge)
        return DecodeResult(audio=audio, ge=ge, ge_text=ge_text, m_p=m_p, logs_p=logs_p, z=z, y_mask=y_mask)

    def decode(
        self,
        codes: torch.Tensor,
        phones: torch.Tensor,
        refer_specs: torch.Tensor | Sequence[torch.Tensor] | Timbre,
        speed: float = 1.0,
        noise_scale: float = 0.5,
        sv_emb: torch.Tensor | Sequence[torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Decode semantic tokens to (1, 1, L * hop) audio; arguments as :meth:`synthesize`."""
        return self.synthesize(codes, phones, refer_specs, speed, noise_scale, sv_emb, generator).audio

    # ------------------------------------------------------------------ training

    def forward(
        self,
        ssl: torch.Tensor,
        spec: torch.Tensor,
        spec_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        sv_emb: torch.Tensor | None = None,
    ) -> TrainOutput:
        """Training forward.

        Args:
            ssl: (B, 768, T) HuBERT features (50 Hz, aligned with the spectrogram frames).
            spec: (B, 1025, T) linear spectrogram of the target audio; spec_lengths (B,).
            text: (B, P) phoneme ids; text_lengths (B,).
            sv_emb: v2Pro*: (B, 20480) speaker embeddings.

        Returns:
            :class:`TrainOutput`; the decoded window covers ``slice_starts * hop`` onwards.
        """
        c = self.config
        y_mask = length_mask(spec_lengths, spec.size(2), spec.dtype)
        ge = self.ref_enc(spec[:, : c.ref_enc_bins] * y_mask, y_mask)
        ge_text = ge
        if c.is_pro:
            if sv_emb is None:
                raise ValueError(f"{c.version} training needs sv_emb")
            ge = self.prelu(ge + self.sv_emb(sv_emb).unsqueeze(-1))
            ge_text = self.ge_to512(ge.transpose(2, 1)).transpose(2, 1)
        train_quantizer = self.training and not c.freeze_quantizer
        with torch.set_grad_enabled(torch.is_grad_enabled() and train_quantizer):
            projected = self.ssl_proj(ssl)
            quantized, codes, commit_loss = self.quantizer(projected, update=train_quantizer)
        if c.semantic_frame_rate == "25hz":
            quantized = F.interpolate(quantized, size=quantized.shape[-1] * 2, mode="nearest")
        m_p, logs_p, _ = self.enc_p(quantized, spec_lengths, text, text_lengths, ge_text)
        z, m_q, logs_q, y_mask = self.enc_q(spec, spec_lengths, g=ge)
        z_p = self.flow(z, y_mask, g=ge)
        z_slice, starts = rand_slice_segments(z, spec_lengths, c.segment_frames)
        audio = self.dec(z_slice, g=ge)
        return TrainOutput(
            audio=audio,
            slice_starts=starts,
            y_mask=y_mask,
            z=z,
            z_p=z_p,
            m_p=m_p,
            logs_p=logs_p,
            m_q=m_q,
            logs_q=logs_q,
            commit_loss=commit_loss,
            codes=codes,
        )
