"""GPTConfig and upstream's config["model"] dict."""

from __future__ import annotations

import pytest

from app.models.gpt.config import GPTConfig, GPTConfigError

UPSTREAM_V2 = {
    "vocab_size": 1025,
    "phoneme_vocab_size": 732,
    "embedding_dim": 512,
    "hidden_dim": 512,
    "head": 16,
    "linear_units": 2048,
    "n_layer": 24,
    "dropout": 0,
    "EOS": 1024,
    "random_bert": 0,
}


def test_defaults_are_the_full_size_v2_model() -> None:
    cfg = GPTConfig.from_upstream(UPSTREAM_V2)
    assert cfg == GPTConfig()
    assert (cfg.ffn_dim, cfg.head_dim) == (2048, 32)
    assert cfg.to_upstream() == UPSTREAM_V2


def test_linear_units_is_ignored_like_upstream() -> None:
    cfg = GPTConfig.from_upstream(
        {**UPSTREAM_V2, "linear_units": 999, "hidden_dim": 64, "embedding_dim": 64, "head": 4}
    )
    assert cfg.ffn_dim == 256


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"embedding_dim": 256}, "embedding_dim 256 != hidden_dim 512"),
        ({"EOS": 1000}, "eos"),
        ({"head": 7}, "multiple of n_head"),
        ({"n_layer": "24"}, "must be a number"),
    ],
)
def test_bad_upstream_configs_are_explained(change: dict, message: str) -> None:
    with pytest.raises(GPTConfigError, match=message):
        GPTConfig.from_upstream({**UPSTREAM_V2, **change})


def test_missing_keys_are_named() -> None:
    partial = dict(UPSTREAM_V2)
    del partial["head"]
    with pytest.raises(GPTConfigError, match=r"lacks \['head'\]"):
        GPTConfig.from_upstream(partial)
