"""From analysis rows to the summary tables (DataFrames, rendered as markdown by the app).

Every number is a mean over the mean-over-heads rows (``head`` is ``<NA>``), first over the lengths
of each run (or pair) in or beyond the training range -- each length counts once -- then over
runs (seeds), shown as ``mean ± std`` when there are several.
"""

from __future__ import annotations

import pandas as pd

RANGES = {"in range": True, "beyond": False}


def _cell(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "–"
    if len(values) == 1:
        return f"{values.iloc[0]:.3f}"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def _heads_mean(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["head"].isna()] if "head" in rows else rows


def _per_run(rows: pd.DataFrame, runs: list[str], by: list[str]) -> pd.DataFrame:
    """Mean over lengths (and layers unless in ``by``) per run and range."""
    return rows.groupby([*runs, *by, "in_range"], as_index=False, dropna=False)["value"].mean()


def attention_ranking(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (PE of A, PE of B): JSD and symmetric KL in and beyond range; ranked by JSD over all
    lengths, closest first. Pairs of one PE with itself are the seed-to-seed baseline."""
    rows = _heads_mean(rows)
    out = []
    for (pe_a, pe_b), g in rows.groupby(["pe", "pe_b"], sort=False):
        rec = {"A": pe_a, "B": pe_b + (" (other seed: baseline)" if pe_a == pe_b else ""),
               "pairs": g[["run_id", "run_id_b"]].drop_duplicates().shape[0]}
        for measure, name in (("jsd", "JSD"), ("sym_kl", "sym KL")):
            m = g[g["measure"] == measure]
            whole = m.groupby(["run_id", "run_id_b"])["value"].mean()
            rec[f"_{measure}"] = whole.mean()
            per = _per_run(m, ["run_id", "run_id_b"], [])
            for label, flag in RANGES.items():
                rec[f"{name} {label}"] = _cell(per[per["in_range"] == flag]["value"])
            rec[f"{name} all lengths"] = _cell(whole)
        out.append(rec)
    table = pd.DataFrame(out)
    baseline = table["B"].str.endswith("(other seed: baseline)")
    ranked = table[~baseline].sort_values("_jsd", kind="stable")
    ranked.insert(0, "rank", [str(i) for i in range(1, len(ranked) + 1)])
    base = table[baseline].sort_values("_jsd", kind="stable")
    base.insert(0, "rank", "baseline")
    return pd.concat([base, ranked], ignore_index=True).drop(columns=["_jsd", "_sym_kl"])


def attention_by_layer(rows: pd.DataFrame) -> pd.DataFrame:
    """JSD per (PE of A, PE of B) and layer, in range and beyond."""
    rows = _heads_mean(rows)
    m = rows[rows["measure"] == "jsd"]
    per = _per_run(m, ["run_id", "run_id_b", "pe", "pe_b"], ["layer"])
    out = []
    for (pe_a, pe_b, layer), g in per.groupby(["pe", "pe_b", "layer"], sort=False):
        out.append({"A": pe_a, "B": pe_b, "layer": int(layer),
                    **{f"JSD {label}": _cell(g[g["in_range"] == flag]["value"]) for label, flag in RANGES.items()}})
    return pd.DataFrame(out)


def per_layer(rows: pd.DataFrame, measures: dict[str, str]) -> pd.DataFrame:
    """Per PE and layer: each measure (``{measure: column name}``) in range and beyond."""
    rows = _heads_mean(rows)
    out = []
    for (pe, layer), g in rows.groupby(["pe", "layer"], sort=False):
        rec = {"PE": pe, "layer": int(layer), "runs": g["run_id"].nunique()}
        for measure, name in measures.items():
            per = _per_run(g[g["measure"] == measure], ["run_id"], [])
            for label, flag in RANGES.items():
                rec[f"{name} {label}"] = _cell(per[per["in_range"] == flag]["value"])
        out.append(rec)
    return pd.DataFrame(out)


DISTANCE_COLUMNS = {"mean_distance": "mean dist.", "relative_distance": "relative dist.",
                    "argmax_distance": "argmax dist."}
PROBE_COLUMNS = {"position_accuracy": "position acc.", "position_mae": "position MAE",
                 "position_shuffled_accuracy": "shuffled-label acc.", "to_end_accuracy": "to-end acc.",
                 "to_end_shuffled_accuracy": "to-end shuffled acc."}
