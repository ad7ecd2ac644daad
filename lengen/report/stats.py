"""How sure is a ranking? A bootstrap of the mean reciprocal rank over seeds.

Seeds are the only replication a study has, so they are what gets resampled: within each task
(context), the seeds that were ranked are drawn with replacement, and every PE's MRR is
recomputed from the drawn (task, seed) rankings. Resampling does not re-rank anything -- a
(task, seed) ranking is fixed -- so a bootstrap sample is just a multiplicity per ranking, and
the MRR of a sample is a weighted mean. The generator is seeded from a constant, so a rerun
writes byte-identical tables.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

BOOTSTRAP_SEED = 20231211
#: the percentile interval reported (95 %).
INTERVAL = (2.5, 97.5)
TIE_DECIMALS = 9
COLUMNS = ("mrr_boot_mean", "mrr_ci_low", "mrr_ci_high", "p_rank1")


def _counts(rankings: pd.DataFrame, contexts: Sequence[str], n_samples: int) -> np.ndarray:
    """(n_samples, n_rankings) multiplicities: each context's seeds drawn with replacement."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    counts = np.zeros((n_samples, len(rankings)))
    for _, members in sorted(rankings.groupby(list(contexts), sort=True).indices.items()):
        draws = rng.integers(0, len(members), size=(n_samples, len(members)))
        for j, column in enumerate(members):
            counts[:, column] = (draws == j).sum(axis=1)
    return counts


def _summarise(mrr: np.ndarray) -> dict[str, np.ndarray]:
    """Mean, percentile interval and P(rank 1) per PE from (n_samples, n_pes) sampled MRRs."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # a PE absent from every draw is NaN
        mean = np.nanmean(mrr, axis=0)
        low, high = np.nanpercentile(mrr, INTERVAL, axis=0)
        rounded = np.round(mrr, TIE_DECIMALS)  # equal MRRs must tie despite float noise
        best = np.nanmax(rounded, axis=1, keepdims=True)
    winners = rounded == best  # NaN never wins
    share = winners / np.maximum(winners.sum(axis=1, keepdims=True), 1)
    return {"mrr_boot_mean": mean, "mrr_ci_low": low, "mrr_ci_high": high, "p_rank1": share.mean(axis=0)}


def bootstrap_mrr(ranks: pd.DataFrame, contexts: Sequence[str], n_samples: int
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bootstrap MRR statistics per PE: (overall, per context).

    `ranks` has one row per (context..., seed, pe) with ``reciprocal_rank``. Returns frames with
    columns ``pe`` (plus the context columns for the second) and :data:`COLUMNS`: the mean of the
    sampled MRRs, their 2.5 and 97.5 percentiles, and P(rank 1) = the fraction of samples in which
    the PE has the highest MRR (a tie of k PEs gives each 1/k).
    """
    contexts = list(contexts)
    keys = [*contexts, "seed"]
    if ranks.empty or n_samples <= 0:
        return pd.DataFrame(columns=["pe", *COLUMNS]), pd.DataFrame(columns=[*contexts, "pe", *COLUMNS])
    rankings = ranks[keys].drop_duplicates().sort_values(keys).reset_index(drop=True)
    pes = sorted(ranks["pe"].unique())
    rr = (ranks.pivot_table(index=keys, columns="pe", values="reciprocal_rank", aggfunc="first")
          .reindex(index=pd.MultiIndex.from_frame(rankings), columns=pes))
    present = rr.notna().to_numpy(dtype=float)
    rr = rr.fillna(0.0).to_numpy()
    counts = _counts(rankings, contexts, n_samples)

    def sampled(columns: np.ndarray) -> np.ndarray:
        c = counts[:, columns]
        with np.errstate(invalid="ignore", divide="ignore"):
            return (c @ rr[columns]) / (c @ present[columns])

    overall = pd.DataFrame({"pe": pes, **_summarise(sampled(np.arange(len(rankings))))})
    per_context = []
    for context, members in sorted(rankings.groupby(contexts, sort=True).indices.items()):
        stats = pd.DataFrame({"pe": pes, **_summarise(sampled(members))})
        taking_part = present[members].any(axis=0)
        context = context if isinstance(context, tuple) else (context,)
        per_context.append(stats[taking_part].assign(**dict(zip(contexts, context))))
    return overall, pd.concat(per_context, ignore_index=True)[[*contexts, "pe", *COLUMNS]]
