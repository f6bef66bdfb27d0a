"""Where the synthesizer's random numbers come from.

so-vits-svc inference draws, in this order: (1) the prior noise ``N(0, 1)`` of shape
``(B, inter, T)`` (scaled by ``noise_scale``), (2) the initial phases ``U(0, 1)`` of the harmonics
``(B, harmonics)`` (the fundamental's is then set to 0), (3) the excitation noise ``N(0, 1)`` of
shape ``(B, N, harmonics)``. Upstream seeds torch's global generator and calls ``randn_like`` /
``rand``; a :class:`TorchNoise` with the same seed draws the same numbers on the same device,
:class:`ZeroNoise` makes inference deterministic without randomness, and :class:`ReplayNoise`
returns recorded draws (parity tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol

import torch


class NoiseSource(Protocol):
    """Gives the random tensors the synthesizer asks for, on ``like``'s device and dtype."""

    def normal(self, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        """Standard normal samples of ``shape``."""
        ...

    def uniform(self, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        """Uniform [0, 1) samples of ``shape``."""
        ...


class TorchNoise:
    """torch's generator: seeded (reproducible, upstream-identical on CPU) or the global one.

    Args:
        seed: ``None`` uses torch's global generator (training); an int gives a private generator
            per device, seeded like upstream's ``torch.manual_seed(seed)``.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]

    def normal(self, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        gen = self._generator(like.device)
        return torch.randn(tuple(shape), generator=gen, device=like.device, dtype=like.dtype)

    def uniform(self, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        gen = self._generator(like.device)
        return torch.rand(tuple(shape), generator=gen, device=like.device, dtype=like.dtype)


class ZeroNoise:
    """All draws are zeros: prior mean, zero harmonic phases, no excitation noise."""

    def normal(self, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        return torch.zeros(tuple(shape), device=like.device, dtype=like.dtype)

    def uniform(self, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        return torch.zeros(tuple(shape), device=like.device, dtype=like.dtype)


class ReplayNoise:
    """Returns recorded draws in order; each request must match the next record's kind and shape.

    Args:
        draws: ``(kind, tensor)`` pairs; kind ``"normal"`` / ``"uniform"`` (upstream's names
            ``torch.randn_like``, ``torch.randn``, ``torch.rand_like``, ``torch.rand`` are accepted).
    """

    KINDS: ClassVar[dict[str, str]] = {
        "normal": "normal",
        "torch.randn_like": "normal",
        "torch.randn": "normal",
        "uniform": "uniform",
        "torch.rand_like": "uniform",
        "torch.rand": "uniform",
    }

    def __init__(self, draws: Sequence[tuple[str, torch.Tensor]]) -> None:
        self._draws = []
        for kind, value in draws:
            if kind not in self.KINDS:
                raise ValueError(f"unknown random draw kind {kind!r}; expected one of {sorted(self.KINDS)}")
            self._draws.append((self.KINDS[kind], value))
        self._next = 0

    @property
    def remaining(self) -> int:
        """How many recorded draws were not asked for (upstream draws one it never uses)."""
        return len(self._draws) - self._next

    def _take(self, kind: str, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        if self._next >= len(self._draws):
            raise ValueError(
                f"replay exhausted: draw {self._next + 1} ({kind} {tuple(shape)}) was not recorded"
            )
        recorded_kind, value = self._draws[self._next]
        if recorded_kind != kind or tuple(value.shape) != tuple(shape):
            raise ValueError(
                f"replay mismatch at draw {self._next + 1}: asked {kind} {tuple(shape)}, "
                f"recorded {recorded_kind} {tuple(value.shape)}"
            )
        self._next += 1
        return value.to(device=like.device, dtype=like.dtype)

    def normal(self, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        return self._take("normal", shape, like)

    def uniform(self, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        return self._take("uniform", shape, like)
