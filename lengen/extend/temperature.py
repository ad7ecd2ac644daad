"""``extend=temperature``: a softmax temperature, for every PE.

Default: length-scaled attention, the query at position ``p`` multiplies its logits by
``max(1, ln(p + 1) / ln(L_train))`` (Chiang & Cholak 2022; used for NoPE by Wang et al. 2024,
"Length Generalization of Causal Transformers without Position Encoding"; Self-Extend's
``scale_base``): nothing changes within the training length. With ``temperature=T`` every logit
is divided by ``T`` instead. Only the query-key logits scale; a PE bias is added as trained.
``factor`` is ignored.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from lengen.extend.base import Extension, register


def log_length_scale(q_pos: torch.Tensor, original_length: int) -> torch.Tensor:
    """``[B|1, 1, L, 1]`` multipliers ``max(1, ln(p + 1) / ln(L_train))`` (float32)."""
    scale = torch.log(q_pos.to(torch.float32) + 1) / math.log(original_length)
    return scale.clamp(min=1.0)[:, None, :, None]


@register
class Temperature(Extension):
    name = "temperature"
    OPTIONS: ClassVar[dict[str, Any]] = {"temperature": None}
    summary = ("softmax scaled by `log(p+1)/log(L_train)` beyond the training length, or by a fixed "
               "`1/temperature` (Wang et al. 2024)")

    def validate(self) -> None:
        self.number("temperature", minimum=0)

    def setup(self, model) -> None:
        model.extension = self

    def logit_scale(self, q_pos: torch.Tensor) -> float | torch.Tensor:
        t = self.opts["temperature"]
        if t is not None:
            return 1.0 / float(t)
        return log_length_scale(q_pos, self.original_length)

    def resolved(self) -> dict:
        t = self.opts["temperature"]
        return {"temperature": float(t)} if t is not None else {"schedule": "log_length"}
