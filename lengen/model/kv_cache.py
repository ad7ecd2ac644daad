"""Preallocated key/value cache for greedy generation (one buffer per layer).

It also remembers the position ids of cached keys, which attention-bias PEs need.
"""

from __future__ import annotations

import torch


class KVCache:
    def __init__(self, n_layers: int, batch: int, n_heads: int, max_len: int, head_dim: int, *, like: torch.Tensor):
        shape = (batch, n_heads, max_len, head_dim)
        self.k = [like.new_empty(shape) for _ in range(n_layers)]
        self.v = [like.new_empty(shape) for _ in range(n_layers)]
        self._len = [0] * n_layers
        self._pos: torch.Tensor | None = None
        self.max_len = max_len
        #: what a PE that reads token ids (Abacus) needs to continue these rows (``token_embed``)
        self.pe_state = None

    def length(self, layer: int = 0) -> int:
        return self._len[layer]

    def positions(self) -> torch.Tensor:
        assert self._pos is not None
        return self._pos

    def remember_positions(self, pos: torch.Tensor) -> None:
        self._pos = pos if self._pos is None else torch.cat([self._pos, pos], dim=-1)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self._len[layer], self._len[layer] + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions; {end} requested")
        self.k[layer][:, :, start:end] = k.to(self.k[layer].dtype)
        self.v[layer][:, :, start:end] = v.to(self.v[layer].dtype)
        self._len[layer] = end
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]
