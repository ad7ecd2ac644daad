"""KERPLE (Chi et al., 2022): a learned conditionally positive definite kernel of the distance as bias.

Two kernels, per head, of ``r = |q_pos - k_pos|``: ``log``: ``-r1 * log(1 + r2 * r)`` and
``power``: ``-r1 * r**r2`` with ``r2`` in ``(0, 2]``. Both are zero on the diagonal and fall with
distance, so the bias is a pure function of the distance (``distance_bias`` serves long contexts).
Both hooks evaluate the same formula elementwise (no host read of the largest distance); ``pow``
is not correctly rounded, so vectorised and scalar loops may give values one ulp apart.

As in the reference (chijames/KERPLE), ``r1, r2`` start uniform (log: ``r1 ~ U(0, 2)``,
``r2 ~ U(0, 1)``; power: ``r1 ~ U(0, 1)``, ``r2 ~ U(0, 2)``), are kept >= 0.01 (and ``r2 <= 2`` for
power) and each layer learns its own (``per_layer=false`` shares one set). The reference projects
the stored values after each step; here the forward clamps and the gradient passes the clamp
unchanged (straight-through), which gives the same values without mutating parameters inside a
forward, and a parameter at its bound can still leave it.
"""

from __future__ import annotations

import torch
from torch import nn

from lengen.model.positional.base import PositionalEncoding, register

VARIANTS = ("log", "power")
EPS = 0.01  # smallest r1, r2 (the reference's eps)


def _clamp(p: torch.Tensor, high: float | None = None) -> torch.Tensor:
    """``p`` clamped to ``[EPS, high]`` in value, with the identity as gradient."""
    return p + (p.clamp(EPS, high) - p).detach()


@register
class Kerple(PositionalEncoding):
    name = "kerple"
    relative = True

    def __init__(
        self, *, d_model: int, n_heads: int, n_layers: int, variant: str = "log", per_layer: bool = True, **unknown
    ) -> None:
        super().__init__(d_model=d_model, n_heads=n_heads, n_layers=n_layers)
        if unknown:
            raise ValueError(
                f"pe=kerple got unknown option(s) {', '.join(sorted(unknown))}; valid: variant, per_layer"
            )
        if variant not in VARIANTS:
            raise ValueError(f"pe.variant={variant!r} must be one of {', '.join(VARIANTS)}")
        if not isinstance(per_layer, bool):
            raise ValueError(f"pe.per_layer={per_layer!r} must be true or false")
        self.variant, self.per_layer = variant, per_layer
        self.shared_bias = not per_layer
        n = n_layers if per_layer else 1
        r1_scale, r2_scale = (2.0, 1.0) if variant == "log" else (1.0, 2.0)
        self.r1 = nn.Parameter(torch.rand(n, n_heads) * r1_scale)
        self.r2 = nn.Parameter(torch.rand(n, n_heads) * r2_scale)

    def kernel(self, r: torch.Tensor, layer: int) -> torch.Tensor:
        """``[H, *r.shape]``: the bias of non-negative distances ``r`` (computed in >= fp32)."""
        i = layer if self.per_layer else 0
        dtype = torch.promote_types(self.r1.dtype, torch.float32)
        shape = (-1,) + (1,) * r.dim()
        r1 = _clamp(self.r1[i]).to(dtype).view(shape)
        r2 = _clamp(self.r2[i], 2.0 if self.variant == "power" else None).to(dtype).view(shape)
        r = r.to(dtype)[None]
        if self.variant == "log":
            return -r1 * torch.log1p(r2 * r)
        return -r1 * r.pow(r2)

    def bias(self, q_pos: torch.Tensor, k_pos: torch.Tensor, layer: int = 0) -> torch.Tensor:
        """``[B|1, H, Lq, Lk]``; keys after the query (masked anyway) get the bias of ``|distance|``."""
        distance = (q_pos[:, :, None] - k_pos[:, None, :]).abs()
        return self.kernel(distance, layer).movedim(0, 1)

    def distance_bias(self, distance: torch.Tensor, layer: int = 0) -> torch.Tensor:
        """``[H, D]`` for ``distance = q_pos - k_pos`` (the same arithmetic as ``bias``)."""
        return self.kernel(distance.abs(), layer)
