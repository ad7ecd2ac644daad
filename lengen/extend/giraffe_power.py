"""``extend=giraffe_power``: Giraffe's power-scaled basis (Pal et al. 2023, arXiv 2308.10882;
abacusai/Long-Context ``python/models/interpolate.py``).

``inv_i = inv_i / s * (1 - i / (d/2))^k`` (the division only when ``s = factor > 1``; null = 1):
low frequencies are stretched more than high ones, the highest is kept.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from lengen.extend._rotary import RotaryMethod, default_inv_freq
from lengen.extend.base import register


def inv_freq(dims: int, base: float, factor: float, power: float) -> torch.Tensor:
    freq = default_inv_freq(dims, base)
    if factor > 1:
        freq = freq / factor
    if power > 0:
        freq = freq * (1.0 - torch.arange(len(freq), dtype=torch.float64) / len(freq)) ** power
    return freq


@register
class GiraffePower(RotaryMethod):
    name = "giraffe_power"
    uses_factor = True
    default_factor = 1.0
    OPTIONS: ClassVar[dict[str, Any]] = {"power": 0.5}
    summary = ("Giraffe's power basis `inv_i * (1 - 2i/d)^power` (0.5), after an optional linear `factor` "
               "(Pal et al. 2023)")

    def validate(self) -> None:
        self.number("power", minimum=0, strict=False)

    def inv_freq(self, length: int | None = None) -> torch.Tensor:
        return inv_freq(self.dims, self.base, self.factor, float(self.opts["power"]))

    def resolved(self) -> dict:
        return {"power": self.opts["power"]}
