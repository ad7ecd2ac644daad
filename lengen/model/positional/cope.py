"""CoPE, contextual position encoding (Golovneva et al. 2024): positions that count what matters.

Each query decides which keys count as a step: ``g_ij = σ(q_i·k_j·scale)`` over the keys it sees,
and the position of key ``j`` relative to query ``i`` is the number of counted keys between them,
``p_ij = Σ_{t=j..i} g_it`` clamped to ``p_max``. The logits get ``q_i·e[p_ij]``, with ``e`` a
learned table of ``p_max + 1`` vectors (per layer, shared by the heads, as in x-transformers;
zero-initialised as in the paper's code) interpolated linearly between ``⌊p⌋`` and ``⌈p⌉``.

Position ids are never read, so the encoding is shift invariant. The gates need ``q·kᵀ`` of every
query block, so the model runs the explicit bias path (never the fused causal kernel) and hands
each block to :meth:`CoPE.contextual_bias`; the block size keeps every temporary at
``[B, H, block, Lk]``.
"""

from __future__ import annotations

import torch
from torch import nn

from lengen.model.positional.base import PositionalEncoding, register


@register
class CoPE(PositionalEncoding):
    name = "cope"
    relative = True

    def __init__(
        self, *, d_model: int, n_heads: int, n_layers: int, p_max: int = 16, shared: bool = False, **unknown
    ) -> None:
        super().__init__(d_model=d_model, n_heads=n_heads, n_layers=n_layers)
        if unknown:
            raise ValueError(f"pe=cope got unknown option(s) {', '.join(sorted(unknown))}; valid: p_max, shared")
        if isinstance(p_max, bool) or not isinstance(p_max, int) or p_max < 1:
            raise ValueError(f"pe.p_max={p_max!r} must be an integer >= 1")
        if not isinstance(shared, bool):
            raise ValueError(f"pe.shared={shared!r} must be true or false")
        self.p_max, self.shared = p_max, shared
        head_dim = d_model // n_heads
        self.tables = nn.ParameterList(
            nn.Parameter(torch.zeros(p_max + 1, head_dim)) for _ in range(1 if shared else n_layers)
        )

    def positions(self, q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor, scale: float | None = None) -> torch.Tensor:
        """``p_ij`` ``[B, H, Lq, Lk]`` (0 where ``mask`` hides a key)."""
        scale = q.shape[-1] ** -0.5 if scale is None else scale
        gates = torch.matmul(q * scale, k.transpose(-1, -2)).add_(mask).sigmoid_()
        if gates.dtype in (torch.float16, torch.bfloat16):  # sums over thousands of keys need fp32
            gates = gates.float()
        # Σ_{t=j..i} as a cumulative sum over the reversed keys: accurate where p is small
        return gates.flip(-1).cumsum(-1).clamp_(max=self.p_max).flip(-1)

    def contextual_bias(
        self, q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor, layer: int = 0, scale: float | None = None
    ) -> torch.Tensor:
        table = self.tables[0 if self.shared else layer].to(q.dtype)
        pos = self.positions(q, k, mask, scale)
        per_position = torch.matmul(q, table.t()).to(pos.dtype)  # q_i·e[n] for every n: [B, H, Lq, p_max + 1]
        weight, idx = pos.frac(), pos.long()  # p >= 0: the fraction above ⌊p⌋, and ⌊p⌋ itself
        low = per_position.gather(-1, idx)
        # autograd keeps each gather's index: only without it may the next index reuse the memory
        nxt = idx.add_(1) if not torch.is_grad_enabled() else idx + 1
        high = per_position.gather(-1, nxt.clamp_(max=self.p_max))
        del idx, nxt
        # low + w·(high - low): the interpolation between ⌊p⌋ and ⌈p⌉ (⌈p⌉ = ⌊p⌋ + 1 unless w = 0)
        return torch.addcmul(low, weight, high.sub_(low)).to(q.dtype)
