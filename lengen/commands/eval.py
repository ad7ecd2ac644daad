"""``lengen eval`` (a Hydra app): re-evaluate finished runs, one or many (``-m``), without retraining.

The run's stored ``config.yaml`` is the base and the command line's overrides are applied on top,
but only those that leave the trained weights alone (:data:`ALLOWED`); results go to
``<run_dir>/evals/<overrides>/`` so the run's own results are never overwritten.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import lengen.resolvers  # noqa: F401  (registers the resolvers conf/eval.yaml uses)
from lengen.errors import ConfigError, guarded

#: override keys (or key prefixes ending in '.') that do not change what was trained.
ALLOWED = ("run_dir", "eval", "eval.", "pe.", "trainer.precision", "trainer.accelerator", "trainer.devices",
           "trainer.threads", "data.cache_dir")
#: keys read from the run's own config that a range override replaces.
RANGE_KEYS = ("eval.min_len", "eval.max_len")


def check_overrides(args: list[str]) -> list[str]:
    """Refuse weight-changing overrides in one line; ``pe.*`` keys are added to the stored PE config."""
    out = []
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            out.append(arg)
            continue
        key = arg.split("=", 1)[0].lstrip("+~")
        if key.startswith("hydra") or key == "hydra/launcher":
            out.append(arg)
        elif any(key == a or (a.endswith(".") and key.startswith(a)) for a in ALLOWED):
            out.append(f"++{arg.lstrip('+~')}" if key.startswith("pe.") else arg)
        else:
            raise ConfigError(f"{key} cannot change at evaluation (it changes what was trained); allowed: "
                              f"{', '.join(a + '*' if a.endswith('.') else a for a in ALLOWED)}")
    return out


def over_stored(cfg: DictConfig, overrides: list[str], stored: DictConfig) -> DictConfig:
    """The run's stored config with this command's overrides (values as Hydra parsed them)."""
    merged = stored.copy()
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o]
    for key in keys:
        if key == "run_dir" or key.startswith("hydra"):
            continue
        OmegaConf.update(merged, key, OmegaConf.select(cfg, key), merge=False, force_add=True)
    if merged.eval.get("lengths") is not None and "eval.lengths" not in keys and any(k in RANGE_KEYS for k in keys):
        merged.eval.lengths = None  # an explicit range asked for replaces the stored list
    return merged


def evaluate(cfg: DictConfig, console=None) -> Path:
    import torch
    from hydra.core.hydra_config import HydraConfig
    from rich.console import Console

    from lengen.config import validate
    from lengen.evaluation import evaluate_run
    from lengen.results import print_table, write_results
    from lengen.rundir import Run

    console = console or Console()
    hc = HydraConfig.get()
    stored = Run.from_dir(cfg.run_dir)
    run = Run(over_stored(cfg, list(hc.overrides.task), stored.cfg), stored.dir)
    validate(run.cfg)
    if run.cfg.trainer.get("threads"):
        torch.set_num_threads(int(run.cfg.trainer.threads))
    data = run.task_data()
    test = data.split("test")
    ckpt = run.load_model_path(str(run.cfg.eval.checkpoint))
    model = run.load_model(ckpt, len(data.tokenizer))
    run.check_positions(model, test)
    accelerator = str(run.cfg.trainer.accelerator)
    device = torch.device("cuda" if torch.cuda.is_available() and accelerator != "cpu" else "cpu")
    rows = evaluate_run(run, model.to(device), data, test, checkpoint=ckpt.name, device=device)
    out = Path(hc.runtime.output_dir)
    write_results(rows, out)
    print_table(rows, console, title=f"{run.cfg.task.name} · {run.cfg.pe.name} · seed {run.cfg.seed} ({ckpt.name})")
    console.print(f"results → {out}")
    return out


@hydra.main(config_path="pkg://lengen.conf", config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    guarded(evaluate, cfg)


if __name__ == "__main__":
    main()
