"""The pieces of data-parallel and GPU training that need neither a second process nor a GPU:
rank shards of the training stream, the global-batch checks, the SLURM allocation the launcher
asks for, deterministic mode per device, ``trainer.compile`` and ``trainer.num_nodes`` wiring, and
how Lightning's DDP re-executes the command. The real two-process run is ``tests/test_ddp.py``."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from lengen.compose import compose
from lengen.data.batching import TokenStore, TrainBatches
from lengen.data.dataset import TaskData
from lengen.errors import ConfigError
from lengen.schema import check
from lengen.trainer import check_shards, deterministic_mode, reexec_as_script


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> TokenStore:
    data = TaskData({"name": "copy", "symbols": 8}, seed=3, train_lengths=range(1, 9), test_lengths=range(1, 9),
                    n_train=203, n_val_per_length=2, n_test_per_length=2, cache_dir=tmp_path_factory.mktemp("cache"))
    return TokenStore(data.split("train"), data.tokenizer.pad_id)


@pytest.mark.parametrize("pack_width", [16, 0])
@pytest.mark.parametrize("world", [2, 3, 4])
def test_ranks_split_every_global_batch_into_disjoint_shards(store, pack_width, world):
    batches = TrainBatches(store, 16, 4, seed=1, pack_width=pack_width)
    per_epoch = len(batches.batches_of_epoch(0))
    for step in range(2 * per_epoch + 3):  # across epoch boundaries, including the short last batch
        whole = batches.step_indices(step)
        shards = [batches.step_indices(step, r, world) for r in range(world)]
        assert sorted(np.concatenate(shards).tolist()) == sorted(whole.tolist())  # none skipped, none twice
        assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_each_rank_iterates_its_own_shard_from_the_resume_step(store):
    stream = TrainBatches(store, 16, 4, seed=1, pack_width=16, start_step=lambda: 5, shard=lambda: (1, 2))
    first = next(iter(stream))
    expected = store.pack(stream.step_indices(5, 1, 2), stream.width)
    for key in expected:
        assert torch.equal(first[key], expected[key]), key
    unsharded = next(iter(TrainBatches(store, 16, 4, seed=1, pack_width=16, start_step=lambda: 5)))
    assert first["labels"].ne(-100).sum() < unsharded["labels"].ne(-100).sum()  # half of the batch


def test_a_batch_smaller_than_the_world_is_refused(store):
    n = len(store)
    bs = next(b for b in range(5, 40) if n % b == 3)  # the last batch of every epoch holds 3 examples
    batches = TrainBatches(store, bs, 4, seed=1, pack_width=16, shard=lambda: (0, 4))
    assert batches.smallest_batch() == 3
    with pytest.raises(ValueError, match="a batch of 3 examples cannot be shared by 4 processes"):
        next(iter(batches))
    whole = TrainBatches(store, 8 * bs, 4, seed=1, pack_width=16)
    check_shards(OmegaConf.create({"trainer": {"batch_size": 8 * bs}}), whole, 2)  # divisible, no small batch
    cfg = OmegaConf.create({"trainer": {"batch_size": bs}})
    with pytest.raises(ConfigError, match=rf"holds 3 of the {n} training examples, fewer than the {bs} processes"):
        check_shards(cfg, batches, bs)
    with pytest.raises(ConfigError, match=rf"trainer.batch_size={bs} is the global batch .* divisible by the"):
        check_shards(cfg, batches, bs + 1)


def test_slurm_launcher_asks_for_one_task_and_gpu_per_device(tmp_path, monkeypatch):
    """``hydra/launcher=slurm trainer.devices=4 +trainer.num_nodes=2``: the sbatch script that
    hydra-submitit-launcher would submit asks for 2 nodes x 4 tasks x 4 GPUs (a fake ``srun`` lets
    submitit build it here; submission is intercepted before ``sbatch``)."""
    import submitit
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.utils import instantiate

    import lengen.resolvers  # noqa: F401

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{__import__('os').environ['PATH']}")

    class Submitted(Exception):
        pass

    class Capture(submitit.AutoExecutor):
        def map_array(self, fn, *args):
            raise Submitted(self._executor._make_submission_file_text("python -u job.py", "0"))

    monkeypatch.setattr(submitit, "AutoExecutor", Capture)

    def sbatch(*overrides: str) -> str:
        with initialize_config_module(config_module="lengen.conf", version_base="1.3"):
            cfg = hydra_compose(config_name="config", return_hydra_config=True,
                                overrides=["+pe=nope", "hydra/launcher=slurm", f"runs_root={tmp_path / 'runs'}",
                                           "hydra.launcher.partition=gpu", *overrides])
        launcher = instantiate(cfg.hydra.launcher)
        launcher.config = cfg
        with pytest.raises(Submitted) as sent:
            launcher.launch([["seed=1"]], 0)
        return str(sent.value)

    four = sbatch("trainer.devices=4", "+trainer.num_nodes=2")
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --partition=gpu"):
        assert line in four.splitlines(), four
    one = sbatch()
    for line in ("#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=1"):
        assert line in one.splitlines(), one


def test_deterministic_mode_is_strict_on_cpu_and_warn_only_on_cuda(monkeypatch):
    t = SimpleNamespace(deterministic=True, accelerator="cpu")
    assert deterministic_mode(t) is True
    assert deterministic_mode(SimpleNamespace(deterministic=False, accelerator="cuda")) is False
    assert deterministic_mode(SimpleNamespace(deterministic=True, accelerator="gpu")) == "warn"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert deterministic_mode(SimpleNamespace(deterministic=True, accelerator="auto")) == "warn"


def test_num_nodes_and_compile_are_typed_and_optional():
    check(compose("config", ["+pe=nope"]))  # absent: 1 node, no compile
    check(compose("config", ["+pe=nope", "+trainer.num_nodes=2", "+trainer.compile=true"]))
    with pytest.raises(ConfigError, match=r"trainer.compile='yes' must be true or false"):
        check(compose("config", ["+pe=nope", "+trainer.compile=yes"]))
    with pytest.raises(ConfigError, match=r"trainer.num_nodes=0 must be an integer >= 1"):
        check(compose("config", ["+pe=nope", "+trainer.num_nodes=0"]))


def test_global_batch_must_split_over_the_processes_before_anything_runs():
    check(compose("config", ["+pe=nope", "trainer.devices=4", "+trainer.num_nodes=2"]))  # 64 = 8 x 8
    check(compose("config", ["+pe=nope", "trainer.devices=[0,1]"]))
    check(compose("config", ["+pe=nope", "trainer.devices=-1"]))  # unknown yet: fit checks it
    with pytest.raises(ConfigError, match=r"^trainer.batch_size=64 is the global batch \(all processes together\) "
                                          r"and must be divisible by the 6 processes"):
        check(compose("config", ["+pe=nope", "trainer.devices=3", "+trainer.num_nodes=2"]))


def test_compile_option_compiles_the_model_in_place(tmp_path, lengen_main, monkeypatch):
    """``+trainer.compile=true`` calls ``nn.Module.compile`` on the model (so checkpoints keep their
    keys and evaluation loads them as usual). Compiling for real takes minutes on this CPU (it works:
    ~150 s for a tiny run); the GPU check (``tests/test_gpu.py``) trains compiled."""
    from lengen.model.transformer import Transformer
    from tests.conftest import tiny_overrides

    compiled = []
    monkeypatch.setattr(Transformer, "compile", lambda self, *a, **k: compiled.append(type(self).__name__))
    assert lengen_main("train", "+pe=nope", "+trainer.compile=true",
                       *tiny_overrides(tmp_path, **{"trainer.max_steps": 2, "trainer.val_every": 2})) == 0
    assert compiled == ["Transformer"]
    assert list((tmp_path / "runs").rglob("results.parquet"))


def test_ddp_reexecutes_the_train_script_not_the_dispatcher(monkeypatch, tmp_path):
    """``python -m lengen.cli train ...`` leaves ``sys.argv = [.../train.py, *overrides]``; Lightning
    would start ranks > 0 as ``python -m lengen.cli <overrides>`` (no ``train``) unless ``__main__``
    loses its module spec, which makes it use the script path."""
    import __main__
    from lengen.commands import train

    fake_main = SimpleNamespace(__spec__=SimpleNamespace(name="lengen.cli"), __file__=str(tmp_path / "cli.py"))
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    monkeypatch.setattr(sys, "argv", [train.__file__, "+pe=nope"])
    reexec_as_script()
    assert fake_main.__spec__ is None
    fake_main.__spec__ = SimpleNamespace(name="lengen.commands.train")  # python -m lengen.commands.train
    fake_main.__file__ = train.__file__
    reexec_as_script()
    assert fake_main.__spec__ is not None
    assert __main__ is not fake_main  # (the real one is untouched)


def test_ddp_in_a_local_sweep_is_refused_in_one_line(tmp_path):
    """Lightning would start rank 1 by re-executing the sweep's command line: the whole sweep again."""
    from tests.conftest import assert_one_error_line, run_lengen, tiny_overrides

    proc = run_lengen("train", "-m", "+pe=nope", "trainer.accelerator=cpu", "trainer.devices=2",
                      *tiny_overrides(tmp_path))
    assert_one_error_line(proc, "trainer.devices=2 in a sweep (-m)", "hydra/launcher=slurm")
    assert not list((tmp_path / "runs").rglob("*.ckpt"))
