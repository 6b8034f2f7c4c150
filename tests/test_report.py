"""The report reads checked-in run records and must give the numbers worked out by hand below.

Fixtures (tests/fixtures/report_sweep/, copied to tmp_path so nothing is written into the repo):
- glu_variants/: relu, swiglu, geglu x seeds 0-2 on tinyshakespeare with csv histories; one FAILED,
  one UNFINISHED and one CORRUPT run; a .hydra/ dir holding a config.yaml (not a run); and, one level
  deeper, wikitext2/ with relu and swiglu x seed 0 (a different setting: never pooled).
- lr_sweep/: relu, swiglu x lr {0.001, 0.003} x seeds 0-1, where validation and test disagree on
  swiglu's best LR.

tests/fixtures/report_study/ is a committed study: runs/ (relu, swiglu, geglu x lr {0.003, 0.01} x seeds 0-2,
one geglu run at lr 0.01 diverged) and the report compare.py made from it, which must regenerate byte for byte.

tests/fixtures/report_factor/ (init as a paired factor) and report_ladder/ (a compute ladder) are described
above their tests, at the end of this file.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest
from scipy import optimize, stats

from ffnlab.report import write_report
from ffnlab.report.records import load_sweep
from ffnlab.report.stats.paired import holm, spearman

FIXTURES = Path(__file__).parent / "fixtures" / "report_sweep"
STUDY = Path(__file__).parent / "fixtures" / "report_study"
SRC = Path(__file__).parents[1] / "src"
approx = lambda x: pytest.approx(x, abs=1e-6)  # noqa: E731


def env_with_src() -> dict:
    """Subprocesses find ffnlab whether or not it is pip-installed."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweeps")
    shutil.copytree(FIXTURES, root, dirs_exist_ok=True)
    # wandb's local files hold a config.yaml too, and are not a run (made here: .gitignore drops wandb/ dirs)
    wandb_files = root / "glu_variants" / "wandb" / "run-20250101_000000-abc" / "files"
    wandb_files.mkdir(parents=True)
    (wandb_files / "config.yaml").write_text("seed:\n  value: 0\n")
    return root


@pytest.fixture(scope="module")
def glu(sweeps) -> dict:
    return write_report(sweeps / "glu_variants")


@pytest.fixture(scope="module")
def lr_sweep(sweeps) -> dict:
    return write_report(sweeps / "lr_sweep", sweeps / "lr_report")


def rows_by_variant(group: dict) -> dict:
    return {r["variant"]: r for r in group["rows"]}


def test_broken_runs_are_listed_not_dropped(glu, sweeps):
    kinds = {p["run_dir"]: p["kind"] for p in glu["problems"]}
    assert kinds == {"ffn=geglu,seed=3": "corrupt", "ffn=swiglu,seed=3": "unfinished", "ffn=gelu,seed=0": "failed"}
    # 9 + 2 finished + 3 broken; .hydra/ and wandb/ (which hold config.yaml files) are not runs.
    assert glu["n_run_dirs"] == 14
    md = (sweeps / "glu_variants" / "report" / "comparison.md").read_text()
    assert "RuntimeError: loss is NaN at step 12" in md
    for run_dir in kinds:
        assert f"`{run_dir}`" in md


def test_table_numbers_match_hand_calculation(glu):
    # Every group-1 run has a test loss, so the final loss is test. Hand calculation (test losses, seeds 0, 1, 2):
    #   relu   4.10 4.14 4.12  mean 4.12  dev -.02 +.02 0    -> var .0008/2 = .0004  std .02
    #   swiglu 4.05 4.08 4.08  mean 4.07  dev -.02 +.01 +.01 -> var .0006/2 = .0003  std .0173205
    #   geglu  4.08 4.12 4.13  mean 4.11  dev -.03 +.01 +.02 -> var .0014/2 = .0007  std .0264575
    #   Δ vs relu: swiglu -.05 = -1.2135922% of 4.12, geglu -.01 = -0.2427184%
    #   val ppl = exp(mean val): relu exp(4.10) = 60.340288, swiglu exp(4.05) = 57.397457, geglu exp(4.09) = 59.739892
    g1 = glu["groups"][0]
    assert g1["split"] == "test" and not g1["lr_sweep"]
    assert [r["variant"] for r in g1["rows"]] == ["swiglu", "geglu", "relu"]
    rows = rows_by_variant(g1)
    expected = {  # variant: (mean, std, Δ nats, Δ %, val ppl)
        "relu": (4.12, 0.02, 0.0, 0.0, 60.340288),
        "swiglu": (4.07, 0.0173205, -0.05, -1.2135922, 57.397457),
        "geglu": (4.11, 0.0264575, -0.01, -0.2427184, 59.739892),
    }
    for variant, (m, s, d, pct, ppl) in expected.items():
        row = rows[variant]
        assert (row["loss_mean"], row["n_seeds"]) == (approx(m), 3)
        assert row["loss_std"] == pytest.approx(s, abs=1e-6)
        assert row["delta_vs_relu"] == approx(d)
        assert row["delta_vs_relu_pct"] == approx(pct)
        assert row["val_ppl"] == approx(ppl)
    assert rows["swiglu"]["paper_log_ppl"] == 1.944 and rows["swiglu"]["paper_delta"] == approx(-0.053)
    assert (rows["relu"]["params_ffn"], rows["swiglu"]["params_ffn"]) == (524288, 528384)
    assert rows["relu"]["tokens_per_s"] == approx(21000.0)  # (22000 + 21000 + 20000) / 3
    # Spearman, ours by mean: swiglu 1, geglu 2, relu 3; paper: geglu 1.942 -> 1, swiglu 1.944 -> 2, relu 3.
    #   d = (1-2, 2-1, 0): sum d² = 2 -> rho = 1 - 6·2 / (3·(9-1)) = 0.5
    assert g1["spearman_vs_paper"] == approx(0.5)
    # Seed noise: pooled sqrt((2·.0004 + 2·.0003 + 2·.0007) / 6) = sqrt(.0014/3) = .0216025; median of stds = .02
    assert g1["seed_std_pooled"] == approx(0.0216025)
    assert g1["seed_std_median"] == approx(0.02)


