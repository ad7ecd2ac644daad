"""Abacus embeddings (McLeish et al. 2024): each digit learns where it sits inside its number.

A digit's index is its place in its run of consecutive digit tokens (1, 2, 3, ... restarting at
every number; every other token 0), looked up in a learned table and added to the token
embedding. With operands written least significant digit first, digits of equal significance
share an index. During training a random offset ``k ∈ [0, max_offset]`` (one per example) is added
to every nonzero index, so indices of numbers longer than any trained one have been trained too.

Abacus sits on top of a sequence PE: ``+pe=abacus pe.base=rope`` (any registered PE; its options
go in the same ``pe`` section) delegates every other hook to that PE.

Which token ids are digits is a property of the run's vocabulary (the tokenizer puts a task's
symbols after four special tokens, in the task's order). It is kept as a buffer, saved in
checkpoints: ``bind_vocabulary`` sets it once when training starts; until then the digits are
assumed at ids 4..13, where a task whose symbols begin with ``0``..``9`` (arithmetic, sorting)
has them. The offset is drawn from torch's default generator, which training seeds per step
(as for dropout), so a resumed run replays it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lengen.model.positional.base import PositionalEncoding, register

DIGITS = frozenset("0123456789")
#: ids of ``0``..``9`` when a task's symbols start with the ten digits (after 4 special tokens).
ASSUMED_DIGIT_IDS = range(4, 14)


def digit_runs(is_digit: torch.Tensor, segments: torch.Tensor | None = None,
               carry: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, L]`` index of each token in its run of digits (1, 2, ...; 0 for non-digits).

    ``carry`` ``[B]``: the run length just before the first token (a KV-cached continuation);
    a new segment (packed row) starts a new run.
    """
    b, length = is_digit.shape
    idx = torch.arange(length, device=is_digit.device).expand(b, length)
    before = torch.full((b, 1), -1, device=is_digit.device, dtype=idx.dtype)
    if carry is not None:
        before = before - carry.to(idx.dtype)[:, None]
    # position of the last run break at or before each token: a non-digit, or just before a segment start
    breaks = torch.where(is_digit, before, idx)
    if segments is not None:
        start = torch.ones_like(is_digit)
        start[:, 1:] = segments[:, 1:] != segments[:, :-1]
        breaks = torch.where(is_digit & start, idx - 1, breaks)
    last_break = breaks.cummax(dim=1).values
    return torch.where(is_digit, idx - last_break, torch.zeros_like(idx))


@register
class Abacus(PositionalEncoding):
    name = "abacus"

    def __init__(
        self,
        *,
        d_model: int,
        n_heads: int,
        n_layers: int,
        base: str = "nope",
        max_offset: int = 32,
        max_digits: int = 128,
        **base_options: Any,
    ) -> None:
        super().__init__(d_model=d_model, n_heads=n_heads, n_layers=n_layers)
        from lengen.model.positional import PE_CLASSES, build_pe

        if not isinstance(base, str) or base not in PE_CLASSES or base == self.name:
            valid = ", ".join(n for n in PE_CLASSES if n != self.name)
            raise ValueError(f"pe.base={base!r} is not a sequence PE abacus can sit on; valid: {valid}")
        for key, value, lo in (("max_offset", max_offset, 0), ("max_digits", max_digits, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ValueError(f"pe.{key}={value!r} must be an integer >= {lo}")
        self.base = build_pe({"name": base, **base_options}, d_model=d_model, n_heads=n_heads, n_layers=n_layers)
        self.max_offset, self.max_digits = max_offset, max_digits
        self.relative, self.shared_bias = self.base.relative, self.base.shared_bias
        self.table = nn.Embedding(max_digits + 1, d_model)
        self.register_buffer("digit_ids", torch.tensor(list(ASSUMED_DIGIT_IDS), dtype=torch.long))

    def bind_vocabulary(self, vocab: Sequence[str]) -> None:
        """Learn which token ids are digits from the run's vocabulary (``tokenizer.vocab``)."""
        ids = [i for i, s in enumerate(vocab) if s in DIGITS]
        self.digit_ids = torch.tensor(ids, dtype=torch.long, device=self.digit_ids.device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # the bound digits may be fewer or more than the assumed ten: take the checkpoint's shape
        saved = state_dict.get(prefix + "digit_ids")
        if saved is not None:
            self.digit_ids = torch.empty_like(saved, device=self.digit_ids.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- the digit index -------------------------------------------------------------------------
    def token_embed(self, x, tokens, segments=None, state=None):
        """Add the table's vector of each token's digit index; ``state`` = the run length at the end."""
        runs = digit_runs(torch.isin(tokens, self.digit_ids), segments, state)
        carry = runs[:, -1] if runs.shape[1] else state
        if self.training and self.max_offset > 0:  # one k per example (per segment of a packed row)
            seg = segments.clamp(min=0) if segments is not None else torch.zeros_like(tokens)
            n_seg = int(seg.max()) + 1 if seg.numel() else 1
            k = torch.randint(0, self.max_offset + 1, (tokens.shape[0], n_seg), device=tokens.device)
            runs = torch.where(runs > 0, runs + k.gather(1, seg), runs)
        if runs.numel():
            top = int(runs.max())  # one host sync: a clear error instead of an out-of-range lookup
            if top > self.max_digits:
                offset = f" (a run plus the training offset up to {self.max_offset})" if self.training else ""
                raise ValueError(f"pe=abacus needs digit index {top}{offset} but pe.max_digits={self.max_digits}; "
                                 f"raise pe.max_digits")
        return x + self.table(runs).to(x.dtype), carry

    # -- everything else is the base PE's ----------------------------------------------------------
    def embed(self, x, pos):
        return self.base.embed(x, pos)

    def rotate(self, x, pos):
        return self.base.rotate(x, pos)

    def bias(self, q_pos, k_pos, layer=0):
        return self.base.bias(q_pos, k_pos, layer)

    def distance_bias(self, distance, layer=0):
        return self.base.distance_bias(distance, layer)

    def contextual_bias(self, q, k, mask, layer=0, scale=None):
        return self.base.contextual_bias(q, k, mask, layer, scale)

    @property
    def has_embed(self) -> bool:
        return self.base.has_embed

    @property
    def has_rotate(self) -> bool:
        return self.base.has_rotate

    @property
    def has_bias(self) -> bool:
        return self.base.has_bias

    @property
    def has_distance_bias(self) -> bool:
        return self.base.has_distance_bias

    @property
    def has_contextual_bias(self) -> bool:
        return self.base.has_contextual_bias

    def max_positions(self) -> int | None:
        return self.base.max_positions()
