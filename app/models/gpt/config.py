"""Hyper-parameters of the text-to-semantic GPT (GPT-SoVITS "s1").

The defaults are the full-size v2 model of upstream's ``configs/s1longer-v2.yaml``; v1 differs only
in ``phoneme_vocab_size`` (512, of which the first 322 ids are used). Tiny configs for tests are
built the same way with smaller ``dim`` / ``n_layer``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# Semantic codes come from a 1024-entry codebook (the SoVITS quantizer); one more id is the EOS.
SEMANTIC_CODES = 1024
# Width of the BERT phone features (chinese-roberta-wwm-ext-large hidden size; zeros for non-zh).
BERT_DIM = 1024
# Upstream hard-codes these dropouts in the transformer layers and positional encodings; the
# config key "dropout" only drives the token-embedding dropout.
LAYER_DROPOUT = 0.1
# Keys of upstream's config["model"] that the architecture reads (others are reported as ignored).
_UPSTREAM_KEYS = ("vocab_size", "phoneme_vocab_size", "embedding_dim", "hidden_dim", "head", "n_layer", "EOS")


class GPTConfigError(ValueError):
    """A model config that cannot describe a GPT-SoVITS text-to-semantic model."""


@dataclass(frozen=True)
class GPTConfig:
    """Shape of :class:`app.models.gpt.model.GPT`; rebuild a model with ``GPT(GPTConfig(**saved))``."""

    # Semantic vocabulary: 1024 codebook ids + EOS.
    vocab_size: int = SEMANTIC_CODES + 1
    # The EOS id; upstream asserts it is the last id (vocab_size - 1).
    eos: int = SEMANTIC_CODES
    # Phoneme embedding rows: 732 for v2 symbols, 512 for v1 (322 symbols used).
    phoneme_vocab_size: int = 732
    # Model width (upstream hidden_dim == embedding_dim).
    dim: int = 512
    # Attention heads; head width is dim // n_head.
    n_head: int = 16
    # Post-norm transformer layers.
    n_layer: int = 24
    # Token-embedding dropout (upstream config "dropout", 0 in every released config).
    embedding_dropout: float = 0.0
    # Dropout on attention weights, residual branches, FFN and positional encodings (training only).
    layer_dropout: float = LAYER_DROPOUT
    # Width of the BERT features projected onto the phoneme embeddings.
    bert_dim: int = BERT_DIM

    def __post_init__(self) -> None:
        problems = []
        if self.eos != self.vocab_size - 1:
            problems.append(f"eos ({self.eos}) must be vocab_size - 1 ({self.vocab_size - 1})")
        if self.dim <= 0 or self.n_head <= 0 or self.dim % self.n_head:
            problems.append(f"dim ({self.dim}) must be a positive multiple of n_head ({self.n_head})")
        if self.n_layer <= 0 or self.phoneme_vocab_size <= 0 or self.vocab_size <= 1:
            problems.append("n_layer, phoneme_vocab_size and vocab_size must be positive")
        for name in ("embedding_dropout", "layer_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                problems.append(f"{name} must be in [0, 1)")
        if problems:
            raise GPTConfigError("invalid GPTConfig: " + "; ".join(problems))

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_head

    @property
    def ffn_dim(self) -> int:
        """Feed-forward width: upstream builds 4 x hidden_dim whatever ``linear_units`` says."""
        return 4 * self.dim

    @classmethod
    def from_upstream(cls, model: dict[str, Any]) -> GPTConfig:
        """Build from upstream's ``config["model"]`` dict (the s1 yaml's ``model`` section).

        Upstream quirks handled here: ``embedding_dim`` must equal ``hidden_dim`` (both name the
        one model width), ``linear_units`` and ``random_bert`` are ignored (the FFN is always
        4 x hidden_dim), and ``dropout`` is only the token-embedding dropout.
        """
        if not isinstance(model, dict):
            raise GPTConfigError(f"config['model'] must be a mapping, got {type(model).__name__}")
        missing = [k for k in _UPSTREAM_KEYS if k not in model]
        if missing:
            raise GPTConfigError(f"config['model'] lacks {missing}; it has {sorted(model)}")
        for key in (*_UPSTREAM_KEYS, "dropout"):
            value = model.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise GPTConfigError(f"config['model'][{key!r}] must be a number, got {value!r}")
        if model["embedding_dim"] != model["hidden_dim"]:
            raise GPTConfigError(
                f"config['model'] has embedding_dim {model['embedding_dim']} != hidden_dim "
                f"{model['hidden_dim']}; upstream's model only works when they are equal"
            )
        ints = {k: int(model[k]) for k in _UPSTREAM_KEYS}
        return cls(
            vocab_size=ints["vocab_size"],
            eos=ints["EOS"],
            phoneme_vocab_size=ints["phoneme_vocab_size"],
            dim=ints["hidden_dim"],
            n_head=ints["head"],
            n_layer=ints["n_layer"],
            embedding_dropout=float(model.get("dropout", 0)),
        )

    def to_upstream(self) -> dict[str, Any]:
        """The ``config["model"]`` dict upstream reads (key order and types as in its yaml)."""
        dropout = self.embedding_dropout
        return {
            "vocab_size": self.vocab_size,
            "phoneme_vocab_size": self.phoneme_vocab_size,
            "embedding_dim": self.dim,
            "hidden_dim": self.dim,
            "head": self.n_head,
            "linear_units": self.ffn_dim,
            "n_layer": self.n_layer,
            "dropout": int(dropout) if dropout == int(dropout) else dropout,
            "EOS": self.eos,
            "random_bert": 0,
        }

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
