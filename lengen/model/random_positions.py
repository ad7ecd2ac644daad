"""Randomized positions (Ruoss et al. 2023) on top of any PE: ``pe.randomize``.

During training, each example's position ids are replaced by a sorted random subset of
``[0, pe.max_positions_random)`` of the example's size, so a model trained on short sequences has
already seen (and must be robust to) the large ids a long one uses. The reference code
randomizes at test time too; ``pe.randomize_eval`` makes that an option (default: plain ids).

The options are the same for every PE, so ``build_pe`` splits them off the PE's own options once
and attaches a :class:`RandomPositions` to the built PE; the training step (and evaluation, with
``randomize_eval``) calls :func:`relabel` with an explicitly seeded generator.

Relabelling keeps equal ids equal and order intact: an example's ids ``v`` become ``f[v]`` for a
sorted random subset ``f`` of size ``max(v) + 1``, so plain ids ``0..n-1`` get exactly a sorted
random n-subset, and ids that a task shares on purpose (position coupling) stay shared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

#: the generic ``pe.*`` keys this module owns (every PE accepts them).
OPTION_KEYS = ("randomize", "max_positions_random", "randomize_eval")
DEFAULT_MAX_POSITIONS = 2048


@dataclass(frozen=True)
class RandomPositions:
    max_positions: int = DEFAULT_MAX_POSITIONS
    #: also randomize at evaluation (as the reference does); False = plain ids at evaluation.
    at_eval: bool = False


def split_options(cfg: Mapping[str, Any]) -> tuple[RandomPositions | None, dict[str, Any]]:
    """``(RandomPositions or None, the PE's own options)`` from a ``pe`` config; one-line errors."""
    own = {k: v for k, v in cfg.items() if k not in OPTION_KEYS}
    randomize = cfg.get("randomize", False)
    at_eval = cfg.get("randomize_eval", False)
    limit = cfg.get("max_positions_random", DEFAULT_MAX_POSITIONS)
    for key, value in (("randomize", randomize), ("randomize_eval", at_eval)):
        if not isinstance(value, bool):
            raise ValueError(f"pe.{key}={value!r} must be true or false")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"pe.max_positions_random={limit!r} must be a positive integer")
    if at_eval and not randomize:
        raise ValueError("pe.randomize_eval=true needs pe.randomize=true (positions are plain in training)")
    return (RandomPositions(limit, at_eval) if randomize else None), own


def relabel(pos: torch.Tensor, segments: torch.Tensor, max_positions: int, rng: np.random.Generator) -> torch.Tensor:
    """Each example's ids ``v`` (``segments`` >= 0 in ``[B, L]``; -1 = padding, left alone) -> ``f[v]``
    with ``f`` a sorted random subset of ``[0, max_positions)`` of size ``max(v) + 1``."""
    p = pos.expand_as(segments).cpu().numpy()
    seg = segments.cpu().numpy()
    out = p.copy()
    for r in range(seg.shape[0]):
        for s in np.unique(seg[r]):
            if s < 0:
                continue
            cols = seg[r] == s
            v = p[r, cols]
            n = int(v.max()) + 1
            if n > max_positions:
                raise ValueError(f"an example needs {n} positions but pe.max_positions_random={max_positions}; "
                                 f"raise pe.max_positions_random")
            out[r, cols] = np.sort(rng.choice(max_positions, size=n, replace=False))[v]
    return torch.from_numpy(out).to(pos.device)