def p_df2(t: float) -> float:
    """Two-sided p of Student's t with 2 degrees of freedom, by hand: its CDF is 1/2 + t / (2·sqrt(2 + t²))."""
    return 1 - abs(t) / (2 + t * t) ** 0.5


def power_scipy(diff: float, sd: float, n: int, alpha: float) -> float:
    """Power of the two-sided paired t-test, from scipy's noncentral t (mpmath-free, independent of the report)."""
    crit, nc = stats.t.ppf(1 - alpha / 2, n - 1), diff / sd * n ** 0.5
    return stats.nct.sf(crit, n - 1, nc) + stats.nct.sf(crit, n - 1, -nc)


def test_paired_tests_vs_relu(glu):
    # swiglu - relu by seed: -.05 -.06 -.04 -> mean -.05, std .01, t(df=2) = 4.3027, half = 4.3027·.01/√3 = .0248417
    #   t = -.05 / (.01/√3) = -8.660254 -> p = 1 - 8.660254/√77 = .0130725
    # geglu  - relu by seed: -.02 -.02 +.01 -> mean -.01, std √.0003 = .0173205, half = 4.3027·.01 = .043027
    #   t = -.01 / (.0173205/√3) = -1 -> p = 1 - 1/√3 = .4226497
    # Holm over m = 2: swiglu 2 · .0130725 = .026145; geglu max(.026145, 1 · .4226497) = .4226497
    tests = {t["variant"]: t for t in glu["groups"][0]["paired_vs_relu"]}
    sw, ge = tests["swiglu"], tests["geglu"]
    assert (sw["n"], sw["mean"], sw["std"]) == (3, approx(-0.05), approx(0.01))
    assert (sw["ci_low"], sw["ci_high"]) == (approx(-0.0748417), approx(-0.0251583))
    assert (sw["p"], sw["p_holm"], sw["beyond_noise"]) == (approx(p_df2(-8.660254)), approx(0.026145), True)
    assert sw["p"] == approx(0.0130725)
    assert (ge["n"], ge["mean"], ge["std"]) == (3, approx(-0.01), approx(0.0173205))
    assert (ge["ci_low"], ge["ci_high"]) == (approx(-0.053027), approx(0.033027))
    assert (ge["p"], ge["p_holm"], ge["beyond_noise"]) == (approx(1 - 3 ** -0.5), approx(1 - 3 ** -0.5), False)
    sentence = glu["groups"][0]["paired_sentence"]
    assert "Beyond seed noise (Holm-adjusted p < 0.05 over 2 tests): swiglu." in sentence
    assert "Not distinguishable from seed noise: geglu." in sentence


def test_power_matches_scipy(glu):
    # alpha = .05/m = .025. The detectable difference is where the power is exactly 80%; the seeds for the
    # paper's Δ are the first n whose power reaches 80% (n - 1 does not).
    for t in glu["groups"][0]["paired_vs_relu"]:
        assert t["alpha"] == 0.025
        assert power_scipy(t["detectable_diff"], t["std"], 3, 0.025) == pytest.approx(0.8, abs=1e-9)
        expected = optimize.brentq(lambda d: power_scipy(d, t["std"], 3, 0.025) - 0.8, 1e-6, 1.0)
        assert t["detectable_diff"] == pytest.approx(expected, rel=1e-6)
        n = t["seeds_for_paper_delta"]
        assert power_scipy(t["paper_delta"], t["std"], n, 0.025) >= 0.8
        assert n == 2 or power_scipy(t["paper_delta"], t["std"], n - 1, 0.025) < 0.8
    # swiglu: sd .01, 3 seeds; paper Δ -.053 needs 3 seeds (2 give 1 degree of freedom: far too few)
    tests = {t["variant"]: t for t in glu["groups"][0]["paired_vs_relu"]}
    assert tests["swiglu"]["detectable_diff"] == pytest.approx(0.0462482, abs=1e-6)
    assert (tests["swiglu"]["paper_delta"], tests["swiglu"]["seeds_for_paper_delta"]) == (approx(-0.053), 3)


