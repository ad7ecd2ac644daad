"""``lengen eval`` and ``lengen data`` under random overrides: a valid plan or one ConfigError line.

The strategies are the train schema's (``tests/test_schema.py``): every config key, wrong types,
out-of-range numbers, unknown choices, unicode and very long strings.
"""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lengen.commands import data as data_cmd
from lengen.commands.eval import ALLOWED, check_overrides, over_stored
from lengen.compose import compose
from lengen.config import validate
from lengen.errors import ConfigError
from lengen.results import RESULTS_FILE
from lengen.rundir import Run
from tests.conftest import tiny_overrides
from tests.test_schema import KEYS, values

EVAL_KEYS = [k for k in KEYS if any(k == a or (a.endswith(".") and k.startswith(a)) for a in ALLOWED)]


def _one_line(e: ConfigError) -> None:
    msg = str(e)
    assert msg and "\n" not in msg and "\r" not in msg, msg


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    cmd = [sys.executable, "-m", "lengen.cli", "train", "+pe=rope", *tiny_overrides(root)]
    subprocess.run(cmd, check=True, capture_output=True)
    (found,) = [p.parent for p in (root / "runs").rglob(RESULTS_FILE)]
    return found


eval_override = st.builds(lambda k, v: f"{k}={v}", st.sampled_from([*EVAL_KEYS, *KEYS[:20]]), values)


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(overrides=st.lists(eval_override, min_size=1, max_size=3))
def test_eval_overrides_plan_or_one_line(run_dir, overrides):
    """The plan of ``lengen eval``: refuse weight-changing keys, compose, apply over the stored
    config, validate (exactly what runs before the model is loaded)."""
    try:
        args = check_overrides([f"run_dir={run_dir}", *overrides])
        cfg = compose("eval", args)
        stored = Run.from_dir(cfg.run_dir)
        validate(over_stored(cfg, args, stored.cfg))
    except ConfigError as e:
        _one_line(e)


data_override = st.builds(lambda k, v: f"{k}={v}", st.sampled_from([*data_cmd.DATA_KEYS, *KEYS]), values)


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(overrides=st.lists(data_override, min_size=1, max_size=3))
def test_data_show_overrides_run_or_one_line(overrides):
    """``lengen data show`` itself, in process: it prints examples or raises one ConfigError line."""
    from rich.console import Console

    quiet = Console(file=io.StringIO())
    try:
        assert data_cmd.show(["n=1", *overrides], console=quiet) == 0
    except ConfigError as e:
        _one_line(e)
