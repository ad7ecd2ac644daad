"""The evaluation inputs every analysed run sees: one task, one data seed, ``n`` examples per length.

Comparing two models' attention needs the *same* inputs, so the test split is drawn once (from
one run's task config and seed, at the lengths asked for) and each run is fed from it. Batches
hold one length each, one example per row, right-padded: causal attention never reaches the
padding from a real token, and the masks below leave padded queries out of every measure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import OmegaConf

from lengen.data.batching import IGNORE, TokenStore
from lengen.rundir import Run, task_data


@dataclass
class Batch:
    length: int  # the task's length (eval_length of the result rows)
    input_ids: torch.Tensor  # [B, T]
    valid: torch.Tensor  # [B, T] bool: a real token (not padding)
    answer: torch.Tensor  # [B, T] bool: the next token is part of the target
    rank: np.ndarray  # [B] each example's index among the examples of its length


class Inputs:
    """The shared test examples (a :class:`~lengen.data.dataset.TaskData` test split)."""

    def __init__(self, run: Run, lengths: Sequence[int], n_per_length: int, seed: int | None = None) -> None:
        cfg = run.cfg.copy()
        OmegaConf.update(cfg, "eval.lengths", [int(x) for x in lengths], merge=False)
        OmegaConf.update(cfg, "eval.n_per_length", int(n_per_length), merge=False)
        if seed is not None:
            cfg.seed = int(seed)
        self.seed = int(cfg.seed)
        data = task_data(cfg)
        self.tokenizer = data.tokenizer
        test = data.split("test")
        self.store = TokenStore(test, self.tokenizer.pad_id)
        self._length = np.asarray(test["length"])
        self.lengths = [int(x) for x in sorted(set(self._length.tolist()))]

    @property
    def max_tokens(self) -> int:
        """The longest model input (positions an absolute PE must serve)."""
        return int(self.store.lengths.max()) - 1

    def tokens(self, length: int) -> int:
        return int(self.store.lengths[self._length == length].max()) - 1

    def count(self, length: int) -> int:
        return int((self._length == length).sum())

    def batches(self, batch_size: int | Callable[[int], int],
                keep: Callable[[int, np.ndarray], np.ndarray] | None = None) -> Iterator[Batch]:
        """Per length, in order: batches of ``batch_size`` examples (or ``batch_size(tokens)``).
        ``keep(length, rank)`` selects examples by their index within the length."""
        for length in self.lengths:
            idx = np.flatnonzero(self._length == length)
            rank = np.arange(len(idx))
            if keep is not None:
                chosen = keep(length, rank)
                idx, rank = idx[chosen], rank[chosen]
            size = batch_size(self.tokens(length)) if callable(batch_size) else batch_size
            for start in range(0, len(idx), max(1, size)):
                sel = idx[start : start + size]
                b = self.store.collate(sel)
                width = b["input_ids"].shape[1]
                valid = torch.arange(width)[None, :] < torch.from_numpy(self.store.lengths[sel] - 1)[:, None]
                yield Batch(length, b["input_ids"], valid, b["labels"] != IGNORE, rank[start : start + size])
