"""``lengen eval run_dir=DIR [eval.KEY=VALUE ...]``: re-evaluate a trained run at new lengths.

Results go to ``DIR/evals/<overrides>/`` so the run's own results are never overwritten.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf
from rich.console import Console

import lengen.resolvers  # noqa: F401
from lengen.config import ConfigError, eval_lengths, train_lengths
from lengen.resolvers import run_id as overrides_id
from lengen.results import print_table, with_metadata, write_results

USAGE = "usage: lengen eval run_dir=DIR [eval.max_len=N] [eval.n_per_length=N] [eval.checkpoint=best|last] ..."


def parse(argv: list[str]) -> tuple[Path, list[str]]:
    run_dir, overrides = None, []
    for arg in argv:
        if "=" not in arg:
            raise ConfigError(f"argument {arg!r} is not KEY=VALUE; {USAGE}")
        key, value = arg.split("=", 1)
        if key == "run_dir":
            run_dir = Path(value)
        elif key.startswith("eval.") or key in ("trainer.accelerator", "data.cache_dir"):
            overrides.append(arg)
        else:
            raise ConfigError(f"{key!r} cannot change at evaluation; allowed: run_dir, eval.*, trainer.accelerator, data.cache_dir")
    if run_dir is None:
        raise ConfigError(f"missing run_dir=DIR (a lengen train run directory); {USAGE}")
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"run_dir={run_dir} is not a lengen run directory (no config.yaml there)")
    return run_dir, overrides


def evaluate_run(argv: list[str], console: Console | None = None) -> Path:
    from lengen.evaluation import evaluate
    from lengen.run import check_positions, run_meta, task_data
    from lengen.training import build_model

    console = console or Console()
    run_dir, overrides = parse(argv)
    cfg = OmegaConf.merge(OmegaConf.load(run_dir / "config.yaml"), OmegaConf.from_dotlist(overrides))
    if cfg.eval.get("lengths") is not None and not any(o.startswith("eval.lengths=") for o in overrides) and any(
        o.startswith(("eval.max_len=", "eval.min_len=")) for o in overrides
    ):
        cfg.eval.lengths = None  # an explicit range asked for replaces the stored list
    if not eval_lengths(cfg):
        raise ConfigError(f"empty evaluation range eval.min_len={cfg.eval.min_len} eval.max_len={cfg.eval.max_len}")
    name = "best" if cfg.eval.checkpoint == "best" else "last"
    ckpt = run_dir / "checkpoints" / f"{name}.ckpt"
    if not ckpt.exists():
        raise ConfigError(f"eval.checkpoint={name}: {ckpt} does not exist; valid: best, last (of a trained run)")
    data = task_data(cfg)
    test = data.split("test")
    model = build_model(OmegaConf.to_container(cfg.model, resolve=True), OmegaConf.to_container(cfg.pe, resolve=True),
                        len(data.tokenizer))
    check_positions(model, test)
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.trainer.accelerator != "cpu" else "cpu")
    model.to(device)
    tl = train_lengths(cfg)
    rows = evaluate(model, data.task, test, data.tokenizer, train_range=(min(tl), max(tl)),
                    batch_size=int(cfg.eval.batch_size), device=device, precision=str(cfg.trainer.precision))
    rows = with_metadata(rows, run_meta(cfg))
    rows["checkpoint"] = ckpt.name
    out = run_dir / "evals" / overrides_id(",".join(sorted(o for o in overrides if o.startswith("eval."))))
    write_results(rows, out)
    print_table(rows, console, title=f"{cfg.task.name} · {cfg.pe.name} · seed {cfg.seed} ({ckpt.name})")
    console.print(f"results → {out}")
    return out
