"""Task data as Hugging Face ``datasets``, cached on disk by a fingerprint of what made it.

``TaskData`` turns (task config, seed, lengths, counts) into the three splits. Each split is
saved with ``save_to_disk`` under ``<cache_dir>/<task>/<split>-<fingerprint>`` (written to a
temporary folder and renamed, so an interrupted build never leaves a half cache), and a rerun
loads it instead of regenerating.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets

from lengen.data.splits import balanced_counts, draw_split, example_key
from lengen.data.tokenizer import Tokenizer
from lengen.io import atomic_dir
from lengen.tasks import Example, Task, build_task

#: bump when generation or the stored columns change, so stale caches are never read.
DATA_VERSION = 2


def default_cache_dir() -> Path:
    return Path(os.environ.get("LENGEN_CACHE", Path.home() / ".cache" / "lengen"))


def fingerprint(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def examples_to_dataset(examples: Sequence[Example], tokenizer: Tokenizer, group_keys: Sequence[str]) -> datasets.Dataset:
    cols: dict[str, list] = {k: [] for k in ("prompt", "target", "length", "answer_len", "input_ids", "n_prompt")}
    extra: dict[str, list] = {k: [] for k in group_keys}
    for ex in examples:
        ids, n_prompt = tokenizer.encode_pair(ex.prompt, ex.target)
        cols["prompt"].append(list(ex.prompt))
        cols["target"].append(list(ex.target))
        cols["length"].append(ex.length)
        cols["answer_len"].append(ex.answer_len)
        cols["input_ids"].append(ids)
        cols["n_prompt"].append(n_prompt)
        for k in group_keys:
            extra[k].append(ex.extra.get(k))
    features = datasets.Features(
        {
            "prompt": datasets.Sequence(datasets.Value("string")),
            "target": datasets.Sequence(datasets.Value("string")),
            "length": datasets.Value("int32"),
            "answer_len": datasets.Value("int32"),
            "input_ids": datasets.Sequence(datasets.Value("int32")),
            "n_prompt": datasets.Value("int32"),
            **{k: datasets.Value("float64") for k in group_keys},
        }
    )
    return datasets.Dataset.from_dict({**cols, **extra}, features=features)


class TaskData:
    """The splits of one task for one seed.

    ``train_lengths`` are the lengths trained on (balanced: ``n_train`` spread evenly over them),
    ``val_lengths`` the in-range lengths used to pick checkpoints, ``test_lengths`` every length
    evaluated. Test is canonical; val excludes test prompts; train excludes both.
    """

    def __init__(
        self,
        task_cfg: Mapping[str, Any],
        *,
        seed: int,
        train_lengths: Sequence[int],
        test_lengths: Sequence[int],
        n_train: int,
        n_val_per_length: int,
        n_test_per_length: int,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.task_cfg = dict(task_cfg)
        self.task: Task = build_task(self.task_cfg)
        self.tokenizer = Tokenizer(self.task.symbols)
        self.seed = int(seed)
        self.train_lengths = [int(x) for x in train_lengths]
        self.test_lengths = [int(x) for x in test_lengths]
        self.n_train, self.n_val, self.n_test = int(n_train), int(n_val_per_length), int(n_test_per_length)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()

    # -- requests (what defines each split) ------------------------------------------------------
    def _request(self, split: str) -> dict[str, Any]:
        base = {"task": self.task_cfg, "seed": self.seed, "version": DATA_VERSION, "split": split}
        if split == "test":
            return {**base, "lengths": self.test_lengths, "n": self.n_test}
        if split == "val":
            return {**base, "lengths": self.train_lengths, "n": self.n_val, "exclude": [self._request("test")]}
        n = balanced_counts(self.n_train, len(self.train_lengths))
        return {**base, "lengths": self.train_lengths, "n": n, "exclude": [self._request("test"), self._request("val")]}

    def _examples(self, split: str) -> list[Example]:
        req = self._request(split)
        exclude: set[bytes] = set()
        for other in req.get("exclude", []):
            exclude |= {example_key(p) for p in self.split(other["split"])["prompt"]}
        return draw_split(self.task, split, req["lengths"], req["n"], self.seed, exclude=exclude, unique=split != "train")

    def path(self, split: str) -> Path:
        return self.cache_dir / self.task.name / f"{split}-{fingerprint(self._request(split))}"

    def split(self, split: str) -> datasets.Dataset:
        """Load the split from the cache, building and caching it first if needed."""
        path = self.path(split)
        if path.exists():
            return datasets.load_from_disk(str(path))
        ds = examples_to_dataset(self._examples(split), self.tokenizer, self.task.group_keys)
        try:
            with atomic_dir(path) as tmp:
                ds.save_to_disk(str(tmp))
        except OSError:
            if not path.exists():  # else a concurrent builder of the same split won the rename
                raise
        return datasets.load_from_disk(str(path))
