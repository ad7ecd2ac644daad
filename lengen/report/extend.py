"""The "accuracy beyond range by method" view of evaluation-time length extension.

Rows of ``lengen eval extend=NAME`` (read with ``evals=true``) carry the method in the columns
``extend``, ``extend_factor``, ``extend_options`` and as ``+extend=<label>`` in ``variant``; the
run's own rows and ``extend=none`` evaluations are the baseline. Per (task, PE, method, factor):
mean ± std over seeds of in-range accuracy, beyond-range accuracy and accuracy per band of
lengths in multiples of the longest training length (``≤2×``, ``2–4×``, ``4–8×``, ``>8×``), and
one plot per (task, PE) of accuracy vs length with a line per method.

When a run was evaluated several times under one method (its own rows and an ``extend=none``
eval, or a factor-free method swept over factors), only the evaluation reaching the longest
length is kept, so every method of a run is compared on the same lengths where possible.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lengen.report.aggregate import _std, _weighted
from lengen.report.render import mean_std

#: (label, lower ratio, upper ratio] of eval_length / train_max, beyond the training range.
BANDS = (("≤2×", 1.0, 2.0), ("2–4×", 2.0, 4.0), ("4–8×", 4.0, 8.0), (">8×", 8.0, math.inf))
_SUFFIX = "+extend="


def has_methods(df: pd.DataFrame) -> bool:
    return "extend" in df.columns and bool((df["extend"].fillna("none") != "none").any())


def method_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows with ``base_pe``, ``base_variant``, ``method`` (label) and ``base_run`` added, one
    source per (run, method, options): the one that reaches the longest length."""
    out = df.copy()
    for col, default in (("extend", "none"), ("extend_options", ""), ("extend_factor", np.nan)):
        if col not in out.columns:
            out[col] = default
    out["extend"] = out["extend"].fillna("none")
    out["extend_options"] = out["extend_options"].fillna("")
    split = out["variant"].astype(str).str.split(_SUFFIX, n=1, regex=False)
    out["base_variant"] = split.str[0]
    out["method"] = [parts[1] if len(parts) > 1 else "none" for parts in split]
    out["base_pe"] = out["pe"].astype(str).str.split("+", n=1, regex=False).str[0]
    out["base_run"] = out["run_id"].astype(str).str.split("@", n=1, regex=False).str[0]
    keys = ["base_run", "method", "extend_options"]
    reach = out.groupby([*keys, "run_id"], sort=False)["eval_length"].agg(["max", "size"]).reset_index()
    reach = reach.sort_values([*keys, "max", "size", "run_id"], ascending=[True] * 3 + [False, False, True])
    keep = set(reach.drop_duplicates(keys)["run_id"])
    return out[out["run_id"].isin(keep)].reset_index(drop=True)


def _order(method: pd.Series, extend: pd.Series, factor: pd.Series) -> pd.Series:
    """none first, then by method name and factor."""
    return pd.Series([(m != "none", e, -1 if pd.isna(f) else f, m) for m, e, f in zip(method, extend, factor)],
                     index=method.index)


def by_method(df: pd.DataFrame, metric: str = "exact_match") -> pd.DataFrame:
    """Per (task, base_variant, base_pe, method): mean ± std over runs of in-range, beyond-range and
    per-band accuracy (band columns only where some run reached them), and the evaluated range."""
    rows = method_rows(df)
    ratio = rows["eval_length"] / rows["train_max"]
    region = np.where(rows["in_range"], "in", np.where(rows["eval_length"] > rows["train_max"], "beyond", "below"))
    band = pd.Series("", index=rows.index)
    for label, lo, hi in BANDS:
        band[(ratio > lo) & (ratio <= hi)] = label
    rows = rows.assign(region=region, band=band)
    keys = ["task", "base_variant", "base_pe", "method", "extend", "extend_factor"]
    runs = rows.groupby([*keys, "run_id"], dropna=False, sort=True).agg(
        seed=("seed", "first"), max_length=("eval_length", "max"), train_max=("train_max", "max")).reset_index()
    per_region = _weighted(rows, ["run_id", "region"], metric).unstack("region")
    per_band = _weighted(rows[rows["band"] != ""], ["run_id", "band"], metric).unstack("band")
    runs["in_range"] = runs["run_id"].map(per_region["in"]) if "in" in per_region else np.nan
    runs["beyond_range"] = runs["run_id"].map(per_region["beyond"]) if "beyond" in per_region else np.nan
    bands = [label for label, _, _ in BANDS if label in per_band.columns]
    for label in bands:
        runs[label] = runs["run_id"].map(per_band[label])
    out = []
    for values, g in runs.groupby(keys, dropna=False, sort=True):
        row = dict(zip(keys, values))
        for col in ("in_range", "beyond_range", *bands):
            row[f"{col}_mean"], row[f"{col}_std"] = g[col].mean(), _std(g[col])
        row.update(n_runs=len(g), seeds=",".join(str(s) for s in sorted(g["seed"].unique())),
                   train_max=int(g["train_max"].max()), max_length=int(g["max_length"].max()))
        out.append(row)
    table = pd.DataFrame(out)
    if table.empty:
        return table
    table["metric"] = metric
    order = _order(table["method"], table["extend"], table["extend_factor"])
    table = table.assign(_o=order).sort_values(["task", "base_variant", "base_pe", "_o"]).drop(columns="_o")
    return table.reset_index(drop=True)


def bands_of(table: pd.DataFrame) -> list[str]:
    return [label for label, _, _ in BANDS if f"{label}_mean" in table.columns]


