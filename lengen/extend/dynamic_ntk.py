"""``extend=dynamic_ntk``: NTK scaling with the factor recomputed from the current length
(emozilla 2023; transformers' ``ROPE_INIT_FUNCTIONS["dynamic"]``).

For a forward whose largest position is ``L - 1``: ``s' = s * L / L_train - (s - 1)`` and
``base' = base * s'^(d / (d - 2))``, only when ``L > L_train``; within the training length the
trained frequencies are used unchanged. Queries of one forward share ``L`` (a batch's longest).
"""

from __future__ import annotations

import torch

from lengen.extend._rotary import RotaryMethod, default_inv_freq
from lengen.extend.base import register
from lengen.extend.ntk import scaled_base


def dynamic_factor(factor: float, length: int, original_length: int) -> float:
    length = max(length, original_length)
    return factor * length / original_length - (factor - 1)


def inv_freq(dims: int, base: float, factor: float, length: int, original_length: int) -> torch.Tensor:
    if length <= original_length:
        return default_inv_freq(dims, base)
    return default_inv_freq(dims, scaled_base(dims, base, dynamic_factor(factor, length, original_length)))


@register
class DynamicNTK(RotaryMethod):
    name = "dynamic_ntk"
    uses_factor = True
    dynamic = True
    summary = ("NTK scaling with `s' = s*L/L_train - (s-1)` from the current length `L`, only past the "
               "training length (emozilla 2023)")

    def inv_freq(self, length: int | None = None) -> torch.Tensor:
        return inv_freq(self.dims, self.base, self.factor, int(length or 0), self.original_length)
