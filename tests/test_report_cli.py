"""`lengen report` as a command: Hydra options, one-line errors, mixed hardware, extra columns, --help."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pandas as pd
import pytest

from lengen import report
from lengen.commands import report as report_cmd
from tests.test_report import run_rows, write_run

EPYC = "AMD EPYC (avx2) / torch 2.13.0+cpu"
XEON = "Intel Xeon Platinum 8480+ (amx) / torch 2.13.0+cpu"


@pytest.fixture
def runs(tmp_path):
    """copy x {nope, alibi} x seeds 0, 1; nope ran on EPYC, alibi on Xeon (in-range 1.0: learned)."""
    for pe, label, beyond in (("nope", EPYC, (0.8, 0.6)), ("alibi", XEON, (0.4, 0.2))):
        for seed, b in enumerate(beyond):
            d = write_run(tmp_path / "runs" / pe / f"seed{seed}", run_rows("copy", pe, seed, 1.0, b))
            (d / "meta.yaml").write_text(f"hardware:\n  label: {label}\n  threads: 4\nsoftware: {{}}\n")
    return tmp_path / "runs"


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lengen: error: "), err
    return err[0]


@pytest.mark.parametrize(("args", "needles"), [
    (["--out", "X"], ["--out", "out=X"]),
    (["--out=X"], ["out=X"]),
    (["--metric", "token_accuracy"], ["metric=token_accuracy"]),
    (["--evals"], ["evals=true"]),
    (["out=X", "metric=bleu"], ["'bleu'", "exact_match", "token_accuracy", "step_accuracy"]),
    (["out=X", "colour=red"], ["colour"]),
    ([], ["out=DIR"]),
    (["out="], ["out= is empty"]),
    (["out=X", "+colour=red"], ["+colour=red"]),
    (["out=X", "learned_threshold=1.5"], ["learned_threshold=1.5"]),
    (["out=X", "bootstrap=-1"], ["bootstrap=-1"]),
    (["out=X", "evals=maybe"], ["evals"]),
    (["out=X", "group_by=[gpu]"], ["'gpu'", "hardware", "study"]),
    (["out=X", "produced_by=''"], ["produced_by"]),
])
def test_bad_options_fail_with_one_line(runs, tmp_path, capsys, args, needles):
    args = [a.replace("X", str(tmp_path / "o")) for a in args]
    needles = [n.replace("X", str(tmp_path / "o")) for n in needles]
    assert report_cmd.main([str(runs), *args]) == 2
    line = one_error_line(capsys)
    for needle in needles:
        assert needle in line, line
    assert not (tmp_path / "o").exists()


def test_missing_path_and_out_that_is_a_file(runs, tmp_path, capsys):
    assert report_cmd.main([str(runs), str(tmp_path / "typo"), f"out={tmp_path / 'o'}"]) == 2
    assert str(tmp_path / "typo") in one_error_line(capsys)
    (tmp_path / "file").write_text("x")
    assert report_cmd.main([str(runs), f"out={tmp_path / 'file'}"]) == 2
    assert "not a directory" in one_error_line(capsys)


def test_the_dispatcher_routes_to_report(runs, tmp_path, lengen_main, capsys):
    assert lengen_main("report", str(runs), "--out", str(tmp_path / "o")) == 2
    assert f"out={tmp_path / 'o'}" in one_error_line(capsys)


def test_produced_by_names_the_study_script_instead_of_the_command_line(runs, tmp_path):
    out = tmp_path / "o"
    assert report_cmd.main([str(runs), f"out={out}", "plots=false", "bootstrap=0"]) == 0
    assert f"Produced by `lengen report {runs} out={out} plots=false bootstrap=0`." in (out / "table.md").read_text()
    assert report_cmd.main([str(runs), f"out={out}", "plots=false", "bootstrap=0",
                            "produced_by='bash scripts/my_study.sh'"]) == 0
    for name in ("table.md", "ranking.md"):
        text = (out / name).read_text()
        assert "Produced by `bash scripts/my_study.sh`." in text and str(runs) not in text


def test_a_run_dir_with_equals_in_its_name_is_a_dir_not_an_option(tmp_path, capsys):
    run = write_run(tmp_path / "model.d_model=32", run_rows("copy", "nope", 0, 1.0, 0.5))
    assert report_cmd.main([str(run), f"out={tmp_path / 'o'}", "bootstrap=0", "plots=false"]) == 0
    assert pd.read_csv(tmp_path / "o" / "table.csv")["n_runs"].tolist() == [1]
    assert not list((tmp_path / "o").glob("*.png"))


def test_hardware_label_from_meta_yaml(tmp_path):
    cases = {"good": f"hardware:\n  label: {EPYC}\n", "no_key": "hardware:\n  cpu: x\n",
             "not_mapping": "hardware: [1, 2\n", "list": "- 1\n", "empty_label": "hardware:\n  label: ''\n"}
    for name, text in cases.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "meta.yaml").write_text(text)
    (tmp_path / "none").mkdir()
    labels = {name: report.hardware_label(tmp_path / name) for name in [*cases, "none"]}
    assert labels == {"good": EPYC, **dict.fromkeys(["no_key", "not_mapping", "list", "empty_label", "none"],
                                                    "unknown")}


def test_mixed_hardware_is_warned_noted_and_can_be_grouped(runs, tmp_path, capsys):
    (runs / "nope" / "seed1" / "meta.yaml").write_text("hardware: {label: [unclosed\n")  # malformed
    with warnings.catch_warnings():
        warnings.simplefilter("error", report.SkippedRunWarning)  # a bad meta.yaml costs nothing
        df, _ = report.load_runs([runs])
    assert df.groupby("run_id")["hardware"].first().to_dict() == {
        "copy-default-nope-s0": EPYC, "copy-default-nope-s1": "unknown",
        "copy-default-alibi-s0": XEON, "copy-default-alibi-s1": XEON}

    assert report_cmd.main([str(runs), f"out={tmp_path / 'pooled'}", "plots=false"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "hardware" in line]
    assert len(err) == 1 and err[0].startswith("warning:") and EPYC in err[0] and XEON in err[0], err
    assert "unknown" in err[0] and "group_by=[hardware]" in err[0]
    md = (tmp_path / "pooled" / "table.md").read_text()
    assert "Mixed hardware" in md and EPYC in md and XEON in md
    assert len(pd.read_csv(tmp_path / "pooled" / "table.csv")) == 2

    assert report_cmd.main([str(runs), f"out={tmp_path / 'split'}", "group_by=[hardware]"]) == 0
    table = pd.read_csv(tmp_path / "split" / "table.csv")
    assert table[["pe", "hardware", "n_runs"]].values.tolist() == [
        ["nope", EPYC, 1], ["alibi", XEON, 2], ["nope", "unknown", 1]]
    assert "| hardware " in (tmp_path / "split" / "table.md").read_text()
    assert "split by hardware" in (tmp_path / "split" / "table.md").read_text()
    # No two PEs share a hardware context, so nothing is ranked against anything.
    assert pd.read_csv(tmp_path / "split" / "ranking.csv").empty
    names = {p.name for p in (tmp_path / "split").iterdir()}
    assert "accuracy_vs_length_copy_AMD-EPYC-avx2-torch-2.13.0-cpu.png" in names


def test_one_hardware_label_gives_no_warning(runs, tmp_path, capsys):
    for meta in runs.rglob("meta.yaml"):
        meta.write_text(f"hardware:\n  label: {EPYC}\n")
    assert report_cmd.main([str(runs), f"out={tmp_path / 'o'}", "plots=false"]) == 0
    assert "hardware" not in capsys.readouterr().err
    assert "Mixed hardware" not in (tmp_path / "o" / "table.md").read_text()


def test_an_extra_column_does_not_change_the_terminal_table(tmp_path, capsys):
    """The same runs, once plain and once with every row split in two by a new numeric column."""
    outputs = []
    for name in ("plain", "split"):
        for pe, b in (("nope", 0.6), ("alibi", 0.2)):
            rows = run_rows("copy", pe, 0, 1.0, b)
            if name == "split":
                rows = pd.concat([rows.assign(n=rows["n"] / 2, temperature=t) for t in (0.0, 1.0)])
            write_run(tmp_path / name / pe, rows)
        assert report_cmd.main([str(tmp_path / name), f"out={tmp_path / ('o' + name)}", "plots=false"]) == 0
        outputs.append(capsys.readouterr().out.split(" run(s) read")[0])
    assert outputs[0] == outputs[1] and "nope" in outputs[0]
    for file in ("table.csv", "ranking.csv", "runs.csv"):
        assert (tmp_path / "oplain" / file).read_bytes() == (tmp_path / "osplit" / file).read_bytes()


def test_help_is_light_and_lists_the_options():
    heavy = ("pandas", "torch", "lightning", "matplotlib", "numpy")
    code = ("import sys; from lengen.commands import report; report.main(['--help']); "
            f"print(sorted(m for m in {heavy} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          check=True)
    assert done.stdout.strip().endswith("[]"), done.stdout
    for needle in ("out=DIR", "metric: exact_match", "learned_threshold: 0.95", "bootstrap: 1000",
                   "group_by: []"):
        assert needle in done.stdout


def test_analysis_summaries_join_the_report(runs, tmp_path, lengen_main, capsys):
    """`analysis=DIR` (a `lengen analyze` out dir; here the committed one) adds analysis.md."""
    from pathlib import Path

    committed = Path(__file__).resolve().parents[1] / "results" / "kazemnejad2023-cpu" / "analysis"
    assert lengen_main("report", str(runs), f"out={tmp_path / 'o'}", f"analysis={committed}", "plots=false") == 0
    text = (tmp_path / "o" / "analysis.md").read_text()
    for needle in ("## attention", "## distance", "## probe", "| nope | t5 "):
        assert needle in text, needle
    capsys.readouterr()
    assert lengen_main("report", str(runs), f"out={tmp_path / 'o2'}", f"analysis={tmp_path}") == 2
    assert "is not a `lengen analyze` out dir" in one_error_line(capsys)
