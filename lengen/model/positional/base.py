"""One interface for every positional-encoding (PE) family.

A PE may use any of three hooks, all of which take *explicit* position ids so that shifted or
randomized positions and KV-cache offsets work the same everywhere:

- ``embed(x, pos)``: add position information to the token embeddings (absolute schemes);
- ``rotate(x, pos)``: transform queries and keys per head (rotary and its variants);
- ``bias(q_pos, k_pos, layer)``: an additive attention bias per head (T5, ALiBi, ...).

Shapes: ``x`` is ``[B, L, D]`` for ``embed`` and ``[..., B, H, L, Dh]`` for ``rotate`` (the model
passes queries and keys stacked as ``[2, B, H, L, Dh]``: one call, one pass); position ids are
``[B, L]`` or ``[1, L]`` int64 (a leading 1 broadcasts over the batch); ``bias`` returns
``[B or 1, H, Lq, Lk]`` in the dtype of ``torch.get_default_dtype()`` (the model casts it).
NoPE implements none of them. The model only calls a hook when the class overrides it
(``has_embed`` / ``has_rotate`` / ``has_bias``), so unused hooks cost nothing.
"""

from __future__ import annotations

import torch
from torch import nn

from lengen.registry import Registry


class PositionalEncoding(nn.Module):
    #: the ``+pe=NAME`` choice (and ``conf/pe/<name>.yaml``) of a registered class.
    name: str = ""
    #: True when logits depend on positions only through their differences (relative schemes).
    relative: bool = False
    #: True when ``bias`` is the same for every layer, so the model builds it once per forward.
    shared_bias: bool = True

    def __init__(self, *, d_model: int, n_heads: int, n_layers: int) -> None:
        super().__init__()
        self.d_model, self.n_heads, self.n_layers = d_model, n_heads, n_layers

    # -- hooks (identity / no bias by default) ---------------------------------------------------
    def embed(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return x

    def rotate(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return x

    def bias(self, q_pos: torch.Tensor, k_pos: torch.Tensor, layer: int = 0) -> torch.Tensor | None:
        return None

    def distance_bias(self, distance: torch.Tensor, layer: int = 0) -> torch.Tensor | None:
        """Optional fast path of ``bias``: ``[H, D]`` for the 1-D ``distance = q_pos - k_pos``.

        A PE whose bias depends on positions only through their difference implements it (T5,
        ALiBi); long contexts then build one small table per forward (per layer if not shared)
        and gather each query block from it, instead of recomputing the bias block by block.
        It must equal ``bias`` exactly.
        """
        return None

    # -- what the model asks -----------------------------------------------------------------------
    @property
    def has_embed(self) -> bool:
        return type(self).embed is not PositionalEncoding.embed

    @property
    def has_rotate(self) -> bool:
        return type(self).rotate is not PositionalEncoding.rotate

    @property
    def has_bias(self) -> bool:
        return type(self).bias is not PositionalEncoding.bias

    @property
    def has_distance_bias(self) -> bool:
        return type(self).distance_bias is not PositionalEncoding.distance_bias

    def max_positions(self) -> int | None:
        """Largest number of positions this PE can serve (None = unbounded)."""
        return None

    def check_positions(self, n_positions: int) -> None:
        """Raise ``ValueError`` (one line) if ``n_positions`` exceed what the PE can serve."""
        limit = self.max_positions()
        if limit is not None and n_positions > limit:
            raise ValueError(
                f"{type(self).__name__} serves at most {limit} positions but {n_positions} are needed"
            )


PE_REGISTRY: Registry[type[PositionalEncoding]] = Registry("positional encoding", "lengen.model.positional")
register = PE_REGISTRY.register
