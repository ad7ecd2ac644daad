"""Entry point of ``lengen train`` (a Hydra app). Runnable as a script, so Lightning's DDP can
re-execute ``sys.argv`` and land back in the same command."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import lengen.resolvers  # noqa: F401  (registers ${lengen_run_id:...})
from lengen.errors import guarded


@hydra.main(config_path="pkg://lengen.conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from lengen.run import train

    guarded(train, cfg)


if __name__ == "__main__":
    main()
