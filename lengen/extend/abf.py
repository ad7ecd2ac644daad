"""``extend=abf``: adjusted base frequency (Xiong et al. 2023, "Effective Long-Context Scaling of
Foundation Models", arXiv 2309.16039): a larger rotary base, here without the continued training
the paper pairs it with. ``factor`` is ignored.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from lengen.extend._rotary import RotaryMethod, default_inv_freq
from lengen.extend.base import register


@register
class AdjustedBaseFrequency(RotaryMethod):
    name = "abf"
    OPTIONS: ClassVar[dict[str, Any]] = {"base": 500000.0}
    summary = "adjusted base frequency: the rotary base becomes `base` (500000) (Xiong et al. 2023)"

    def validate(self) -> None:
        self.number("base", minimum=1)

    def inv_freq(self, length: int | None = None) -> torch.Tensor:
        return default_inv_freq(self.dims, float(self.opts["base"]))

    def resolved(self) -> dict:
        return {"base": float(self.opts["base"])}
