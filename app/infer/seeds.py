"""Seeds: one per request (drawn when not given), derived per GPT batch and per SoVITS segment.

Deriving instead of sharing one generator keeps each segment's randomness independent of how
the others were computed: streaming and whole-result synthesis of a request give the same tokens,
and re-decoding segment 3 does not depend on how long segment 2 was.
"""

from __future__ import annotations

import secrets

import numpy as np
import torch

MAX_SEED = 2**32 - 1
PURPOSES = {"gpt": 1, "sovits": 2}


def random_seed() -> int:
    """A fresh seed in [0, 2**32 - 1] (reported back so the user can reproduce the result)."""
    return secrets.randbelow(MAX_SEED + 1)


def derive_seed(seed: int, purpose: str, index: int) -> int:
    """A well-mixed 63-bit seed for ``purpose`` ("gpt" batch or "sovits" segment) number ``index``."""
    state = np.random.SeedSequence([int(seed), PURPOSES[purpose], int(index)]).generate_state(2)
    return int((int(state[0]) << 31) ^ int(state[1])) & (2**63 - 1)


def generator(seed: int, purpose: str, index: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator seeded with :func:`derive_seed`."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, purpose, index))
