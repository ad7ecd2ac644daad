"""``extend=lm_infinite``: LM-Infinite's Λ-shaped attention (Han et al. 2023, arXiv 2308.16137;
Glaciohound/LM-Infinite ``models/llama.py``, ``models/lambda_attention.py``).

Each query sees the first ``n_global`` tokens and the last ``window`` tokens (default: the
training length); a global token farther than the window is seen at the fixed distance
``distance`` (default: the largest distance seen in training), as the reference rotates the
query to ``limit_distance`` and leaves those keys unrotated. Sequences no longer than the window
are unchanged. ``factor`` is ignored.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from lengen.extend.base import RELATIVE, Extension, register
from lengen.model.attention import Band


@register
class LMInfinite(Extension):
    name = "lm_infinite"
    applies_to = RELATIVE
    OPTIONS: ClassVar[dict[str, Any]] = {"n_global": 10, "window": None, "distance": None}
    summary = ("Λ-shaped mask: the first `n_global` (10) and the last `window` tokens (default: training "
               "length), farther distances capped (Han et al. 2023)")

    def validate(self) -> None:
        self.number("n_global", minimum=0, integer=True, strict=False)
        self.number("window", minimum=0, integer=True)
        self.number("distance", minimum=0, integer=True, strict=False)

    @property
    def window(self) -> int:
        return int(self.opts["window"] or self.original_length)

    @property
    def distance(self) -> int:
        given = self.opts["distance"]
        return int(given) if given is not None else self.original_length - 1

    def setup(self, model) -> None:
        distance = self.distance
        self._band = Band(self.window, "global", int(self.opts["n_global"]),
                          far_q=lambda q_pos: torch.full_like(q_pos, distance),
                          far_k=torch.zeros_like)
        model.extension = self

    def band(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> Band:
        return self._band

    def resolved(self) -> dict:
        return {"n_global": int(self.opts["n_global"]), "window": self.window, "distance": self.distance}
