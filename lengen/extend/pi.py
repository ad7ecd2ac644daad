"""``extend=pi``: linear position interpolation (Chen et al. 2023, arXiv 2306.15595; kaiokendev).

Positions are divided by the factor ``s``, i.e. every inverse frequency is (transformers'
``ROPE_INIT_FUNCTIONS["linear"]``): position ``s * p`` gets the trained angle of ``p``.
"""

from __future__ import annotations

import torch

from lengen.extend._rotary import RotaryMethod, default_inv_freq
from lengen.extend.base import register


def inv_freq(dims: int, base: float, factor: float) -> torch.Tensor:
    return default_inv_freq(dims, base) / factor


@register
class PositionInterpolation(RotaryMethod):
    name = "pi"
    uses_factor = True
    summary = "linear position interpolation: positions divided by `factor` (Chen et al. 2023)"

    def inv_freq(self, length: int | None = None) -> torch.Tensor:
        return inv_freq(self.dims, self.base, self.factor)
