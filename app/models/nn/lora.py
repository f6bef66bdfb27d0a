"""Low-rank adapters (LoRA) on ``nn.Linear`` layers, as peft's ``LoraConfig`` builds them.

``y = W x + b + (alpha / r) * B (A x)`` with ``A`` ``[r, in]`` and ``B`` ``[out, r]``; only A and B
train. Initialisation equals peft's ``init_lora_weights=True``: A Kaiming-uniform (``a = sqrt(5)``,
torch's Linear default), B zero, so a fresh adapter leaves the layer's output unchanged. No
dropout on the adapter input (peft's default ``lora_dropout=0``).

Names: an adapted layer becomes a :class:`LoRALinear` holding the original layer as
``base_layer`` and the two matrices as ``lora_A`` / ``lora_B`` (peft's names less its
``.default`` adapter level), so ``<layer>.lora_A.weight`` here is peft's
``<layer>.lora_A.default.weight``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

# peft initialises A as torch's Linear does: kaiming_uniform_ with a = sqrt(5).
LORA_A_INIT_SLOPE = math.sqrt(5)


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable rank-``r`` update.

    Args:
        base: the layer to adapt (its parameters are frozen here).
        rank: r, the inner width of the update.
        alpha: scale numerator; the update is multiplied by ``alpha / rank``.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {rank}")
        self.base_layer = base
        self.base_layer.requires_grad_(False)
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Linear(base.in_features, rank, bias=False, **factory)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False, **factory)
        if base.weight.device.type != "meta":
            nn.init.kaiming_uniform_(self.lora_A.weight, a=LORA_A_INIT_SLOPE)
            nn.init.zeros_(self.lora_B.weight)
        self.rank = rank
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., out)"""
        return self.base_layer(x) + self.lora_B(self.lora_A(x)) * self.scale

    def merged_weight(self) -> torch.Tensor:
        """(out, in) ``W + scale * B @ A`` in float32: the weight of the equivalent plain layer."""
        update = self.lora_B.weight.float() @ self.lora_A.weight.float()
        return self.base_layer.weight.float() + self.scale * update


def _matches(name: str, targets: Sequence[str]) -> bool:
    """peft's rule for ``target_modules``: the module name is a target or ends with ``.<target>``."""
    return any(name == t or name.endswith(f".{t}") for t in targets)


def add_lora(root: nn.Module, targets: Sequence[str], rank: int, alpha: float) -> list[str]:
    """Wrap every ``nn.Linear`` of ``root`` named by ``targets`` in a :class:`LoRALinear`.

    As peft's ``get_peft_model``, every other parameter of ``root`` is frozen; only the adapters
    train. Returns the adapted layers' names (relative to ``root``), in module order.

    Raises:
        ValueError: no layer matches (a wrong target list, or adapters already added).
    """
    root.requires_grad_(False)
    found = [
        name
        for name, module in root.named_modules()
        if isinstance(module, nn.Linear) and _matches(name, targets)
    ]
    if not found:
        raise ValueError(f"no nn.Linear in the module is named by the LoRA targets {list(targets)}")
    for name in found:
        parent_name, _, child = name.rpartition(".")
        parent = root.get_submodule(parent_name) if parent_name else root
        layer = parent.get_submodule(child)
        adapted = LoRALinear(layer, rank, alpha)
        if isinstance(parent, (nn.ModuleList, nn.Sequential)):
            parent[int(child)] = adapted
        else:
            setattr(parent, child, adapted)
    return found


def lora_layers(root: nn.Module) -> dict[str, LoRALinear]:
    """The :class:`LoRALinear` layers of ``root`` by name, in module order."""
    return {name: m for name, m in root.named_modules() if isinstance(m, LoRALinear)}
