"""RMVPE pitch network (Wei et al. 2023, "RMVPE: A Robust Model for Vocal Pitch Estimation in
Polyphonic Music"), our implementation, loading the public ``rmvpe.pt`` weights.

Pipeline for 16 kHz audio:

1. log-mel: periodic Hann window 1024, n_fft 1024, hop 160 (10 ms), centred frames (reflect
   padding), magnitude ``sqrt(re^2 + im^2)``, 128 HTK-mel bands 30..8000 Hz (slaney-normalised),
   ``ln(max(mel, 1e-5))``. Frame ``j`` is centred at ``j * 160`` samples.
2. A U-Net over the (time, mel) image: 5 encoder stages (residual conv blocks, 2x2 average
   pooling, channels 16..256), 4 intermediate stages (512), 5 decoder stages (transposed conv
   2x2 up + skip concat), then a 3-channel conv; time is padded to a multiple of 32 frames.
3. Per frame the 3 x 128 features -> BiGRU (256 per direction) -> Linear -> sigmoid: salience
   over 360 pitch bins of 20 cents, bin ``k`` = ``20 k + 1997.379...`` cents above 10 Hz.
4. Decoding: weighted mean of the cents of the 9 bins around the arg-max, weighted by salience;
   frames whose peak salience is not above the threshold are unvoiced (0 Hz);
   ``f0 = 10 * 2^(cents / 1200)``.

State-dict names follow the public checkpoint so both known layouts load: a plain state dict
(RVC's ``rmvpe.pt``) and ``{"model": state_dict}`` (yxlllc/RMVPE ``model.pt``, which also holds
a ``unet.tf.*`` "timbre filter" that its own forward pass never uses; those keys are dropped).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from app.models.nn.spectrogram import mel_spectrogram

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
N_FFT = 1024
HOP = 160
N_MELS = 128
MEL_FMIN, MEL_FMAX = 30.0, 8000.0
N_BINS = 360
CENTS_PER_BIN = 20.0
# Cents (relative to 10 Hz) of bin 0, from the RMVPE release: 1997.38 cents = 31.7 Hz.
CENTS_OFFSET = 1997.3794084376191
TIME_MULTIPLE = 32  # 5 poolings by 2 in time
BN_MOMENTUM = 0.01
IGNORED_PREFIXES = ("unet.tf.",)  # built but never used by the reference forward pass


@dataclass(frozen=True)
class RMVPEConfig:
    """Network size; the defaults are the released model's (90.5 M parameters)."""

    n_blocks: int = 4  # residual conv blocks per stage
    en_de_layers: int = 5  # encoder / decoder stages (mel axis 128 -> 4 -> 128)
    inter_layers: int = 4  # intermediate stages
    en_out_channels: int = 16  # channels of the first stage, doubled per stage
    gru_hidden: int = 256  # per direction


