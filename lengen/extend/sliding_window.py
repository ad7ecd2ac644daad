"""``extend=sliding_window``: local attention only: each query sees the last ``window`` tokens
(default: the training length; Beltagy et al. 2020, Longformer's local band; Mistral's SWA).
Sequences no longer than the window are unchanged. ``factor`` is ignored.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from lengen.extend.base import RELATIVE, Extension, register
from lengen.model.attention import Band


@register
class SlidingWindow(Extension):
    name = "sliding_window"
    applies_to = RELATIVE
    OPTIONS: ClassVar[dict[str, Any]] = {"window": None}
    summary = "local attention only: the last `window` tokens (default: training length) (Beltagy et al. 2020)"

    def validate(self) -> None:
        self.number("window", minimum=0, integer=True)

    @property
    def window(self) -> int:
        return int(self.opts["window"] or self.original_length)

    def setup(self, model) -> None:
        self._band = Band(self.window)
        model.extension = self

    def band(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> Band:
        return self._band

    def resolved(self) -> dict:
        return {"window": self.window}
