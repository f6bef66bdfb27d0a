"""A tiny so-vits-svc config for fast tests (16 kHz, hop 16, widths 8-16)."""

from __future__ import annotations

import copy

from app.models.svc.config import SvcConfig

TINY_JSON = {
    "train": {"segment_size": 128, "learning_rate": 1e-4, "betas": [0.8, 0.99], "eps": 1e-9},
    "data": {
        "sampling_rate": 16000,
        "filter_length": 128,
        "hop_length": 16,
        "win_length": 128,
        "n_mel_channels": 16,
        "mel_fmax": 8000,
    },
    "model": {
        "inter_channels": 8,
        "hidden_channels": 8,
        "filter_channels": 16,
        "n_heads": 2,
        "n_layers": 1,
        "kernel_size": 3,
        "p_dropout": 0.0,
        "resblock": "1",
        "resblock_kernel_sizes": [3, 5],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]],
        "upsample_rates": [4, 4],
        "upsample_initial_channel": 16,
        "upsample_kernel_sizes": [8, 8],
        "n_flow_layer": 2,
        "gin_channels": 8,
        "ssl_dim": 12,
        "n_speakers": 3,
        "speech_encoder": "vec768l12",
        "vol_embedding": False,
        "use_automatic_f0_prediction": True,
    },
    "spk": {"a": 0, "b": 1, "c": 2},
}


def tiny_config(**model_overrides: object) -> SvcConfig:
    data = copy.deepcopy(TINY_JSON)
    data["model"].update(model_overrides)
    return SvcConfig.from_json(data)
