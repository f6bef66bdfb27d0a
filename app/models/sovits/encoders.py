"""Prior (text + semantic) encoder with MRTE, and the posterior (spectrogram) encoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from app.models.nn.attention import MultiHeadAttention, TransformerEncoder
from app.models.nn.masks import length_mask
from app.models.nn.wavenet import WaveNet
from app.models.sovits.config import MRTE_HIDDEN, SSL_DIM


class MRTE(nn.Module):
    """Multi-reference timbre encoder: semantic frames attend to phonemes, plus the timbre vector.

    ``out = c_post((cross_attn(c_pre(ssl), text_pre(text)) + c_pre(ssl) + ge) * mask)``

    Args:
        channels: input/output width (192, fixed upstream).
        hidden: attention width (512); the timbre vector ``ge`` must have this width.
        n_heads: attention heads (4).
    """

    def __init__(self, channels: int = 192, hidden: int = MRTE_HIDDEN, n_heads: int = 4) -> None:
        super().__init__()
        self.cross_attention = MultiHeadAttention(hidden, hidden, n_heads)
        self.c_pre = nn.Conv1d(channels, hidden, 1)
        self.text_pre = nn.Conv1d(channels, hidden, 1)
        self.c_post = nn.Conv1d(hidden, channels, 1)

    def forward(
        self,
        ssl: torch.Tensor,
        ssl_mask: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        ge: torch.Tensor | None,
    ) -> torch.Tensor:
        """ssl (B, C, T), ssl_mask (B, 1, T), text (B, C, P), text_mask (B, 1, P), ge (B, hidden, 1) -> (B, C, T)"""
        attn_mask = text_mask.unsqueeze(2) * ssl_mask.unsqueeze(-1)  # (B, 1, T, P)
        ssl_h = self.c_pre(ssl * ssl_mask)
        text_h = self.text_pre(text * text_mask)
        x = self.cross_attention(ssl_h * ssl_mask, text_h * text_mask, attn_mask) + ssl_h
        if ge is not None:
            x = x + ge
        return self.c_post(x * ssl_mask)


class TextEncoder(nn.Module):
    """Prior encoder ``enc_p``: quantized semantic frames + phonemes + timbre -> (m_p, logs_p).

    SSL frames pass a small attention encoder, phonemes an embedding and a deeper encoder; MRTE
    fuses them with the timbre vector; ``encoder2`` refines; ``proj`` gives mean and log-std.

    Args:
        out_channels: latent width (inter_channels).
        hidden_channels, filter_channels, n_heads, n_layers, kernel_size, p_dropout: encoder shape
            (the SSL encoder and ``encoder2`` use ``n_layers // 2`` layers).
        n_symbols: phoneme vocabulary (322 v1 / 732 v2).
    """

    def __init__(
        self,
        out_channels: int,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        p_dropout: float,
        n_symbols: int,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.ssl_proj = nn.Conv1d(SSL_DIM, hidden_channels, 1)
        args = (hidden_channels, filter_channels, n_heads)
        self.encoder_ssl = TransformerEncoder(*args, n_layers // 2, kernel_size, p_dropout)
        self.encoder_text = TransformerEncoder(*args, n_layers, kernel_size, p_dropout)
        self.text_embedding = nn.Embedding(n_symbols, hidden_channels)
        self.mrte = MRTE(hidden_channels)
        self.encoder2 = TransformerEncoder(*args, n_layers // 2, kernel_size, p_dropout)
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)

    def encode_text(
        self, text: torch.Tensor, text_lengths: torch.Tensor, dtype: torch.dtype = torch.float32
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The phones' branch, which does not depend on the frames: ``(B, hidden, P)`` encoded
        phones and their ``(B, 1, P)`` mask. A stream computes it once per segment and passes it
        to every chunk (``encoded_text``): ~14 ms of a chunk's ~25 ms at 2 threads for 80 phones."""
        text_mask = length_mask(text_lengths, text.size(1), dtype)
        t = self.text_embedding(text).transpose(1, 2)  # (B, C, P)
        return self.encoder_text(t * text_mask, text_mask), text_mask

    def hidden(
        self,
        y: torch.Tensor,
        y_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        ge: torch.Tensor | None,
        speed: float = 1.0,
        encoded_text: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's hidden frames before the projection (what v3/v4's ``bridge`` reads).

        Args: as :meth:`forward`.

        Returns:
            y (B, hidden_channels, L) and y_mask (B, 1, L); L = T when speed == 1, else
            ``int(T / speed) + 1`` (y linearly resampled, the mask by nearest).
        """
        y_mask = length_mask(y_lengths, y.size(2), y.dtype)
        y = self.ssl_proj(y * y_mask) * y_mask
        y = self.encoder_ssl(y * y_mask, y_mask)
        t, text_mask = (
            encoded_text if encoded_text is not None else self.encode_text(text, text_lengths, y.dtype)
        )
        y = self.mrte(y, y_mask, t, text_mask, ge)
        y = self.encoder2(y * y_mask, y_mask)
        if speed != 1:
            # Upstream's speed control: resample the encoded frames, not the audio.
            y = F.interpolate(y, size=int(y.shape[-1] / speed) + 1, mode="linear")
            y_mask = F.interpolate(y_mask, size=y.shape[-1], mode="nearest")
        return y, y_mask

    def forward(
        self,
        y: torch.Tensor,
        y_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        ge: torch.Tensor | None,
        speed: float = 1.0,
        encoded_text: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode.

        Args:
            y: (B, 768, T) quantized semantic vectors at 50 Hz.
            y_lengths: (B,) valid frames.
            text: (B, P) phoneme ids; text_lengths (B,).
            ge: (B, 512, 1) timbre vector for MRTE (``ge_to512(ge)`` for v2Pro*).
            speed: >1 speaks faster: frames are linearly resampled to ``int(T / speed) + 1``.
            encoded_text: :meth:`encode_text` of ``text`` computed before (else computed here).

        Returns:
            m_p, logs_p (B, out_channels, L) and y_mask (B, 1, L); L = T when speed == 1.
        """
        y, y_mask = self.hidden(y, y_lengths, text, text_lengths, ge, speed, encoded_text)
        stats = self.proj(y) * y_mask
        m_p, logs_p = torch.split(stats, self.out_channels, dim=1)
        return m_p, logs_p, y_mask


class PosteriorEncoder(nn.Module):
    """Posterior ``enc_q`` (training only): linear spectrogram -> sampled latent z.

    Args:
        in_channels: spectrogram bins (1025).
        out_channels: latent width.
        hidden_channels: WaveNet width.
        kernel_size, dilation_rate, n_layers: WaveNet shape (5, 1, 16 upstream).
        gin_channels: conditioning width.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int = 0,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.pre = nn.Conv1d(in_channels, hidden_channels, 1)
        self.enc = WaveNet(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels=gin_channels)
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)

    def forward(
        self, x: torch.Tensor, x_lengths: torch.Tensor, g: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, bins, T), x_lengths (B,), g (B, gin, 1) -> z, m_q, logs_q (B, out, T), x_mask (B, 1, T)"""
        if g is not None:
            g = g.detach()  # the timbre vector is trained through the prior path only
        x_mask = length_mask(x_lengths, x.size(2), x.dtype)
        x = self.enc(self.pre(x) * x_mask, x_mask, g=g)
        stats = self.proj(x) * x_mask
        m, logs = torch.split(stats, self.out_channels, dim=1)
        z = (m + torch.randn_like(m) * torch.exp(logs)) * x_mask
        return z, m, logs, x_mask


class WaveNetEncoder(nn.Module):
    """1x1 conv -> conditioned WaveNet -> 1x1 conv, masked (upstream ``models.Encoder``; v3/v4 ``wns1``).

    Args:
        in_channels, out_channels: widths of input and output (512 for ``wns1``).
        hidden_channels: WaveNet width (512 upstream).
        kernel_size, dilation_rate, n_layers: WaveNet shape (5, 1, 8 upstream).
        gin_channels: conditioning width (the timbre vector).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int = 0,
    ) -> None:
        super().__init__()
        self.pre = nn.Conv1d(in_channels, hidden_channels, 1)
        self.enc = WaveNet(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels=gin_channels)
        self.proj = nn.Conv1d(hidden_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, in, T), x_mask (B, 1, T), g (B, gin, 1) -> (B, out, T), zero where the mask is."""
        if g is not None:
            g = g.detach()  # upstream trains the timbre vector through the other paths only
        x = self.pre(x) * x_mask
        x = self.enc(x, x_mask, g=g)
        return self.proj(x) * x_mask
