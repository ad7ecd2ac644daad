"""``extend=giraffe_truncate``: Giraffe's truncated basis (Pal et al. 2023, arXiv 2308.10882;
abacusai/Long-Context ``python/models/interpolate.py``, ``truncate_frequency``).

With ``t = 2 pi / truncate``: frequencies in ``[t / 8, t)`` become ``t / 16`` and those below
``t / 8`` become 0 (no rotation: equally visible at every distance), after an optional linear ``factor``.
``truncate`` defaults to the training length: only frequencies that turned at least once during
training keep their value.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from lengen.extend._rotary import RotaryMethod, default_inv_freq
from lengen.extend.base import register


def inv_freq(dims: int, base: float, factor: float, truncate: float) -> torch.Tensor:
    freq = default_inv_freq(dims, base)
    if factor > 1:
        freq = freq / factor
    cutoff = 2 * math.pi / truncate
    out = torch.where(freq < cutoff, torch.full_like(freq, 2 * math.pi / (truncate * 16)), freq)
    return torch.where(freq < cutoff / 8, torch.zeros_like(freq), out)  # both tests on the input, as the reference


@register
class GiraffeTruncate(RotaryMethod):
    name = "giraffe_truncate"
    uses_factor = True
    default_factor = 1.0
    OPTIONS: ClassVar[dict[str, Any]] = {"truncate": None}
    summary = ("Giraffe's truncated basis: frequencies slower than one turn per `truncate` positions (default: "
               "the training length) set to a floor or 0 (Pal et al. 2023)")

    def validate(self) -> None:
        self.number("truncate", minimum=0)

    @property
    def truncate(self) -> float:
        given = self.opts["truncate"]
        return float(given if given is not None else self.original_length)

    def inv_freq(self, length: int | None = None) -> torch.Tensor:
        return inv_freq(self.dims, self.base, self.factor, self.truncate)

    def resolved(self) -> dict:
        return {"truncate": self.truncate}
