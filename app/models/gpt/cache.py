"""Preallocated key/value cache for batched autoregressive decoding.

Layout of one decoding batch (``B`` rows, ``S`` = capacity columns)::

    column:  0 ........ off_b ..... off_b+Tx_b ..... P-1 | P  P+1 ...   (P = prefill width)
    row b:   [ left pad ][ text (Tx_b) ][ prompt (Ty_b) ] | generated tokens, one column per step

Every row is right-aligned at the prefill width ``P`` so that all rows append their next token in
the same column; left-padding columns are excluded through ``valid``. Audio positions (for the
sine encoding) restart at 0 after the text, so row ``b``'s next token has audio position
``Ty_b + steps so far`` (``audio_pos``).
"""

from __future__ import annotations

import torch


class KVCache:
    """Keys and values of every layer, written in place; nothing grows during decoding.

    Attributes:
        k, v: ``(n_layer, B_max, n_head, S, head_dim)`` buffers.
        valid: ``(B_max, S)`` bool, True where a column holds a real (non-padding) key.
        audio_pos: ``(B_max,)`` long, audio position of each row's next token.
        length: columns filled so far (prefill width + steps).
        batch: rows in use (``<= B_max``; shrinks when finished rows are dropped).
        padded: True when some row has left padding, so attention needs the ``valid`` mask.
    """

    def __init__(
        self,
        n_layer: int,
        n_head: int,
        head_dim: int,
        batch: int,
        capacity: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if batch < 1 or capacity < 1:
            raise ValueError(f"KVCache needs batch >= 1 and capacity >= 1, got {batch} and {capacity}")
        shape = (n_layer, batch, n_head, capacity, head_dim)
        # Unused columns are never read (attention only looks at [:length]), so no zero fill.
        self.k = torch.empty(shape, device=device, dtype=dtype)
        self.v = torch.empty(shape, device=device, dtype=dtype)
        self.valid = torch.zeros(batch, capacity, device=device, dtype=torch.bool)
        self.audio_pos = torch.zeros(batch, device=device, dtype=torch.long)
        self.length = 0
        self.batch = batch
        self.padded = False
        self._layer_views(batch)

    def _layer_views(self, batch: int) -> None:
        # Per-layer views of the rows in use, (B, n_head, S, head_dim): the decoding step slices
        # them with narrow() instead of indexing the 5-d buffers (Python indexing costs ~us per call).
        self.k_layers = [self.k[i, :batch] for i in range(self.k.shape[0])]
        self.v_layers = [self.v[i, :batch] for i in range(self.v.shape[0])]

    @property
    def capacity(self) -> int:
        return self.k.shape[3]

    @property
    def max_batch(self) -> int:
        return self.k.shape[1]

    def start(self, batch: int, width: int, offsets: list[int], audio_lens: list[int]) -> None:
        """Reset for a new prefill of ``batch`` rows, ``width`` columns, row ``b`` starting at ``offsets[b]``."""
        if batch > self.max_batch:
            raise ValueError(f"KV cache holds {self.max_batch} rows; {batch} were given")
        if width > self.capacity:
            raise ValueError(
                f"prefill needs {width} cache columns but the cache holds {self.capacity}; "
                "allocate a larger cache (capacity = prefill width + new tokens)"
            )
        self.batch = batch
        self._layer_views(batch)
        self.length = width
        self.valid[:batch].fill_(False)
        for b, off in enumerate(offsets):
            self.valid[b, off:width] = True
            # Generated columns of every row are real keys.
            self.valid[b, width:] = True
        self.audio_pos[:batch] = torch.tensor(audio_lens, dtype=torch.long)
        self.padded = any(off > 0 for off in offsets)

    def key_mask(self) -> torch.Tensor | None:
        """Attention mask for one new query per row: ``(B, 1, 1, length + 1)`` bool, or None if unpadded."""
        if not self.padded:
            return None
        return self.valid[: self.batch, None, None, : self.length + 1]

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only ``rows`` (indices into the current batch, ascending), compacting them to the front."""
        n = int(rows.numel())
        if n == self.batch:
            return
        cols = self.length
        self.k[:, :n, :, :cols] = self.k[:, rows, :, :cols]
        self.v[:, :n, :, :cols] = self.v[:, rows, :, :cols]
        self.valid[:n] = self.valid[rows]
        self.audio_pos[:n] = self.audio_pos[rows]
        self.batch = n
        self._layer_views(n)
        self.padded = bool((~self.valid[:n, :cols]).any())