def test_family_summary(glu):
    # gated = mean(4.07, 4.11) = 4.09, ungated = relu 4.12. By seed, mean(swiglu, geglu) - relu:
    #   s0 (4.05+4.08)/2 - 4.10 = -.035, s1 4.10 - 4.14 = -.04, s2 4.105 - 4.12 = -.015
    #   mean -.03, dev (-.005, -.01, .015), var .00035/2 = .000175, std .0132288
    #   half = 4.3027·.0132288/√3 = .0328623 -> [-.0628623, .0028623]
    g1 = glu["groups"][0]
    assert {f["family"]: f["mean_of_means"] for f in g1["families"]} == {"gated": approx(4.09), "ungated": approx(4.12)}
    d = g1["gated_minus_ungated"]
    #   t = -.03 / (.0132288/√3) = -3.927922 -> p = .0591249 (> .05: not beyond noise; its own test, alpha .05)
    #   paper: mean(1.944, 1.942) - 1.997 = -.054
    assert (d["seeds"], d["mean"], d["std"]) == ([0, 1, 2], approx(-0.03), approx(0.0132288))
    assert (d["ci_low"], d["ci_high"], d["beyond_noise"]) == (approx(-0.0628623), approx(0.0028623), False)
    assert (d["p"], d["alpha"], d["paper_delta"]) == (approx(p_df2(-3.927922)), 0.05, approx(-0.054))
    assert power_scipy(d["detectable_diff"], d["std"], 3, 0.05) == pytest.approx(0.8, abs=1e-9)


def test_family_comes_from_the_record_not_a_list_in_the_report(tmp_path):
    """A variant the report has never heard of is gated when its record says so (ffn_variant, written from the
    registry at training time): geglu renamed to `newglu` keeps the family test of test_family_summary."""
    sweep = tmp_path / "glu_variants"
    shutil.copytree(FIXTURES / "glu_variants", sweep)
    for metrics_path in sweep.glob("ffn=geglu,seed=[012]/metrics.json"):
        metrics = json.loads(metrics_path.read_text())
        metrics |= {"ffn": "newglu", "variant": "newglu",
                    "ffn_variant": {"kind": "gated", "gated": True, "activation": "gelu", "up_activation": "identity"}}
        metrics_path.write_text(json.dumps(metrics))
    g1 = write_report(sweep, tmp_path / "out")["groups"][0]
    assert rows_by_variant(g1)["newglu"]["family"] == "gated"
    d = g1["gated_minus_ungated"]
    assert (d["seeds"], d["mean"], d["std"]) == ([0, 1, 2], approx(-0.03), approx(0.0132288))


def test_other_dataset_is_a_separate_group(glu, sweeps):
    assert len(glu["groups"]) == 2
    assert glu["group_differences"] == {
        "data.name": ["tinyshakespeare", "wikitext2"],
        "data_hash": ["aaaa1111aaaa", "bbbb2222bbbb"],
    }
    g2 = glu["groups"][1]
    assert {r["run_dirs"][0] for r in g2["rows"]} == {"wikitext2/ffn=relu,seed=0", "wikitext2/ffn=swiglu,seed=0"}
    # relu has no test loss there, so the whole group falls back to val: swiglu 5.00 vs relu 5.10, one seed each.
    assert g2["split"] == "val"
    rows = rows_by_variant(g2)
    assert (rows["swiglu"]["loss_mean"], rows["swiglu"]["loss_std"]) == (approx(5.0), None)
    assert rows["swiglu"]["delta_vs_relu_pct"] == approx(-1.9607843)  # -.10 / 5.10
    (paired,) = g2["paired_vs_relu"]
    assert (paired["n"], paired["mean"], paired["ci_low"], paired["beyond_noise"]) == (1, approx(-0.1), None, None)
    assert (paired["p"], paired["p_holm"], paired["m"], paired["detectable_diff"]) == (None, None, 0, None)
    md = (sweeps / "glu_variants" / "report" / "comparison.md").read_text()
    assert "## Why 2 groups" in md and "| `data_hash` | aaaa1111aaaa | bbbb2222bbbb |" in md
    assert "Final loss = **validation** loss" in md and "5.0000 ± n/a" in md


