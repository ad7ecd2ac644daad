"""Token-level scores of one teacher-forced forward pass, the base of every result metric.

With greedy decoding, "every target token is the argmax given the gold prefix" is exactly
"generation reproduces the target", so ``exact`` is greedy exact match without generating.
A new per-example metric is one entry in :data:`EXAMPLE_METRICS` (a function of these scores;
``lengen.evaluation.evaluate`` averages it per length) plus its column name in
``lengen.results.schema.METRICS`` (so ``lengen report metric=NAME`` can select it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from lengen.data.batching import IGNORE


def token_scores(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-example scores: ``exact`` (all target tokens right), ``tok_correct``/``n_tok``, ``nll``."""
    mask = labels != IGNORE
    correct = (logits.argmax(-1) == labels) & mask
    nll = F.cross_entropy(logits.float().transpose(1, 2), labels.clamp_min(0), reduction="none") * mask
    return {
        "exact": (correct | ~mask).all(-1),
        "tok_correct": correct.sum(-1),
        "n_tok": mask.sum(-1),
        "nll": nll.sum(-1),
        "correct": correct,
        "mask": mask,
    }


def per_token_accuracy(s: dict[str, torch.Tensor]) -> torch.Tensor:
    """Delétang et al. (2023)'s per-token accuracy of one example: the share of its target symbols
    predicted right, the end-of-sequence token left out (the benchmark scores no such token; an empty
    target is scored by its end token alone). Averaged per length, then over the test lengths, it is the
    Chomsky-hierarchy benchmark's score.
    """
    mask, correct = s["mask"], s["correct"]
    last = mask & (mask.long().cumsum(-1) == mask.sum(-1, keepdim=True))  # the end-of-sequence label
    body = mask & ~last
    n = body.sum(-1)
    share = (correct & body).sum(-1).float() / n.clamp_min(1).float()
    return torch.where(n > 0, share, (correct & last).any(-1).float())


#: result column -> per-example value from :func:`token_scores` (averaged per length and group).
EXAMPLE_METRICS: dict[str, Callable[[dict[str, torch.Tensor]], torch.Tensor]] = {
    "exact_match": lambda s: s["exact"],
    "per_token_accuracy": per_token_accuracy,
}
