"""The position ids a batch runs at: plain, the task's own, shifted, randomized.

A batch may carry ``pos`` (packed rows; a task's own ids such as position coupling) and
``pos_shifts`` (per token, how many random starts its example may take in training). Training
moves each example's task ids to a random start and, with ``pe.randomize``, relabels every
example's ids by a sorted random subset of a larger range (:mod:`lengen.model.random_positions`);
evaluation keeps the ids as they are unless ``pe.randomize_eval``. All draws come from the
generator the caller seeds, so they are reproducible.
"""

from __future__ import annotations

import numpy as np
import torch

from lengen.data.batching import IGNORE
from lengen.model.random_positions import RandomPositions, relabel


def example_segments(labels: torch.Tensor) -> torch.Tensor:
    """Segments of an unpacked batch (one example per row, right-padded): 0 up to the example's
    last scored token, -1 on the padding after it."""
    col = torch.arange(labels.shape[1], device=labels.device)
    scored = torch.where(labels != IGNORE, col, -1)
    return torch.where(col <= scored.max(dim=1, keepdim=True).values, 0, -1)


def shift_positions(pos: torch.Tensor, segments: torch.Tensor, shifts: torch.Tensor,
                    rng: np.random.Generator) -> torch.Tensor:
    """Random starts: each example (segment) moves its ids >= 1 by one draw ``d ~ U[0, shifts)``
    (``<bos>``, id 0, stays); ``shifts`` holds the example's count on each of its tokens."""
    seg = segments.clamp(min=0).cpu().numpy()
    n = shifts.cpu().numpy()
    u = rng.random((seg.shape[0], int(seg.max()) + 1 if seg.size else 1))
    d = np.floor(np.take_along_axis(u, seg, axis=1) * np.maximum(n, 1)).astype(np.int64)
    return torch.where((pos > 0) & (segments >= 0), pos + torch.from_numpy(d).to(pos.device), pos)


def batch_positions(batch: dict[str, torch.Tensor], random_positions: RandomPositions | None,
                    rng: np.random.Generator, *, training: bool) -> torch.Tensor | None:
    """The ids to run ``batch`` at (None: the model's plain ``0..L-1``)."""
    pos, segments = batch.get("pos"), batch.get("segments")
    randomize = random_positions is not None and (training or random_positions.at_eval)
    shift = training and "pos_shifts" in batch
    if not randomize and not shift:
        return pos
    if segments is None:
        segments = example_segments(batch["labels"])
    if pos is None:
        pos = torch.arange(segments.shape[1], device=segments.device).expand_as(segments)
    if shift:
        pos = shift_positions(pos, segments, batch["pos_shifts"], rng)
    if randomize:
        pos = relabel(pos, segments, random_positions.max_positions, rng)
    return pos
