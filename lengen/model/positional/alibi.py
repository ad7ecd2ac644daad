"""ALiBi (Press et al., 2022): a fixed, head-specific linear penalty on query-key distance."""

from __future__ import annotations

import math

import torch

from lengen.model.positional.base import PositionalEncoding, register


def _power_of_two_slopes(n: int) -> list[float]:
    start = 2 ** (-(2 ** -(math.log2(n) - 3)))
    return [start * start**i for i in range(n)]


def alibi_slopes(n_heads: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Per-head slopes exactly as the reference implementation builds them.

    For ``n`` a power of two: ``2^(-8i/n)``, ``i = 1..n``. Otherwise the slopes of the closest
    lower power of two ``p``, followed by every other slope of ``2p`` (``[0::2][:n-p]``), so the
    extra heads interleave geometrically between the existing ones.
    """
    if isinstance(n_heads, bool) or not isinstance(n_heads, int) or n_heads < 1:
        raise ValueError(f"ALiBi needs n_heads >= 1, got {n_heads!r}")

    def slopes(n: int) -> list[float]:
        if math.log2(n).is_integer():
            return _power_of_two_slopes(n)
        p = 2 ** math.floor(math.log2(n))
        return _power_of_two_slopes(p) + slopes(2 * p)[0::2][: n - p]

    return torch.tensor(slopes(n_heads), dtype=dtype)


@register
class ALiBi(PositionalEncoding):
    name = "alibi"
    """``bias = -slope_h * (q_pos - k_pos)``: zero on the diagonal, more negative with distance."""

    relative = True

    def __init__(self, *, d_model: int, n_heads: int, n_layers: int, **unknown) -> None:
        super().__init__(d_model=d_model, n_heads=n_heads, n_layers=n_layers)
        if unknown:
            raise ValueError(
                f"pe=alibi got unknown option(s) {', '.join(sorted(unknown))}; it takes no options"
            )
        # not learned, and derived from n_heads alone: keep it out of checkpoints
        self.register_buffer("slopes", alibi_slopes(n_heads, torch.get_default_dtype()), persistent=False)

    def bias(self, q_pos: torch.Tensor, k_pos: torch.Tensor, layer: int = 0) -> torch.Tensor:
        dtype = torch.promote_types(self.slopes.dtype, torch.float32)  # distances reach the thousands
        distance = (q_pos[:, None, :, None] - k_pos[:, None, None, :]).to(dtype)
        return distance * -self.slopes.to(dtype)[None, :, None, None]

    def distance_bias(self, distance: torch.Tensor, layer: int = 0) -> torch.Tensor:
        """``[H, D]`` for ``distance = q_pos - k_pos`` (the same arithmetic as ``bias``)."""
        dtype = torch.promote_types(self.slopes.dtype, torch.float32)
        return distance.to(dtype)[None, :] * -self.slopes.to(dtype)[:, None]
