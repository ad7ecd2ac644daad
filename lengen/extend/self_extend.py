"""``extend=self_extend``: Self-Extend (Jin et al. 2024, arXiv 2401.01325; datamllab/LongLM).

Keys within ``window`` of a query keep their positions; farther ones are grouped: the query sits
at ``i // G + W - W // G`` and the key at ``j // G`` (``G = group``). ``group`` defaults to the
factor (else 4), ``window`` to a quarter of the training length (LongLM's 1024 of 4096); the
reach is about ``G * (L_train - W) + W``. Sequences no longer than the window are unchanged.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from lengen.errors import ConfigError
from lengen.extend.base import RELATIVE, Extension, register
from lengen.model.attention import Band


def grouped_positions(q_pos: torch.Tensor, k_pos: torch.Tensor, group: int, window: int):
    """The far branch's ``(query, key)`` positions of the published formula."""
    return q_pos // group + window - window // group, k_pos // group


@register
class SelfExtend(Extension):
    name = "self_extend"
    applies_to = RELATIVE
    uses_factor = True
    default_factor = 4.0
    OPTIONS: ClassVar[dict[str, Any]] = {"group": None, "window": None}
    summary = ("grouped positions `i//G + W - W//G`, `j//G` beyond a neighbour window `W` (`group`, `window`) "
               "(Jin et al. 2024)")

    def validate(self) -> None:
        self.number("group", minimum=0, integer=True)
        self.number("window", minimum=0, integer=True)
        if self.group < 1:
            raise ConfigError(f"extend.group={self.group} must be >= 1")

    @property
    def group(self) -> int:
        return int(self.opts["group"] or round(self.factor))

    @property
    def factor(self) -> float:  # the group is this method's factor
        g = self.opts.get("group")
        return float(g) if g is not None else super().factor

    @property
    def window(self) -> int:
        return int(self.opts["window"] or max(1, self.original_length // 4))

    def check(self, pe) -> None:
        super().check(pe)
        if not pe.has_rotate and not pe.has_bias:
            raise ConfigError(f"extend={self.name} regroups positions, and pe={pe.name} has none to regroup "
                              f"(it would change nothing)")

    def setup(self, model) -> None:
        g, w = self.group, self.window
        self._band = Band(w, "all", far_q=lambda q: grouped_positions(q, q, g, w)[0],
                          far_k=lambda k: grouped_positions(k, k, g, w)[1])
        model.extension = self

    def band(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> Band:
        return self._band

    def resolved(self) -> dict:
        return {"group": self.group, "window": self.window}