def markdown(table: pd.DataFrame, *, title: str | None = None, command: str | None = None) -> str:
    """Per task: a method × PE pivot of beyond-range accuracy, then the full method × PE table."""
    metric = table["metric"].iloc[0] if len(table) else "exact_match"
    lines = [f"# {title or 'Evaluation-time length extension'}: accuracy beyond range by method", ""]
    lines.append(f"Mean ± sample std over seeds of the n-weighted `{metric}` (%) per run. Beyond range = longer "
                 "than every training length; bands are lengths in multiples of the longest training length. "
                 "Rows: `extend=` method and its factor (`none` = the trained model).")
    if command:
        lines += ["", f"Produced by `{command}`."]
    for (task, variant), t in table.groupby(["task", "base_variant"], sort=True):
        name = task if variant in ("", "default") else f"{task} ({variant})"
        pes = list(dict.fromkeys(t["base_pe"]))
        methods = list(dict.fromkeys(t["method"]))
        lines += ["", f"## {name}: beyond-range {metric} (%)", "",
                  f"Trained up to length {int(t['train_max'].max())}, evaluated up to {int(t['max_length'].max())}.",
                  ""]
        pivot = pd.DataFrame({"method": methods})
        for pe in pes:
            cell = t[t["base_pe"] == pe].set_index("method")
            pivot[pe] = [mean_std(cell.at[m, "beyond_range_mean"], cell.at[m, "beyond_range_std"])
                         if m in cell.index else "" for m in methods]
        lines.append(pivot.to_markdown(index=False, colalign=["left"] + ["right"] * len(pes)))
        bands = [b for b in bands_of(t) if t[f"{b}_mean"].notna().any()]
        detail = pd.DataFrame({"pe": t["base_pe"], "method": t["method"],
                               "in range": [mean_std(m, s) for m, s in zip(t["in_range_mean"], t["in_range_std"])],
                               "beyond": [mean_std(m, s) for m, s in zip(t["beyond_range_mean"],
                                                                         t["beyond_range_std"])]})
        for b in bands:
            detail[b] = [mean_std(m, s) for m, s in zip(t[f"{b}_mean"], t[f"{b}_std"])]
        detail["n runs"] = t["n_runs"].astype(str).to_numpy()
        detail = detail.sort_values("pe", kind="stable")
        lines += ["", f"### {name}: by PE and method ({metric}, %)", "",
                  detail.to_markdown(index=False, colalign=["left", "left"] + ["right"] * (detail.shape[1] - 2))]
    return "\n".join(lines) + "\n"


def curves(rows: pd.DataFrame, metric: str = "exact_match") -> pd.DataFrame:
    """Per (method, eval_length): mean, min and max over runs of the n-weighted metric."""
    per = _weighted(rows, ["method", "run_id", "eval_length"], metric).reset_index()
    return per.groupby(["method", "eval_length"], sort=True)[metric].agg(
        mean="mean", min="min", max="max", n_runs="count").reset_index()


def plot(rows: pd.DataFrame, metric: str = "exact_match", *, label: str = "", title: str | None = None):
    """Accuracy vs length for one (task, PE): a line per method (mean over seeds, min–max band)."""
    from lengen.report.plots import _figure, _titled

    c = curves(rows, metric)
    fig = _figure(7.5, 4.4)
    ax = fig.add_subplot()
    train_max = int(rows["train_max"].max())
    ax.axvspan(float(rows["train_min"].min()), train_max, color="0.88", zorder=0, label=f"train ≤ {train_max}")
    for k in (2, 4, 8):
        if c["eval_length"].max() >= k * train_max:
            ax.axvline(k * train_max, color="0.6", ls=":", lw=1)
    order = rows.drop_duplicates("method")
    order = order.assign(_o=_order(order["method"], order["extend"], order["extend_factor"])).sort_values("_o")
    # one colour per method name, one line style per factor of that method
    names = list(dict.fromkeys(n for n in order["extend"] if n != "none"))
    palette = [f"C{i}" for i in range(10)] + ["#393b79", "#637939", "#843c39", "#7b4173", "#e7ba52"]
    styles = ("-", "--", ":", "-.")
    for method, name, factor in zip(order["method"], order["extend"], order["extend_factor"]):
        g = c[c["method"] == method]
        factors = sorted(order.loc[order["extend"] == name, "extend_factor"].dropna().unique())
        style = styles[factors.index(factor) % len(styles)] if factor in factors else "-"
        color = "k" if name == "none" else palette[names.index(name) % len(palette)]
        (line,) = ax.plot(g["eval_length"], g["mean"], lw=2.2 if name == "none" else 1.4, ls=style, color=color,
                          label=f"{method} (n={int(g['n_runs'].max())})")
        if (g["n_runs"] > 1).any():
            ax.fill_between(g["eval_length"], g["min"], g["max"], color=line.get_color(), alpha=0.12, lw=0)
    ax.set_xlim(c["eval_length"].min() - 0.5, c["eval_length"].max() + 0.5)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("length (dotted: 2×, 4×, 8× the longest training length)")
    ax.set_ylabel(f"{metric} (mean over seeds)")
    ax.grid(alpha=0.3)
    ax.set_title(_titled(title, label), fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def plots(df: pd.DataFrame, metric: str = "exact_match", title: str | None = None):
    """(file name, figure maker) per (task, variant, PE) that has a method other than none."""
    from lengen.report.plots import safe_name

    rows = method_rows(df)
    out = []
    for (task, variant, pe), g in rows.groupby(["task", "base_variant", "base_pe"], sort=True):
        if not (g["method"] != "none").any():
            continue
        stem = safe_name(task, *([] if variant == "default" else [variant]), pe)
        label = f"{task}{'' if variant == 'default' else f' ({variant})'} — {pe}: accuracy by method"
        out.append((f"extend_{stem}.png", lambda r=g, lab=label: plot(r, metric, label=lab, title=title)))
    return out
