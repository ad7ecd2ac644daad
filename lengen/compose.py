"""The Hydra config tree and composing from it outside a Hydra app (light: no torch, no Lightning)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from lengen.errors import ConfigError


def conf_dir() -> Path:
    """The Hydra config tree (installed as the package ``lengen.conf``)."""
    import lengen.conf

    return Path(lengen.conf.__file__).parent


def search_roots(args: list[str]) -> list[Path]:
    """lengen's config dir plus the ``file://`` dirs of a ``hydra.searchpath=[...]`` override."""
    roots = [conf_dir()]
    for arg in args:
        key, _, value = arg.partition("=")
        if key.lstrip("+~") == "hydra.searchpath":
            entries = (e.strip().strip("'\"") for e in value.strip("[]").split(","))
            roots += [Path(e[len("file://"):]) for e in entries if e.startswith("file://")]
    return roots


def check_group_choices(args: list[str]) -> None:
    """Fail fast on an unknown option of a config group (``[+]group=a[,b...]``)."""
    roots = search_roots(args)
    for arg in args:
        if "=" not in arg or arg.startswith("-"):
            continue
        key, value = arg.split("=", 1)
        group = key.lstrip("+~")
        folders = [root / group for root in roots if (root / group).is_dir()]
        if "." in group or not folders or group.startswith("hydra"):
            continue
        if any(c in value for c in "()[]*"):
            continue  # sweep functions / globs: let Hydra expand them
        valid = sorted({str(p.relative_to(folder).with_suffix("")) for folder in folders for p in folder.rglob("*.yaml")})
        for choice in filter(None, value.split(",")):
            if choice not in valid and choice != "null":
                raise ConfigError(f"unknown {group} {choice!r}; valid: {', '.join(valid)}")


def compose(config_name: str, overrides: Sequence[str]) -> DictConfig:
    """``conf/<config_name>.yaml`` with Hydra ``overrides``, outside a Hydra app; errors become one line."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    import lengen.resolvers  # noqa: F401  (the configs use lengen's resolvers)

    check_group_choices(overrides)
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="lengen.conf", version_base="1.3"):
            return hydra_compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        raise ConfigError(" ".join(str(e).split()) or type(e).__name__) from None
