"""BS-RoFormer and Mel-Band-RoFormer: music source separation by band-split axial transformers.

Lu et al., "Music Source Separation with Band-Split RoPE Transformer" (2023) and Wang et al.,
"Mel-Band RoFormer for Music Source Separation" (2023). The complex STFT of the mix is cut into
frequency bands (BS: fixed bin counts; Mel: overlapping mel bands), each band projected to
``dim`` features; transformers with rotary positions attend along time within a band, then
along bands within a frame, ``depth`` times; a per-band MLP estimates a complex mask, and the
masked STFT is inverted. Parameter names and maths follow the checkpoints UVR and upstream
GPT-SoVITS run (lucidrains' BS-RoFormer code as upstream vendors it in tools/uvr5/bs_roformer/),
so their ``.ckpt`` state dicts load strict (:mod:`app.models.upstream.roformer` reads the files).

Inference only: dropout, flash attention and the multi-resolution STFT loss are training
settings of the published configs and have no effect here.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from app.messages import Message

KINDS = ("bs_roformer", "mel_band_roformer")


@dataclass(frozen=True)
class RoformerConfig:
    """The ``model:`` section of a published config, in the names it uses."""

    kind: str  # "bs_roformer" (fixed bands) or "mel_band_roformer" (mel bands)
    dim: int  # features per band
    depth: int  # time + band transformer pairs
    stereo: bool = False  # 2 channels in and out (the published vocal models), else mono
    num_stems: int = 1  # masks estimated (1: the config's target instrument)
    time_transformer_depth: int = 2  # layers of each time transformer
    freq_transformer_depth: int = 2  # layers of each band transformer
    freqs_per_bands: tuple[int, ...] = ()  # bs_roformer: STFT bins per band, summing to n_fft // 2 + 1
    num_bands: int = 60  # mel_band_roformer: mel bands (librosa's Slaney filters, made binary)
    dim_head: int = 64  # attention head width (rotary embedding width)
    heads: int = 8  # attention heads
    sample_rate: int = 44100  # Hz (mel_band_roformer's filters depend on it)
    stft_n_fft: int = 2048  # STFT size
    stft_hop_length: int = 512  # STFT hop (the published models: 441, 10 ms at 44.1 kHz)
    stft_win_length: int = 2048  # Hann window length
    stft_normalized: bool = False  # torch.stft's normalized flag
    mask_estimator_depth: int = 2  # MLP layers of each band's mask estimator (see MaskEstimator)
    mlp_expansion_factor: int = 4  # hidden width of the mask MLPs = dim * this
    skip_connection: bool = False  # add every earlier block's output before each block

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            template = "Roformer kind {kind!r}: one of {kinds}"
            raise ValueError(
                Message("roformer.err.kind_name", template, kind=self.kind, kinds=", ".join(KINDS))
            )
        if self.kind == "bs_roformer" and sum(self.freqs_per_bands) != self.stft_n_fft // 2 + 1:
            template = "freqs_per_bands sum to {total}, the STFT has {bins} bins"
            fields = {"total": sum(self.freqs_per_bands), "bins": self.stft_n_fft // 2 + 1}
            raise ValueError(Message("roformer.err.bands_sum", template, **fields))

    @property
    def channels(self) -> int:
        return 2 if self.stereo else 1


class RMSNorm(nn.Module):
    """``x / |x| * sqrt(dim) * gamma`` over the last dim."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) * self.scale * self.gamma


