"""The report reads checked-in run records and must give the numbers worked out by hand below.

Fixtures (tests/fixtures/report_sweep/, copied to tmp_path so nothing is written into the repo):
- glu_variants/: relu, swiglu, geglu x seeds 0-2 on tinyshakespeare with csv histories; one FAILED,
  one UNFINISHED and one CORRUPT run; a .hydra/ dir holding a config.yaml (not a run); and, one level
  deeper, wikitext2/ with relu and swiglu x seed 0 (a different setting: never pooled).
- lr_sweep/: relu, swiglu x lr {0.001, 0.003} x seeds 0-1, where validation and test disagree on
  swiglu's best LR.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from ffnlab.report import write_report
from ffnlab.report.records import load_sweep
from ffnlab.report.stats import average_ranks, spearman, t_quantile_975

FIXTURES = Path(__file__).parent / "fixtures" / "report_sweep"
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


def test_paired_tests_vs_relu(glu):
    # swiglu - relu by seed: -.05 -.06 -.04 -> mean -.05, std .01, t(df=2) = 4.3027, half = 4.3027·.01/√3 = .0248417
    # geglu  - relu by seed: -.02 -.02 +.01 -> mean -.01, std √.0003 = .0173205, half = 4.3027·.01 = .043027
    tests = {t["variant"]: t for t in glu["groups"][0]["paired_vs_relu"]}
    sw, ge = tests["swiglu"], tests["geglu"]
    assert (sw["n"], sw["mean"], sw["std"]) == (3, approx(-0.05), approx(0.01))
    assert (sw["ci_low"], sw["ci_high"], sw["beyond_noise"]) == (approx(-0.0748417), approx(-0.0251583), True)
    assert (ge["n"], ge["mean"], ge["std"]) == (3, approx(-0.01), approx(0.0173205))
    assert (ge["ci_low"], ge["ci_high"], ge["beyond_noise"]) == (approx(-0.053027), approx(0.033027), False)
    sentence = glu["groups"][0]["paired_sentence"]
    assert "Larger than seed noise (95% interval excludes 0): swiglu." in sentence
    assert "Not distinguishable from seed noise (interval contains 0): geglu." in sentence


def test_family_summary(glu):
    # gated = mean(4.07, 4.11) = 4.09, ungated = relu 4.12. By seed, mean(swiglu, geglu) - relu:
    #   s0 (4.05+4.08)/2 - 4.10 = -.035, s1 4.10 - 4.14 = -.04, s2 4.105 - 4.12 = -.015
    #   mean -.03, dev (-.005, -.01, .015), var .00035/2 = .000175, std .0132288
    #   half = 4.3027·.0132288/√3 = .0328623 -> [-.0628623, .0028623]
    g1 = glu["groups"][0]
    assert {f["family"]: f["mean_of_means"] for f in g1["families"]} == {"gated": approx(4.09), "ungated": approx(4.12)}
    d = g1["gated_minus_ungated"]
    assert (d["seeds"], d["mean"], d["std"]) == ([0, 1, 2], approx(-0.03), approx(0.0132288))
    assert (d["ci_low"], d["ci_high"], d["beyond_noise"]) == (approx(-0.0628623), approx(0.0028623), False)


def test_other_dataset_is_a_separate_group(glu, sweeps):
    assert len(glu["groups"]) == 2
    assert glu["group_differences"] == {
        "data": ["tinyshakespeare", "wikitext2"],
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
    (t,) = g["paired_vs_relu"]
    assert (t["mean"], t["std"]) == (approx(-0.17), approx(0.0141421))
    assert (t["ci_low"], t["ci_high"]) == (approx(-0.297062), approx(-0.042938))


def test_plots_are_pngs(glu, lr_sweep, sweeps):
    expected = {
        sweeps / "glu_variants" / "report": [
            "group1_val_curves", "group1_final_loss", "group1_families", "group2_final_loss", "group2_families"
        ],
        sweeps / "lr_report": ["final_loss", "families", "loss_vs_lr"],
    }
    for out_dir, names in expected.items():
        for name in names:
            data = (out_dir / f"{name}.png").read_bytes()
            assert data[:4] == b"\x89PNG" and len(data) > 1000, name
            assert matplotlib.image.imread(out_dir / f"{name}.png").ndim == 3
    # group 2 has no csv histories: no curve plot, and the report says why
    assert "val_curves" not in glu["groups"][1]["plots"]


def test_stats_by_hand():
    # ties share the mean of their ranks: [1, 2, 2, 3] -> [1, 2.5, 2.5, 4]
    assert average_ranks([1, 2, 2, 3]) == [1, 2.5, 2.5, 4]
    # Pearson of ranks (1, 2.5, 2.5, 4) and (1, 2, 3, 4): sxy 4.5, sxx 4.5, syy 5 -> 4.5/√22.5 = 3/√10 = 0.9486833
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == approx(0.9486833)
    assert spearman([1, 1], [1, 2]) is None
    assert (t_quantile_975(1), t_quantile_975(30), t_quantile_975(31)) == (12.7062, 2.0423, 1.96)


def test_duplicate_and_diverged_runs_are_problems(tmp_path):
    sweep = tmp_path / "sweep"
    shutil.copytree(FIXTURES / "lr_sweep", sweep)
    shutil.copytree(sweep / "ffn=relu,lr=0.001,seed=0", sweep / "ffn=relu,lr=0.001,seed=0,copy")
    diverged = sweep / "ffn=relu,lr=0.003,seed=1" / "metrics.json"
    diverged.write_text(diverged.read_text().replace('"val_loss": 4.27', '"val_loss": NaN'))
    runs, problems = load_sweep(sweep)
    assert len(runs) == 7  # 8 fixture runs + 1 copy - 2 problems
    kinds = {p.run_dir: p.kind for p in problems}
    assert kinds == {"ffn=relu,lr=0.001,seed=0,copy": "duplicate", "ffn=relu,lr=0.003,seed=1": "diverged"}


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
    assert (sweep / "report" / "comparison.csv").read_text().startswith("group,table,variant,lr,")


def test_report_imports_no_training_code():
    code = "import sys, ffnlab.report; print([m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning')])"
    env = env_with_src()
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


class FakeWandb:
    """Records what the report hands wandb; a real offline run costs seconds of service start-up."""

    def __init__(self):
        self.init_kwargs, self.logged, self.finished = None, {}, False
        self.Table = lambda columns, data: ("table", columns, data)
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
    kind, columns, data = fake.logged["group1/comparison"]
    assert kind == "table" and [row[columns.index("variant")] for row in data] == ["swiglu", "geglu", "relu"]
    assert fake.logged["group1/val_curves"] == ("image", str(tmp_path / "out" / "group1_val_curves.png"))
    assert fake.finished
