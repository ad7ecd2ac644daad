"""Sweeps: a real multirun through the basic launcher (in-process) and through submitit_local
(real subprocesses), deterministic run dirs so a rerun trains nothing, and the SLURM launcher's
composed keys."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_module

from lengen.progress import read_progress
from tests.conftest import spawn_lengen, tiny_overrides, wait_for_progress

FAST = {"trainer.max_steps": 10, "trainer.val_every": 10, "data.n_train": 200, "task.eval_max": 8}


def finished(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (root / "runs").rglob("results.parquet")}


def test_basic_multirun_and_rerun_skips(tmp_path, lengen_main, capsys):
    args = ["train", "-m", "+pe=nope,alibi", "task=copy,reverse", "seed=1,2", *tiny_overrides(tmp_path, **FAST)]
    assert lengen_main(*args) == 0
    done = finished(tmp_path)
    assert len(done) == 8
    rel = sorted(str(p.parent.relative_to(tmp_path / "runs")) for p in done)
    assert rel[0] == "default/copy/alibi/" + rel[0].split("/")[3] + "/seed1"
    rows = pd.concat(pd.read_parquet(p) for p in done)
    assert set(rows["pe"]) == {"nope", "alibi"} and set(rows["task"]) == {"copy", "reverse"}
    assert set(rows["seed"]) == {1, 2}
    capsys.readouterr()
    assert lengen_main(*args) == 0  # the same sweep again: every run is already finished
    assert capsys.readouterr().out.count("already finished") == 8
    assert finished(tmp_path) == done


def sweep_rows(root: Path) -> pd.DataFrame:
    rows = pd.concat(pd.read_parquet(p) for p in sorted((root / "runs").rglob("results.parquet")))
    return rows.drop(columns=["run_id"]).reset_index(drop=True)


def test_killed_sweep_job_resumes_from_its_checkpoint(tmp_path):
    """SIGKILL (no chance to save anything) while the second job of a sweep trains, then relaunch the
    same sweep: the finished job is skipped, the cut one resumes from its periodic last.ckpt, and every
    result row equals an uninterrupted sweep's. The kill waits for ``progress.json`` to show the t5 job
    past its first periodic checkpoint (step 20) with most of its steps to go, and the test checks it
    really landed before ``max_steps``."""
    max_steps, val_every = 160, 20
    steps = {"trainer.max_steps": max_steps, "trainer.val_every": val_every, "data.n_train": 2000}

    def sweep(root: Path) -> subprocess.Popen:
        return spawn_lengen("train", "-m", "+pe=nope,t5", *tiny_overrides(root, **steps))

    ref = sweep(tmp_path / "ref")
    out, _ = ref.communicate(timeout=600)
    assert ref.returncode == 0, out

    root = tmp_path / "cut"
    proc = sweep(root)

    def t5_progress() -> Path | None:
        """The t5 job's progress.json once its periodic last.ckpt exists."""
        run = next((root / "runs").glob("*/copy/t5/*/seed1"), None)
        return run / "progress.json" if run and (run / "checkpoints" / "last.ckpt").exists() else None

    wait_for_progress(proc, t5_progress, val_every + 1)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert val_every < read_progress(t5_progress())["step"] < max_steps  # killed mid-training, past a checkpoint
    assert [p.parts[-4] for p in finished(root)] == ["nope"]  # t5 was cut before writing results

    again = sweep(root)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out
    assert out.count("already finished") == 1 and out.count("resuming from") == 1
    pd.testing.assert_frame_equal(sweep_rows(root), sweep_rows(tmp_path / "ref"))


def test_submitit_local_multirun(tmp_path):
    proc = spawn_lengen("train", "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
                        "+pe=nope,rope", *tiny_overrides(tmp_path, **FAST))
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-6000:]
    done = finished(tmp_path)
    assert {p.parts[-4] for p in done} == {"nope", "rope"}
    assert list((tmp_path / "runs" / "default" / ".submitit").iterdir())  # really went through submitit


def test_slurm_launcher_config_composes():
    import lengen.resolvers  # noqa: F401

    with initialize_config_module(config_module="lengen.conf", version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["+pe=nope", "hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                       "hydra.launcher.account=lab", "+hydra.launcher.additional_parameters.constraint=a100"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.account == "lab"
    assert launcher.gpus_per_node == 1 and launcher.max_num_timeout > 0
    assert launcher.additional_parameters.constraint == "a100"
    for key in ("cpus_per_task", "mem_gb", "timeout_min", "setup"):
        assert key in launcher
