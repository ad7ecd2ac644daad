"""Token batches: flat in-memory token storage, length-bucketed batching and collation.

Training batches are a pure function of ``(seed, step)``: each epoch is a seeded permutation cut
into windows of ``bucket_batches`` batches, sorted by length inside each window (so padding stays
small) and shuffled. ``TrainBatches`` starts at any step, which is what makes a resumed run see
exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import datasets
import numpy as np
import torch

IGNORE = -100


class TokenStore:
    """All sequences of a split as one flat int array plus offsets (cheap to slice and pad)."""

    def __init__(self, ds: datasets.Dataset, pad_id: int) -> None:
        table = ds.data.table if hasattr(ds.data, "table") else ds.data
        ids = table.column("input_ids").combine_chunks()
        self.flat = ids.values.to_numpy(zero_copy_only=False).astype(np.int64)
        self.offsets = ids.offsets.to_numpy().astype(np.int64)
        self.n_prompt = table.column("n_prompt").to_numpy().astype(np.int64)
        self.lengths = np.diff(self.offsets)
        self.pad_id = pad_id

    def __len__(self) -> int:
        return len(self.lengths)

    def collate(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        """Inputs ``ids[:-1]`` and labels ``ids[1:]`` with prompt and padding labels ignored."""
        lens = self.lengths[idx]
        width = int(lens.max()) - 1
        n = len(idx)
        col = np.arange(width)[None, :]
        valid = col < (lens[:, None] - 1)
        src = self.offsets[idx][:, None] + col
        src = np.where(valid, src, 0)
        inputs = np.where(valid, self.flat[src], self.pad_id)
        labels = np.where(valid, self.flat[np.where(valid, src + 1, 0)], IGNORE)
        labels = np.where(col >= (self.n_prompt[idx][:, None] - 1), labels, IGNORE)
        return {
            "input_ids": torch.from_numpy(inputs.reshape(n, width)),
            "labels": torch.from_numpy(labels.reshape(n, width)),
            "index": torch.from_numpy(np.asarray(idx, dtype=np.int64)),
        }


def epoch_batches(lengths: np.ndarray, batch_size: int, bucket_batches: int, seed: int, epoch: int) -> list[np.ndarray]:
    rng = np.random.default_rng([int(seed), int(epoch)])
    perm = rng.permutation(len(lengths))
    window = batch_size * max(1, bucket_batches)
    batches: list[np.ndarray] = []
    for start in range(0, len(perm), window):
        chunk = perm[start : start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


class TrainBatches(torch.utils.data.IterableDataset):
    """Endless deterministic stream of collated training batches starting at ``start_step()``."""

    def __init__(self, store: TokenStore, batch_size: int, bucket_batches: int, seed: int,
                 start_step: Callable[[], int] = lambda: 0) -> None:
        super().__init__()
        self.store, self.batch_size, self.bucket_batches, self.seed = store, batch_size, bucket_batches, seed
        self.start_step = start_step
        self._cache: tuple[int, list[np.ndarray]] | None = None

    def batches_of_epoch(self, epoch: int) -> list[np.ndarray]:
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, epoch_batches(self.store.lengths, self.batch_size, self.bucket_batches, self.seed, epoch))
        return self._cache[1]

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        step = self.start_step()
        per_epoch = len(self.batches_of_epoch(0))
        while True:
            epoch, i = divmod(step, per_epoch)
            yield self.store.collate(self.batches_of_epoch(epoch)[i])
            step += 1

    def padding_fraction(self, n_batches: int = 200) -> float:
        """Share of padded positions over the first ``n_batches`` batches (for benchmarks)."""
        pad = total = 0
        for b in self.batches_of_epoch(0)[:n_batches]:
            lens = self.store.lengths[b] - 1
            pad += int(lens.max()) * len(b) - int(lens.sum())
            total += int(lens.max()) * len(b)
        return pad / max(total, 1)


def eval_batches(store: TokenStore, batch_size: int) -> list[np.ndarray]:
    """Deterministic eval batches of similar token length (right padding cannot affect a causal model)."""
    order = np.argsort(store.lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
