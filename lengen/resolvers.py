"""OmegaConf resolvers used by the Hydra configs (registered once, on import).

``run_id`` names a run (or an evaluation) by the overrides that change it; it is the
``<overrides>`` level of ``runs/<study>/<task>/<pe>/<overrides>/seed<k>`` and of
``<run dir>/evals/<overrides>/``.
"""

from __future__ import annotations

import hashlib
import os
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


def eval_id(override_dirname: str) -> str:
    """:func:`run_id` of an evaluation's overrides, with Hydra's ``+``/``++`` prefixes dropped."""
    return run_id(",".join(p.lstrip("+~") for p in override_dirname.split(",")) if override_dirname else "")


def abspath(path: str) -> str:
    return os.path.abspath(path)


for _name, _fn in (("lengen_run_id", run_id), ("lengen_eval_id", eval_id), ("lengen_abspath", abspath)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn)
