"""What a reader of a report sees (issue 25.4): the header names the run records, the forest plot draws the paired
table's numbers beside the paper's, and a validation curve never joins a subset score to a whole-split one."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from ffnlab.report import write_report
from ffnlab.report.render.forest import forest_rows
from ffnlab.report.studies.histories import val_curves

FIXTURES = Path(__file__).parent / "fixtures" / "report_sweep"
STUDY = Path(__file__).parent / "fixtures" / "report_study" / "runs"  # histories without fit_val_windows


@pytest.mark.parametrize("out", ["report", ".", "a/b"])
def test_header_names_the_records_when_the_report_lies_inside_them(tmp_path, out):
    # The default `--out` is SWEEP_DIR/report: the header said "Run records `..`", a path that names nothing.
    sweep = tmp_path / "glu_variants"
    shutil.copytree(FIXTURES / "glu_variants", sweep)
    write_report(sweep, sweep / out)
    header = (sweep / out / "comparison.md").read_text().splitlines()[2]
    assert header.startswith("Run records `glu_variants` (the directory holding this report): "), header


def test_header_names_the_records_relative_to_a_report_outside_them(tmp_path):
    sweep = tmp_path / "study" / "runs"
    shutil.copytree(FIXTURES / "glu_variants", sweep)
    write_report(sweep, tmp_path / "study")
    header = (tmp_path / "study" / "comparison.md").read_text().splitlines()[2]
    assert re.match(r"Run records `runs`: \d+ run dirs", header), header


QUICK = Path(__file__).parents[1] / "docs" / "results" / "glu_variants_quick" / "runs"


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[Path, dict]:
    """Three variants x 3 seeds of the committed quick study: fit validated on 64 windows, the final on the whole."""
    root = tmp_path_factory.mktemp("quick")
    for run in QUICK.iterdir():
        if run.name.split(",")[0] in ("ffn=relu", "ffn=swiglu", "ffn=gelu"):
            shutil.copytree(run, root / "runs" / run.name)
    return root, write_report(root / "runs", root)


def _paired_table(md: str) -> dict[str, tuple[str, str]]:
    """variant -> (mean diff, 95% t-interval) as comparison.md's paired table prints them."""
    table = md.split("### Paired differences vs relu")[1].split("\n\n")[2].splitlines()
    header = [c.strip() for c in table[0].strip("|").split("|")]
    cells = [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in table[2:]]
    return {c["variant"]: (c["mean diff"], c["95% t-interval"]) for c in cells}


def test_forest_plot_draws_the_paired_table_beside_the_paper(quick):
    root, report = quick
    (g,) = report["groups"]
    assert (root / "forest.png").read_bytes()[:4] == b"\x89PNG" and g["plots"]["forest"] == "forest.png"
    md = (root / "comparison.md").read_text()
    # embedded beside the comparison table, before the paired table whose numbers it draws
    assert md.index("](forest.png)") < md.index("### Paired differences")
    assert "compare the sign and the ordering, not the sizes" in md
    drawn = forest_rows(g)
    assert [r["variant"] for r in drawn] == [t["variant"] for t in g["paired_vs_relu"]] == ["swiglu", "gelu"]
    assert {r["variant"]: (f"{r['mean']:+.4f}", f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]") for r in drawn} \
        == _paired_table(md)
    papers = {r["variant"]: r["paper_delta"] for r in drawn}
    assert papers == pytest.approx({"swiglu": 1.944 - 1.997, "gelu": 1.983 - 1.997})
    assert "final_loss" not in g["plots"] and not (root / "final_loss.png").exists()  # the forest plot says it


def test_curves_keep_fit_subset_and_whole_split_apart(quick):
    root, report = quick
    (g,) = report["groups"]
    curves = {(c["variant"], c["windows"]): c for c in val_curves(g["rows"], root / "runs")}
    assert set(curves) == {(v, w) for v in ("relu", "swiglu", "gelu") for w in (64, None)}
    for row in g["rows"]:
        subset, whole = curves[(row["variant"], 64)], curves[(row["variant"], None)]
        # fit's validations after steps 50..200 (logged at 49..199), the final one after step 200, apart
        assert subset["steps"] == [50, 100, 150, 200] and whole["steps"] == [200]
        csv_means = sum(pd.read_csv(root / "runs" / d / "csv" / "metrics.csv").set_index("step")["val/loss"].dropna()
                        for d in row["run_dirs"]) / 3
        assert subset["mean"] == pytest.approx(csv_means.loc[[49, 99, 149, 199]].tolist())
        assert whole["mean"] == pytest.approx([row["val_loss_mean"]])  # the run records' val_loss
    assert g["val_curve_windows"] == [64]
    assert "Dashed: fit's validations, on the first 64 windows" in (root / "comparison.md").read_text()


def test_curves_of_whole_split_validations_are_one_line(tmp_path):
    report = write_report(STUDY, tmp_path)
    (g,) = report["groups"]
    curves = val_curves(g["rows"], STUDY)
    assert {c["windows"] for c in curves} == {None} and len(curves) == len(g["rows"])
    assert g["val_curve_windows"] == [] and "Every point scores the whole validation split." in \
        (tmp_path / "comparison.md").read_text()
