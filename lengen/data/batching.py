"""Token batches: flat in-memory token storage, packed or length-bucketed batching, collation.

Training batches are a pure function of ``(seed, step)``: each epoch is a seeded permutation cut
into batches. By default a batch's examples are *packed* into rows of a fixed width (several
examples per row, attention kept inside each example), so batches mix every length -- which
trains far better than batches of one length -- with almost no padding. Without packing,
windows of ``bucket_batches`` batches are sorted by length (small padding, but each batch then
holds nearly one length). ``TrainBatches`` starts at any step, which is what makes a resumed
run see exactly the batches an uninterrupted one would.

A split whose task gives its tokens position ids (``pos``, position coupling) yields them as the
batch's ``pos`` (and ``pos_shifts``: per token, how many random starts its example may take), so
training, validation and evaluation all see the task's ids (``lengen.data.positions`` draws
the training starts).
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
        if getattr(ds, "_indices", None) is not None:  # a .select()/.shuffle() view: read its rows only
            ds = ds.flatten_indices()
        table = ds.data.table if hasattr(ds.data, "table") else ds.data
        ids = table.column("input_ids").combine_chunks()
        self.flat = ids.values.to_numpy(zero_copy_only=False).astype(np.int64)
        self.offsets = ids.offsets.to_numpy().astype(np.int64)
        self.n_prompt = table.column("n_prompt").to_numpy().astype(np.int64)
        self.lengths = np.diff(self.offsets)
        self.pad_id = pad_id
        self.pos: np.ndarray | None = None  # task position ids, flat like ``flat`` (same offsets)
        self.pos_shifts: np.ndarray | None = None
        if "pos" in table.column_names:
            self.pos = table.column("pos").combine_chunks().values.to_numpy(zero_copy_only=False).astype(np.int64)
            self.pos_shifts = table.column("pos_shifts").to_numpy().astype(np.int64)
        feature = ds.features["input_ids"]
        names = getattr(getattr(feature, "feature", None), "names", None)
        #: the tokenizer's vocabulary the ids index (None for a split written without it)
        self.vocab: tuple[str, ...] | None = tuple(names) if names else None

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
        batch = {
            "input_ids": torch.from_numpy(inputs.reshape(n, width)),
            "labels": torch.from_numpy(labels.reshape(n, width)),
            "index": torch.from_numpy(np.asarray(idx, dtype=np.int64)),
        }
        if self.pos is not None:
            batch["pos"] = torch.from_numpy(np.where(valid, self.pos[src], 0).reshape(n, width))
            batch["pos_shifts"] = torch.from_numpy(np.where(valid, self.pos_shifts[idx][:, None], 0).reshape(n, width))
        return batch

    def pack(self, idx: np.ndarray, width: int) -> dict[str, torch.Tensor]:
        """First-fit-decreasing packing of examples into rows of ``width`` positions.

        Each example keeps its own position ids (from 0, or the task's) and a segment id; padding has
        segment -1 and ignored labels. Returns ``input_ids``, ``labels``, ``pos``, ``segments`` (and
        ``pos_shifts`` for a task with position ids).
        """
        need = self.lengths[idx] - 1
        if int(need.max()) > width:
            raise ValueError(f"an example needs {int(need.max())} positions; pack width is {width}")
        free: list[int] = []
        rows: list[list[int]] = []
        for j in np.argsort(-need, kind="stable"):
            n = int(need[j])
            for r, room in enumerate(free):
                if room >= n:
                    rows[r].append(j)
                    free[r] -= n
                    break
            else:
                rows.append([j])
                free.append(width - n)
        shape = (len(rows), width)
        inputs = np.full(shape, self.pad_id, dtype=np.int64)
        labels = np.full(shape, IGNORE, dtype=np.int64)
        pos = np.zeros(shape, dtype=np.int64)
        shifts = np.zeros(shape, dtype=np.int64) if self.pos is not None else None
        segments = np.full(shape, -1, dtype=np.int64)
        for r, members in enumerate(rows):
            off = 0
            for slot, j in enumerate(members):
                i, n = idx[j], int(need[j])
                start = self.offsets[i]
                inputs[r, off : off + n] = self.flat[start : start + n]
                lab = self.flat[start + 1 : start + n + 1].copy()
                lab[: self.n_prompt[i] - 1] = IGNORE
                labels[r, off : off + n] = lab
                if shifts is None:
                    pos[r, off : off + n] = np.arange(n)
                else:
                    pos[r, off : off + n] = self.pos[start : start + n]
                    shifts[r, off : off + n] = self.pos_shifts[i]
                segments[r, off : off + n] = slot
                off += n
        batch = {
            "input_ids": torch.from_numpy(inputs),
            "labels": torch.from_numpy(labels),
            "pos": torch.from_numpy(pos),
            "segments": torch.from_numpy(segments),
        }
        if shifts is not None:
            batch["pos_shifts"] = torch.from_numpy(shifts)
        return batch



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
    """Endless deterministic stream of collated training batches starting at ``start_step()``.

    ``pack_width > 0`` packs each batch into rows of ``max(pack_width, 1.5 x longest example)``
    positions; ``pack_width = 0`` pads length-bucketed batches instead.

    Data parallel: ``shard()`` returns ``(rank, world_size)`` (read when iteration starts, i.e. once
    the processes exist). ``batch_size`` is the *global* batch: each batch of the one deterministic
    stream is dealt out over the ranks (rank ``r`` takes examples ``r, r + world, ...``), so every
    step trains on exactly the examples of a single-process step -- none twice, none skipped -- and
    a run's data order does not depend on the number of processes.
    """

    def __init__(self, store: TokenStore, batch_size: int, bucket_batches: int, seed: int,
                 start_step: Callable[[], int] = lambda: 0, pack_width: int = 0,
                 shard: Callable[[], tuple[int, int]] = lambda: (0, 1)) -> None:
        super().__init__()
        self.store, self.batch_size, self.seed = store, batch_size, seed
        longest = int(store.lengths.max()) - 1
        # At least 1.5x the longest example, so rows holding a long one still fill up.
        self.width = max(int(pack_width), (3 * longest + 1) // 2) if pack_width else 0
        self.bucket_batches = 1 if self.width else bucket_batches
        self.start_step, self.shard = start_step, shard
        self._cache: tuple[int, list[np.ndarray]] | None = None

    def batches_of_epoch(self, epoch: int) -> list[np.ndarray]:
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, epoch_batches(self.store.lengths, self.batch_size, self.bucket_batches, self.seed, epoch))
        return self._cache[1]

    def smallest_batch(self) -> int:
        """Examples in the smallest batch of an epoch (every epoch has the same batch sizes)."""
        return min(len(b) for b in self.batches_of_epoch(0))

    def step_indices(self, step: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
        """The examples ``rank`` of ``world_size`` trains on at optimizer step ``step``."""
        epoch, i = divmod(step, len(self.batches_of_epoch(0)))
        return self.batches_of_epoch(epoch)[i][rank::world_size]

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        step = self.start_step()
        rank, world_size = self.shard()
        if world_size > 1 and self.smallest_batch() < world_size:
            raise ValueError(f"a batch of {self.smallest_batch()} examples cannot be shared by {world_size} processes")
        while True:
            idx = self.step_indices(step, rank, world_size)
            yield self.store.pack(idx, self.width) if self.width else self.store.collate(idx)
            step += 1

    def padding_fraction(self, n_batches: int = 200) -> float:
        """Share of padded positions over the first ``n_batches`` batches (for benchmarks)."""
        pad = total = 0
        for b in self.batches_of_epoch(0)[:n_batches]:
            if self.width:
                segments = self.store.pack(b, self.width)["segments"]
                pad += int((segments < 0).sum())
                total += segments.numel()
            else:
                lens = self.store.lengths[b] - 1
                pad += int(lens.max()) * len(b) - int(lens.sum())
                total += int(lens.max()) * len(b)
        return pad / max(total, 1)


def eval_batches(store: TokenStore, batch_size: int) -> list[np.ndarray]:
    """Deterministic eval batches of similar token length (right padding cannot affect a causal model)."""
    order = np.argsort(store.lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
