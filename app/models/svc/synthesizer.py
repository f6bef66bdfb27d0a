"""The so-vits-svc synthesizer: content features + f0 + speaker -> waveform (VITS with an NSF decoder).

Inference (``infer``), shapes at the synth frame rate (T frames, hop samples each):

1. speaker vector ``g`` (B, gin, 1) from ``emb_g[sid]``, or a weighted sum of speaker rows
   (speaker mix; per-frame weights give (B, gin, T));
2. 4.1: ``x = pre(c) + emb_uv[uv] (+ emb_vol(volume))`` (B, hidden, T); 32k: the prior
   encoder's own k1 pre-net on ``c``;
3. optional (4.1 auto pitch): the F0 decoder replaces f0 from x and the mean-removed input pitch;
4. prior: ``m_p, logs_p = enc_p(x + f0_emb[coarse(f0)])``, ``z_p = m_p + eps * exp(logs_p) * noise_scale``;
5. ``z = flow^-1(z_p)``; 6. ``audio = dec(z, f0, g)`` (NSF-HiFiGAN), (B, 1, T * hop).

Training (``forward``) adds the posterior encoder on the linear spectrogram, the forward flow,
and decodes a random window of ``segment_frames`` frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from app.audio.pitch import coarse_pitch
from app.messages import Message
from app.models.nn.flow import ResidualCouplingBlock
from app.models.nn.masks import length_mask, rand_slice_segments, slice_segments
from app.models.svc.config import SynthesizerConfig
from app.models.svc.encoders import (
    F0Decoder,
    PosteriorEncoder,
    PriorEncoder,
    f0_to_lf0,
    lf0_to_f0,
    normalize_lf0,
)
from app.models.svc.noise import NoiseSource, TorchNoise
from app.models.svc.nsf import NSFGenerator

DEFAULT_SEED = 52468  # so-vits-svc 4.1's fixed inference seed
DEFAULT_NOISE_SCALE = 0.4  # so-vits-svc 4.1 CLI default (-ns)


@dataclass(frozen=True)
class SvcOutput:
    """Result of :meth:`SvcSynthesizer.infer`."""

    audio: torch.Tensor  # (B, 1, T * hop) float32 in (-1, 1)
    f0: torch.Tensor  # (B, T) Hz actually used (the predicted contour when predict_f0)


@dataclass(frozen=True)
class SvcTrainOutput:
    """Result of :meth:`SvcSynthesizer.forward` (the training pass); latents are (B, inter, T)."""

    audio: torch.Tensor  # (B, 1, segment_frames * hop) decoded window
    ids_slice: torch.Tensor  # (B,) first frame of each window
    spec_mask: torch.Tensor  # (B, 1, T)
    z: torch.Tensor  # posterior sample
    z_p: torch.Tensor  # posterior sample through the flow
    m_p: torch.Tensor  # prior mean
    logs_p: torch.Tensor  # prior log-std
    m_q: torch.Tensor  # posterior mean
    logs_q: torch.Tensor  # posterior log-std
    pred_lf0: torch.Tensor | None  # (B, 1, T) F0 decoder output (None without it)
    norm_lf0: torch.Tensor | None  # (B, 1, T) its input
    lf0: torch.Tensor | None  # (B, 1, T) its target


class SvcSynthesizer(nn.Module):
    """so-vits-svc 4.1 / innnky 32k synthesizer; state-dict keys equal upstream's (see config)."""

    def __init__(self, cfg: SynthesizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.legacy = cfg.variant == "legacy32k"
        self.emb_g = nn.Embedding(cfg.n_speakers, cfg.gin_channels)
        prior_args = (
            cfg.inter_channels,
            cfg.hidden_channels,
            cfg.filter_channels,
            cfg.n_heads,
            cfg.n_layers,
            cfg.kernel_size,
            cfg.p_dropout,
        )
        if self.legacy:
            self.enc_p_ = PriorEncoder(*prior_args, in_channels=cfg.ssl_dim)
        else:
            if cfg.vol_embedding:
                self.emb_vol = nn.Linear(1, cfg.hidden_channels)
            self.pre = nn.Conv1d(cfg.ssl_dim, cfg.hidden_channels, kernel_size=5, padding=2)
            self.enc_p = PriorEncoder(*prior_args)
        self.dec = NSFGenerator(
            cfg.inter_channels,
            cfg.sampling_rate,
            cfg.resblock,
            cfg.resblock_kernel_sizes,
            cfg.resblock_dilation_sizes,
            cfg.upsample_rates,
            cfg.upsample_initial_channel,
            cfg.upsample_kernel_sizes,
            cfg.gin_channels,
            legacy_padding=self.legacy,
        )
        self.enc_q = PosteriorEncoder(
            cfg.spec_channels, cfg.inter_channels, cfg.hidden_channels, cfg.gin_channels
        )
        self.flow = ResidualCouplingBlock(
            cfg.inter_channels,
            cfg.hidden_channels,
            5,
            1,
            cfg.n_flow_layer,
            gin_channels=cfg.gin_channels,
            share_parameter=cfg.flow_share_parameter,
        )
        if not self.legacy:
            if cfg.use_automatic_f0_prediction:
                self.f0_decoder = F0Decoder(
                    cfg.hidden_channels,
                    cfg.filter_channels,
                    cfg.n_heads,
                    cfg.n_layers,
                    cfg.kernel_size,
                    cfg.p_dropout,
                    cfg.gin_channels,
                )
            self.emb_uv = nn.Embedding(2, cfg.hidden_channels)

    @property
    def prior(self) -> PriorEncoder:
        return self.enc_p_ if self.legacy else self.enc_p

    @property
    def hop_length(self) -> int:
        return self.cfg.hop_length

    def coarse(self, f0: torch.Tensor) -> torch.Tensor:
        """Pitch-embedding ids for f0 (B, T) Hz, with the layout's own quantisation quirks."""
        return coarse_pitch(f0.float(), style="clip" if self.legacy else "sovits41")

    def speaker(
        self, sid: torch.Tensor | int | None = None, mix: torch.Tensor | None = None, batch: int = 1
    ) -> torch.Tensor:
        """Speaker conditioning ``g``.

        Args:
            sid: speaker id (int, (B,) or (B, 1)) -> (B, gin, 1).
            mix: weights over the ``n_speakers`` rows instead of an id: (S,) or (B, S) for one
                blend -> (B, gin, 1); (B, S, T) for per-frame blends -> (B, gin, T). Weights are used
                as given (upstream normalises its mix timeline to sum 1 per frame first).
            batch: B when ``sid`` is an int or ``mix`` is (S,).
        """
        n = self.cfg.n_speakers
        if (sid is None) == (mix is None):
            template = "give exactly one of sid (a speaker id) or mix (weights per speaker)"
            raise ValueError(Message("svcnet.err.sid_or_mix", template))
        table = self.emb_g.weight  # (S, gin)
        if mix is not None:
            mix = mix.to(device=table.device, dtype=table.dtype)
            if mix.dim() == 1:
                mix = mix.unsqueeze(0).expand(batch, -1)
            if mix.dim() not in (2, 3) or mix.size(1) != n:
                template = "mix must have shape (S,), (B, S) or (B, S, T) with S = {n}, got {shape}"
                raise ValueError(Message("svcnet.err.mix", template, n=n, shape=tuple(mix.shape)))
            if mix.dim() == 2:
                return torch.einsum("bs,sc->bc", mix, table).unsqueeze(-1)
            return torch.einsum("bst,sc->bct", mix, table)
        ids = torch.as_tensor(sid, device=table.device).long().reshape(-1)
        if ids.numel() == 1 and batch > 1:
            ids = ids.expand(batch)
        if (ids < 0).any() or (ids >= n).any():
            template = "speaker id {ids} out of range: this model has {n} speaker(s)"
            raise ValueError(Message("svcnet.err.speaker", template, ids=ids.tolist(), n=n))
        return self.emb_g(ids).unsqueeze(-1)  # (B, gin, 1)

    def _content(
        self, c: torch.Tensor, uv: torch.Tensor | None, vol: torch.Tensor | None, x_mask: torch.Tensor
    ) -> torch.Tensor:
        """4.1 pre-net: (B, ssl, T) -> (B, hidden, T); 32k returns ``c`` (its pre-net is in enc_p_)."""
        if self.legacy:
            return c
        if uv is None:
            raise ValueError(
                Message("svcnet.err.uv", "so-vits-svc 4.x models need uv (1 = voiced frame) beside f0")
            )
        x = self.pre(c) * x_mask + self.emb_uv(uv.long()).transpose(1, 2)
        if self.cfg.vol_embedding:
            if vol is None:
                template = "this model was trained with vol_embedding: pass vol (frame RMS, B x T)"
                raise ValueError(Message("svcnet.err.vol", template))
            x = x + self.emb_vol(vol.to(x.dtype)[:, :, None]).transpose(1, 2)
        return x

    @torch.no_grad()
    def infer(
        self,
        c: torch.Tensor,
        f0: torch.Tensor,
        uv: torch.Tensor | None = None,
        sid: torch.Tensor | int | None = None,
        mix: torch.Tensor | None = None,
        noise_scale: float = DEFAULT_NOISE_SCALE,
        seed: int = DEFAULT_SEED,
        predict_f0: bool = False,
        vol: torch.Tensor | None = None,
        noise: NoiseSource | None = None,
    ) -> SvcOutput:
        """Convert aligned features to audio.

        Args:
            c: (B, ssl_dim, T) content features at the synth frame rate.
            f0: (B, T) Hz, unvoiced frames interpolated (as the trackers return it).
            uv: (B, T) 1 = voiced (4.x only; feeds ``emb_uv`` and the F0 decoder's mean).
            sid / mix: speaker id or mixing weights, see :meth:`speaker`.
            noise_scale: std multiplier of the prior sample (0 = use the prior mean).
            seed: seed of the default noise source (ignored when ``noise`` is given).
            predict_f0: let the F0 decoder choose the pitch (speech; needs a 4.1 model with it).
            vol: (B, T) frame volume, required by models with ``vol_embedding``.
            noise: where random draws come from (default ``TorchNoise(seed)``).
        """
        param = self.emb_g.weight
        c = c.to(device=param.device, dtype=param.dtype)
        f0 = f0.to(device=param.device, dtype=torch.float32)
        if c.dim() != 3 or f0.dim() != 2 or c.size(2) != f0.size(1) or c.size(0) != f0.size(0):
            template = "expected c (B, C, T) and f0 (B, T) with equal B and T, got {c} and {f0}"
            raise ValueError(Message("svcnet.err.shapes", template, c=tuple(c.shape), f0=tuple(f0.shape)))
        if c.size(1) != self.cfg.ssl_dim:
            template = "content features have {channels} channels, this model expects {expected}"
            raise ValueError(
                Message("svcnet.err.channels", template, channels=c.size(1), expected=self.cfg.ssl_dim)
            )
        if uv is not None:
            uv = uv.to(device=param.device, dtype=torch.float32)
        if vol is not None:
            vol = vol.to(device=param.device)
        noise = noise if noise is not None else TorchNoise(seed)
        b, _, t = c.shape
        g = self.speaker(sid, mix, batch=b)
        x_mask = torch.ones(b, 1, t, device=c.device, dtype=c.dtype)
        x = self._content(c, uv, vol, x_mask)
        if predict_f0:
            if self.legacy or not hasattr(self, "f0_decoder"):
                template = "this model has no F0 decoder (use_automatic_f0_prediction was off): predict_f0 is unavailable"
                raise ValueError(Message("svcnet.err.no_f0_decoder", template))
            norm_lf0 = normalize_lf0(f0_to_lf0(f0), x_mask, uv if uv is not None else (f0 > 0).float())
            f0 = lf0_to_f0(self.f0_decoder(x, norm_lf0.to(x.dtype), x_mask, g).float())
        m_p, logs_p = self.prior(x, x_mask, self.coarse(f0))
        eps = noise.normal(m_p.shape, m_p)
        z_p = (m_p + eps * torch.exp(logs_p) * noise_scale) * x_mask
        z = self.flow(z_p, x_mask, g=g, reverse=True)
        audio = self.dec(z * x_mask, f0, g, noise)
        return SvcOutput(audio=audio.float(), f0=f0)

    def forward(
        self,
        c: torch.Tensor,
        f0: torch.Tensor,
        uv: torch.Tensor | None,
        spec: torch.Tensor,
        sid: torch.Tensor,
        c_lengths: torch.Tensor,
        spec_lengths: torch.Tensor,
        vol: torch.Tensor | None = None,
    ) -> SvcTrainOutput:
        """Training pass: c (B, ssl, T), f0/uv (B, T), spec (B, F, T), sid (B,), lengths (B,)."""
        g = self.speaker(sid.reshape(-1))
        x_mask = length_mask(c_lengths, c.size(2), c.dtype)
        x = self._content(c, uv, vol, x_mask)
        pred_lf0 = norm_lf0 = lf0 = None
        if not self.legacy and hasattr(self, "f0_decoder"):
            assert uv is not None  # _content checked it
            lf0 = f0_to_lf0(f0)
            norm_lf0 = normalize_lf0(lf0, x_mask, uv, random_scale=True)
            pred_lf0 = self.f0_decoder(x, norm_lf0, x_mask, g)
        m_p, logs_p = self.prior(x, x_mask, self.coarse(f0))
        z, m_q, logs_q, spec_mask = self.enc_q(spec, spec_lengths, g=g)
        z_p = self.flow(z, spec_mask, g=g)
        z_slice, ids = rand_slice_segments(z, spec_lengths, self.cfg.segment_frames)
        f0_slice = slice_segments(f0.unsqueeze(1), ids, self.cfg.segment_frames).squeeze(1)
        audio = self.dec(z_slice, f0_slice, g, TorchNoise())
        return SvcTrainOutput(
            audio, ids, spec_mask, z, z_p, m_p, logs_p, m_q, logs_q, pred_lf0, norm_lf0, lf0
        )
