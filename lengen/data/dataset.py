"""Task data as Hugging Face ``datasets``, cached on disk by a fingerprint of what made it.

``TaskData`` turns (task config, seed, lengths, counts) into the three splits. Each split is
saved with ``save_to_disk`` under ``<cache_dir>/<task>/<split>-<fingerprint>`` (written to a
temporary folder and renamed, so an interrupted build never leaves a half cache), and a rerun
loads it instead of regenerating.

Columns: the symbols (``prompt``, ``target``), ``input_ids`` (typed as labels over the tokenizer's
vocabulary, so a split names what its ids stand for), the lengths and grouping keys, and -- only
when the task gives tokens position ids of their own (``task.positions=coupled``) -- ``pos`` (one
id per token of ``input_ids``) and ``pos_shifts`` (how many random starts training may draw).
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
from lengen.tasks import Example, Task, TaskConfigError, build_task

#: bump when generation or the stored columns change, so stale caches are never read.
DATA_VERSION = 3


def default_cache_dir() -> Path:
    return Path(os.environ.get("LENGEN_CACHE", Path.home() / ".cache" / "lengen"))


def fingerprint(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


#: ``task.positions`` values; a task other than ``default`` implements ``position_ids(prompt, target)``
#: -> ``(ids of <bos> prompt <sep> target <eos>, number of training starts)`` (``tasks/arithmetic.py``).
POSITION_MODES = ("default", "coupled")


def position_provider(task: Task, task_cfg: Mapping[str, Any]):
    """The task's ``position_ids`` when ``task.positions`` asks for them, else None (one-line errors)."""
    mode = task_cfg.get("positions", "default")
    provider = getattr(task, "position_ids", None)
    if mode in (None, "default"):
        return None
    if mode not in POSITION_MODES:
        raise TaskConfigError(f"task.positions={mode!r}; allowed: {', '.join(POSITION_MODES)}")
    if provider is None:
        raise TaskConfigError(f"task.positions={mode}: task {task.name} has no position ids of its own; allowed: default")
    return provider


def examples_to_dataset(examples: Sequence[Example], tokenizer: Tokenizer, group_keys: Sequence[str],
                        positions=None) -> datasets.Dataset:
    """``positions``: the task's ``position_ids`` (adds the ``pos`` and ``pos_shifts`` columns)."""
    cols: dict[str, list] = {k: [] for k in ("prompt", "target", "length", "answer_len", "input_ids", "n_prompt")}
    extra: dict[str, list] = {k: [] for k in group_keys}
    if positions is not None:
        cols.update(pos=[], pos_shifts=[])
    for ex in examples:
        ids, n_prompt = tokenizer.encode_pair(ex.prompt, ex.target)
        if positions is not None:
            pos, shifts = positions(ex.prompt, ex.target)
            if len(pos) != len(ids):
                raise ValueError(f"task {ex.prompt!r}: {len(pos)} position ids for {len(ids)} tokens")
            cols["pos"].append(pos)
            cols["pos_shifts"].append(shifts)
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
            "input_ids": datasets.Sequence(datasets.ClassLabel(names=list(tokenizer.vocab))),
            "n_prompt": datasets.Value("int32"),
            **{k: datasets.Value("float64") for k in group_keys},
            **({"pos": datasets.Sequence(datasets.Value("int32")), "pos_shifts": datasets.Value("int32")}
               if positions is not None else {}),
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
        self.positions = position_provider(self.task, self.task_cfg)
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
        ds = examples_to_dataset(self._examples(split), self.tokenizer, self.task.group_keys, self.positions)
        try:
            with atomic_dir(path) as tmp:
                ds.save_to_disk(str(tmp))
        except OSError:
            if not path.exists():  # else a concurrent builder of the same split won the rename
                raise
        return datasets.load_from_disk(str(path))
