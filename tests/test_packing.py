"""Packed training rows compute exactly what separate rows would, for every PE, and keep
padding small on every task."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from lengen.config import conf_dir
from lengen.data.batching import IGNORE, TokenStore, TrainBatches
from lengen.data.dataset import TaskData
from lengen.model.build import build_model
from lengen.model.positional import PE_CLASSES


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    data = TaskData({"name": "copy", "symbols": 8}, seed=3, train_lengths=range(1, 9), test_lengths=range(1, 9),
                    n_train=200, n_val_per_length=2, n_test_per_length=2,
                    cache_dir=tmp_path_factory.mktemp("cache"))
    return TokenStore(data.split("train"), data.tokenizer.pad_id), len(data.tokenizer)


@pytest.mark.parametrize("pe", sorted(PE_CLASSES))
def test_packed_rows_equal_separate_rows(store, pe):
    store, vocab = store
    torch.manual_seed(0)
    model = build_model({"d_model": 32, "n_heads": 4, "n_layers": 2, "d_ff": 64}, {"name": pe}, vocab).eval()
    idx = np.arange(12)
    packed = store.pack(idx, width=24)
    assert packed["input_ids"].shape[0] < len(idx)  # several examples share a row
    with torch.no_grad():
        logits = model(packed["input_ids"], pos=packed["pos"], segments=packed["segments"])
        for r in range(packed["input_ids"].shape[0]):
            for slot in packed["segments"][r].unique().tolist():
                if slot < 0:
                    continue
                cols = (packed["segments"][r] == slot).nonzero().flatten()
                alone = model(packed["input_ids"][r, cols][None])
                torch.testing.assert_close(logits[r, cols], alone[0], atol=1e-5, rtol=1e-4)


def test_packed_labels_match_padded_labels(store):
    store, _ = store
    idx = np.arange(20)
    packed, padded = store.pack(idx, width=30), store.collate(idx)

    def pairs(batch):
        keep = batch["labels"] != IGNORE
        return sorted(zip(batch["input_ids"][keep].tolist(), batch["labels"][keep].tolist()))

    assert pairs(packed) == pairs(padded)
    assert (packed["labels"][packed["segments"] < 0] == IGNORE).all()


def test_pack_rejects_too_narrow_rows(store):
    store, _ = store
    with pytest.raises(ValueError, match="pack width"):
        store.pack(np.arange(50), width=3)


@pytest.mark.parametrize("task", sorted(p.stem for p in (conf_dir() / "task").glob("*.yaml")))
def test_training_padding_is_small_on_every_task(task, tmp_path):
    cfg = yaml.safe_load((conf_dir() / "task" / f"{task}.yaml").read_text())
    lengths = cfg.get("train_lengths") or range(cfg["train_min"], cfg["train_max"] + 1)
    data = TaskData(cfg, seed=1, train_lengths=lengths, test_lengths=lengths, n_train=2000,
                    n_val_per_length=1, n_test_per_length=1, cache_dir=tmp_path)
    store = TokenStore(data.split("train"), data.tokenizer.pad_id)
    assert TrainBatches(store, 64, 50, seed=1, pack_width=64).padding_fraction(30) <= 0.10


def test_unpacked_batches_cover_each_example_once_per_epoch(store):
    """``data.pack_width=0``: one example per row, length-bucketed, every example once per pass."""
    store, _ = store
    batches = TrainBatches(store, 16, 50, seed=1, pack_width=0)
    seen: list[int] = []
    for batch in batches:
        assert "segments" not in batch or batch["segments"] is None
        n = batch["input_ids"].shape[0]
        assert 1 <= n <= 16
        lengths = (batch["labels"] != IGNORE).sum(-1) + (batch["input_ids"] != store.pad_id).sum(-1) * 0
        assert (lengths > 0).all()  # every row holds a real example with a target
        seen.append(n)
        if sum(seen) >= len(store):
            break
    assert sum(seen) >= len(store)


def test_training_without_packing_runs_end_to_end(tmp_path, lengen_main):
    from pathlib import Path

    import pandas as pd

    from tests.conftest import tiny_overrides

    assert lengen_main("train", "+pe=rope", "data.pack_width=0", *tiny_overrides(tmp_path)) == 0
    (path,) = Path(tmp_path / "runs").rglob("results.parquet")
    rows = pd.read_parquet(path)
    import yaml as _yaml

    assert _yaml.safe_load((path.parent / "config.yaml").read_text())["data"]["pack_width"] == 0
    assert rows["loss"].notna().all() and (rows["token_accuracy"] > 0).any()
