"""T5 relative attention bias: a learned scalar per (head, log-spaced distance bucket).

Kazemnejad et al. (2023) use the one-directional (causal) variant with 32 buckets and max
distance 128, one table computed once and shared by every layer (the T5 default only has it in
the first layer and reuses it); ``shared=False`` gives each layer its own table instead.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lengen.model.positional.base import PositionalEncoding, register


def relative_position_bucket(
    relative_position: torch.Tensor, bidirectional: bool, num_buckets: int, max_distance: int
) -> torch.Tensor:
    """Bucket of ``relative_position = memory_position - query_position``, exactly as T5 does.

    Small distances get one bucket each; larger ones share log-spaced buckets up to
    ``max_distance``, beyond which everything falls in the last bucket. The arithmetic (fp32 log,
    truncation towards zero) is kept identical to T5 so that bucket boundaries match bit for bit.
    """
    rel = relative_position.long()
    buckets = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        buckets = (rel > 0).long() * num_buckets
        n = rel.abs()
    else:
        n = (-rel).clamp(min=0)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    # clamp only avoids log(0) on entries the ``where`` below discards; large values are unchanged
    scaled = torch.log(n.clamp(min=max_exact).float() / max_exact) / math.log(max_distance / max_exact)
    large = (max_exact + (scaled * (num_buckets - max_exact)).long()).clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, n, large)


@register
class T5RelativeBias(PositionalEncoding):
    name = "t5"
    relative = True

    def __init__(
        self,
        *,
        d_model: int,
        n_heads: int,
        n_layers: int,
        num_buckets: int = 32,
        max_distance: int = 128,
        bidirectional: bool = False,
        shared: bool = True,
        **unknown,
    ) -> None:
        super().__init__(d_model=d_model, n_heads=n_heads, n_layers=n_layers)
        if unknown:
            raise ValueError(
                f"pe=t5 got unknown option(s) {', '.join(sorted(unknown))}; "
                "valid: num_buckets, max_distance, bidirectional, shared"
            )
        for key, value in (("bidirectional", bidirectional), ("shared", shared)):
            if not isinstance(value, bool):
                raise ValueError(f"pe.{key}={value!r} must be true or false")
        least = 4 if bidirectional else 2
        if isinstance(num_buckets, bool) or not isinstance(num_buckets, int) or num_buckets < least:
            raise ValueError(
                f"pe.num_buckets={num_buckets!r} must be an integer >= {least}"
                f"{' (bidirectional halves it per direction)' if bidirectional else ''}"
            )
        max_exact = (num_buckets // 2 if bidirectional else num_buckets) // 2
        if isinstance(max_distance, bool) or not isinstance(max_distance, int) or max_distance <= max_exact:
            raise ValueError(
                f"pe.max_distance={max_distance!r} must be an integer > {max_exact} "
                f"(the exact-bucket range for num_buckets={num_buckets})"
            )
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.bidirectional, self.shared = bidirectional, shared
        self.shared_bias = shared
        self.tables = nn.ModuleList(
            nn.Embedding(num_buckets, n_heads) for _ in range(1 if shared else n_layers)
        )

    def bias(self, q_pos: torch.Tensor, k_pos: torch.Tensor, layer: int = 0) -> torch.Tensor:
        """``[B|1, H, Lq, Lk]``: one bucket grid by broadcasting, one table lookup, no copies."""
        rel = k_pos[:, None, :] - q_pos[:, :, None]
        buckets = relative_position_bucket(rel, self.bidirectional, self.num_buckets, self.max_distance)
        weight = self.tables[0 if self.shared else layer].weight
        # indexing the transposed table yields [H, B, Lq, Lk]; moving H next to B is free for B=1
        return weight.t()[:, buckets].movedim(0, 1)

    def distance_bias(self, distance: torch.Tensor, layer: int = 0) -> torch.Tensor:
        """``[H, D]`` for ``distance = q_pos - k_pos`` (the same buckets and table as ``bias``)."""
        buckets = relative_position_bucket(-distance, self.bidirectional, self.num_buckets, self.max_distance)
        return self.tables[0 if self.shared else layer].weight.t()[:, buckets]
