"""NoPE: no positional information at all; the causal mask alone lets the model infer order."""

from __future__ import annotations

from lengen.model.positional.base import PositionalEncoding, register


@register
class NoPE(PositionalEncoding):
    name = "nope"
    relative = True
