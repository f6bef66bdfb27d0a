"""Tiny random SoVITS models shared by the model and file tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from app.models.sovits.config import SoVITSConfig
from app.models.sovits.model import SoVITS


def tiny_sovits_config(version: str = "v2") -> SoVITSConfig:
    """The smallest config upstream's fixed sizes allow (MRTE 192, gin 512 for v1/v2)."""
    pro = version in ("v2Pro", "v2ProPlus")
    return SoVITSConfig(
        version=version,  # type: ignore[arg-type]
        inter_channels=16,
        filter_channels=32,
        n_layers=2,
        resblock_kernel_sizes=(3,),
        resblock_dilation_sizes=((1, 3, 5),),
        upsample_initial_channel=32,
        upsample_kernel_sizes=(20 if version == "v2ProPlus" else 16, 16, 8, 2, 2),
        gin_channels=64 if pro else 512,
        segment_size=640 * 4,
    )


def randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Perturb every tensor so that zero-initialised parts (flow posts, codebook) matter."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("inited"):
                tensor.fill_(1)
            elif name.endswith("_codebook.embed"):
                tensor.copy_(torch.randn(tensor.shape, generator=gen))
            elif tensor.is_floating_point() and (tensor.numel() < 50_000 or name.endswith("post.weight")):
                # Small tensors hold the constant inits (norms, biases, flow posts); large ones are random already.
                tensor.add_(torch.randn(tensor.shape, generator=gen) * 0.05)
    return model


@pytest.fixture(scope="session")
def tiny_sovits() -> Callable[[str], SoVITS]:
    """Factory: a tiny random SoVITS of a version (new module per call, weights built once per version)."""
    cache: dict[str, dict[str, torch.Tensor]] = {}

    def make(version: str = "v2") -> SoVITS:
        config = tiny_sovits_config(version)
        if version not in cache:
            torch.manual_seed(0)
            cache[version] = randomize(SoVITS(config), seed=len(cache) + 1).state_dict()
        with torch.device("meta"):
            model = SoVITS(config)
        # Shares the cached tensors (no copy): tests must not modify weights in place.
        model.load_state_dict(cache[version], assign=True)
        return model.eval()

    return make
