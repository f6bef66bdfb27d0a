"""UVR's two VR-architecture mask networks: :class:`AsppNet` (v5) and :class:`CascadedNet` (new).

Both read the magnitude of a stereo multi-band spectrogram ``(B, 2, bins + 1, T)`` (the bins of
:mod:`app.data.preprocess.vr_spec`), work on its lowest ``bins`` rows, cut in a low and a high
half for the first stage, and return a mask in [0, 1] of the input's shape. What the mask keeps
depends on the file (the instrumental for HP2/HP5, the vocal for HP3, the dry vocal for DeEcho).

    AsppNet      UVR's nets_61968KB.CascadedASPPNet: HP2_all_vocals, HP3_all_vocals, HP5_only_main_vocal
    CascadedNet  UVR's nets_new.CascadedNet: VR-DeEchoNormal/Aggressive (nout 48), VR-DeEchoDeReverb (64)

The published files are bare state dicts; the width is UVR's constant (``width`` 32 for AsppNet)
or read from the file name (``nout``). Smaller widths build the same key layout (tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from app.models.uvr.layers import (
    AsppNew,
    AsppV5,
    ConvBNAct,
    DecoderNew,
    DecoderV5,
    EncoderNew,
    EncoderV5,
    FrequencyLstm,
)


@dataclass(frozen=True)
class AsppNetConfig:
    """UVR's v5 cascaded ASPP network."""

    n_fft: int = 1344  # twice the band parameters' "bins" (4band_v2: 672)
    width: int = 32  # channels of stages 1-2 (stage 3 has twice as many); UVR's files: 32
    offset: int = 128  # frames of each window's edges the mask is not trusted on (UVR's model.offset)


@dataclass(frozen=True)
class CascadedNetConfig:
    """UVR's "new" cascaded network with LSTM decoders."""

    n_fft: int = 1344  # twice the band parameters' "bins" (4band_v3: 672)
    nout: int = 48  # base channels: 48 for VR-DeEcho Normal/Aggressive, 64 for VR-DeEchoDeReverb
    nout_lstm: int = 128  # LSTM features of the low band and full band nets (high band: half)
    offset: int = 64  # untrusted frames at each window edge


def _pad_bins(mask: torch.Tensor, bins: int) -> torch.Tensor:
    """``(B, C, F, T)`` -> ``(B, C, bins, T)``: the top row repeated (the network skips the Nyquist bin)."""
    return F.pad(mask, (0, 0, 0, bins - mask.shape[2]), mode="replicate")


