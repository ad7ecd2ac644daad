"""From rows to numbers: per-run accuracy, mean ± std over seeds, ranks, MRR, curves and grids.

Every function takes the loaded rows and returns a tidy DataFrame, so tables, plots and tests
all read the same numbers. A *cell* is one (task, variant, [group_by...], pe); a *context* is a
cell without the PE -- the set of PEs that compete in one ranking per seed. `group_by` adds
per-run keys (e.g. ``hardware``) to both, so runs from different setups are never averaged or
ranked together when the user asks to keep them apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lengen.errors import ConfigError
from lengen.report import stats
from lengen.results.schema import MEASURE_COLUMNS, METRICS, OTHER_NUMERIC, group_keys

ALL_TASKS = "all"
LEARNED_THRESHOLD = 0.95
BOOTSTRAP_SAMPLES = 1000
# Columns that identify a run already; grouping by them would be meaningless.
_IDENTITY = ("task", "variant", "pe", "seed", "run_id")


def contexts(group_by: Sequence[str] = ()) -> list[str]:
    return ["task", "variant", *group_by]


def cells(group_by: Sequence[str] = ()) -> list[str]:
    return [*contexts(group_by), "pe"]


def task_keys(df: pd.DataFrame) -> list[str]:
    """A task's numeric per-row grouping keys (``depth``, ``len_a``, ...) with any value present.

    Loader columns such as ``hardware`` and ``run_dir`` are strings and so never qualify: only
    these keys may split rows below a length (heatmaps), nothing else changes a table.
    """
    return [k for k in group_keys(df) if pd.api.types.is_numeric_dtype(df[k]) and df[k].notna().any()]


def check_metric(df: pd.DataFrame, metric: str) -> None:
    if metric not in df.columns:
        raise ConfigError(f"metric column {metric!r} not in results (have {', '.join(df.columns)})")
    if df[metric].isna().all():
        raise ConfigError(f"metric {metric!r} has no values in the runs read")


def check_group_by(df: pd.DataFrame, group_by: Sequence[str]) -> None:
    """`group_by` keys must be columns that are constant within each run (hardware, study, ...)."""
    measured = {*_IDENTITY, *MEASURE_COLUMNS, *METRICS, *OTHER_NUMERIC}
    varies = df.groupby("run_id").nunique(dropna=False).max() > 1
    per_run = [c for c in df.columns if c not in measured and not varies.get(c, False)]
    for key in group_by:
        if key not in per_run:
            raise ConfigError(f"cannot group by {key!r}; valid: {', '.join(sorted(per_run))}")


def hardware_labels(df: pd.DataFrame) -> list[str]:
    return sorted(df["hardware"].unique()) if "hardware" in df.columns else []


def _weighted(df: pd.DataFrame, keys: list[str], metric: str) -> pd.Series:
    """n-weighted mean of `metric` per `keys`; rows with a NaN metric carry no weight."""
    ok = df[metric].notna() & df["n"].notna()
    weight = df["n"].where(ok, 0.0)
    parts = pd.DataFrame({"w": weight, "wx": (df[metric] * weight).where(ok, 0.0)})
    sums = parts.groupby([df[k] for k in keys], sort=True, dropna=False).sum()
    return (sums["wx"] / sums["w"].where(sums["w"] > 0)).rename(metric)


def per_run(df: pd.DataFrame, metric: str = "exact_match", *, group_by: Sequence[str] = ()) -> pd.DataFrame:
    """One row per run: n-weighted `metric` over in-range rows and over beyond-range rows.

    Beyond-range means *longer* than anything trained on (``eval_length > train_max``); lengths
    below ``train_min`` are neither, so easy short lengths never dilute the extrapolation number.
    Rows split by task keys (depth, operand lengths) are simply pooled, weighted by n.
    """
    extra = [k for k in group_by if k not in ("study", "train_min", "train_max")]
    meta = df.groupby("run_id", sort=True).agg(
        study=("study", "first"), task=("task", "first"), variant=("variant", "first"),
        pe=("pe", "first"), seed=("seed", "first"), train_min=("train_min", "min"),
        train_max=("train_max", "max"), **{k: (k, "first") for k in extra},
    )
    region = np.where(df["in_range"], "in", np.where(df["eval_length"] > df["train_max"], "beyond", "below"))
    acc = _weighted(df.assign(region=region), ["run_id", "region"], metric).unstack("region")
    meta["acc_in_range"] = acc["in"] if "in" in acc.columns else np.nan
    meta["acc_beyond_range"] = acc["beyond"] if "beyond" in acc.columns else np.nan
    order = [*cells(group_by), "seed", "run_id"]
    columns = [*order, *(c for c in ("study", "train_min", "train_max") if c not in order),
               "acc_in_range", "acc_beyond_range"]
    return meta.reset_index()[columns].sort_values(order, ignore_index=True)


def _std(values: pd.Series) -> float:
    """Sample std (ddof=1) over seeds; NaN when fewer than two values make it meaningless."""
    values = values.dropna()
    return float(values.std(ddof=1)) if len(values) >= 2 else math.nan


def _train_range(runs: pd.DataFrame) -> str:
    pairs = sorted(set(zip(runs["train_min"], runs["train_max"])))
    return ", ".join(f"{lo}–{hi}" for lo, hi in pairs)


def _learned(in_range_mean: pd.Series, threshold: float) -> pd.Series:
    return in_range_mean.fillna(-np.inf) >= threshold - 1e-9  # 0.95 reached exactly counts


def summarise(df: pd.DataFrame, metric: str = "exact_match", *, group_by: Sequence[str] = (),
              learned_threshold: float = LEARNED_THRESHOLD) -> pd.DataFrame:
    """Per cell: mean ± std over runs of in-range and beyond-range accuracy, and the learned flag.

    ``learned`` = the in-range mean reaches `learned_threshold`: beyond-range accuracy of a task
    the model never learned says nothing about extrapolation. Sorted by context, learned cells
    first, then beyond-range mean descending (NaN last): the order the ranking reads in.
    """
    keys = cells(group_by)
    out = []
    for values, g in per_run(df, metric, group_by=group_by).groupby(keys, sort=True):
        out.append({
            **dict(zip(keys, values)), "metric": metric, "train_range": _train_range(g),
            "in_range_mean": g["acc_in_range"].mean(), "in_range_std": _std(g["acc_in_range"]),
            "beyond_range_mean": g["acc_beyond_range"].mean(),
            "beyond_range_std": _std(g["acc_beyond_range"]),
            "n_runs": len(g), "seeds": ",".join(str(s) for s in sorted(g["seed"].unique())),
        })
    cols = [*keys, "metric", "train_range", "in_range_mean", "in_range_std", "beyond_range_mean",
            "beyond_range_std", "learned", "n_runs", "seeds"]
    table = pd.DataFrame(out, columns=[c for c in cols if c != "learned"])
    table = table.assign(learned=_learned(table["in_range_mean"], learned_threshold).astype(bool))[cols]
    # Round the sort key so float noise in equal means does not decide the order (ties go by name).
    key = table["beyond_range_mean"].round(stats.TIE_DECIMALS)
    order = table.assign(_key=key).sort_values(
        [*contexts(group_by), "learned", "_key", "pe"],
        ascending=[True] * (len(keys) - 1) + [False, False, True], na_position="last").index
    return table.loc[order].reset_index(drop=True)


def ranks(df: pd.DataFrame, metric: str = "exact_match", *, group_by: Sequence[str] = (),
          learned_threshold: float = LEARNED_THRESHOLD) -> pd.DataFrame:
    """Learned PEs ranked per (context, seed) by beyond-range accuracy (1 = best, ties share min rank).

    Cells not learned in range are left out. Several runs of one PE and seed (e.g. a
    hyperparameter grid) are averaged first. Rankings with fewer than two PEs are dropped: a
    lone PE would get a free rank 1 and inflate its MRR.
    """
    runs = per_run(df, metric, group_by=group_by)
    inside = runs.groupby(cells(group_by))["acc_in_range"].transform("mean")
    runs = runs[_learned(inside, learned_threshold)]
    ranking = [*contexts(group_by), "seed"]
    acc = (runs.groupby([*ranking, "pe"], sort=True)["acc_beyond_range"].mean().dropna().reset_index())
    acc = acc[acc.groupby(ranking)["pe"].transform("size") >= 2].copy()
    rounded = acc["acc_beyond_range"].round(stats.TIE_DECIMALS)  # equal counts must tie despite float noise
    acc["rank"] = (rounded.groupby([acc[k] for k in ranking]).rank(method="min", ascending=False)
                   .astype("int64"))
    acc["reciprocal_rank"] = 1.0 / acc["rank"]
    acc["n_pes"] = acc.groupby(ranking)["pe"].transform("size")
    return acc.reset_index(drop=True)


def mrr(df: pd.DataFrame, metric: str = "exact_match", *, group_by: Sequence[str] = (),
        learned_threshold: float = LEARNED_THRESHOLD, bootstrap: int = BOOTSTRAP_SAMPLES) -> pd.DataFrame:
    """Mean reciprocal rank per PE, overall (task == "all") and per context, with its bootstrap.

    Columns: the context keys, pe, mrr, mean_rank, n_rankings (how many (context, seed) rankings
    the PE took part in) and :data:`stats.COLUMNS` (NaN with ``bootstrap=0``). Overall rows come
    first, each block sorted by MRR descending.
    """
    r = ranks(df, metric, group_by=group_by, learned_threshold=learned_threshold)
    ctx = contexts(group_by)
    cols = [*ctx, "pe", "mrr", "mean_rank", "n_rankings", *stats.COLUMNS]
    if r.empty:
        return pd.DataFrame(columns=cols)
    boot_all, boot_ctx = stats.bootstrap_mrr(r, ctx, bootstrap)
    agg = {"mrr": ("reciprocal_rank", "mean"), "mean_rank": ("rank", "mean"), "n_rankings": ("rank", "size")}
    overall = (r.groupby("pe").agg(**agg).reset_index().merge(boot_all, on="pe", how="left")
               .assign(task=ALL_TASKS, **dict.fromkeys(ctx[1:], "")))
    per_ctx = r.groupby([*ctx, "pe"]).agg(**agg).reset_index().merge(boot_ctx, on=[*ctx, "pe"], how="left")
    overall = overall.sort_values(["mrr", "pe"], ascending=[False, True])
    per_ctx = per_ctx.sort_values([*ctx, "mrr", "pe"], ascending=[True] * len(ctx) + [False, True])
    return pd.concat([overall[cols], per_ctx[cols]], ignore_index=True)


def curves(df: pd.DataFrame, metric: str = "exact_match") -> pd.DataFrame:
    """Per (task, variant, pe, eval_length): mean, std, min, max of `metric` over runs.

    Rows split by task keys (depth, operand lengths) are first merged per run and length,
    weighted by n, so every run counts once per length.
    """
    per_len = _weighted(df, ["task", "variant", "pe", "run_id", "eval_length"], metric).reset_index()
    return per_len.groupby(["task", "variant", "pe", "eval_length"], sort=True)[metric].agg(
        mean="mean", std=_std, min="min", max="max", n_runs="count").reset_index()


def grid(df: pd.DataFrame, x: str, y: str, metric: str = "exact_match") -> pd.DataFrame:
    """Per (task, variant, pe, x, y): mean over runs of the n-weighted metric, plus in-range flag."""
    rows = df.dropna(subset=[x, y])
    keys = ["task", "variant", "pe", x, y]
    cell = _weighted(rows, ["task", "variant", "pe", "run_id", x, y], metric).reset_index()
    out = cell.groupby(keys, sort=True)[metric].mean().reset_index()
    inside = rows.groupby(keys, sort=True)["in_range"].all().reset_index()
    return out.merge(inside, on=keys, how="left")
