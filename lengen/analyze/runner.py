"""The three analyses as loops over the shared inputs: loaded runs in, tidy rows out.

Rows carry the run's identity columns (``Run.meta()``: run id, study, task, PE, seed, training
range), then ``layer``, ``head`` (``<NA>`` = the mean over heads), ``eval_length``, ``in_range``,
``measure``, ``value`` and ``n`` (query rows or tokens averaged). Attention rows add the second
run's ``run_id_b``, ``pe_b``, ``seed_b`` and the matched ``head_b``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from lengen.analyze.capture import attention_maps, hidden_states, recording
from lengen.analyze.distance import DistanceStats
from lengen.analyze.divergence import PairDivergence
from lengen.analyze.inputs import Inputs
from lengen.analyze.probe import TARGETS, LinearProbe
from lengen.analyze.runs import Loaded
from lengen.errors import ConfigError

#: attention maps of one batch (all models, all layers) are kept below this many floats.
ATTENTION_ELEMENTS = 1 << 26


def _in_range(loaded: Loaded, length: int) -> bool:
    lo, hi = loaded.run.train_range
    return lo <= length <= hi


def _frame(records: list[dict], loaded: Loaded) -> pd.DataFrame:
    """Records of one run with its identity columns first."""
    meta = loaded.run.meta()
    df = pd.DataFrame([{**meta, **r} for r in records])
    df.insert(df.columns.get_loc("eval_length") + 1, "in_range", [_in_range(loaded, n) for n in df["eval_length"]])
    if "head" in df:
        df["head"] = df["head"].astype("Int64")
    return df


def _with_mean_over_heads(records: list[dict], keys: Sequence[str]) -> list[dict]:
    """Append one record per group of ``keys`` averaging ``value`` over heads (``head`` = None)."""
    df = pd.DataFrame(records)
    mean = df.groupby(list(keys), as_index=False).agg(value=("value", "mean"), n=("n", "first"))
    mean["head"] = None
    return records + mean.to_dict("records")


# -- attention divergence -----------------------------------------------------------------------


def plan_pairs(loaded: Sequence[Loaded], mode: str, reference: str | None) -> list[tuple[int, int]]:
    """Which runs to compare, as ``(a, b)`` indices; each head of ``a`` is matched in ``b``.

    ``all``: every pair in the given order. ``reference``: every run of another PE against the
    reference PE's run of the same seed (else its first run), and the reference PE's runs against
    each other (the seed-to-seed baseline).
    """
    if len(loaded) < 2:
        raise ConfigError("attention compares runs: give at least two finished runs")
    if mode == "all":
        return [(i, j) for i in range(len(loaded)) for j in range(i + 1, len(loaded))]
    pe = reference or str(loaded[0].run.cfg.pe.name)
    refs = [i for i, x in enumerate(loaded) if x.run.cfg.pe.name == pe]
    if not refs:
        found = sorted({str(x.run.cfg.pe.name) for x in loaded})
        raise ConfigError(f"reference={pe}: no run with that PE among the runs given (PEs: {', '.join(found)}); "
                          f"set reference=PE or pairs=all")
    pairs = [(a, b) for n, a in enumerate(refs) for b in refs[n + 1 :]]
    for j, other in enumerate(loaded):
        if j in refs:
            continue
        same_seed = [i for i in refs if loaded[i].run.cfg.seed == other.run.cfg.seed]
        pairs.append(((same_seed or refs)[0], j))
    return pairs


def attention(loaded: Sequence[Loaded], inputs: Inputs, pairs: Sequence[tuple[int, int]], batch_size: int,
              device: torch.device) -> pd.DataFrame:
    """JSD and symmetric KL per pair, layer, length and head of A (matched to its closest head of B)."""
    needed = sorted({i for pair in pairs for i in pair})
    heads = sum(loaded[i].model.cfg.n_layers * loaded[i].model.cfg.n_heads for i in needed)
    stats = {pair: PairDivergence() for pair in pairs}

    def size(tokens: int) -> int:
        return max(1, min(batch_size, ATTENTION_ELEMENTS // (heads * tokens * tokens)))

    for batch in inputs.batches(size):
        ids, valid = batch.input_ids.to(device), batch.valid.to(device)
        maps = {i: attention_maps(loaded[i].model, ids) for i in needed}
        for (a, b), s in stats.items():
            s.add(batch.length, maps[a], maps[b], valid)
    frames = []
    for (a, b), s in stats.items():
        records = [{**{k: v for k, v in r.items() if k not in ("jsd", "sym_kl")}, "measure": m, "value": r[m]}
                   for r in s.results() for m in ("jsd", "sym_kl")]
        records = _with_mean_over_heads(records, ["layer", "eval_length", "measure"])
        df = _frame(records, loaded[a])
        other = loaded[b].run
        df.insert(1, "run_id_b", other.run_id)
        df.insert(df.columns.get_loc("pe") + 1, "pe_b", str(other.cfg.pe.name))
        df.insert(df.columns.get_loc("seed") + 1, "seed_b", int(other.cfg.seed))
        df["head_b"] = df["head_b"].astype("Int64")
        frames.append(df)
    return _order(pd.concat(frames, ignore_index=True), ["run_id", "run_id_b"])


# -- attended distance --------------------------------------------------------------------------


def distance(loaded: Sequence[Loaded], inputs: Inputs, batch_size: int, device: torch.device) -> pd.DataFrame:
    """Mean, argmax and relative attended distance per run, layer, head and length."""
    frames = []
    for x in loaded:
        stats = DistanceStats()
        with recording(x.model, stats), torch.no_grad():
            for batch in inputs.batches(batch_size):
                stats.start(batch.length, batch.valid.to(device))
                x.model(batch.input_ids.to(device))
        records = _with_mean_over_heads(stats.results(), ["layer", "eval_length", "measure"])
        frames.append(_frame(records, x))
    return _order(pd.concat(frames, ignore_index=True), ["run_id"])


# -- position probes ----------------------------------------------------------------------------


def _labels(batch, device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per target: (token mask ``[B, T]``, label ``[B, T]``)."""
    width = batch.input_ids.shape[1]
    pos = torch.arange(width, device=device)[None, :].expand(len(batch.input_ids), -1)
    valid = batch.valid.to(device)
    to_end = valid.sum(1, keepdim=True) - 1 - pos
    return {"position": (valid, pos), "to_end": (valid & batch.answer.to(device), to_end)}