class AsppUNet(nn.Module):
    """Four strided encoders, ASPP, four decoders: ``(B, nin, F, T)`` -> ``(B, ch, F, T)``."""

    def __init__(self, nin: int, ch: int) -> None:
        super().__init__()
        self.enc1 = EncoderV5(nin, ch, 2)
        self.enc2 = EncoderV5(ch, ch * 2, 2)
        self.enc3 = EncoderV5(ch * 2, ch * 4, 2)
        self.enc4 = EncoderV5(ch * 4, ch * 8, 2)
        self.aspp = AsppV5(ch * 8, ch * 16)
        self.dec4 = DecoderV5(ch * (8 + 16), ch * 8)
        self.dec3 = DecoderV5(ch * (4 + 8), ch * 4)
        self.dec2 = DecoderV5(ch * (2 + 4), ch * 2)
        self.dec1 = DecoderV5(ch * (1 + 2), ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, e1 = self.enc1(x)
        h, e2 = self.enc2(h)
        h, e3 = self.enc3(h)
        h, e4 = self.enc4(h)
        h = self.aspp(h)
        for dec, skip in ((self.dec4, e4), (self.dec3, e3), (self.dec2, e2), (self.dec1, e1)):
            h = dec(h, skip)
        return h


class AsppNet(nn.Module):
    """Three cascaded ASPP U-Nets; :meth:`forward` gives the mask ``(B, 2, n_fft/2 + 1, T)``."""

    def __init__(self, config: AsppNetConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.stg1_low_band_net = AsppUNet(2, w)
        self.stg1_high_band_net = AsppUNet(2, w)
        self.stg2_bridge = ConvBNAct(2 + w, w // 2, 1, 1, 0)
        self.stg2_full_band_net = AsppUNet(w // 2, w)
        self.stg3_bridge = ConvBNAct(2 + 2 * w, w, 1, 1, 0)
        self.stg3_full_band_net = AsppUNet(w, 2 * w)
        self.out = nn.Conv2d(2 * w, 2, 1, bias=False)
        # Training-only heads; kept so the published state dicts load strictly.
        self.aux1_out = nn.Conv2d(w, 2, 1, bias=False)
        self.aux2_out = nn.Conv2d(w, 2, 1, bias=False)
        self.max_bin = config.n_fft // 2
        self.offset = config.offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Magnitudes ``(B, 2, max_bin + 1, T)`` (T divisible by 16) -> mask of the same shape."""
        bins = x.shape[2]
        x = x[:, :, : self.max_bin]
        half = x.shape[2] // 2
        low, high = self.stg1_low_band_net(x[:, :, :half]), self.stg1_high_band_net(x[:, :, half:])
        aux1 = torch.cat([low, high], dim=2)  # (B, w, max_bin, T)
        aux2 = self.stg2_full_band_net(self.stg2_bridge(torch.cat([x, aux1], dim=1)))
        h = self.stg3_full_band_net(self.stg3_bridge(torch.cat([x, aux1, aux2], dim=1)))
        return _pad_bins(torch.sigmoid(self.out(h)), bins)


class LstmUNet(nn.Module):
    """Encoders, ASPP, decoders with an LSTM joining at the second level: ``(B, nin, F, T)`` -> ``(B, nout, F, T)``."""

    def __init__(self, nin: int, nout: int, nin_lstm: int, nout_lstm: int) -> None:
        super().__init__()
        self.enc1 = ConvBNAct(nin, nout, 3, 1, 1)
        self.enc2 = EncoderNew(nout, nout * 2, 2)
        self.enc3 = EncoderNew(nout * 2, nout * 4, 2)
        self.enc4 = EncoderNew(nout * 4, nout * 6, 2)
        self.enc5 = EncoderNew(nout * 6, nout * 8, 2)
        self.aspp = AsppNew(nout * 8, nout * 8, ((4, 2), (8, 4), (12, 6)))
        self.dec4 = DecoderNew(nout * (6 + 8), nout * 6)
        self.dec3 = DecoderNew(nout * (4 + 6), nout * 4)
        self.dec2 = DecoderNew(nout * (2 + 4), nout * 2)
        self.lstm_dec2 = FrequencyLstm(nout * 2, nin_lstm, nout_lstm)
        self.dec1 = DecoderNew(nout * (1 + 2) + 1, nout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        h = self.aspp(self.enc5(e4))
        h = self.dec2(self.dec3(self.dec4(h, e4), e3), e2)
        h = torch.cat([h, self.lstm_dec2(h)], dim=1)  # (B, 2*nout + 1, F/2, T/2)
        return self.dec1(h, e1)


class CascadedNet(nn.Module):
    """Band-split stages 1-2 feeding a full-band stage 3; :meth:`forward` gives the mask."""

    def __init__(self, config: CascadedNetConfig) -> None:
        super().__init__()
        self.config = config
        n, lstm = config.nout, config.nout_lstm
        self.max_bin = config.n_fft // 2
        nin_lstm = self.max_bin // 2  # the bins at the LSTM's level (one stride-2 encoder down)
        self.offset = config.offset
        self.stg1_low_band_net = nn.Sequential(
            LstmUNet(2, n // 2, nin_lstm // 2, lstm), ConvBNAct(n // 2, n // 4, 1, 1, 0)
        )
        self.stg1_high_band_net = LstmUNet(2, n // 4, nin_lstm // 2, lstm // 2)
        self.stg2_low_band_net = nn.Sequential(
            LstmUNet(n // 4 + 2, n, nin_lstm // 2, lstm), ConvBNAct(n, n // 2, 1, 1, 0)
        )
        self.stg2_high_band_net = LstmUNet(n // 4 + 2, n // 2, nin_lstm // 2, lstm // 2)
        self.stg3_full_band_net = LstmUNet(3 * n // 4 + 2, n, nin_lstm, lstm)
        self.out = nn.Conv2d(n, 2, 1, bias=False)
        self.aux_out = nn.Conv2d(3 * n // 4, 2, 1, bias=False)  # training only; in the files

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Magnitudes ``(B, 2, max_bin + 1, T)`` (T divisible by 16) -> mask of the same shape."""
        bins = x.shape[2]
        x = x[:, :, : self.max_bin]
        half = x.shape[2] // 2
        l1_in, h1_in = x[:, :, :half], x[:, :, half:]
        l1, h1 = self.stg1_low_band_net(l1_in), self.stg1_high_band_net(h1_in)
        l2 = self.stg2_low_band_net(torch.cat([l1_in, l1], dim=1))
        h2 = self.stg2_high_band_net(torch.cat([h1_in, h1], dim=1))
        aux1, aux2 = torch.cat([l1, h1], dim=2), torch.cat([l2, h2], dim=2)  # (B, n/4 | n/2, max_bin, T)
        h = self.stg3_full_band_net(torch.cat([x, aux1, aux2], dim=1))
        return _pad_bins(torch.sigmoid(self.out(h)), bins)


VrNet = AsppNet | CascadedNet
