"""Speaker-verification embeddings of GPT-SoVITS v2Pro/v2ProPlus: upstream's ERes2NetV2 file -> vectors.

:class:`SpeakerEncoder` is the API the rest of the app uses (file -> embeddings). The network and
its shape live in :mod:`app.models.encoders.sv_net`, the file reader in :mod:`app.models.upstream.sv`
(which builds the network to check a file, so the network cannot live here without a circle); their
names are re-exported here for callers that know the encoder only.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from app.audio.fbank import kaldi_fbank
from app.audio.resample import SOVITS_SR, SV_SR, sinc_resample
from app.messages import Message
from app.models.encoders.sv_net import SV_ASSET, SV_FILE, ERes2NetV2, SVConfig, SVConfigError
from app.models.nn.skip_init import without_init
from app.models.upstream.sv import read_sv

__all__ = ["SV_ASSET", "SV_FILE", "ERes2NetV2", "SVConfig", "SVConfigError", "SpeakerEncoder"]


class SpeakerEncoder:
    """Speaker embeddings for v2Pro/v2ProPlus from an upstream ERes2NetV2 file, in eval mode.

    Args:
        path: the state-dict file (``pretrained_models/`` + :data:`SV_FILE`).
        device: where to run.
        dtype: weights' precision (float32; float16/bfloat16 on accelerators). The fbank is always
            computed in float32 and then cast.

    Raises:
        app.models.upstream.safe_pickle.CheckpointError: missing, corrupt or wrong file (the
            message names it and, when missing, the download command).
    """

    def __init__(
        self, path: str | os.PathLike, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> None:
        self.path = Path(path)
        self.device = torch.device(device)
        self.dtype = dtype
        self.config, state = read_sv(self.path)
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        model = without_init(lambda: ERes2NetV2(self.config))
        model.load_state_dict(state, strict=True, assign=True)
        self.model = model.to(self.device).eval()
        self.dim = self.config.emb_dim

    def __repr__(self) -> str:
        return f"SpeakerEncoder({str(self.path)!r}, dim={self.dim}, device={self.device}, dtype={self.dtype})"

    @torch.inference_mode()
    def embed_16k(self, wav16: torch.Tensor) -> torch.Tensor:
        """(B, N) or (N,) float waves in [-1, 1] at 16 kHz -> (B, dim) float32 on the CPU.

        One fbank per row, stacked (``N >= 400``: at least one 25 ms frame), then ``forward3``.
        """
        wav = wav16.reshape(1, -1) if wav16.dim() == 1 else wav16
        if wav.dim() != 2:
            template = "expected (B, N) or (N,) waves, got shape {shape}"
            raise ValueError(Message("sv.err.wave_shape", template, shape=tuple(wav16.shape)))
        wav = wav.to(self.device, torch.float32)
        feats = torch.stack([kaldi_fbank(row, self.config.feat_dim, SV_SR) for row in wav])  # (B, T, F)
        return self.model.forward3(feats.to(self.dtype)).float().cpu()

    @torch.inference_mode()
    def embed_32k(self, wav32: torch.Tensor) -> torch.Tensor:
        """(B, N) or (N,) waves at 32 kHz -> (B, dim): resampled to 16 kHz as upstream (torchaudio's filter)."""
        wav = wav32.to(self.device, torch.float32)
        return self.embed_16k(sinc_resample(wav, SOVITS_SR, SV_SR))
