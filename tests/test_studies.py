"""The committed studies as configs: each composes, plans the points its analysis plan names, and trains a few
steps with the tiny settings (conftest.py)."""

from __future__ import annotations

import itertools
import json

import pytest
from hydra import compose, initialize_config_dir

from ffnlab import config
from ffnlab.train import run


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
    from ffnlab.compose import compose_config

    # the ladder sets warmup and cadence from max_steps: keep its own
    budget_keys = ("optim.warmup_steps", "trainer.max_steps", "trainer.val_check_interval")
    tiny = [o for o in tiny_overrides if experiment == "init_compare" or not o.startswith(budget_keys)]
    cfg = compose_config([f"experiment={experiment}", *tiny, f"paths.output_dir={tmp_path}", *overrides])
    assert cfg.optim.warmup_steps == warmup
    run(cfg)
    record = json.loads((tmp_path / "metrics.json").read_text())
    # the ladder's second LR writes into the ladder's sweep
    assert record["status"] == "finished" and record["experiment"] == experiment.removesuffix("_lr")