def test_lr_sweep_picks_lr_by_validation_and_reports_test(lr_sweep):
    # swiglu: lr .001 val (4.20, 4.22) mean 4.21, test (4.00, 4.02) mean 4.01
    #         lr .003 val (4.15, 4.17) mean 4.16, test (4.10, 4.14) mean 4.12
    #         -> validation picks .003, although test alone would pick .001
    # relu:   lr .001 val mean 4.32; lr .003 val mean 4.26, test (4.28, 4.30) mean 4.29 -> .003
    (g,) = lr_sweep["groups"]
    assert g["lr_sweep"] and g["split"] == "test"
    assert g["best_lr"] == {"relu": 0.003, "swiglu": 0.003}
    rows = rows_by_variant(g)
    # swiglu std sqrt(((-.02)² + .02²)/1) = .0282843; relu std .0141421; Δ -.17 = -3.962704% of 4.29
    swiglu = rows["swiglu"]
    assert (swiglu["lr"], swiglu["loss_mean"], swiglu["loss_std"]) == (0.003, approx(4.12), approx(0.0282843))
    assert (rows["relu"]["loss_mean"], rows["relu"]["loss_std"]) == (approx(4.29), approx(0.0141421))
    assert rows["swiglu"]["delta_vs_relu_pct"] == approx(-3.962704)
    cells = {(r["variant"], r["lr"]): r for r in g["lr_rows"]}
    assert len(cells) == 4 and cells[("swiglu", 0.003)]["best"] and not cells[("swiglu", 0.001)]["best"]
    assert cells[("swiglu", 0.001)]["loss_mean"] == approx(4.01)  # the lower test loss, rightly not chosen
    # paired at best LRs: -.18, -.16 -> mean -.17, std .0141421, t(df=1) = 12.7062, half = 12.7062·.01 = .127062
    #   t = -.17/.01 = -17; df 1 is Cauchy: p = 1 - (2/π)·atan(17) = .0374051
    (t,) = g["paired_vs_relu"]
    assert (t["mean"], t["std"]) == (approx(-0.17), approx(0.0141421))
    assert (t["ci_low"], t["ci_high"]) == (approx(-0.297062), approx(-0.042938))
    assert t["p"] == t["p_holm"] == approx(1 - 2 / math.pi * math.atan(17)) == approx(0.0374051)


def test_plots_are_pngs(glu, lr_sweep, sweeps):
    expected = {
        sweeps / "glu_variants" / "report": [
            "group1_val_curves", "group1_forest", "group1_families", "group2_forest", "group2_families"
        ],
        sweeps / "lr_report": ["forest", "families", "loss_vs_lr"],
    }
    for out_dir, names in expected.items():
        for name in names:
            data = (out_dir / f"{name}.png").read_bytes()
            assert data[:4] == b"\x89PNG" and len(data) > 1000, name
            assert matplotlib.image.imread(out_dir / f"{name}.png").ndim == 3
    # group 2 has no csv histories: no curve plot, and the report says why
    assert "val_curves" not in glu["groups"][1]["plots"]


def test_stats_by_hand():
    # ties share the mean of their ranks: (1, 2.5, 2.5, 4) vs (1, 2, 3, 4): sxy 4.5, sxx 4.5, syy 5 -> 3/√10
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == approx(0.9486833)
    assert spearman([1, 1], [1, 2]) is None
    # Holm, m = 3 tested (None is no test): .01·3 = .03, .03·2 = .06, .04·1 = .04 -> max(.06, .04) = .06 (monotone)
    assert holm([0.04, None, 0.01, 0.03]) == [approx(0.06), None, approx(0.03), approx(0.06)]
    assert holm([0.5, 0.9]) == [approx(1.0), approx(1.0)]  # capped at 1