class Rotary(nn.Module):
    """Rotary positions with interleaved pairs (rotary-embedding-torch's layout; ``freqs`` is saved)."""

    def __init__(self, dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        self.freqs = nn.Parameter(
            1.0 / theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim), requires_grad=False
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Rotate ``t`` ``(..., N, D)`` by position along N."""
        pos = torch.arange(t.shape[-2], device=t.device, dtype=t.dtype)
        angles = (pos[:, None] * self.freqs.to(t.dtype)).repeat_interleave(2, dim=-1)  # (N, D)
        pairs = t.unflatten(-1, (-1, 2))  # (..., N, D/2, 2)
        rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)  # (-x2, x1) per pair
        return t * angles.cos() + rotated * angles.sin()


class Attention(nn.Module):
    """Pre-norm self-attention with rotary positions and a sigmoid gate per head."""

    def __init__(self, dim: int, heads: int, dim_head: int, rotary: Rotary) -> None:
        super().__init__()
        self.heads = heads
        self.rotary_embed = rotary
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_gates = nn.Linear(dim, heads)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim, bias=False), nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N, dim)`` -> ``(B, N, dim)``."""
        x = self.norm(x)
        q, k, v = (
            self.to_qkv(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
        )  # 3 x (B, H, N, Dh)
        q, k = self.rotary_embed(q), self.rotary_embed(k)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, Dh)
        out = out * self.to_gates(x).transpose(1, 2)[..., None].sigmoid()  # gates (B, N, H) -> (B, H, N, 1)
        return self.to_out(out.transpose(1, 2).flatten(2))  # (B, N, H * Dh) -> (B, N, dim)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        # Identity where the published network has dropout, so parameter indices match (net.1, net.4).
        self.net = nn.Sequential(
            RMSNorm(dim),
            nn.Linear(dim, dim * mult),
            nn.GELU(),
            nn.Identity(),
            nn.Linear(dim * mult, dim),
            nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Transformer(nn.Module):
    """``depth`` residual (attention, feed-forward) pairs; a final RMSNorm when ``norm_output``."""

    def __init__(
        self, dim: int, depth: int, heads: int, dim_head: int, rotary: Rotary, norm_output: bool
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([Attention(dim, heads, dim_head, rotary), FeedForward(dim)]) for _ in range(depth)
        )
        self.norm = RMSNorm(dim) if norm_output else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return self.norm(x)


class BandSplit(nn.Module):
    """``(B, T, sum(dim_inputs))`` -> ``(B, T, bands, dim)``: each band normed and projected."""

    def __init__(self, dim: int, dim_inputs: tuple[int, ...]) -> None:
        super().__init__()
        self.dim_inputs = dim_inputs
        self.to_features = nn.ModuleList(nn.Sequential(RMSNorm(d), nn.Linear(d, dim)) for d in dim_inputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = x.split(self.dim_inputs, dim=-1)
        return torch.stack([net(p) for p, net in zip(parts, self.to_features, strict=True)], dim=-2)


def _mlp(dim_in: int, dim_out: int, dim_hidden: int, hidden_layers: int) -> nn.Sequential:
    """Linear layers with tanh between them: ``hidden_layers`` hidden widths of ``dim_hidden``."""
    dims = (dim_in, *((dim_hidden,) * hidden_layers), dim_out)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(dims)):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class MaskEstimator(nn.Module):
    """``(B, T, bands, dim)`` -> ``(B, T, sum(dim_inputs))``: a GLU-gated MLP per band."""

    def __init__(self, dim: int, dim_inputs: tuple[int, ...], hidden_layers: int, expansion: int) -> None:
        super().__init__()
        self.to_freqs = nn.ModuleList(
            nn.Sequential(_mlp(dim, d * 2, dim * expansion, hidden_layers), nn.GLU(dim=-1))
            for d in dim_inputs
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([mlp(band) for band, mlp in zip(x.unbind(-2), self.to_freqs, strict=True)], dim=-1)


def mel_band_bins(config: RoformerConfig) -> torch.Tensor:
    """``(bands, F)`` bool: the STFT bins of each mel band (Slaney mel filters made binary, as published).

    The first and last bins are forced into the first and last band: librosa leaves them (almost) 0.
    """
    from librosa import filters

    bank = torch.from_numpy(
        filters.mel(sr=config.sample_rate, n_fft=config.stft_n_fft, n_mels=config.num_bands)
    )
    bank[0, 0] = 1.0
    bank[-1, -1] = 1.0
    bins = bank > 0
    if not bins.any(dim=0).all():
        template = "{bands} mel bands leave STFT bins uncovered at n_fft {n_fft}"
        raise ValueError(
            Message("roformer.err.uncovered", template, bands=config.num_bands, n_fft=config.stft_n_fft)
        )
    return bins


class Roformer(nn.Module):
    """BS- or Mel-Band-RoFormer (``config.kind``): mix ``(B, C, T)`` -> stems ``(B, num_stems, C, T)``."""

    def __init__(self, config: RoformerConfig) -> None:
        super().__init__()
        self.config = c = config
        mel = c.kind == "mel_band_roformer"
        time_rotary, freq_rotary = Rotary(c.dim_head), Rotary(c.dim_head)
        # Mel-Band ends every transformer with a norm; BS has one final norm instead.
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    Transformer(c.dim, c.time_transformer_depth, c.heads, c.dim_head, time_rotary, mel),
                    Transformer(c.dim, c.freq_transformer_depth, c.heads, c.dim_head, freq_rotary, mel),
                ]
            )
            for _ in range(c.depth)
        )
        self.final_norm = nn.Identity() if mel else RMSNorm(c.dim)
        bins = c.stft_n_fft // 2 + 1
        if mel:
            band_bins = mel_band_bins(c)  # (bands, F)
            index = torch.arange(bins).expand_as(band_bins)[band_bins]  # bins of band 0, then band 1, ...
            # Stereo: each bin's two channels sit side by side (the STFT is laid out (F * C)).
            index = (index[:, None] * c.channels + torch.arange(c.channels)).flatten()
            per_band = tuple(int(n) for n in band_bins.sum(1))
            self.register_buffer("freq_indices", index, persistent=False)
            self.register_buffer("num_bands_per_freq", band_bins.sum(0), persistent=False)
            hidden = c.mask_estimator_depth  # Mel-Band's MLP: depth hidden layers
        else:
            per_band = c.freqs_per_bands
            hidden = c.mask_estimator_depth - 1  # BS's MLP: depth linear layers
        dim_inputs = tuple(2 * n * c.channels for n in per_band)
        self.band_split = BandSplit(c.dim, dim_inputs)
        self.mask_estimators = nn.ModuleList(
            MaskEstimator(c.dim, dim_inputs, hidden, c.mlp_expansion_factor) for _ in range(c.num_stems)
        )
        self.register_buffer("window", torch.hann_window(c.stft_win_length), persistent=False)

    def _stft_kwargs(self) -> dict:
        c = self.config
        return {
            "n_fft": c.stft_n_fft,
            "hop_length": c.stft_hop_length,
            "win_length": c.stft_win_length,
            "normalized": c.stft_normalized,
            "window": self.window,
        }

    def _axial(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, bands, dim)`` through the time/band transformer pairs."""
        b, t, f, d = x.shape
        earlier: list[torch.Tensor] = []
        for time_transformer, freq_transformer in self.layers:
            if self.config.skip_connection:
                for out in earlier:
                    x = x + out
            x = time_transformer(x.transpose(1, 2).reshape(b * f, t, d))  # (B * bands, T, dim)
            x = freq_transformer(
                x.reshape(b, f, t, d).transpose(1, 2).reshape(b * t, f, d)
            )  # (B * T, bands, dim)
            x = x.reshape(b, t, f, d)
            earlier.append(x)
        return self.final_norm(x)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """``(B, C, T)`` float -> ``(B, num_stems, C, T)``."""
        c = self.config
        batch, channels, length = mix.shape
        if channels != c.channels:
            template = "this model takes {channels} channel(s), got {got}"
            raise ValueError(Message("roformer.err.channels", template, channels=c.channels, got=channels))
        spec = torch.stft(mix.reshape(batch * channels, length), return_complex=True, **self._stft_kwargs())
        spec = spec.reshape(batch, channels, *spec.shape[-2:]).permute(0, 2, 1, 3)  # (B, F, C, N)
        spec = spec.reshape(batch, -1, spec.shape[-1])  # (B, F * C, N): channels inside each bin
        picked = spec[:, self.freq_indices] if c.kind == "mel_band_roformer" else spec  # (B, F', N)
        x = torch.view_as_real(picked).permute(0, 2, 1, 3).flatten(2)  # (B, N, F' * 2)
        x = self._axial(self.band_split(x))  # (B, N, bands, dim)
        masks = torch.stack([est(x) for est in self.mask_estimators], dim=1)  # (B, S, N, F' * 2)
        masks = torch.view_as_complex(
            masks.unflatten(-1, (-1, 2)).transpose(2, 3).contiguous()
        )  # (B, S, F', N)
        if c.kind == "mel_band_roformer":
            # Overlapping bands: each bin's mask is the mean of its bands' estimates.
            summed = torch.zeros(batch, c.num_stems, *spec.shape[1:], dtype=masks.dtype, device=masks.device)
            index = self.freq_indices[None, None, :, None].expand(batch, c.num_stems, -1, spec.shape[-1])
            summed.scatter_add_(2, index, masks)
            counts = self.num_bands_per_freq.repeat_interleave(channels).clamp(min=1)  # (F * C,)
            masks = summed / counts[:, None]
        out = spec[:, None] * masks  # (B, S, F * C, N)
        out = out.unflatten(2, (-1, channels)).transpose(2, 3)  # (B, S, C, F, N)
        wav = torch.istft(out.flatten(0, 2), length=length, **self._stft_kwargs())  # (B * S * C, T)
        return wav.reshape(batch, c.num_stems, channels, length)
