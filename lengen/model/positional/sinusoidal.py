"""Fixed sin/cos absolute positions (Vaswani et al., 2017), computed from the position ids.

Nothing is tabulated, so any position id works (shifted, randomized, beyond training). The
encoding is added to the token embeddings unscaled (no ``sqrt(d_model)`` factor), as in the
length-generalization studies this project reproduces.
"""

from __future__ import annotations

import math

import torch

from lengen.model.positional.base import PositionalEncoding, register


@register
class Sinusoidal(PositionalEncoding):
    name = "sinusoidal"
    def __init__(
        self, *, d_model: int, n_heads: int, n_layers: int, base: float = 10000.0, **unknown
    ) -> None:
        super().__init__(d_model=d_model, n_heads=n_heads, n_layers=n_layers)
        if unknown:
            raise ValueError(f"pe=sinusoidal got unknown option(s) {', '.join(sorted(unknown))}; valid: base")
        if isinstance(base, bool) or not isinstance(base, (int, float)) or not base > 1:
            raise ValueError(f"pe.base={base!r} must be a number > 1")
        self.base = float(base)

    def encoding(self, pos: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``[..., L, d_model]``: ``PE[p, 2i] = sin(p / base^(2i/d))``, ``PE[p, 2i+1] = cos(...)``."""
        half = (self.d_model + 1) // 2
        cdtype = torch.promote_types(dtype, torch.float32)
        inv_freq = torch.exp(
            torch.arange(half, device=pos.device, dtype=cdtype) * (-2.0 * math.log(self.base) / self.d_model)
        )
        angles = pos[..., None].to(cdtype) * inv_freq
        pe = torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)
        return pe[..., : self.d_model]

    def embed(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return x + self.encoding(pos, x.dtype).to(x.dtype)
