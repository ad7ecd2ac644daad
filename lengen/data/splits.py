"""Deterministic, leak-free example generation for the train / val / test splits.

Each (split, length) pair draws from its own ``numpy`` stream seeded by ``(seed, split,
length)``, so a split at lengths 1..80 contains exactly the split at lengths 1..40, and a longer
evaluation never changes the examples a shorter one saw. The test split is canonical (it never
depends on training data); validation excludes test prompts and training excludes both, by
hashing prompts -- so no test example ever occurs in training.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np

from lengen.tasks.base import Example, Task

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
#: an evaluation split whose draws are more than 10% repeats keeps only half of its distinct instances.
SMALL_SPACE = 0.9


def example_key(prompt: Sequence[str]) -> bytes:
    """Stable 16-byte hash of a prompt (tasks are functions of the prompt, so it identifies the example)."""
    return hashlib.blake2b("\x1f".join(prompt).encode(), digest_size=16).digest()


def split_rng(seed: int, split: str, length: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), SPLIT_CODES[split], int(length)])


def draw_split(
    task: Task,
    split: str,
    lengths: Iterable[int],
    n_per_length: int,
    seed: int,
    *,
    exclude: set[bytes] = frozenset(),
    unique: bool,
    max_tries_factor: int = 20,
) -> list[Example]:
    """``n_per_length`` draws per length, skipping excluded prompts.

    With ``unique`` (evaluation splits), repeated prompts are dropped, so a length whose space of
    instances is small yields fewer than ``n_per_length`` examples rather than duplicates, and at
    most half of that small space (the rest stays available to training). For
    training, draws continue until ``n_per_length`` are kept or ``max_tries_factor`` times as many
    were tried (a length almost entirely taken by evaluation prompts yields fewer).
    """
    out: list[Example] = []
    for length in lengths:
        rng = split_rng(seed, split, length)
        seen: set[bytes] = set()
        drawn: list[Example] = []
        budget = n_per_length if unique else n_per_length * max_tries_factor
        for _ in range(budget):
            ex = task.example(rng, length)
            key = example_key(ex.prompt)
            if key in exclude or (unique and key in seen):
                continue
            seen.add(key)
            drawn.append(ex)
            if len(drawn) == n_per_length:
                break
        if unique and len(drawn) < SMALL_SPACE * n_per_length:
            # Many repeats: this length has few distinct instances. Keep half of them, so the
            # splits drawn after this one (and training) still get instances of this length.
            drawn = drawn[: -(-len(drawn) // 2)]
        out.extend(drawn)
    return out


def balanced_counts(total: int, n_lengths: int) -> int:
    """Examples per length bin for a balanced training set of about ``total`` examples."""
    return max(1, -(-total // max(n_lengths, 1)))


__all__ = ["balanced_counts", "draw_split", "example_key", "split_rng"]
