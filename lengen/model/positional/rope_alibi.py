"""RoPE and ALiBi together: rotated queries and keys plus a fixed linear distance penalty per head.

The rotation is :class:`Rotary`'s (so ``base``, ``fraction`` and the evaluation-time frequency
methods apply unchanged) and the bias is :class:`ALiBi`'s, with its slopes either ``geometric``
(ALiBi's own, including its rule for head counts that are not powers of two) or ``harmonic``
(``1/h`` for head ``h = 1..H``: a gentler, slowly decaying spread of penalties).
"""

from __future__ import annotations

import torch

from lengen.model.positional.alibi import ALiBi
from lengen.model.positional.base import register
from lengen.model.positional.rope import Rotary

SLOPES = ("geometric", "harmonic")


def harmonic_slopes(n_heads: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``[1/1, 1/2, ..., 1/H]``."""
    return 1.0 / torch.arange(1, n_heads + 1, dtype=dtype)


@register
class RopeAlibi(Rotary):
    name = "rope_alibi"
    relative = True

    def __init__(
        self,
        *,
        d_model: int,
        n_heads: int,
        n_layers: int,
        base: float = 10000.0,
        fraction: float = 1.0,
        slopes: str = "geometric",
        **unknown,
    ) -> None:
        if unknown:
            raise ValueError(
                f"pe=rope_alibi got unknown option(s) {', '.join(sorted(unknown))}; valid: base, fraction, slopes"
            )
        if slopes not in SLOPES:
            raise ValueError(f"pe.slopes={slopes!r} must be one of {', '.join(SLOPES)}")
        super().__init__(d_model=d_model, n_heads=n_heads, n_layers=n_layers, base=base, fraction=fraction)
        self.slope_kind = slopes
        self.alibi = ALiBi(d_model=d_model, n_heads=n_heads, n_layers=n_layers)
        if slopes == "harmonic":  # replaces ALiBi's (non-persistent) buffer: checkpoints stay the same
            self.alibi.slopes = harmonic_slopes(n_heads, self.alibi.slopes.dtype)

    def bias(self, q_pos: torch.Tensor, k_pos: torch.Tensor, layer: int = 0) -> torch.Tensor:
        return self.alibi.bias(q_pos, k_pos, layer)

    def distance_bias(self, distance: torch.Tensor, layer: int = 0) -> torch.Tensor:
        return self.alibi.distance_bias(distance, layer)
