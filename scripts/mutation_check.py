"""Do the tests catch real breakage? Apply deliberate bugs one at a time to a copy of the repo and run
the tests that should notice each one.

    python scripts/mutation_check.py                  # every mutation, after a baseline run
    python scripts/mutation_check.py --only exact-match-any wandb-no-table
    python scripts/mutation_check.py --no-baseline --list

The working tree (tracked files plus untracked, non-ignored ones: ``git ls-files --cached --others
--exclude-standard``) is copied into a temporary directory once; each mutation is a search/replace that
must match its file exactly once (else the script stops: the code moved and the mutation needs
updating), applied to that copy, tested, then reverted. The copy is imported instead of the installed
``lengen`` through a ``sitecustomize.py`` on ``PYTHONPATH`` that maps ``lengen``, ``lengen.conf`` (=
``conf/``) and ``lengen.tasks`` (= ``tasks/``) to the copy -- for pytest and for every ``lengen``
child process a test spawns -- and before each run a probe checks that ``lengen``, ``lengen.conf`` and
``lengen.tasks`` resolve inside the copy and that a marker module written into the copy for this
mutation is the one imported.

A mutation is *caught* when pytest reports failing tests (exit status 1); an error of any other kind
(collection error, usage error) is reported as such and counts as not caught. A baseline run of every
test file involved, on the unmodified copy, must pass first. Prints a table (mutation, tests run,
caught, time) and exits 1 if any mutation survives.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"lengen": "lengen", "lengen.conf": "conf", "lengen.tasks": "tasks"}
MARKER = "_mutation_marker"


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    search: str
    replace: str
    tests: tuple[str, ...]  # pytest arguments (files, ``file::test``, ``-k expr``)
    what: str


MUTATIONS = (
    Mutation(
        "multiplication-partial-off-by-one", "tasks/arithmetic.py",
        "partial = av * int(d) * 10**j", "partial = (av * int(d) + 1) * 10**j",
        ("tests/test_task_oracles.py", "tests/test_tasks.py", "-k", "multiplication"),
        "each partial product of the multiplication scratchpad is one too large",
    ),
    Mutation(
        "exact-match-any", "lengen/metrics.py",
        '"exact": (correct | ~mask).all(-1),', '"exact": (correct | ~mask).any(-1),',
        ("tests/test_scoring.py",),
        "exact match counts an example right when any target token is right",
    ),
    Mutation(
        "scratchpad-steps-by-tags", "tasks/scratchpad.py",
        "same = [k < len(pred_steps) and pred_steps[k] == gold_steps[k] for k in range(n)]",
        "same = [k < len(pred_steps) and pred_steps[k].keys() == gold_steps[k].keys() for k in range(n)]",
        ("tests/test_scratchpad.py", "tests/test_scoring.py"),
        "the step scorer compares which parts a step has, not their content",
    ),
    Mutation(
        "wandb-no-per-length-table", "lengen/loggers.py",
        '"eval/per_length": table,\n', "",
        ("tests/test_wandb.py",),
        "log_results no longer logs the per-length table (the chart still is)",
    ),
    Mutation(
        "plot-drops-a-pe", "lengen/report/plots.py",
        'for pe, learned in zip(summary["pe"], summary["learned"]):',
        'for pe, learned in list(zip(summary["pe"], summary["learned"]))[:-1]:',
        ("tests/test_report_plots.py",),
        "the accuracy-vs-length plot leaves out the last PE's line",
    ),
    Mutation(
        "warmup-starts-at-zero", "lengen/training.py",
        "return (step + 1) / n_warm", "return step / n_warm",
        ("tests/test_schedule.py",),
        "the warm-up starts from lr 0 (one step late)",
    ),
    Mutation(
        "checkpoint-keeps-min", "lengen/trainer.py",
        'monitor="val/selection", mode="max"', 'monitor="val/selection", mode="min"',
        ("tests/test_checkpoint_selection.py",),
        "best.ckpt keeps the lowest selection score",
    ),
    Mutation(
        "cpu-study-three-seeds", "conf/experiment/kazemnejad2023-cpu/base.yaml",
        "seed: 1,2\n", "seed: 1,2,3\n",
        ("tests/test_presets.py",),
        "the CPU study sweeps a seed more than it states",
    ),
)

SITECUSTOMIZE = '''\
"""Written by scripts/mutation_check.py: import lengen from the mutated copy of the repo."""
import sys
from importlib.util import spec_from_file_location
from pathlib import Path

_MAP = {mapping!r}


class _CopyFinder:
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname in _MAP:
            folder = Path(_MAP[fullname])
            return spec_from_file_location(fullname, folder / "__init__.py", submodule_search_locations=[str(folder)])
        return None


sys.meta_path.insert(0, _CopyFinder)
'''

PROBE = textwrap.dedent("""
    import sys
    from pathlib import Path
    import lengen, lengen.conf, lengen.tasks
    from lengen import {marker}
    root = Path(sys.argv[1]).resolve()
    for m in (lengen, lengen.conf, lengen.tasks, {marker}):
        assert root in Path(m.__file__).resolve().parents, (m.__name__, m.__file__)
    print({marker}.MUTATION)
