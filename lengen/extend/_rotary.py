"""What the rotary methods share: the trained inverse frequencies and how a method replaces them."""

from __future__ import annotations

import functools

import torch

from lengen.extend.base import ROTARY, Extension


def default_inv_freq(dims: int, base: float) -> torch.Tensor:
    """``base^(-2i/d)`` for ``i < d/2`` (float64): the frequencies the run was trained with."""
    return float(base) ** -(torch.arange(0, dims, 2, dtype=torch.float64) / dims)


class RotaryMethod(Extension):
    """A method that replaces rotary inverse frequencies (and may scale the logits)."""

    applies_to = ROTARY
    #: True when the frequencies depend on the length of the forward (dynamic NTK).
    dynamic = False

    def setup(self, model) -> None:
        self.dims, self.base = int(model.pe.rot), float(model.pe.base)
        if self.dynamic:
            fn = functools.partial(self.inv_freq)
        else:  # computed once, not per forward
            fn = functools.partial(lambda frequencies, length: frequencies, self.inv_freq())
        fn.dynamic = self.dynamic
        model.pe.set_frequencies(fn)
        if self.attention_factor() != 1.0:
            model.extension = self

    def inv_freq(self, length: int | None = None) -> torch.Tensor:
        """The ``dims / 2`` inverse frequencies (``length``: positions of the forward, if dynamic)."""
        raise NotImplementedError

    def attention_factor(self) -> float:
        """Multiplier of queries and keys (so the logits scale by its square); 1 = none."""
        return 1.0

    def logit_scale(self, q_pos: torch.Tensor) -> float:
        return self.attention_factor() ** 2
