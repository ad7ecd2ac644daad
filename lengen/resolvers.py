"""OmegaConf resolvers used by the Hydra configs (registered once, on import)."""

from __future__ import annotations

import hashlib
import re

from omegaconf import OmegaConf


def run_id(override_dirname: str) -> str:
    """Readable id of the overrides that change a run ('default' when none); hashed when long."""
    if not override_dirname:
        return "default"
    clean = re.sub(r"[^A-Za-z0-9_.,=+-]", "-", override_dirname.replace("/", "-"))
    if len(clean) <= 60:
        return clean
    return "cfg-" + hashlib.sha1(override_dirname.encode()).hexdigest()[:12]


if not OmegaConf.has_resolver("lengen_run_id"):
    OmegaConf.register_new_resolver("lengen_run_id", run_id)
