"""What a run logs to W&B, read back from the offline run's own files and compared with the run's
``results.parquet``: config (task, pe, seed, hardware), the per-length table, the accuracy-vs-length
chart and the in/beyond summary; and a run interrupted and resumed logs into the same W&B run id.

wandb 0.31 has no Python reader of its ``.wandb`` transaction log any more (``wandb.sdk.internal.
datastore`` moved into the Go core), so :func:`read_records` reads the documented format -- a LevelDB
log: a 7-byte header (``:W&B``, magic 0xBEE1, version 0), 32 KiB blocks of chunks (CRC-32 of type and
data, length, type FULL/FIRST/MIDDLE/LAST) -- checking every checksum, and parses each record with
wandb's own protobuf ``wandb.proto.wandb_internal_pb2.Record``.

One run serves every test: a child ``lengen train`` with ``logger=wandb`` is interrupted (SIGINT) a
few steps in, then the same command, in-process, resumes and finishes it."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from wandb.proto import wandb_internal_pb2 as pb

from lengen.loggers import wandb_run_id
from lengen.results import summary
from tests.conftest import spawn_lengen, tiny_overrides, wait_for_progress
from tests.inprocess import finished_run, run_lengen

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
MAX_STEPS, VAL_EVERY, CUT_AT = 150, 50, 3


def read_records(path: Path) -> list[pb.Record]:
    """Every complete record of a ``run-<id>.wandb`` file (a cut-off tail is ignored)."""
    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:HEADER])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), path
    payloads, pending, pos = [], b"", HEADER
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # too little room left in the block for a chunk header: padding
            pos += BLOCK - pos % BLOCK
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if (crc, length, kind) == (0, 0, 0):  # zero fill to the end of the block
            pos += BLOCK - pos % BLOCK
            continue
        chunk = data[pos + HEADER : pos + HEADER + length]
        if len(chunk) < length:
            break
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) == crc, f"bad checksum at byte {pos} of {path}"
        pos += HEADER + length
        if kind == FULL:
            payloads.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            payloads.append(pending + chunk)
    records = []
    for payload in payloads:
        record = pb.Record()
        record.ParseFromString(payload)
        records.append(record)
    return records


def _put(tree: dict, item: Any) -> None:
    *parents, leaf = list(item.nested_key) or [item.key]
    for p in parents:
        tree = tree.setdefault(p, {})
    tree[leaf] = json.loads(item.value_json)


@dataclass
class OfflineRun:
    """An offline W&B run folded from its records, as the W&B server would see it."""

    dir: Path
    file_id: str
    run: pb.RunRecord | None = None
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)

    @classmethod
    def read(cls, folder: Path) -> OfflineRun:
        (log,) = folder.glob("run-*.wandb")
        out = cls(folder, re.fullmatch(r"run-(.+)\.wandb", log.name).group(1))
        for r in read_records(log):
            kind = r.WhichOneof("record_type")
            if kind == "run":
                out.run = r.run
                for item in r.run.config.update:
                    _put(out.config, item)
            elif kind == "config":
                for item in r.config.update:
                    _put(out.config, item)
            elif kind == "summary":
                for item in r.summary.update:
                    _put(out.summary, item)
            elif kind == "history":
                row: dict = {}
                for item in r.history.item:
                    _put(row, item)
                out.history.append(row)
        return out

    def rows_with(self, key: str) -> list[dict]:
        return [h for h in self.history if key in h]


def lengen_args(root: Path) -> list[str]:
    over = tiny_overrides(root, **{"task": "parity", "trainer.max_steps": MAX_STEPS, "trainer.val_every": VAL_EVERY,
                                   "trainer.threads": 1, "eval.samples": 0})
    return ["train", "+pe=nope", "logger=wandb", *(o for o in over if o != "logger=none")]


@dataclass
class Resumed:
    run_dir: Path
    stopped: int  # the step the first process was interrupted at
    first: OfflineRun  # the interrupted process's W&B run
    final: OfflineRun  # the resumed (and finished) one


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> Resumed:
    root = tmp_path_factory.mktemp("wandb")
    args = lengen_args(root)
    proc = spawn_lengen(*args)
    wait_for_progress(proc, lambda: next((root / "runs").rglob("progress.json"), None), CUT_AT)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGINT, out[-4000:]
    stopped = int(re.search(r"interrupted by SIGINT at step (\d+)", out).group(1))
    assert CUT_AT <= stopped < MAX_STEPS, out[-4000:]  # the signal landed mid-training
    (run_dir,) = {p.parent for p in (root / "runs").rglob("config.yaml")}
    (first,) = (run_dir / "wandb").glob("offline-run-*")
    time.sleep(1.0)  # offline run folders are named by the second they start in

    run_lengen(*args)
    assert finished_run(root) == run_dir
    (final,) = set((run_dir / "wandb").glob("offline-run-*")) - {first}
    return Resumed(run_dir, stopped, OfflineRun.read(first), OfflineRun.read(final))


def results(r: Resumed) -> pd.DataFrame:
    return pd.read_parquet(r.run_dir / "results.parquet")


# -- run id reuse ------------------------------------------------------------------------------------------

def test_resumed_run_logs_into_the_same_wandb_run_id(resumed):
    want = wandb_run_id(resumed.run_dir)
    for run in (resumed.first, resumed.final):
        assert run.file_id == want and run.dir.name.endswith(f"-{want}")
        assert run.run is not None and run.run.run_id == want
    # the first process logged steps up to the interrupt; the resumed one continues after it
    first_steps = [h["trainer/global_step"] for h in resumed.first.history if "trainer/global_step" in h]
    final_steps = [h["trainer/global_step"] for h in resumed.final.history if "trainer/global_step" in h]
    assert all(s < resumed.stopped for s in first_steps)
    # the last record is the end-of-run summary, logged at the final global step
    assert final_steps and min(final_steps) >= resumed.stopped and max(final_steps) == MAX_STEPS
    assert not any(k.startswith("eval/") for h in resumed.first.history for k in h)  # the finished run's only
    assert any(k.startswith("eval/") for h in resumed.final.history for k in h)


def test_wandb_run_id_is_a_function_of_the_run_dir(tmp_path):
    a, b = tmp_path / "runs" / "x" / "seed1", tmp_path / "runs" / "x" / "seed2"
    assert wandb_run_id(a) == wandb_run_id(a / ".." / "seed1") != wandb_run_id(b)
    assert re.fullmatch(r"[0-9a-f]{16}", wandb_run_id(a))


# -- content of the finished run -------------------------------------------------------------------------

def test_config_names_the_task_pe_seed_and_hardware(resumed):
    cfg = yaml.safe_load((resumed.run_dir / "config.yaml").read_text())
    meta = yaml.safe_load((resumed.run_dir / "meta.yaml").read_text())
    logged = resumed.final.config
    assert logged["task"] == cfg["task"] and logged["task"]["name"] == "parity"
    assert logged["pe"] == cfg["pe"] == {"name": "nope"}
    assert logged["seed"] == cfg["seed"] == 1
    assert logged["model"] == cfg["model"] and logged["trainer"] == cfg["trainer"]
    assert logged["hardware"] == meta["hardware"] and logged["hardware"]["label"]
    run = resumed.final.run
    assert run.display_name == "parity-nope-seed1" and list(run.tags) == ["parity", "nope"]
    assert run.run_group == cfg["study"] and run.project == "lengen"


def logged_table(run: OfflineRun, key: str) -> tuple[dict, pd.DataFrame]:
    """The table a history row logged under ``key``: its reference and the file it points to."""
    (row,) = run.rows_with(key)
    ref = row[key]
    assert ref["_type"] == "table-file"
    path = run.dir / "files" / ref["path"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ref["sha256"]
    table = json.loads(path.read_text())
    assert (ref["nrows"], ref["ncols"]) == (len(table["data"]), len(table["columns"]))
    return ref, pd.DataFrame(table["data"], columns=table["columns"])


def test_per_length_table_is_the_result_rows(resumed):
    _, table = logged_table(resumed.final, "eval/per_length")
    rows = results(resumed)
    assert table.columns.tolist() == rows.columns.tolist()
    assert len(table) == len(rows) == 10 and table["eval_length"].tolist() == list(range(1, 11))
    pd.testing.assert_frame_equal(table, rows, check_dtype=False)
    assert rows["exact_match"].nunique() > 1 or rows["token_accuracy"].nunique() > 1  # not a constant table


def test_accuracy_vs_length_chart_plots_exact_match_of_the_same_table(resumed):
    panel = resumed.final.config["_wandb"]["visualize"]["eval/accuracy_vs_length"]
    assert panel["panel_type"] == "Vega2"
    config = panel["panel_config"]
    assert config["panelDefId"] == "wandb/line/v0"
    assert config["fieldSettings"]["x"] == "eval_length" and config["fieldSettings"]["y"] == "exact_match"
    (query,) = config["userQuery"]["queryFields"]
    (table_key,) = [a["value"] for f in query["fields"] for a in f.get("args", []) if a["name"] == "tableKey"]
    chart_ref, chart = logged_table(resumed.final, table_key)
    table_ref, _ = logged_table(resumed.final, "eval/per_length")
    assert chart_ref["sha256"] == table_ref["sha256"]  # the very table logged as eval/per_length
    rows = results(resumed)
    assert chart["eval_length"].tolist() == rows["eval_length"].tolist()
    assert chart["exact_match"].tolist() == pytest.approx(rows["exact_match"].tolist())


def test_summary_is_the_in_and_beyond_range_exact_match_of_the_rows(resumed):
    want = summary(results(resumed))
    got = resumed.final.summary
    assert got["eval/in_range_exact_match"] == pytest.approx(want["in_range"])
    assert got["eval/beyond_exact_match"] == pytest.approx(want["beyond"])
    (row,) = resumed.final.rows_with("eval/in_range_exact_match")  # also logged once as a history point
    assert row["eval/in_range_exact_match"] == pytest.approx(want["in_range"])
    assert row["eval/beyond_exact_match"] == pytest.approx(want["beyond"])
    rows = results(resumed)
    inside = rows[rows["in_range"]]
    assert want["in_range"] == pytest.approx((inside["exact_match"] * inside["n"]).sum() / inside["n"].sum())


def test_training_and_validation_curves_are_logged(resumed):
    train = [h for h in resumed.final.history if "train/loss" in h]
    val = [h for h in resumed.final.history if "val/exact_match" in h]
    assert train and all(h["train/loss"] > 0 for h in train)
    # validations after steps 50, 100, 150 that came after the interrupt (all of them unless the first
    # process ran past step 50), logged at the 0-based index of the last step taken
    after = [s - 1 for s in range(VAL_EVERY, MAX_STEPS + 1, VAL_EVERY) if s > resumed.stopped]
    assert [h["trainer/global_step"] for h in val] == after and after[-1] == MAX_STEPS - 1
    assert all(h["val/selection"] == pytest.approx(h["val/exact_match"] - 1e-3 * h["val/loss"], abs=1e-6)
               for h in val)
