"""The committed studies as configs: each composes, plans the points its analysis plan names, and trains a few
steps with the tiny settings (conftest.py)."""

from __future__ import annotations

import itertools
import json

import pytest
from hydra import compose, initialize_config_dir

from ffnlab.config import schemas as config
from ffnlab.training.run import run


def sweep_points(experiment: str) -> list[dict]:
    """The points `python train.py -m experiment=<experiment>` launches (Hydra's basic sweeper: a product)."""
    config.register()
    with initialize_config_dir(config_dir=str(config.CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    params = {key: str(values).split(",") for key, values in cfg.hydra.sweeper.params.items()}
    return [dict(zip(params, values)) for values in itertools.product(*params.values())]


def test_init_compare_plans_8_variants_x_2_inits_x_3_seeds():
    points = sweep_points("init_compare")
    assert len(points) == 48 and {p["model.init"] for p in points} == {"gpt2", "t5"}


def test_compute_ladder_plans_three_budgets_and_a_second_lr_at_16x():
    ladder, extra = sweep_points("compute_ladder"), sweep_points("compute_ladder_lr")
    assert len(ladder) == 4 * 3 * 3 and {p["trainer.max_steps"] for p in ladder} == {"200", "800", "3200"}
    assert len(extra) == 2 * 3 and {(p["ffn"], p["trainer.max_steps"], p["optim.lr"]) for p in extra} == {
        ("relu", "3200", "0.001"), ("swiglu", "3200", "0.001")
    }


@pytest.mark.parametrize(
    "experiment, overrides, warmup",
    [
        ("init_compare", ["model.init=t5"], 2),  # the tiny settings' warmup
        ("compute_ladder", ["trainer.max_steps=20"], 2),  # 10% of the steps
        ("compute_ladder_lr", ["trainer.max_steps=30"], 3),
    ],
)
def test_each_study_trains_a_few_steps(experiment, overrides, warmup, tiny_overrides, tmp_path):
    from ffnlab.config.compose import compose_config

    # the ladder sets warmup and cadence from max_steps: keep its own
    budget_keys = ("optim.warmup_steps", "trainer.max_steps", "trainer.val_check_interval")
    tiny = [o for o in tiny_overrides if experiment == "init_compare" or not o.startswith(budget_keys)]
    cfg = compose_config([f"experiment={experiment}", *tiny, f"paths.output_dir={tmp_path}", *overrides])
    assert cfg.optim.warmup_steps == warmup
    run(cfg)
    record = json.loads((tmp_path / "metrics.json").read_text())
    # the ladder's second LR writes into the ladder's sweep
    assert record["status"] == "finished" and record["experiment"] == experiment.removesuffix("_lr")


def test_the_paper_study_is_sized_as_the_paper_and_its_cost_is_printed():
    """C4, T5-base shapes, seq 512 x global batch 128 x 65,536 steps with inverse-sqrt; params.py prices it."""
    import json
    import subprocess
    import sys

    from ffnlab.distributed.budget import apply_budget
    from ffnlab.config.compose import compose_config
    from ffnlab.config.compose import sweep_points as points

    REPO = config.REPO_ROOT

    cfg = compose_config(["experiment=glu_variants"])
    apply_budget(cfg)
    assert (cfg.data.name, cfg.model.d_model, cfg.model.seq_len, cfg.data.global_batch_size) == ("c4", 768, 512, 128)
    assert cfg.trainer.max_steps == 65_536 and cfg.optim.schedule == "inverse_sqrt" and cfg.data.sampling == "no_repeat"
    assert len(points(["experiment=glu_variants"])) == 24
    short = compose_config(["experiment=glu_variants_short"])
    apply_budget(short)
    assert short.trainer.max_steps == 65_536 // 8
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "params.py"), "experiment=glu_variants", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    study = json.loads(done.stdout)["study"]
    assert study["n_runs"] == 24 and study["total"]["tokens"] == 24 * 65_536 * 128 * 512
    relu = next(run for run in study["runs"] if run["ffn"] == "relu")
    assert 1.5 < relu["gpu_hours_H100"] < 3  # 6·N·D at 40% MFU: about 2 h per run, as the issue estimates
