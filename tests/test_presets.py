"""The Kazemnejad et al. (2023) study presets: every ``conf/experiment/<study>/<task>.yaml`` composes to
the paper's task and length split, its recipe, and a sweep grid of exactly the five PEs × the stated
seeds -- expanded by Hydra's own basic sweeper, so the test sees the jobs ``lengen train -m`` runs."""

from __future__ import annotations

import functools
import itertools
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

import lengen.resolvers  # noqa: F401  (the configs use lengen's resolvers)
from lengen.compose import conf_dir
from lengen.config import eval_lengths, train_lengths

ROOT = Path(__file__).resolve().parents[1]
PES = ("nope", "t5", "alibi", "rope_quarter", "ape")  # the paper's five, in its order (RoPE at 25 %)
#: the paper's nine tasks, in both studies, with the paper's splits as the README's Tasks table
#: states them: (train_min, train_max, eval_min, eval_max). Presets added for other tasks get the grid and
#: recipe checks, and a split check that only asks for evaluation beyond the training range.
SPLITS = {"copy": (2, 20, 1, 40), "repeat": (2, 20, 1, 40), "reverse": (2, 20, 1, 40), "addition": (1, 8, 1, 16),
          "sort": (1, 8, 1, 16), "sort_multi": (1, 8, 1, 16), "summation": (1, 8, 1, 16), "parity": (1, 8, 1, 16),
          "polynomial": (1, 8, 1, 16)}
#: what each study states (README "Sweeps, clusters and studies", "Config groups"; the CPU study's
#: results/kazemnejad2023-cpu/README.md): seeds, model shape, recipe, training examples.
STUDIES = {
    "kazemnejad2023": {
        "seeds": (1, 2, 3),
        "model": {"n_layers": 12, "d_model": 768, "n_heads": 12, "d_ff": 3072, "activation": "relu", "dropout": 0.1},
        "trainer": {"lr": 3e-5, "weight_decay": 0.05, "warmup": 0.06, "schedule": "linear", "min_lr_ratio": 0.0,
                    "max_steps": 40_000, "batch_size": 64, "precision": "bf16-mixed"},
    },
    "kazemnejad2023-cpu": {  # the default recipe, conf/recipe/steps2k.yaml (a task may choose another)
        "seeds": (1, 2, 3),
        "model": {"n_layers": 3, "d_model": 128, "n_heads": 4},
        "trainer": {"lr": 2e-3, "max_steps": 2000, "batch_size": 64, "min_lr_ratio": 0.0},
        "data": {"n_train": 100_000},
    },
}


def presets(study: str) -> list[str]:
    return sorted(p.stem for p in (conf_dir() / "experiment" / study).glob("*.yaml") if p.stem != "base")


TASKS = sorted(set(presets("kazemnejad2023")) | set(presets("kazemnejad2023-cpu")))


@functools.cache
def composed(*overrides: str) -> DictConfig:
    """One compose per distinct override list (read-only: tests never modify the config)."""
    with initialize_config_module(config_module="lengen.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def sweep_jobs(cfg: DictConfig) -> list[dict[str, str]]:
    """The jobs Hydra's basic sweeper makes of ``hydra.sweeper.params`` (no command-line sweeps)."""
    params = OmegaConf.to_container(cfg.hydra.sweeper.params, resolve=True)
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    batches = BasicSweeper.split_arguments(parsed, None)
    return [dict(o.split("=", 1) for o in job) for batch in batches for job in batch]


def preset_text(study: str, task: str) -> str:
    folder = conf_dir() / "experiment" / study
    return (folder / "base.yaml").read_text() + (folder / f"{task}.yaml").read_text()


def test_both_studies_have_the_paper_s_nine_tasks():
    assert presets("kazemnejad2023") == presets("kazemnejad2023-cpu")
    assert set(SPLITS) <= set(presets("kazemnejad2023"))  # and lego, scan, pcfg


def check_study_settings(cfg: DictConfig, study: str, task: str) -> None:
    assert cfg.study == study and cfg.task.name == task
    if task in SPLITS:
        lo, hi, eval_lo, eval_hi = SPLITS[task]
        assert train_lengths(cfg) == list(range(lo, hi + 1))
        assert eval_lengths(cfg) == list(range(eval_lo, eval_hi + 1))  # every length up to twice the training range
    else:
        assert max(eval_lengths(cfg)) > max(train_lengths(cfg)), (study, task)
    for section in ("model", "trainer", "data"):
        for key, value in STUDIES[study].get(section, {}).items():
            assert cfg[section][key] == value, (study, task, section, key)
    assert cfg.task.get("scratchpad", "none") in ("none", None)  # the paper's headline runs: no scratchpad
    assert cfg.eval.checkpoint == "best"  # picked on in-range validation, the same for every PE


@pytest.mark.parametrize("study", list(STUDIES))
@pytest.mark.parametrize("task", TASKS)
def test_preset_sweeps_five_pes_times_the_stated_seeds(study, task):
    cfg = composed(f"+experiment={study}/{task}")
    jobs = sweep_jobs(cfg)
    seeds = STUDIES[study]["seeds"]
    assert sorted(jobs[0]) == ["pe", "seed"]
    pairs = [(j["pe"], int(j["seed"])) for j in jobs]
    assert len(pairs) == len(set(pairs)) == len(PES) * len(seeds)  # no duplicates, nothing else
    assert set(pairs) == set(itertools.product(PES, seeds))
    assert cfg.hydra.sweeper._target_.endswith("BasicSweeper")
    check_study_settings(cfg, study, task)


@pytest.mark.parametrize("study", list(STUDIES))
@pytest.mark.parametrize("task", TASKS)
def test_a_rope_job_of_the_grid_keeps_the_study_and_the_rope_fraction(study, task):
    """A job composed as the sweeper composes it (``pe=rope_quarter seed=K``): the study's settings stay,
    and RoPE rotates 25 % of each head as the paper did (the runs are named rope)."""
    seed = STUDIES[study]["seeds"][-1]
    cfg = composed(f"+experiment={study}/{task}", "pe=rope_quarter", f"seed={seed}")
    assert cfg.pe.name == "rope" and cfg.seed == seed
    check_study_settings(cfg, study, task)
    assert cfg.pe.fraction == 0.25


def test_same_recipe_for_every_pe():
    """Nothing is tuned per PE: the configs of a grid differ only in ``pe`` and ``seed``."""
    for study in STUDIES:
        base = None
        for pe in PES:
            cfg = OmegaConf.to_container(composed(f"+experiment={study}/sort", f"pe={pe}"), resolve=False)
            cfg.pop("hydra")
            cfg.pop("pe")
            assert base is None or cfg == base, (study, pe)
            base = cfg


def test_readme_tasks_table_states_the_same_splits():
    text = (ROOT / "README.md").read_text()
    for task, (lo, hi, eval_lo, eval_hi) in SPLITS.items():
        row = re.search(rf"^\| `{task}` \|.*\| (\d+)–(\d+) → (\d+)–(\d+)", text, re.M)
        assert row, task
        assert tuple(map(int, row.groups())) == (lo, hi, eval_lo, eval_hi), task
    assert " ".join(text.split()).count("5 PEs × 3 seeds") >= 2  # both studies