def probe(loaded: Sequence[Loaded], inputs: Inputs, batch_size: int, ridge: float,
          device: torch.device) -> pd.DataFrame:
    """Accuracy (and mean absolute error) of linear probes of position and of tokens-to-end per layer
    and length, with a shuffled-label control. Fit: in-range lengths, even-numbered examples;
    test: odd-numbered examples of every length, tokens whose label occurred in fitting."""
    frames = []
    for x in loaded:
        fit_lengths = [n for n in inputs.lengths if _in_range(x, n)]
        if not fit_lengths:
            raise ConfigError(f"probe fits on in-range lengths, but none of the lengths asked for is in "
                              f"{x.run.cfg.task.name}'s training range {x.run.train_range}; include some")
        n_classes = max(inputs.tokens(n) for n in fit_lengths)
        layers = x.model.cfg.n_layers + 1
        probes = {(layer, t, c): LinearProbe(x.model.cfg.d_model, n_classes)
                  for layer in range(layers) for t in TARGETS for c in (False, True)}
        shuffle = torch.Generator().manual_seed(0)
        fit = inputs.batches(batch_size, lambda n, rank, x=x: (rank % 2 == 0) & _in_range(x, n))
        for batch in fit:
            states = hidden_states(x.model, batch.input_ids.to(device))
            for target, (mask, label) in _labels(batch, device).items():
                y = label[mask]
                y_shuffled = y[torch.randperm(len(y), generator=shuffle).to(y.device)]
                for layer, h in enumerate(states):
                    probes[(layer, target, False)].add(h[mask], y)
                    probes[(layer, target, True)].add(h[mask], y_shuffled)
        for p in probes.values():
            p.fit(ridge)
        sums: dict[tuple, np.ndarray] = {}  # (layer, target, control, length) -> [correct, abs error, n]
        for batch in inputs.batches(batch_size, lambda n, rank: rank % 2 == 1):
            states = hidden_states(x.model, batch.input_ids.to(device))
            for target, (mask, label) in _labels(batch, device).items():
                y = label[mask].cpu()
                for (layer, t, control), p in probes.items():
                    if t != target:
                        continue
                    known = p.known(y)  # a class never seen in fitting cannot be predicted: not scored
                    pred = p.predict(states[layer][mask][known.to(device)])
                    diff = pred - y[known]
                    key = (layer, target, control, batch.length)
                    add = np.array([(diff == 0).sum().item(), diff.abs().sum().item(), len(diff)], dtype=float)
                    sums[key] = sums.get(key, 0) + add
        records = []
        for (layer, target, control, length), (correct, err, n) in sorted(sums.items()):
            if n == 0:
                continue
            if control:
                records.append({"layer": layer, "eval_length": length, "measure": f"{target}_shuffled_accuracy",
                                "value": correct / n, "n": int(n)})
            else:
                records += [{"layer": layer, "eval_length": length, "measure": f"{target}_accuracy",
                             "value": correct / n, "n": int(n)},
                            {"layer": layer, "eval_length": length, "measure": f"{target}_mae",
                             "value": err / n, "n": int(n)}]
        frames.append(_frame(records, x))
    return _order(pd.concat(frames, ignore_index=True), ["run_id"])


def _order(df: pd.DataFrame, runs: list[str]) -> pd.DataFrame:
    keys = [*runs, "measure", "layer", *(["head"] if "head" in df else []), "eval_length"]
    return df.sort_values(keys, kind="stable", na_position="last").reset_index(drop=True)