def test_duplicate_and_diverged_runs_are_problems(tmp_path):
    sweep = tmp_path / "sweep"
    shutil.copytree(FIXTURES / "lr_sweep", sweep)
    shutil.copytree(sweep / "ffn=relu,lr=0.001,seed=0", sweep / "ffn=relu,lr=0.001,seed=0,copy")
    diverged = sweep / "ffn=relu,lr=0.003,seed=1" / "metrics.json"
    diverged.write_text(diverged.read_text().replace('"val_loss": 4.27', '"val_loss": NaN'))
    runs, problems = load_sweep(sweep)
    assert len(runs) == 8  # 8 fixture runs + 1 copy - the duplicate; the diverged run is a run and a problem
    kinds = {p.run_dir: p.kind for p in problems}
    assert kinds == {"ffn=relu,lr=0.001,seed=0,copy": "duplicate", "ffn=relu,lr=0.003,seed=1": "diverged"}
    (diverged_run,) = [r for r in runs if r.diverged]
    assert diverged_run.val_loss == math.inf and "val_loss is nan" in diverged_run.diverged


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, dict]:
    """The committed study regenerated the documented way, from a copy laid out like docs/results/<study>."""
    root = tmp_path_factory.mktemp("study")
    shutil.copytree(STUDY / "runs", root / "runs")
    script = Path(__file__).parents[1] / "scripts" / "compare.py"
    done = subprocess.run([sys.executable, str(script), str(root / "runs"), "--out", str(root)], env=env_with_src(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return root, json.loads((root / "report.json").read_text())


def test_committed_report_regenerates_byte_for_byte(study):
    root, _ = study
    committed = sorted(p.name for p in STUDY.iterdir() if p.is_file())
    assert committed == sorted(p.name for p in root.iterdir() if p.is_file())
    assert {"comparison.md", "comparison.csv", "report.json", "val_curves.png", "forest.png", "loss_vs_lr.png"} \
        <= set(committed)
    for name in committed:
        assert (root / name).read_bytes() == (STUDY / name).read_bytes(), name
    assert str(root) not in (root / "report.json").read_text()  # nothing of the machine


def test_diverged_lr_counts_as_worst(study):
    # geglu at lr .01: val 3.90, (diverged), 3.95 -> without seed 1 its mean 3.925 would beat lr .003 (4.0933);
    # a diverged seed makes .01 the worst geglu LR, so .003 is chosen, and the run stays listed with its reason.
    _, report = study
    (g,) = report["groups"]
    assert g["best_lr"] == {"geglu": 0.003, "relu": 0.003, "swiglu": 0.003} and g["n_diverged"] == 1
    cell = next(r for r in g["lr_rows"] if (r["variant"], r["lr"]) == ("geglu", 0.01))
    assert (cell["n_seeds"], cell["n_diverged"], cell["best"]) == (2, 1, False)
    (problem,) = report["problems"]
    assert problem["kind"] == "diverged" and "diverged at step 17 (last finite loss 5.1000)" in problem["reason"]


def test_holm_changes_the_verdict(study):
    # swiglu - relu at lr .003 by seed: -.02 -.04 -.03 -> mean -.03, std .01, t = -5.196152
    #   raw p = 1 - 5.196152/√29 = .0350987 < .05, but Holm (m = 2, the smallest p) 2 · .0350987 = .0701974 > .05
    _, report = study
    (g,) = report["groups"]
    sw = next(t for t in g["paired_vs_relu"] if t["variant"] == "swiglu")
    assert (sw["p"], sw["p_holm"], sw["beyond_noise"]) == (approx(p_df2(-5.196152)), approx(0.0701974), False)
    assert sw["p"] < 0.05
    assert "Raw p < 0.05 but not after correction: swiglu." in g["paired_sentence"]


def test_mixed_stacks_are_flagged(tmp_path):
    sweep = tmp_path / "runs"
    shutil.copytree(STUDY / "runs", sweep)
    other = sweep / "ffn=relu,lr=0.003,seed=0" / "metrics.json"
    other.write_text(other.read_text().replace('"fixture CPU"', '"another CPU"'))
    no_stack = sweep / "ffn=relu,lr=0.003,seed=1" / "metrics.json"
    metrics = json.loads(no_stack.read_text())
    del metrics["stack"]
    no_stack.write_text(json.dumps(metrics))
    report = write_report(sweep, tmp_path / "out")
    (g,) = report["groups"]
    assert g["mixed_stacks"] and [s["n_runs"] for s in g["stacks"]] == [1, 1, 16]
    assert [s["stack"] if s["stack"] == "unknown" else s["stack"]["device"] for s in g["stacks"]] == [
        "unknown", "another CPU", "fixture CPU"]
    md = (tmp_path / "out" / "comparison.md").read_text()
    assert "**Warning: mixed stacks.** This group's runs ran on 3 different" in md
    assert not write_report(STUDY / "runs", tmp_path / "same")["groups"][0]["mixed_stacks"]


def test_cli_writes_report_next_to_sweep(tmp_path):
    sweep = tmp_path / "glu_variants"
    shutil.copytree(FIXTURES / "glu_variants", sweep)
    env = env_with_src()
    script = Path(__file__).parents[1] / "scripts" / "compare.py"
    done = subprocess.run([sys.executable, str(script), str(sweep)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    md = (sweep / "report" / "comparison.md").read_text()
    assert "`ffn=geglu,seed=3` | CORRUPT" in md and "`ffn=swiglu,seed=3` | UNFINISHED" in md
    assert json.loads((sweep / "report" / "report.json").read_text())["groups"][0]["rows"][0]["variant"] == "swiglu"
    assert (sweep / "report" / "comparison.csv").read_text().startswith("group,table,split,variant,lr,")


def test_report_imports_no_training_code():
    code = "import sys, ffnlab.report; print([m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning')])"
    env = env_with_src()
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


class FakeWandb:
    """Records what the report hands wandb; a real offline run costs seconds of service start-up."""

    def __init__(self):
        self.init_kwargs, self.logged, self.finished = None, {}, False
        self.Table = lambda dataframe: ("table", dataframe)
        self.Image = lambda path: ("image", path)

    def init(self, **kwargs):
        self.init_kwargs, self.summary = kwargs, {}
        return self

    def log(self, data):
        self.logged.update(data)

    def finish(self):
        self.finished = True


def test_wandb_logs_tables_and_plots(sweeps, tmp_path, monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    write_report(sweeps / "glu_variants", tmp_path / "out", use_wandb=True)
    assert fake.init_kwargs["project"] == "ffnlab-fixture"  # from the runs' logger.wandb.project
    assert (fake.init_kwargs["group"], fake.init_kwargs["job_type"]) == ("glu_variants_fixture", "report")
    kind, table = fake.logged["group1/comparison"]
    assert kind == "table" and list(table["variant"]) == ["swiglu", "geglu", "relu"]
    assert list(fake.logged["group1/paired_vs_relu"][1]["p_holm"]) == [approx(0.026145), approx(0.4226497)]
    assert fake.logged["group1/val_curves"] == ("image", str(tmp_path / "out" / "group1_val_curves.png"))
    assert fake.finished


# ---------------------------------------------------------------------------------------------- across groups
# tests/fixtures/report_factor/init_compare: relu, gelu, swiglu x model.init {gpt2, t5} x seeds 0-2 (relu t5
# seed 2 unfinished). tests/fixtures/report_ladder/compute_ladder: relu, gelu, reglu, swiglu x 3 seeds at 200
# and 800 steps (warmup 10%), plus lr 1e-3 for relu and swiglu at 800. Val loss = test - 0.03 in the ladder;
# its csv train/loss ends on two values averaging to val + 0.02 (200 steps) or val - 0.04 (800), minus 0.002 x seed.
FACTOR = Path(__file__).parent / "fixtures" / "report_factor" / "init_compare"
LADDER = Path(__file__).parent / "fixtures" / "report_ladder" / "compute_ladder"
INIT_TEST = {  # final test losses by seed, as in the fixture's metrics.json files
    "gpt2": {"relu": [2.0715, 2.0650, 2.0780], "gelu": [2.1420, 2.1350, 2.1500], "swiglu": [2.0600, 2.0700, 2.0650]},
    "t5": {"relu": [2.0500, 2.0480], "gelu": [2.0900, 2.0950, 2.1000], "swiglu": [2.0300, 2.0380, 2.0420]},
}
LADDER_TEST = {  # at each variant's best LR by validation: at 800 steps swiglu's is 1e-3 (val 1.7423 vs 1.7483)
    200: {"relu": [2.0715, 2.0650, 2.0780], "gelu": [2.1420, 2.1350, 2.1500],
          "reglu": [2.0800, 2.0720, 2.0850], "swiglu": [2.0600, 2.0700, 2.0650]},
    800: {"relu": [1.8200, 1.8150, 1.8260], "gelu": [1.8300, 1.8220, 1.8350],
          "reglu": [1.7900, 1.7850, 1.7980], "swiglu": [1.7700, 1.7680, 1.7790]},
}


def holm_by_hand(ps: list[float]) -> list[float]:
    order = sorted(range(len(ps)), key=ps.__getitem__)
    adjusted, running = [0.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        adjusted[i] = running
    return adjusted


def check_paired(test: dict, mine: list[float], base: list[float]) -> None:
    """The report's paired test against scipy's, on the same numbers."""
    expected = stats.ttest_rel(mine, base)
    ci = expected.confidence_interval(0.95)
    diffs = [a - b for a, b in zip(mine, base)]
    assert (test["n"], test["mean"]) == (len(diffs), approx(sum(diffs) / len(diffs)))
    assert (test["p"], test["ci_low"], test["ci_high"]) == (approx(expected.pvalue), approx(ci.low), approx(ci.high))


@pytest.fixture(scope="module")
def factor_report(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("factor")
    shutil.copytree(FACTOR, root / "init_compare")
    return root, write_report(root / "init_compare", root / "report")


@pytest.fixture(scope="module")
def ladder_report(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("ladder")
    shutil.copytree(LADDER, root / "compute_ladder")
    return root, write_report(root / "compute_ladder", root / "report")


def test_init_is_a_paired_factor(factor_report):
    root, report = factor_report
    assert report["group_differences"] == {"model.init": ["gpt2", "t5"]} and "ladders" not in report
    assert [p["run_dir"] for p in report["problems"]] == ["ffn=relu,model.init=t5,seed=2"]
    (f,) = report["factors"]
    assert (f["key"], f["levels"], f["groups"], f["split"]) == ("model.init", ["gpt2", "t5"], [1, 2], "test")
    assert f["best_lr"] is None
    tests = {t["variant"]: t for t in f["tests"]}
    for variant, t5 in INIT_TEST["t5"].items():  # t5 - gpt2 over the seeds both ran
        check_paired(tests[variant], t5, INIT_TEST["gpt2"][variant][:len(t5)])
    assert tests["relu"]["seeds"] == [0, 1] and tests["gelu"]["seeds"] == [0, 1, 2]
    raw = [tests[v]["p"] for v in ("relu", "gelu", "swiglu")]
    assert [tests[v]["p_holm"] for v in ("relu", "gelu", "swiglu")] == [approx(p) for p in holm_by_hand(raw)]
    assert [t["variant"] for t in f["tests"]] == ["gelu", "swiglu", "relu"]  # most lowered first
    assert {v: t["beyond_noise"] for v, t in tests.items()} == {"gelu": True, "swiglu": True, "relu": False}
    for t in f["tests"]:  # power at the Holm family's first step, 0.05 / 3
        assert t["alpha"] == approx(0.05 / 3) and power_scipy(t["detectable_diff"], t["std"], t["n"], 0.05 / 3) == \
            pytest.approx(0.8, abs=1e-9)
    assert "`model.init=t5` gives a lower mean loss than `model.init=gpt2` for 3 of 3 variants." in f["sentence"]
    assert "Lower beyond seed noise (Holm-adjusted p < 0.05 over 3 tests): gelu, swiglu." in f["sentence"]
    md = (root / "report" / "comparison.md").read_text()
    assert "## Factor `model.init`: t5 − gpt2, paired (groups 1 and 2)" in md and f["sentence"] in md


def test_factor_gated_vs_ungated_is_bonferroni_over_levels(factor_report):
    # each level: swiglu - mean(relu, gelu) per seed; at t5 only seeds 0, 1 have every variant
    _, report = factor_report
    (f,) = report["factors"]
    family = {t["level"]: t for t in f["gated_minus_ungated"]}
    for level, losses in INIT_TEST.items():
        n = len(losses["relu"])
        ungated = [(losses["relu"][s] + losses["gelu"][s]) / 2 for s in range(n)]
        check_paired(family[level], losses["swiglu"][:n], ungated)
        assert family[level]["p_bonferroni"] == approx(min(1.0, 2 * family[level]["p"]))
        assert family[level]["alpha"] == 0.025 and family[level]["m"] == 2
        assert family[level]["beyond_noise"] == (family[level]["p"] < 0.025)
        assert family[level]["paper_delta"] == approx(1.944 - (1.997 + 1.983) / 2)
    # the group section's own test is the same test, judged alone at 0.05
    assert report["groups"][0]["gated_minus_ungated"]["p"] == approx(family["gpt2"]["p"])
    assert [s["level"] for s in f["spearman_vs_paper"]] == ["gpt2", "t5"]


def test_factor_falls_back_to_validation_when_a_test_loss_is_missing(tmp_path):
    sweep = tmp_path / "init_compare"
    shutil.copytree(FACTOR, sweep)
    record = sweep / "ffn=gelu,model.init=t5,seed=0" / "metrics.json"
    metrics = json.loads(record.read_text())
    del metrics["test_loss"]
    record.write_text(json.dumps(metrics))
    (f,) = write_report(sweep, tmp_path / "out")["factors"]
    assert f["split"] == "val"  # the gpt2 group still has every test loss: a difference compares one split
    gelu = next(t for t in f["tests"] if t["variant"] == "gelu")
    val = {init: [json.loads((sweep / f"ffn=gelu,model.init={init},seed={s}" / "metrics.json").read_text())["val_loss"]
                  for s in range(3)] for init in ("gpt2", "t5")}
    check_paired(gelu, val["t5"], val["gpt2"])


def test_one_key_and_budget_are_what_link_groups(glu):
    # glu_variants' two groups differ in data and data_hash: neither a factor nor a ladder, and the report is as before
    assert "factors" not in glu and "ladders" not in glu


def test_ladder_points_and_lr_choice(ladder_report):
    root, report = ladder_report
    assert report["group_differences"] == {"trainer.max_steps": [200, 800], "optim.warmup_steps": [20, 80]}
    assert "factors" not in report  # budget keys make a ladder, not a factor
    (ladder,) = report["ladders"]
    assert (ladder["budget_keys"], ladder["groups"], ladder["split"]) == (["trainer.max_steps", "optim.warmup_steps", "train_tokens"], [1, 2],
                                                                          "test")
    assert [(r["label"], r["multiple"]) for r in ladder["rungs"]] == [("200 steps (1×)", 1.0),
                                                                      ("800 steps (4×)", 4.0)]
    assert ladder["rungs"][0]["best_lr"] is None
    assert ladder["rungs"][1]["best_lr"] == {"gelu": 0.003, "reglu": 0.003, "relu": 0.003, "swiglu": 0.001}
    points = {(p["group"], p["variant"]): p for p in ladder["points"]}
    flops = {"relu": 5555712, "gelu": 5555712, "reglu": 5572096, "swiglu": 5572096}
    for (steps, by_variant), group in zip(LADDER_TEST.items(), (1, 2)):
        for variant, losses in by_variant.items():
            p = points[group, variant]
            assert p["train_flops"] == approx(flops[variant] * steps * 2048)
            assert (p["loss_mean"], p["loss_min"], p["loss_max"]) == (approx(sum(losses) / 3), min(losses), max(losses))
            assert p["loss_std"] == approx(stats.tstd(losses))
    data = (root / "report" / "ladder.png").read_bytes()
    assert ladder["plot"] == "ladder.png" and data[:4] == b"\x89PNG" and len(data) > 1000


def test_ladder_gaps_are_bonferroni_over_gaps_and_budgets(ladder_report):
    root, report = ladder_report
    (ladder,) = report["ladders"]
    assert ladder["members"] == ["gelu", "reglu", "relu", "swiglu"]
    gaps = {(t["gap"], t["group"]): t for t in ladder["gaps"]}
    assert len(gaps) == 4 and {t["m"] for t in gaps.values()} == {4}
    per_seed = {}
    for (steps, losses), group in zip(LADDER_TEST.items(), (1, 2)):
        gated = [(losses["reglu"][s] + losses["swiglu"][s]) / 2 for s in range(3)]
        ungated = [(losses["relu"][s] + losses["gelu"][s]) / 2 for s in range(3)]
        check_paired(gaps["swiglu - relu", group], losses["swiglu"], losses["relu"])
        check_paired(gaps["gated - ungated", group], gated, ungated)
        per_seed["swiglu - relu", steps] = [a - b for a, b in zip(losses["swiglu"], losses["relu"])]
        per_seed["gated - ungated", steps] = [a - b for a, b in zip(gated, ungated)]
    for t in gaps.values():
        assert t["p_bonferroni"] == approx(min(1.0, 4 * t["p"])) and t["beyond_noise"] == (t["p"] < 0.0125)
        assert power_scipy(t["detectable_diff"], t["std"], 3, 0.0125) == pytest.approx(0.8, abs=1e-9)
    assert gaps["swiglu - relu", 2]["paper_delta"] == approx(-0.053)
    assert gaps["gated - ungated", 1]["paper_delta"] == approx((1.953 + 1.944 - 1.997 - 1.983) / 2)
    trends = {t["gap"]: t for t in ladder["trends"]}
    for gap in trends:  # gap at 800 steps - gap at 200 steps, seed by seed
        check_paired(trends[gap], per_seed[gap, 800], per_seed[gap, 200])
    md = (root / "report" / "comparison.md").read_text()
    assert "Bonferroni over the 4 tests (gaps × budgets): beyond seed noise means p < 0.05/4." in md
    assert "`trainer.max_steps` and `optim.warmup_steps`" in md and "![final loss vs training FLOPs](ladder.png)" in md


def test_ladder_train_minus_validation(ladder_report):
    # train - val by seed: 0.02 - 0.002 s at 200 steps, -0.04 - 0.002 s at 800 -> means 0.018 and -0.042, std 0.002.
    # relu seed 0 at 800 logged its last step twice (a resume): the later row counts, the stale 9.9999 does not.
    root, report = ladder_report
    (ladder,) = report["ladders"]
    rows = {(r["group"], r["variant"]): r for r in ladder["train_val"]}
    for (steps, by_variant), group in zip(LADDER_TEST.items(), (1, 2)):
        for variant, tests in by_variant.items():
            r = rows[group, variant]
            val = [t - 0.03 for t in tests]
            gap = [(0.02 if steps == 200 else -0.04) - 0.002 * s for s in range(3)]
            assert (r["n"], r["gap_mean"], r["gap_std"]) == (3, approx(sum(gap) / 3), approx(0.002))
            assert (r["val_loss_mean"], r["train_loss_mean"]) == (approx(sum(val) / 3), approx(sum(val + gap) / 3))
    assert rows[2, "swiglu"]["lr"] == 0.001
    md = (root / "report" / "comparison.md").read_text()
    assert "train/loss over the last 10% of the run's logged training steps" in md


def test_downstream_scores_are_tabled_per_variant_and_paired_vs_relu_with_holm(tmp_path):
    """lm-eval results under each run's eval/ (scripts/evaluate.py) become a downstream table: mean over seeds and
    variant − relu paired by seed, one Holm family per task and metric; the newest results file of a task wins and
    lm-eval's counts (sample_len) and stderrs are not metrics."""
    from ffnlab.report.stats.paired import paired_test

    sweep = tmp_path / "glu_variants"
    shutil.copytree(FIXTURES / "glu_variants", sweep)
    acc = {"relu": [0.30, 0.32, 0.31], "swiglu": [0.36, 0.37, 0.39], "geglu": [0.31, 0.30, 0.33]}
    for variant, values in acc.items():
        for seed, value in enumerate(values):
            results = sweep / f"ffn={variant},seed={seed}" / "eval" / "ffnlab__run"
            results.mkdir(parents=True)
            stale = {"results": {"next_line": {"acc,none": 0.0, "alias": "next_line"}}}
            (results / "results_2026-01-01T00-00-00.json").write_text(json.dumps(stale))
            fresh = {"results": {"next_line": {"acc,none": value, "acc_stderr,none": 0.02, "sample_len": 500,
                                               "alias": "next_line"}}}
            (results / "results_2026-02-01T00-00-00.json").write_text(json.dumps(fresh))
    group = write_report(sweep, tmp_path / "out")["groups"][0]
    (section,) = group["downstream"]
    assert (section["task"], section["metric"]) == ("next_line", "acc")
    rows = {row["variant"]: row for row in section["rows"]}
    assert rows["swiglu"]["mean"] == approx(sum(acc["swiglu"]) / 3) and "delta" not in rows["relu"]
    raw = {v: paired_test(acc[v], acc["relu"])["p"] for v in ("swiglu", "geglu")}
    assert rows["swiglu"]["delta"] == approx(0.0633333) and rows["swiglu"]["p"] == approx(raw["swiglu"])
    assert [rows[v]["p_holm"] for v in ("swiglu", "geglu")] == [approx(p) for p in holm(list(raw.values()))]
    markdown = (tmp_path / "out" / "comparison.md").read_text()
    assert "### Downstream (lm-evaluation-harness)" in markdown and "| swiglu | 3 | 0.3733 |" in markdown
    assert "sample_len" not in markdown
