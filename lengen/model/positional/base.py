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

Two further hooks serve encodings that read more than position ids:

- ``contextual_bias(q, k, mask, layer, scale)``: additive logits computed from the queries and
  keys themselves (CoPE), per block of queries against all keys it may see (KV cache included);
- ``token_embed(x, tokens, segments, state)``: add an embedding computed from the token ids
  (Abacus); ``state`` carries what the next forward of the same sequences (KV cache) needs.

``random_positions`` (set by ``build_pe`` from ``pe.randomize``) works on top of any PE: the
training step replaces each example's position ids by a sorted random subset of a larger range.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from lengen.registry import Registry

if TYPE_CHECKING:
    from lengen.model.random_positions import RandomPositions


class PositionalEncoding(nn.Module):
    #: the ``+pe=NAME`` choice (and ``conf/pe/<name>.yaml``) of a registered class.
    name: str = ""
    #: True when logits depend on positions only through their differences (relative schemes).
    relative: bool = False
    #: True when ``bias`` is the same for every layer, so the model builds it once per forward.
    shared_bias: bool = True
    #: randomized training positions (``pe.randomize``), set by ``build_pe``; None = plain positions.
    random_positions: RandomPositions | None = None

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

    def contextual_bias(
        self, q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor, layer: int = 0, scale: float | None = None
    ) -> torch.Tensor | None:
        """Additive logits ``[B, H, Lq, Lk]`` that depend on queries and keys (not only positions).

        ``q`` is a block of queries ``[B, H, Lq, Dh]``, ``k`` every key they may see ``[B, H, Lk, Dh]``
        (cached ones first), ``mask`` the block's additive mask (``-inf`` where a key is not seen, plus
        any position bias) and ``scale`` the logit scale (None: ``1 / sqrt(Dh)``). The model then
        attends with ``q·kᵀ·scale + mask + contextual_bias``.
        """
        return None

    def token_embed(
        self, x: torch.Tensor, tokens: torch.Tensor, segments: torch.Tensor | None = None, state: Any = None
    ) -> tuple[torch.Tensor, Any]:
        """``(x + an embedding of the token ids, state)`` for ``tokens`` ``[B, L]`` (``x``: ``[B, L, D]``).

        ``segments`` marks the examples of a packed row (nothing crosses them); ``state`` is what
        the previous forward over the same rows returned (None at the start of a sequence), so a
        KV-cached continuation embeds exactly as one full forward would.
        """
        return x, state

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

    @property
    def has_contextual_bias(self) -> bool:
        return type(self).contextual_bias is not PositionalEncoding.contextual_bias

    @property
    def has_token_embed(self) -> bool:
        return type(self).token_embed is not PositionalEncoding.token_embed

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
        rp = self.random_positions
        if rp is not None and rp.at_eval and n_positions > rp.max_positions:
            raise ValueError(
                f"pe.randomize_eval draws {n_positions} positions from pe.max_positions_random={rp.max_positions}; "
                f"raise pe.max_positions_random to at least {n_positions}"
            )


PE_REGISTRY: Registry[type[PositionalEncoding]] = Registry("positional encoding", "lengen.model.positional")
register = PE_REGISTRY.register
