"""UVR's MDX-Net models (ONNX): vocal separation, karaoke (lead vs backing vocals) and de-reverb.

The files are the ones Ultimate Vocal Remover publishes and upstream GPT-SoVITS runs
(``tools/uvr5/mdxnet.py``): a network over a stereo spectrogram chunk, saved as ONNX with one input
``(B, 4, dim_f, dim_t)`` - real and imaginary parts of both channels, the lowest ``dim_f`` bins of an
``n_fft`` STFT (hop 1024, Hann) over ``dim_t`` frames - and one output of the same shape: the
spectrogram of the stem it was trained to predict. Nothing in the file says its ``n_fft`` or
which stem it predicts; UVR keys them by the file's hash in ``model_data.json``, we by the
published file name (:data:`MDX_MODELS`, the values of UVR's table; the ONNX input shape is
checked against them).

    pretrained_models/uvr5_weights/Kim_Vocal_2.onnx                          vocals
    pretrained_models/uvr5_weights/UVR_MDXNET_KARA_2.onnx                    instrumental with backing vocals
    pretrained_models/uvr5_weights/onnx_dereverb_By_FoxJoy/vocals.onnx       the reverb (upstream's folder)

Audio is cut in chunks of ``hop * (dim_t - 1)`` samples that overlap by ``n_fft`` (half a window
trimmed on each side, as UVR does), so the chunk edges of the inverse STFT never reach the output.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from app import assets
from app.messages import Message

logger = logging.getLogger(__name__)

MDX_RATE = 44100  # every UVR MDX-Net model works on 44.1 kHz stereo
MDX_HOP = 1024  # UVR's hop for every MDX-Net model
MDX_FOLDER = "uvr5_weights"  # upstream's folder for UVR weights (tools/uvr5/uvr5_weights/)
# What a network outputs; what the step keeps is decided by the caller (see MdxModel.split).
PREDICTS = ("vocals", "instrumental", "reverb")


class MdxError(RuntimeError):
    """An MDX-Net model cannot run (missing, unknown or malformed file); the message says what to do."""


class MissingMdxModel(MdxError, FileNotFoundError):
    """The MDX-Net file is not in ``pretrained_models/uvr5_weights/``."""


@dataclass(frozen=True)
class MdxParams:
    """How a published MDX-Net file was trained (UVR's model_data.json entry for it)."""

    n_fft: int  # STFT size; the network sees its lowest dim_f bins
    dim_f: int  # frequency bins the network takes
    dim_t: int  # frames per chunk (2 ** UVR's mdx_dim_t_set)
    compensate: float  # UVR's gain on the predicted stem (makes up for the network's level loss)
    predicts: str  # the stem the network outputs: one of PREDICTS
    denoise: bool  # average model(x) and -model(-x): cancels the network's own noise (UVR "denoise")
    asset: str  # id in app.assets (the download tool's name)


# File (relative to uvr5_weights/) -> parameters. Kim_Vocal_2 and KARA_2: UVR's model_data.json;
# the FoxJoy de-reverb: upstream's MDXNetDereverb (dim_t 2**9, n_fft 6144, denoise on, no compensation).
MDX_MODELS: dict[str, MdxParams] = {
    "Kim_Vocal_2.onnx": MdxParams(7680, 3072, 256, 1.009, "vocals", False, "uvr-mdx-kim-vocal-2"),
    "UVR_MDXNET_KARA_2.onnx": MdxParams(5120, 2048, 256, 1.065, "instrumental", False, "uvr-mdx-karaoke-2"),
    "onnx_dereverb_By_FoxJoy/vocals.onnx": MdxParams(
        6144, 3072, 512, 1.0, "reverb", True, "uvr-dereverb-foxjoy"
    ),
}


def models_predicting(*stems: str) -> tuple[str, ...]:
    """Published model files whose network outputs one of ``stems``."""
    return tuple(name for name, p in MDX_MODELS.items() if p.predicts in stems)


def model_path(name: str, pretrained_root: Path) -> Path:
    """Where the published file ``name`` belongs: ``pretrained_models/uvr5_weights/<name>``."""
    return Path(pretrained_root) / MDX_FOLDER / name


def is_installed(name: str, pretrained_root: Path) -> bool:
    return model_path(name, pretrained_root).is_file()


@lru_cache(maxsize=2)
def _session(path: str, device: str):
    import onnxruntime as ort

    providers = (
        ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    )
    try:
        return ort.InferenceSession(path, providers=providers)
    except Exception as exc:  # onnxruntime raises its own unexported exception types
        template = "{path}: not a loadable ONNX model ({problem}); download it again"
        raise MdxError(Message("sep.err.onnx", template, path=path, problem=str(exc))) from exc


class MdxModel:
    """A loaded MDX-Net file: :meth:`predict` gives the stem its network outputs."""

    def __init__(self, name: str, pretrained_root: Path, device: str = "cpu") -> None:
        if name not in MDX_MODELS:
            template = "unknown MDX-Net model {name!r}; choose one of {choices}"
            raise MdxError(Message("sep.err.unknown_mdx", template, name=name, choices=", ".join(MDX_MODELS)))
        self.name, self.params = name, MDX_MODELS[name]
        path = model_path(name, pretrained_root)
        if not path.is_file():
            how = assets.install_hint(self.params.asset, Path(pretrained_root))
            template = "{name} is not installed: {path} not found.\n{how}"
            raise MissingMdxModel(
                Message("sep.err.not_installed", template, name=name, path=str(path), how=how)
            )
        self.session = _session(str(path), device)
        self.input = self.session.get_inputs()[0].name
        shape = self.session.get_inputs()[0].shape  # [batch, 4, dim_f, dim_t], batch symbolic or fixed
        want = [4, self.params.dim_f, self.params.dim_t]
        if len(shape) != 4 or [d if isinstance(d, int) else None for d in shape[1:]] not in (
            want,
            [4, None, None],
        ):
            template = "{path}: input shape {shape} is not {name}'s (B, {want}); download it again"
            fields = {"path": str(path), "shape": str(shape), "name": name, "want": ", ".join(map(str, want))}
            raise MdxError(Message("sep.err.mdx_shape", template, **fields))
        p = self.params
        self.window = torch.hann_window(p.n_fft, periodic=True)
        self.chunk = MDX_HOP * (p.dim_t - 1)  # samples per chunk: dim_t frames of a centred STFT
        self.trim = p.n_fft // 2  # half a window at each chunk edge is thrown away
        self.step = self.chunk - 2 * self.trim  # new samples per chunk
        self.description = f"MDX-Net {name}"

    def _spec(self, chunks: torch.Tensor) -> torch.Tensor:
        """``(B, 2, chunk)`` -> network input ``(B, 4, dim_f, dim_t)``: re/im of channel 0, then channel 1."""
        b = chunks.shape[0]
        spec = torch.stft(
            chunks.reshape(b * 2, -1),
            self.params.n_fft,
            MDX_HOP,
            window=self.window,
            center=True,
            return_complex=True,
        )  # (B*2, bins, dim_t)
        spec = torch.view_as_real(spec).permute(0, 3, 1, 2)  # (B*2, 2, bins, dim_t)
        return spec.reshape(b, 4, -1, self.params.dim_t)[:, :, : self.params.dim_f]

    def _wave(self, spec: torch.Tensor) -> torch.Tensor:
        """Network output ``(B, 4, dim_f, dim_t)`` -> ``(B, 2, chunk)``; bins above dim_f are zero."""
        b, bins = spec.shape[0], self.params.n_fft // 2 + 1
        spec = torch.nn.functional.pad(spec, (0, 0, 0, bins - self.params.dim_f))  # (B, 4, bins, dim_t)
        spec = spec.reshape(b * 2, 2, bins, self.params.dim_t).permute(0, 2, 3, 1).contiguous()
        wave = torch.istft(
            torch.view_as_complex(spec), self.params.n_fft, MDX_HOP, window=self.window, center=True
        )
        return wave.reshape(b, 2, -1)

    def _run(self, spec: torch.Tensor) -> torch.Tensor:
        x = spec.numpy()
        out = self.session.run(None, {self.input: x})[0]
        if self.params.denoise:
            # The network's own noise flips with the input's sign, the stem does not: averaging cancels it.
            out = 0.5 * out - 0.5 * self.session.run(None, {self.input: -x})[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32))

    def predict(self, mix: np.ndarray, progress: Callable[[float], None] | None = None) -> np.ndarray:
        """The stem the network outputs (``params.predicts``) for ``mix`` ``(T, 2)`` at 44.1 kHz; ``(T, 2)``."""
        if mix.ndim != 2 or mix.shape[1] != 2:
            template = "MDX-Net needs stereo audio (T, 2), got shape {shape}"
            raise MdxError(Message("sep.err.mdx_stereo", template, shape=tuple(mix.shape)))
        length = mix.shape[0]
        pad = self.step - length % self.step
        wave = torch.from_numpy(np.ascontiguousarray(mix.T, dtype=np.float32))  # (2, T)
        wave = torch.nn.functional.pad(wave, (self.trim, pad + self.trim))  # (2, trim + T + pad + trim)
        starts = range(0, length + pad, self.step)
        pieces = []
        with torch.inference_mode():
            for i, start in enumerate(starts):
                chunk = wave[:, start : start + self.chunk][None]  # (1, 2, chunk)
                out = self._wave(self._run(self._spec(chunk)))  # (1, 2, chunk)
                pieces.append(out[0, :, self.trim : -self.trim])  # (2, step)
                if progress is not None:
                    progress((i + 1) / len(starts))
        stem = torch.cat(pieces, dim=1)[:, :length] * self.params.compensate  # (2, T)
        return stem.T.numpy()