class ConvBlockRes(nn.Module):
    """Two 3x3 conv + BN + ReLU, plus a (1x1-projected when needed) shortcut. (B, C, T, F)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out, momentum=BN_MOMENTUM),
            nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out, momentum=BN_MOMENTUM),
            nn.ReLU(),
        )
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + (self.shortcut(x) if self.shortcut is not None else x)


class ResStage(nn.Module):
    """``n_blocks`` residual blocks (the first changes the channel count)."""

    def __init__(self, c_in: int, c_out: int, n_blocks: int) -> None:
        super().__init__()
        self.conv = nn.ModuleList([ConvBlockRes(c_in if i == 0 else c_out, c_out) for i in range(n_blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.conv:
            x = block(x)
        return x


class Encoder(nn.Module):
    def __init__(self, cfg: RMVPEConfig) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(1, momentum=BN_MOMENTUM)
        channels = [1] + [cfg.en_out_channels * 2**i for i in range(cfg.en_de_layers)]
        self.layers = nn.ModuleList(
            [ResStage(channels[i], channels[i + 1], cfg.n_blocks) for i in range(cfg.en_de_layers)]
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        x = self.bn(x)
        for stage in self.layers:
            skip = stage(x)
            skips.append(skip)
            x = F.avg_pool2d(skip, 2)  # (B, C, T/2, F/2)
        return x, skips


class Intermediate(nn.Module):
    def __init__(self, c_in: int, c_out: int, cfg: RMVPEConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [ResStage(c_in if i == 0 else c_out, c_out, cfg.n_blocks) for i in range(cfg.inter_layers)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.layers:
            x = stage(x)
        return x


class DecoderStage(nn.Module):
    """Transposed conv x2 up, concat the encoder skip, residual blocks."""

    def __init__(self, c_in: int, c_out: int, n_blocks: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1, bias=False),
            nn.BatchNorm2d(c_out, momentum=BN_MOMENTUM),
            nn.ReLU(),
        )
        self.conv2 = nn.ModuleList(
            [ConvBlockRes(c_out * 2 if i == 0 else c_out, c_out) for i in range(n_blocks)]
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.conv1(x), skip], dim=1)
        for block in self.conv2:
            x = block(x)
        return x


class Decoder(nn.Module):
    def __init__(self, c_in: int, cfg: RMVPEConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [DecoderStage(c_in // 2**i, c_in // 2 ** (i + 1), cfg.n_blocks) for i in range(cfg.en_de_layers)]
        )

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for stage, skip in zip(self.layers, reversed(skips), strict=True):
            x = stage(x, skip)
        return x


class DeepUnet(nn.Module):
    def __init__(self, cfg: RMVPEConfig) -> None:
        super().__init__()
        self.encoder = Encoder(cfg)
        deepest = cfg.en_out_channels * 2 ** (cfg.en_de_layers - 1)
        self.intermediate = Intermediate(deepest, deepest * 2, cfg)
        self.decoder = Decoder(deepest * 2, cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, skips = self.encoder(x)
        return self.decoder(self.intermediate(x), skips)


class BiGRU(nn.Module):
    def __init__(self, n_in: int, hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRU(n_in, hidden, num_layers=1, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]


class RMVPE(nn.Module):
    """Log-mel -> pitch salience. ``forward(mel (B, 128, T)) -> (B, T, 360)`` in [0, 1]."""

    def __init__(self, cfg: RMVPEConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or RMVPEConfig()
        self.cfg = cfg
        self.unet = DeepUnet(cfg)
        self.cnn = nn.Conv2d(cfg.en_out_channels, 3, 3, padding=1)
        self.fc = nn.Sequential(
            BiGRU(3 * N_MELS, cfg.gru_hidden),
            nn.Linear(2 * cfg.gru_hidden, N_BINS),
            nn.Dropout(0.25),
            nn.Sigmoid(),
        )
        cents = CENTS_PER_BIN * torch.arange(N_BINS, dtype=torch.float32) + CENTS_OFFSET
        self.register_buffer("cents", cents, persistent=False)

    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, N) 16 kHz -> (B, 128, N // 160 + 1)."""
        return mel_spectrogram(
            audio,
            N_FFT,
            N_MELS,
            SAMPLE_RATE,
            HOP,
            N_FFT,
            MEL_FMIN,
            MEL_FMAX,
            magnitude_eps=0.0,
            center=True,
            htk=True,
        )

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        n_frames = mel.shape[-1]
        pad = (-n_frames) % TIME_MULTIPLE
        x = F.pad(mel, (0, pad)).transpose(1, 2).unsqueeze(1)  # (B, 1, T', 128)
        x = self.cnn(self.unet(x))  # (B, 3, T', 128)
        x = x.transpose(1, 2).flatten(2)  # (B, T', 384)
        return self.fc(x)[:, :n_frames]

    def decode(self, salience: torch.Tensor, threshold: float) -> torch.Tensor:
        """(..., 360) salience -> (...) f0 in Hz, 0 where the peak is not above ``threshold``."""
        center = salience.argmax(dim=-1, keepdim=True)
        index = center + torch.arange(-4, 5, device=salience.device)  # 9 bins around the peak
        inside = (index >= 0) & (index < N_BINS)
        index = index.clamp(0, N_BINS - 1)
        weight = salience.gather(-1, index) * inside
        cents = (weight * self.cents[index]).sum(-1) / weight.sum(-1).clamp_min(1e-12)
        voiced = salience.amax(dim=-1) > threshold
        return torch.where(voiced, 10.0 * 2.0 ** (cents / 1200.0), torch.zeros_like(cents))

    @torch.no_grad()
    def track(self, audio: torch.Tensor, threshold: float = 0.05) -> torch.Tensor:
        """(N,) 16 kHz audio -> (N // 160 + 1,) f0 Hz (0 = unvoiced), frame j at j * 10 ms."""
        param = next(self.parameters())
        audio = audio.to(device=param.device, dtype=torch.float32)[None]
        mel = self.log_mel(audio).to(param.dtype)
        return self.decode(self(mel)[0].float(), threshold)


class RMVPEWeightsError(FileNotFoundError):
    """The RMVPE weights file is missing or is not an RMVPE checkpoint."""


def state_dict_from_file(path: Path) -> dict[str, torch.Tensor]:
    """Read ``rmvpe.pt`` (either layout, see module docstring) without unpickling objects."""
    if not path.is_file():
        raise RMVPEWeightsError(
            f"{path}: RMVPE weights not found. Download rmvpe.pt (e.g. from the "
            f"lj1995/VoiceConversionWebUI repository on Hugging Face) into that folder, or choose "
            f"another f0 method (pm, dio, harvest, crepe, fcpe)"
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RMVPEWeightsError(f"{path}: not a readable RMVPE checkpoint ({exc})") from exc
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if not isinstance(data, dict) or "cnn.weight" not in data:
        raise RMVPEWeightsError(f"{path}: not an RMVPE checkpoint (no 'cnn.weight' tensor)")
    return {k: v for k, v in data.items() if not k.startswith(IGNORED_PREFIXES)}


@lru_cache(maxsize=2)
def load_rmvpe(path: Path, device: str = "cpu", cfg: RMVPEConfig | None = None) -> RMVPE:
    """Build the network (released size by default) and load ``path`` strictly.

    Cached per (path, device, cfg): the weights are immutable while the app runs.
    """
    state = state_dict_from_file(Path(path))
    model = RMVPE(cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RMVPEWeightsError(
            f"{path}: does not match the RMVPE network: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    logger.info("loaded RMVPE weights from %s", path)
    return model.eval().to(device)
