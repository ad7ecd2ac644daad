"""``extend=ntk``: NTK-aware base scaling (bloc97, 2023; YaRN paper, arXiv 2309.00071, section 3.1).

``base' = base * s^(d / (d - 2))`` with ``d`` the rotated dims: the highest frequency is kept and
the lowest is interpolated by exactly ``s``.
"""

from __future__ import annotations

import torch

from lengen.errors import ConfigError
from lengen.extend._rotary import RotaryMethod, default_inv_freq
from lengen.extend.base import register


def scaled_base(dims: int, base: float, factor: float) -> float:
    if dims <= 2:
        raise ConfigError(f"NTK scaling needs more than 2 rotated dims (this run rotates {dims})")
    return base * factor ** (dims / (dims - 2))


def inv_freq(dims: int, base: float, factor: float) -> torch.Tensor:
    return default_inv_freq(dims, scaled_base(dims, base, factor))


@register
class NTKScaling(RotaryMethod):
    name = "ntk"
    uses_factor = True
    summary = "NTK-aware base scaling: `base * factor^(d/(d-2))` (bloc97 2023; Peng et al. 2023)"

    def inv_freq(self, length: int | None = None) -> torch.Tensor:
        return inv_freq(self.dims, self.base, self.factor)

    def resolved(self) -> dict:
        return {"base": scaled_base(self.dims, self.base, self.factor)}
