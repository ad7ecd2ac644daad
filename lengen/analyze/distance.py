"""Where each head looks: how far back its attention reaches from the query.

For a query at position ``i`` with attention ``p`` over keys ``j <= i``:

- ``mean_distance`` = ``sum_j p_j (i - j)``: the attention-weighted distance back (0 = itself);
- ``argmax_distance`` = ``i - argmax_j p_j``: the distance of the key it attends to most;
- ``relative_distance`` = ``mean_distance / i`` (queries ``i >= 1``): the same as a share of the
  prefix, 0 = local, 1 = the first token; comparable across lengths.

Each is averaged over the real query rows of a length. A local head keeps small distances as
inputs grow; a head that attends to fixed positions (the start, a separator) grows with the input.
Sums are per (layer, head, length), fed block by block by the attention recorder, so nothing of
size ``[heads, L, L]`` is kept.
"""

from __future__ import annotations

import torch

MEASURES = ("mean_distance", "argmax_distance", "relative_distance")


class DistanceStats:
    """Recorder-side accumulator: call :meth:`start` with each batch's query mask, then forward."""

    def __init__(self) -> None:
        self.sums: dict[tuple[int, int], torch.Tensor] = {}  # (layer, length) -> [3, H]
        self.rows: dict[tuple[int, int], torch.Tensor] = {}  # (layer, length) -> [2] (all, i >= 1)
        self._length = 0
        self._valid: torch.Tensor | None = None

    def start(self, length: int, valid: torch.Tensor) -> None:
        self._length, self._valid = length, valid

    def __call__(self, layer: int, qs: int, probs: torch.Tensor) -> None:
        nq, n_keys = probs.shape[-2:]
        past = n_keys - (qs + nq)  # keys before the first query (0 in an analysis forward)
        query = torch.arange(past + qs, past + qs + nq, device=probs.device, dtype=probs.dtype)
        keys = torch.arange(n_keys, device=probs.device, dtype=probs.dtype)
        mean = query - (probs * keys).sum(-1)  # [B, H, nq]
        argmax = query - probs.argmax(-1).to(probs.dtype)
        relative = mean / query.clamp_min(1)
        weight = self._valid[:, qs : qs + nq].to(probs.device, probs.dtype)[:, None, :]  # [B, 1, nq]
        later = weight * (query >= 1).to(probs.dtype)
        sums = torch.stack([(mean * weight).sum((0, 2)), (argmax * weight).sum((0, 2)),
                            (relative * later).sum((0, 2))]).double().cpu()
        rows = torch.stack([weight.sum(), later.sum()]).double().cpu()
        key = (layer, self._length)
        self.sums[key] = self.sums.get(key, 0) + sums
        self.rows[key] = self.rows.get(key, 0) + rows

    def results(self) -> list[dict]:
        """One record per (layer, length, head, measure)."""
        out = []
        for (layer, length), sums in sorted(self.sums.items()):
            rows = self.rows[(layer, length)]
            for m, measure in enumerate(MEASURES):
                n = rows[1] if measure == "relative_distance" else rows[0]
                for head in range(sums.shape[1]):
                    value = float(sums[m, head] / n) if n > 0 else float("nan")
                    out.append({"layer": layer, "eval_length": length, "head": head, "measure": measure,
                                "value": value, "n": int(n)})
        return out
