"""Tiny random v3/v4 flow-matching SoVITS models shared by the model and file tests."""

from __future__ import annotations

import functools
from dataclasses import replace

import torch

from app.models.sovits.cfm_model import CfmSoVITS
from app.models.sovits.config import SoVITSConfig, preset


def tiny_cfm_config(version: str = "v4") -> SoVITSConfig:
    """Smallest sizes upstream's fixed parts allow (MRTE 192, gin 512, 512-wide features)."""
    return replace(
        preset(version),
        filter_channels=32,
        n_layers=2,
        dit_dim=32,
        dit_depth=2,
        dit_heads=2,
        dit_dim_head=16,
        dit_conv_layers=1,
        wns1_hidden=16,
        wns1_layers=2,
    )


@functools.lru_cache(maxsize=2)
def tiny_weights(version: str) -> dict[str, torch.Tensor]:
    """State dict of a tiny random model (built once per version; do not modify in place)."""
    torch.manual_seed(0)
    model = CfmSoVITS(tiny_cfm_config(version))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("_codebook.embed"):
                tensor.copy_(torch.randn(tensor.shape, generator=gen))
            elif tensor.is_floating_point() and tensor.numel() < 50_000:
                # Constant inits (norms, biases, GRN, zero gates) must matter too.
                tensor.add_(torch.randn(tensor.shape, generator=gen) * 0.05)
    return model.state_dict()


def tiny_model(version: str = "v4") -> CfmSoVITS:
    """A tiny random v3/v4 model ready for inference (weights: :func:`tiny_weights`)."""
    with torch.device("meta"):
        model = CfmSoVITS(tiny_cfm_config(version))
    model.load_state_dict(tiny_weights(version), assign=True)
    return model.prepare_for_inference()
