"""HuBERT content features (chinese-hubert-base), fed exactly as GPT-SoVITS feeds them.

Upstream runs ``HubertModel`` directly on the raw 16 kHz waveform; the feature extractor's
zero-mean/unit-variance normalisation is NOT applied. The two places it computes features scale
the input differently, and the features depend on that scale, so both are reproduced:

- prompts at inference (:meth:`HubertEncoder.prompt_features`): the reference clip as loaded at
  16 kHz, followed by 9,600 zeros (upstream builds a 0.3 s pause at the model's 32 kHz rate and
  appends it to the 16 kHz clip, i.e. 0.6 s of silence);
- training data, step 1b (:func:`training_input`): the 32 kHz clip mixed from a peak-normalised
  copy and the original, on a full scale of 1145.14, then resampled to 16 kHz.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
from pathlib import Path

import numpy as np
import torch

from app.audio.io import resample
from app.devices import clean_file_maps, drop_pages, release_file_pages
from app.messages import Message, said
from app.models.encoders.hubert_net import load_hubert_net
from app.models.nn.layout import channels_last_pays, pointwise_fusion

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # HuBERT input rate
FRAME_RATE = 50  # one feature per 320 samples
# Upstream: zeros of int(32000 * 0.3) samples appended to the 16 kHz prompt (see module doc).
PROMPT_PAD_SAMPLES = 9600
# Step 1b (prepare_datasets/2-get-hubert-wav32k.py): maxx 0.95, alpha 0.5, full scale 1145.14.
TRAIN_PEAK = 0.95
TRAIN_ALPHA = 0.5
TRAIN_FULL_SCALE = 1145.14
# Clips whose peak exceeds this are skipped by upstream as broken.
TRAIN_MAX_PEAK = 2.2
TRAIN_SOURCE_RATE = 32000
# Bytes of float32 weights cast between two page releases of the mapped file.
_RELEASE_EVERY = 64 << 20


class HubertEncoder:
    """A local ``transformers.HubertModel`` in eval mode.

    Args:
        model_dir: folder with ``config.json`` and the weights (``pretrained_models/chinese-hubert-base``).
        device: where to run.
        dtype: float32, or float16 on CUDA.
        release_pages: on CPU with float32 weights memory-mapped from their file, give their pages
            back after every call (:func:`app.devices.release_file_pages`): the ~360 MB of
            chinese-hubert-base are resident only while it runs, for ~20 ms per call. For a
            long-lived pipeline; batch feature extraction leaves it off.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        release_pages: bool = False,
    ) -> None:
        path = Path(model_dir)
        if not (path / "config.json").is_file():
            template = (
                "{path}: no HuBERT model here (config.json missing); put chinese-hubert-base in this folder"
            )
            raise FileNotFoundError(Message("hubert.err.no_config", template, path=str(path)))
        try:
            # Our own HuBERT-base (no transformers import: ~127 MB less resident, see hubert_net);
            # configurations it does not implement load through transformers.
            net = load_hubert_net(path)
            if net is None:
                from transformers import HubertModel

                model = HubertModel.from_pretrained(str(path), local_files_only=True)
                self.hidden_size = int(model.config.hidden_size)
                self.model: torch.nn.Module = model.to(device=device, dtype=dtype).eval()
                self._run = lambda wav: self.model(wav).last_hidden_state
            else:
                self.hidden_size = net.config.hidden_size
                mapped = _weights_file(path)
                if torch.device(device).type == "cpu" and dtype != torch.float32 and mapped is not None:
                    _cast_from_map(net, dtype, mapped)
                self.model = net.to(device=device, dtype=dtype).eval()
                self._run = self.model
                # bf16 only: float32 keeps its memory-mapped conv weights and upstream's exact sums.
                if dtype == torch.bfloat16 and channels_last_pays(torch.device(device)):
                    net.feature_extractor.to_channels_last()
                    if pointwise_fusion(dtype):
                        net.for_inference()
        except OSError as exc:
            template = "{path}: cannot load the HuBERT weights: {problem}"
            raise FileNotFoundError(
                Message("hubert.err.load", template, path=str(path), problem=said(exc))
            ) from None
        self.device = torch.device(device)
        self.dtype = dtype
        # The file whose mapped pages are given back after each call (float32 on CPU only).
        self._mapped = _weights_file(path) if release_pages and net is not None else None
        if self._mapped is not None and (self.device.type != "cpu" or dtype != torch.float32):
            self._mapped = None
        # During a call: the clean maps of the weights file, whose pages each block gives back as
        # soon as it has run (only one block's weights resident at a time).
        self._maps: list[tuple[int, int, int]] = []
        if self._mapped is not None and net is not None:
            blocks = [net.feature_extractor, net.feature_projection, net.encoder.pos_conv_embed]
            for block in [*blocks, *net.encoder.layers]:
                block.register_forward_hook(self._release_block)

    @torch.inference_mode()
    def features(self, wav_16k: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(N,) or (1, N) 16 kHz waveform, used as is -> (1, hidden, N // 320 - ish) features at 50 Hz."""
        wav = torch.as_tensor(wav_16k).reshape(1, -1).to(device=self.device, dtype=self.dtype)
        if self._mapped is not None:
            self._maps = clean_file_maps(self._mapped)
        try:
            hidden = self._run(wav)  # (1, T, hidden)
        finally:
            if self._mapped is not None:
                self._maps = []
                release_file_pages(self._mapped)
        return hidden.transpose(1, 2)

    def _release_block(self, block: torch.nn.Module, *_: object) -> None:
        """Forward hook: the pages of ``block``'s weights that lie in a clean map of the file."""
        for param in block.parameters():
            lo = param.data_ptr()
            hi = lo + param.numel() * param.element_size()
            for start, end, _rss in self._maps:
                if start <= lo and hi <= end:
                    drop_pages(lo, hi)

    def prompt_features(
        self, wav_16k: torch.Tensor | np.ndarray, pad_samples: int = PROMPT_PAD_SAMPLES
    ) -> torch.Tensor:
        """Features of a reference prompt as upstream's inference computes them.

        Args:
            wav_16k: (N,) reference clip at 16 kHz, as loaded (no normalisation).
            pad_samples: zeros appended before encoding (upstream: 9,600).

        Returns:
            (1, hidden, T) features; a 5 s clip gives T = 279 with the default padding.
        """
        wav = torch.as_tensor(wav_16k, dtype=torch.float32).reshape(-1)
        wav = torch.cat([wav, torch.zeros(pad_samples, dtype=wav.dtype)])
        return self.features(wav)


def _weights_file(folder: Path) -> Path | None:
    """The file :func:`load_hubert_net` maps (it prefers safetensors), or None."""
    return next(
        (folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).is_file()), None
    )


def _cast_from_map(net: torch.nn.Module, dtype: torch.dtype, mapped: Path) -> None:
    """``net.to(dtype)`` one tensor at a time, giving the map's pages back as they are read: the
    float32 file (~360 MB) and its cast are never resident together."""
    pending = 0
    for tensor in itertools.chain(net.parameters(), net.buffers()):
        if tensor.is_floating_point():
            tensor.data = tensor.data.to(dtype)
            pending += tensor.numel() * 4
            if pending >= _RELEASE_EVERY:
                release_file_pages(mapped)
                pending = 0
    release_file_pages(mapped)


def training_input(wav_32k: np.ndarray) -> np.ndarray:
    """Step-1b input: ``x / peak * (0.95 * 0.5 * 1145.14) + 0.5 * 1145.14 * x`` resampled to 16 kHz.

    Args:
        wav_32k: (N,) float32 clip at 32 kHz in [-1, 1].

    Raises:
        ValueError: silent clip, or peak above 2.2 (upstream skips such clips).
    """
    peak = float(np.abs(wav_32k).max()) if wav_32k.size else 0.0
    if peak == 0.0:
        template = "silent clip: HuBERT features of silence are undefined in upstream's scaling"
        raise ValueError(Message("hubert.err.silent", template))
    if peak > TRAIN_MAX_PEAK:
        template = "clip peak {peak:.2f} exceeds {limit}; upstream skips such clips as broken"
        raise ValueError(Message("hubert.err.peak", template, peak=peak, limit=TRAIN_MAX_PEAK))
    mixed = (
        wav_32k / peak * (TRAIN_PEAK * TRAIN_ALPHA * TRAIN_FULL_SCALE)
        + (1 - TRAIN_ALPHA) * TRAIN_FULL_SCALE * wav_32k
    )
    return resample(mixed.astype(np.float32), TRAIN_SOURCE_RATE, SAMPLE_RATE)


@functools.lru_cache(maxsize=2)
def load_hubert(model_dir: str, device: str = "cpu", dtype: torch.dtype = torch.float32) -> HubertEncoder:
    """Cached :class:`HubertEncoder` per (folder, device, dtype)."""
    logger.info("loading HuBERT from %s on %s", model_dir, device)
    return HubertEncoder(model_dir, device=device, dtype=dtype)
