"""How far apart two models' attention is on the same inputs (Kazemnejad et al. 2023, Sec. 5.2).

Per query row ``i`` the attention of a head is a distribution over its causal prefix ``[0, i]``.
Two heads are compared row by row with the Jensen–Shannon divergence
``JSD(p, q) = ½ KL(p‖m) + ½ KL(q‖m)``, ``m = ½(p + q)`` (natural log, so ``0 <= JSD <= ln 2``),
and the symmetric KL ``KL(p‖q) + KL(q‖p)``, as the study's analyzer does; rows are averaged.
Heads have no fixed order across models, so every head of model A is compared with every head of
model B in the same layer and matched to its closest one (smallest mean JSD); the layer's value
is the mean over A's heads of that smallest divergence (the symmetric KL is read at the same
match). Sums are kept per (layer, length, head of A, head of B), so any number of batches streams
through without keeping attention maps.
"""

from __future__ import annotations

import numpy as np
import torch

#: probabilities are clamped to this before a log (keys outside the causal prefix are exact zeros
#: in both maps and contribute 0 * finite = 0).
EPS = 1e-12


def row_divergences(p: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(JSD, symmetric KL)`` of distributions along the last dim (broadcasting over the rest)."""
    lp, lq = p.clamp_min(EPS).log(), q.clamp_min(EPS).log()
    m = 0.5 * (p + q)
    lm = m.clamp_min(EPS).log()
    jsd = 0.5 * (p * (lp - lm) + q * (lq - lm)).sum(-1)
    skl = ((p - q) * (lp - lq)).sum(-1)
    return jsd, skl


def head_sums(pa: torch.Tensor, pb: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums over examples and valid query rows of the JSD and symmetric KL of every head pair.

    ``pa`` ``[B, Ha, L, L]`` and ``pb`` ``[B, Hb, L, L]`` are one layer's attention of the two
    models on the same batch; ``valid`` ``[B, L]`` marks real (not padded) queries. Returns two
    ``[Ha, Hb]`` float64 tensors; one head of A at a time keeps memory at ``[B, Hb, L, L]``.
    """
    weight = valid.to(pa.dtype)[:, None, :]
    jsd = torch.empty(pa.shape[1], pb.shape[1], dtype=torch.float64)
    skl = torch.empty_like(jsd)
    for h in range(pa.shape[1]):
        j, s = row_divergences(pa[:, h : h + 1], pb)
        jsd[h] = (j * weight).sum((0, 2)).double().cpu()
        skl[h] = (s * weight).sum((0, 2)).double().cpu()
    return jsd, skl


def match_heads(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each head of A (rows), its closest head of B (columns) and that divergence."""
    best = np.asarray(matrix).argmin(axis=1)
    return best, np.asarray(matrix)[np.arange(len(best)), best]


class PairDivergence:
    """Streaming per-(layer, length) sums of one pair of models' head-by-head divergences."""

    def __init__(self) -> None:
        self.jsd: dict[tuple[int, int], torch.Tensor] = {}
        self.skl: dict[tuple[int, int], torch.Tensor] = {}
        self.rows: dict[int, int] = {}

    def add(self, length: int, maps_a: list[torch.Tensor], maps_b: list[torch.Tensor], valid: torch.Tensor) -> None:
        for layer, (pa, pb) in enumerate(zip(maps_a, maps_b, strict=True)):
            j, s = head_sums(pa, pb, valid)
            key = (layer, length)
            self.jsd[key] = self.jsd.get(key, 0) + j
            self.skl[key] = self.skl.get(key, 0) + s
        self.rows[length] = self.rows.get(length, 0) + int(valid.sum())

    def results(self) -> list[dict]:
        """One record per (layer, length, head of A): its matched head of B and both divergences."""
        out = []
        for (layer, length), jsd in sorted(self.jsd.items()):
            n = self.rows[length]
            mean_jsd = (jsd / n).numpy()
            mean_skl = (self.skl[(layer, length)] / n).numpy()
            best, value = match_heads(mean_jsd)
            for head, (b, v) in enumerate(zip(best, value)):
                out.append({"layer": layer, "eval_length": length, "head": head, "head_b": int(b),
                            "jsd": float(v), "sym_kl": float(mean_skl[head, b]), "n": n})
        return out
