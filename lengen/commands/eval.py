"""``lengen eval`` (a Hydra app): re-evaluate finished runs, one or many (``-m``), without retraining.

The run's stored ``config.yaml`` is the base and the command line's overrides are applied on top,
but only those that leave the trained weights alone (:data:`ALLOWED`); results go to
``<run_dir>/evals/<overrides>/`` so the run's own results are never overwritten. ``extend=NAME``
(``conf/extend/``, ``lengen/extend/``) applies an evaluation-time length-extension method to the
loaded model; it is not part of the run's config.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import lengen.resolvers  # noqa: F401  (registers the resolvers conf/eval.yaml uses)
from lengen.errors import ConfigError, guarded

#: override keys (or key prefixes ending in '.') that do not change what was trained.
ALLOWED = ("run_dir", "eval", "eval.", "pe.", "extend", "extend.", "trainer.precision", "trainer.accelerator",
           "trainer.devices", "trainer.threads", "data.cache_dir")
#: keys read from the run's own config that a range override replaces.
RANGE_KEYS = ("eval.min_len", "eval.max_len")


def check_extend(args: list[str]) -> None:
    """``extend=NAME[,NAME...]`` must name methods and every ``extend.KEY`` be an option of each
    (one line here, instead of Hydra's multi-line struct error)."""
    import yaml

    from lengen.compose import conf_dir

    pairs = [a.lstrip("+~").split("=", 1) for a in args if "=" in a and not a.startswith("-")]
    chosen = [v for k, v in pairs if k == "extend"]
    keys = [k.split(".", 1)[1] for k, _ in pairs if k.startswith("extend.")]
    if any("(" in v or "[" in v for v in chosen):  # a Hydra sweep function: Hydra checks it
        return
    names = [n.strip() for v in chosen for n in v.split(",")] or ["none"]
    folder = conf_dir() / "extend"
    valid_names = sorted(p.stem for p in folder.glob("*.yaml"))
    for name in names:
        if name not in valid_names:
            raise ConfigError(f"unknown extend={name}; valid: {', '.join(valid_names)}")
        options = sorted(set(yaml.safe_load((folder / f"{name}.yaml").read_text()) or {}) - {"name"})
        for key in keys:
            if key not in options:
                raise ConfigError(f"extend.{key} is not an option of extend={name}; valid: "
                                  f"{', '.join('extend.' + o for o in options)}")


def check_overrides(args: list[str]) -> list[str]:
    """Refuse weight-changing overrides in one line; ``pe.*`` keys are added to the stored PE config."""
    check_extend(args)
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
        if key in ("run_dir", "extend") or key.startswith(("hydra", "extend.")):
            continue
        try:
            value = OmegaConf.select(cfg, key, throw_on_resolution_failure=True)
            OmegaConf.update(merged, key, value, merge=False, force_add=True)
        except OmegaConfBaseException as e:  # e.g. an interpolation that names nothing
            raise ConfigError(f"{key}: {' '.join(str(e).split())[:200]}") from None
    if merged.eval.get("lengths") is not None and "eval.lengths" not in keys and any(k in RANGE_KEYS for k in keys):
        merged.eval.lengths = None  # an explicit range asked for replaces the stored list
    return merged


def evaluate(cfg: DictConfig, console=None) -> Path:
    import torch
    from hydra.core.hydra_config import HydraConfig
    from rich.console import Console

    from lengen import extend
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
    spec = OmegaConf.to_container(cfg.extend, resolve=True) if cfg.get("extend") is not None else None
    method = extend.apply(extend.build(spec), model, data)
    accelerator = str(run.cfg.trainer.accelerator)
    device = torch.device("cuda" if torch.cuda.is_available() and accelerator != "cpu" else "cpu")
    rows = extend.annotate(evaluate_run(run, model.to(device), data, test, checkpoint=ckpt.name, device=device),
                           method)
    out = Path(hc.runtime.output_dir)
    write_results(rows, out)
    via = "" if method.name == "none" else f" · extend={method.label()}"
    print_table(rows, console,
                title=f"{run.cfg.task.name} · {run.cfg.pe.name}{via} · seed {run.cfg.seed} ({ckpt.name})")
    console.print(f"results → {out}")
    return out


@hydra.main(config_path="pkg://lengen.conf", config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    guarded(evaluate, cfg)


if __name__ == "__main__":
    main()