""").format(marker=MARKER)


def copy_tree(dest: Path) -> int:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            check=True, capture_output=True).stdout.decode().split("\0")
    n = 0
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():  # a tracked file deleted in the working tree is skipped
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
            n += 1
    return n


def environment(copy: Path, boot: Path) -> dict[str, str]:
    boot.mkdir(exist_ok=True)
    mapping = {name: str(copy / folder) for name, folder in PACKAGES.items()}
    (boot / "sitecustomize.py").write_text(SITECUSTOMIZE.format(mapping=mapping))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(boot), WANDB_MODE="offline", WANDB_SILENT="true", PYTHONDONTWRITEBYTECODE="1")
    return env


def probe(copy: Path, env: dict[str, str], name: str) -> None:
    (copy / "lengen" / f"{MARKER}.py").write_text(f"MUTATION = {name!r}\n")
    out = subprocess.run([sys.executable, "-c", PROBE, str(copy)], cwd=copy, env=env, capture_output=True, text=True)
    if out.returncode != 0 or out.stdout.strip() != name:
        sys.exit(f"the copy is not the lengen that gets imported ({name}):\n{out.stdout}{out.stderr}")


def pytest(copy: Path, env: dict[str, str], args: tuple[str, ...], log: Path) -> tuple[int, float]:
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *args]
    with log.open("w") as f:
        status = subprocess.run(cmd, cwd=copy, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    return status, time.perf_counter() - start


def apply(copy: Path, m: Mutation) -> str:
    path = copy / m.file
    text = path.read_text()
    if text.count(m.search) != 1:
        sys.exit(f"mutation {m.name}: {m.search!r} occurs {text.count(m.search)} times in {m.file} (want exactly 1); "
                 f"update the mutation to the current code")
    path.write_text(text.replace(m.search, m.replace))
    return text


def baseline_groups(chosen: list[Mutation]) -> list[tuple[str, ...]]:
    """The mutations' test selections, unmutated: plain files together in one run, each selection
    with options (``-k ...``) on its own."""
    plain = tuple(dict.fromkeys(a for m in chosen if all(a.startswith("tests/") for a in m.tests) for a in m.tests))
    other = list(dict.fromkeys(m.tests for m in chosen if not all(a.startswith("tests/") for a in m.tests)))
    return ([plain] if plain else []) + other


def tail(log: Path, n: int = 25) -> str:
    return "\n".join(log.read_text().splitlines()[-n:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutations")
    ap.add_argument("--no-baseline", action="store_true", help="skip the run of the tests on the unmutated copy")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy (its path is printed)")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    if args.list or not chosen:
        for m in MUTATIONS:
            print(f"{m.name:36} {m.file:46} {m.what}")
        return 0 if args.list else 2

    tmp = Path(tempfile.mkdtemp(prefix="lengen-mutation-"))
    copy = tmp / "repo"
    try:
        n = copy_tree(copy)
        env = environment(copy, tmp / "boot")
        print(f"copied {n} files to {copy}")
        if not args.no_baseline:
            probe(copy, env, "baseline")
            for k, group in enumerate(baseline_groups(chosen)):
                log = tmp / f"baseline-{k}.log"
                status, seconds = pytest(copy, env, group, log)
                print(f"baseline: {' '.join(group)}: exit {status} ({seconds:.0f} s)", flush=True)
                if status != 0:
                    print(tail(log))
                    print("the tests fail without any mutation: fix them first")
                    return 2
        results = []
        for m in chosen:
            original = apply(copy, m)
            try:
                probe(copy, env, m.name)
                log = tmp / f"{m.name}.log"
                status, seconds = pytest(copy, env, m.tests, log)
            finally:
                (copy / m.file).write_text(original)
            caught = "yes" if status == 1 else ("no" if status == 0 else f"no (pytest exit {status})")
            results.append((m, caught, seconds))
            print(f"{m.name}: caught {caught} ({seconds:.0f} s)", flush=True)
            if status != 1:
                print(tail(log))
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    rows = [("mutation", "tests run", "caught", "time")]
    rows += [(m.name, " ".join(m.tests), caught, f"{seconds:.0f} s") for m, caught, seconds in results]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print()
    for i, r in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
        if i == 0:
            print("| " + " | ".join("-" * w for w in widths) + " |")
    survived = [m.name for m, caught, _ in results if caught != "yes"]
    print(f"\n{len(results) - len(survived)}/{len(results)} mutations caught"
          + (f"; survived: {', '.join(survived)}" if survived else ""))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
