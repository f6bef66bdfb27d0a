"""The GPT-SoVITS v3/v4 synthesizer: semantic tokens + phonemes + a reference -> a log-mel that a
vocoder (v4: 48 kHz HiFi-GAN, v3: 24 kHz BigVGAN; ``app.models.vocoders``) turns into audio.

Per text segment (upstream ``get_tts_wav``, v3/v4 branch):

1. :meth:`CfmSoVITS.timbre`: ``ge = ref_enc(refer_spec[:, :704])`` on the v2 reference spectrogram.
2. :meth:`CfmSoVITS.prompt`: the reference's tokens and phonemes through :meth:`decode_encp`
   (``fea_ref``) and the reference mel (:meth:`reference_mel`), cut to their common length T_min
   (only the last 500 (v4) / 468 (v3) frames when longer). Computed once per reference.
3. :meth:`CfmSoVITS.synthesize`: the target tokens through :meth:`decode_encp` (``fea_todo``),
   then flow matching in chunks of ``window - T_min`` frames, each continuing the previous one
   (prompt = the last T_min generated frames, their features the condition), concatenated and
   de-normalised. As upstream, a prompt is at most as long as the previous chunk: v3 with a long
   reference (T_min 468) has 466-frame chunks, so from the second chunk on its prompt is 466.

:meth:`decode_encp`: codes -> codebook vectors (25 -> 50 Hz) -> the v2 text encoder with MRTE
(hidden output, 192 wide) -> ``bridge`` (1x1 conv to 512, LeakyReLU 0.01) -> nearest upsampling
x2 (v4) / x1.875 (v3) -> ``wns1`` WaveNet conditioned on ge -> (1, 512, frames).

Module names and registration order equal upstream's ``SynthesizerTrnV3`` so state dicts load as
is. :meth:`CfmSoVITS.forward` is upstream's training forward (the flow-matching loss on a batch);
with ``freeze_quantizer`` the quantizer, ``ssl_proj`` and ``enc_p`` stay in eval mode and get no
gradient, as upstream's. The LoRA adapters of fine-tuning are added by the trainer
(:mod:`app.train.sovits_lora`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from app.models.nn.masks import length_mask
from app.models.nn.norm import fold_weight_norm
from app.models.sovits.cfm import CFM, DiT
from app.models.sovits.config import (
    CFM_FEATURE_DIM,
    CFM_MEL_BINS,
    CODEBOOK_SIZE,
    REF_ENC_BINS_V2,
    SSL_DIM,
    SoVITSConfig,
)
from app.models.sovits.encoders import TextEncoder, WaveNetEncoder
from app.models.sovits.quantizer import ResidualVectorQuantizer
from app.models.sovits.reference import denormalize_mel, normalize_mel, reference_mel
from app.models.sovits.style import MelStyleEncoder

# wns1's kernel and dilation, fixed upstream (width and depth are config fields).
WNS1_KERNEL, WNS1_DILATION = 5, 1
# Slope of the bridge's LeakyReLU (torch default, as upstream builds it).
BRIDGE_SLOPE = 0.01
# Training: each item's prompt is floor(u * 2/3 * its mel frames) frames, u ~ U[0, 1) (upstream).
MAX_PROMPT_FRACTION = 2 / 3

# (chunk index, noise shape (1, 100, frames)) -> the starting noise of that chunk.
NoiseFn = Callable[[int, tuple[int, int, int]], torch.Tensor]


@dataclass(frozen=True)
class CfmPrompt:
    """The reference as the flow matching continues it; compute once per reference, reuse per segment."""

    ge: torch.Tensor  # (1, 512, 1) timbre vector (MRTE and wns1 conditioning)
    fea: torch.Tensor  # (1, 512, T_min) wns1 features of the reference's tokens (fea_ref)
    mel: torch.Tensor  # (1, 100, T_min) normalised reference mel (the first chunk's prompt)

    @property
    def frames(self) -> int:
        """T_min: prompt frames per chunk."""
        return int(self.mel.shape[-1])


@dataclass(frozen=True)
class CfmDecodeResult:
    """Everything :meth:`CfmSoVITS.synthesize` computed for one segment."""

    mel: torch.Tensor  # (1, 100, F) log-mel for the vocoder (de-normalised mel_norm)
    mel_norm: torch.Tensor  # (1, 100, F) generated frames on the CFM's [-1, 1]-ish scale
    fea: torch.Tensor  # (1, 512, F) wns1 features of the target tokens (fea_todo)
    chunks: tuple[torch.Tensor, ...]  # per chunk (1, 100, T_min + C): CFM output over prompt + chunk
    chunk_frames: int  # target frames per chunk (window - T_min)


class CfmSoVITS(nn.Module):
    """GPT-SoVITS v3/v4 synthesizer (upstream ``SynthesizerTrnV3``) built from a v3/v4 :class:`SoVITSConfig`."""

    def __init__(self, config: SoVITSConfig) -> None:
        super().__init__()
        if not config.is_cfm:
            raise ValueError(f"CfmSoVITS builds v3/v4 models; {config.version} uses SoVITS (VITS decoder)")
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
        self.ref_enc = MelStyleEncoder(REF_ENC_BINS_V2, c.gin_channels)
        stride = 2 if c.semantic_frame_rate == "25hz" else 1
        self.ssl_proj = nn.Conv1d(SSL_DIM, SSL_DIM, stride, stride=stride)
        self.quantizer = ResidualVectorQuantizer(SSL_DIM, CODEBOOK_SIZE, n_q=1)
        self.bridge = nn.Sequential(
            nn.Conv1d(c.hidden_channels, CFM_FEATURE_DIM, 1), nn.LeakyReLU(BRIDGE_SLOPE)
        )
        self.wns1 = WaveNetEncoder(
            CFM_FEATURE_DIM,
            CFM_FEATURE_DIM,
            c.wns1_hidden,
            WNS1_KERNEL,
            WNS1_DILATION,
            c.wns1_layers,
            gin_channels=c.gin_channels,
        )
        # Training only (an auxiliary mel head upstream keeps in its files); dropped for inference.
        self.linear_mel = nn.Conv1d(CFM_FEATURE_DIM, CFM_MEL_BINS, 1)
        dit = DiT(
            dim=c.dit_dim,
            depth=c.dit_depth,
            heads=c.dit_heads,
            dim_head=c.dit_dim_head,
            ff_mult=c.dit_ff_mult,
            mel_dim=CFM_MEL_BINS,
            cond_dim=CFM_FEATURE_DIM,
            conv_layers=c.dit_conv_layers,
        )
        self.cfm = CFM(dit, CFM_MEL_BINS)

    # ----------------------------------------------------------------- training

    @property
    def frozen_modules(self) -> tuple[nn.Module, ...]:
        """What ``freeze_quantizer`` keeps fixed (eval mode, no gradient): ssl_proj, quantizer, enc_p."""
        return (self.ssl_proj, self.quantizer, self.enc_p) if self.config.freeze_quantizer else ()

    def train(self, mode: bool = True) -> CfmSoVITS:
        """As ``nn.Module.train``, but the frozen modules stay in eval mode (upstream sets them to
        eval in every training forward: no dropout in ``enc_p``)."""
        super().train(mode)
        for module in self.frozen_modules:
            module.eval()
        return self

    def forward(
        self,
        ssl: torch.Tensor,
        spec: torch.Tensor,
        spec_lengths: torch.Tensor,
        mel: torch.Tensor,
        mel_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        grad_checkpoint: bool = False,
    ) -> torch.Tensor:
        """Training forward: the flow-matching loss of a batch (upstream ``SynthesizerTrnV3.forward``).

        Args:
            ssl: (B, 768, T) HuBERT features at 50 Hz (T even, as the collate pads).
            spec: (B, 1025, T) linear spectrogram of the 32 kHz clip; spec_lengths (B,).
            mel: (B, 100, M) normalised log-mel target at the version's rate (v4 32 kHz hop 320,
                v3 24 kHz hop 256); mel_lengths (B,).
            text: (B, P) phoneme ids; text_lengths (B,).
            grad_checkpoint: recompute the DiT blocks in the backward pass.

        Returns:
            () float32 loss. ge (reference encoder) and the frozen path run in float32 whatever the
            autocast, as upstream; their outputs reach the loss only through ``bridge``/``wns1``
            (``wns1`` detaches ge, as upstream), so the reference encoder gets no gradient.
        """
        if not self.config.freeze_quantizer:
            raise ValueError(
                "v3/v4 training keeps the quantizer, ssl_proj and enc_p frozen as upstream does; "
                "set freeze_quantizer=True"
            )
        audio = self.config.cfm_audio
        with torch.autocast(device_type=spec.device.type, enabled=False):
            y_mask = length_mask(spec_lengths, spec.size(2), spec.dtype)
            ge = self.ref_enc(spec[:, :REF_ENC_BINS_V2] * y_mask, y_mask)  # (B, 512, 1)
            with torch.no_grad():
                quantized, _, _ = self.quantizer(self.ssl_proj(ssl))  # (B, 768, T/2)
                if self.config.semantic_frame_rate == "25hz":
                    quantized = F.interpolate(quantized, scale_factor=2, mode="nearest")  # 50 Hz
                x, _ = self.enc_p.hidden(quantized, spec_lengths, text, text_lengths, ge)  # (B, 192, T)
        fea = F.interpolate(self.bridge(x), scale_factor=audio.fea_upsample, mode="nearest")  # (B, 512, F)
        wns1_mask = length_mask(mel_lengths, fea.size(2), fea.dtype)
        fea = self.wns1(fea, wns1_mask, g=ge)
        frames = min(mel.size(2), fea.size(2))
        mel, fea = mel[..., :frames], fea[..., :frames]
        most = mel_lengths.clamp(max=frames) * MAX_PROMPT_FRACTION
        prompt_lengths = (torch.rand(mel.size(0), device=mel.device) * most).floor().long()
        return self.cfm.loss(mel, mel_lengths, prompt_lengths, fea, grad_checkpoint)

    # ----------------------------------------------------------------- inference

    def prepare_for_inference(self) -> CfmSoVITS:
        """eval(), drop the training-only ``linear_mel``, fold wns1's weight norm in place. Returns self."""
        self.eval()
        if hasattr(self, "linear_mel"):
            del self.linear_mel
        fold_weight_norm(self, in_place=True)
        return self

    @torch.inference_mode()
    def extract_codes(self, ssl: torch.Tensor) -> torch.Tensor:
        """HuBERT features (B, 768, T) at 50 Hz -> (B, 1, T/2) int64 semantic tokens (``[0, 0]`` is the GPT prompt)."""
        return self.quantizer.encode(self.ssl_proj(ssl)).transpose(0, 1)

    @torch.inference_mode()
    def timbre(self, refer_spec: torch.Tensor) -> torch.Tensor:
        """(1, 1025, F) reference spectrogram (``reference_spectrogram``) -> ge (1, 512, 1)."""
        mask = torch.ones(
            refer_spec.size(0), 1, refer_spec.size(2), dtype=refer_spec.dtype, device=refer_spec.device
        )
        return self.ref_enc(refer_spec[:, :REF_ENC_BINS_V2] * mask, mask)

    @torch.inference_mode()
    def reference_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """(N,) or (1, N) mono reference at ``config.cfm_audio.sampling_rate`` (v4 32 kHz, v3 24 kHz)
        -> (1, 100, F) normalised log-mel (F = N // hop for N a multiple of hop 320 / 256), float32
        whatever the input's dtype, as upstream (:meth:`prompt` casts it to the model's dtype)."""
        return normalize_mel(reference_mel(wav.float(), self.config.cfm_audio))

    @torch.inference_mode()
    def decode_encp(
        self, codes: torch.Tensor, phones: torch.Tensor, ge: torch.Tensor, speed: float = 1.0
    ) -> torch.Tensor:
        """Semantic tokens + phonemes -> the CFM's frame condition (upstream ``decode_encp``).

        Args:
            codes: (1, B, Tc) semantic tokens at 25 Hz (n_q first).
            phones: (B, P) phoneme ids of the text they speak.
            ge: (B, 512, 1) timbre vector from :meth:`timbre`.
            speed: > 1 faster: the 50 Hz encoder frames are resampled to ``int(2 Tc / speed) + 1``.

        Returns:
            (B, 512, F): v4 F = 4 Tc, v3 F = floor(2 Tc * 1.875) at speed 1 (else from the
            resampled length); frames at or past ``int(Tc * 4 / speed) + 1`` (v4) are zero.
        """
        if codes.dim() != 3 or codes.size(0) != 1:
            raise ValueError(f"codes must be (1, B, T) (one codebook first), got {tuple(codes.shape)}")
        audio = self.config.cfm_audio
        n_codes = codes.size(2)
        quantized = self.quantizer.decode(codes)  # (B, 768, Tc)
        if self.config.semantic_frame_rate == "25hz":
            quantized = F.interpolate(quantized, scale_factor=2, mode="nearest")  # 50 Hz
        y_lengths = torch.full((quantized.size(0),), quantized.size(2), device=codes.device)
        text_lengths = torch.full((phones.size(0),), phones.size(-1), device=phones.device)
        x, _ = self.enc_p.hidden(quantized, y_lengths, phones, text_lengths, ge, speed)  # (B, 192, L)
        fea = self.bridge(x)  # (B, 512, L)
        # Same call as upstream: with a scale factor, nearest maps output i to input floor(i / scale).
        fea = F.interpolate(fea, scale_factor=audio.fea_upsample, mode="nearest")
        # wns1's mask length, computed from the codes as upstream (v3: longer than fea, no masking).
        if speed == 1:
            valid = int(n_codes * audio.wns1_frames_per_code)
        else:
            valid = int(n_codes * audio.wns1_frames_per_code / speed) + 1
        positions = torch.arange(fea.size(2), device=fea.device)
        mask = (positions < valid).to(fea.dtype).expand(fea.size(0), 1, -1)  # (B, 1, F)
        return self.wns1(fea, mask, g=ge)

    @torch.inference_mode()
    def prompt(
        self,
        codes: torch.Tensor,
        phones: torch.Tensor,
        ge: torch.Tensor,
        ref_mel: torch.Tensor,
    ) -> CfmPrompt:
        """The reference part of every chunk: its features and normalised mel, cut to T_min.

        Args:
            codes: (1, 1, Tc_ref) the reference's semantic tokens (the GPT prompt).
            phones: (1, P_ref) the reference text's phoneme ids.
            ge: (1, 512, 1) from :meth:`timbre`.
            ref_mel: (1, 100, F_ref) from :meth:`reference_mel`.

        Returns:
            :class:`CfmPrompt` with T_min = min(F_ref, reference feature frames), keeping the
            first T_min frames of both, then only the last 500 (v4) / 468 (v3) when longer.
        """
        fea = self.decode_encp(codes, phones, ge)
        frames = min(ref_mel.shape[-1], fea.shape[-1])
        if frames < 1:
            raise ValueError(
                f"the reference gives {ref_mel.shape[-1]} mel frames and {fea.shape[-1]} feature frames; "
                "use a longer reference clip"
            )
        mel, fea = ref_mel[..., :frames], fea[..., :frames]
        limit = self.config.cfm_audio.max_prompt_frames
        if frames > limit:
            mel, fea = mel[..., -limit:], fea[..., -limit:]
        return CfmPrompt(ge=ge, fea=fea, mel=mel.to(fea.dtype))

    def chunk_frames(self, prompt: CfmPrompt) -> int:
        """Target frames generated per CFM chunk: window (1000 v4 / 934 v3) - T_min."""
        return self.config.cfm_audio.window_frames - prompt.frames

    @torch.inference_mode()
    def synthesize(
        self,
        codes: torch.Tensor,
        phones: torch.Tensor,
        prompt: CfmPrompt,
        sample_steps: int,
        speed: float = 1.0,
        generator: torch.Generator | None = None,
        noise_fn: NoiseFn | None = None,
    ) -> CfmDecodeResult:
        """Generate the mel of one text segment.

        Args:
            codes: (1, 1, Tc) generated semantic tokens.
            phones: (1, P) phoneme ids of the segment's text.
            prompt: from :meth:`prompt` (same reference for every segment).
            sample_steps: Euler steps per chunk (upstream offers 4-32 for v4, 4-128 for v3).
            speed: speaking-rate factor for the target (the prompt is always at speed 1).
            generator: random source of the starting noise; None draws from torch's global
                generator (after ``torch.manual_seed(s)`` the same draws as upstream).
            noise_fn: replaces the random draw: ``noise_fn(chunk_index, (1, 100, frames))``
                returns that chunk's starting noise (tests inject upstream's recorded noise).

        Returns:
            :class:`CfmDecodeResult`; ``mel`` (1, 100, F) is what the vocoder reads.
        """
        if codes.shape[:2] != (1, 1) or codes.dim() != 3 or phones.dim() != 2 or phones.size(0) != 1:
            raise ValueError(
                f"synthesize takes one segment: codes (1, 1, T) and phones (1, P), got "
                f"{tuple(codes.shape)} and {tuple(phones.shape)}"
            )
        if codes.size(2) == 0:
            raise ValueError("no semantic tokens to decode (codes has 0 frames)")
        fea_todo = self.decode_encp(codes, phones, prompt.ge, speed)  # (1, 512, F)
        chunk_len = self.chunk_frames(prompt)
        t_min = prompt.frames
        prompt_mel, fea_ref = prompt.mel, prompt.fea
        outputs: list[torch.Tensor] = []
        results: list[torch.Tensor] = []
        for index, start in enumerate(range(0, fea_todo.size(2), chunk_len)):
            chunk = fea_todo[..., start : start + chunk_len]
            fea = torch.cat([fea_ref, chunk], dim=2)  # (1, 512, P + C)
            shape = (1, CFM_MEL_BINS, fea.size(2))
            if noise_fn is not None:
                noise = noise_fn(index, shape).to(device=fea.device, dtype=fea.dtype)
                if tuple(noise.shape) != shape:
                    raise ValueError(
                        f"noise_fn gave {tuple(noise.shape)} for chunk {index}, expected {shape}"
                    )
            else:
                noise = torch.randn(shape, generator=generator, device=fea.device, dtype=fea.dtype)
            out = self.cfm.sample(fea, prompt_mel, sample_steps, noise)  # (1, 100, P + C)
            outputs.append(out)
            result = out[..., prompt_mel.size(-1) :]  # the generated frames
            results.append(result)
            # The next chunk continues this one: its last T_min frames (all of them when the
            # chunk is shorter, as upstream's slicing) become the prompt.
            prompt_mel, fea_ref = result[..., -t_min:], chunk[..., -t_min:]
        mel_norm = torch.cat(results, dim=2)
        return CfmDecodeResult(
            mel=denormalize_mel(mel_norm),
            mel_norm=mel_norm,
            fea=fea_todo,
            chunks=tuple(outputs),
            chunk_frames=chunk_len,
        )

    def decode_mel(
        self,
        codes: torch.Tensor,
        phones: torch.Tensor,
        prompt: CfmPrompt,
        sample_steps: int,
        speed: float = 1.0,
        generator: torch.Generator | None = None,
        noise_fn: NoiseFn | None = None,
    ) -> torch.Tensor:
        """(1, 100, F) log-mel for the vocoder; arguments as :meth:`synthesize`."""
        return self.synthesize(codes, phones, prompt, sample_steps, speed, generator, noise_fn).mel
