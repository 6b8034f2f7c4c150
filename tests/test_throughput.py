"""The run record's throughput: tokens_per_s against an independent clock, MFU, the logged history, and the
peak table MFU divides by."""

from __future__ import annotations

import csv
import time

import lightning as L
import pytest

from ffnlab.runs.hardware import bf16_peak, peak_flops
from ffnlab.runs.record import read_metrics


class FitStopwatch(L.Callback):
    """The test's own clock: fit's wall time and its validation passes, nothing shared with ffnlab.training.throughput."""

    def __init__(self):
        self.fit_s = self.val_s = 0.0

    def on_fit_start(self, trainer, pl_module):
        self._fit = time.perf_counter()

    def on_fit_end(self, trainer, pl_module):
        self.fit_s = time.perf_counter() - self._fit

    def on_validation_start(self, trainer, pl_module):
        self._val = time.perf_counter()

    def on_validation_end(self, trainer, pl_module):
        self.val_s += time.perf_counter() - self._val


def test_tokens_per_s_is_tokens_over_fit_time_minus_validation(compose_tiny, tmp_path, monkeypatch):
    from ffnlab.training import run as train

    stopwatch = FitStopwatch()
    build = train.build

    def build_with_stopwatch(*args, **kwargs):
        built = build(*args, **kwargs)
        built.trainer.callbacks.append(stopwatch)
        return built

    monkeypatch.setattr(train, "build", build_with_stopwatch)
    # Validation every 5 of 60 steps with a larger eval split than training batch: a figure that counted the
    # validations (or left the data loading out) would be far off.
    cfg = compose_tiny(tmp_path, "trainer.max_steps=60", "trainer.val_check_interval=5", "peak_flops=1.0e12")
    train.run(cfg)
    record = read_metrics(tmp_path)
    expected = record["tokens_seen"] / (stopwatch.fit_s - stopwatch.val_s)
    assert stopwatch.val_s > 0.1 * stopwatch.fit_s  # validation is a real part of this fit
    assert record["tokens_per_s"] == pytest.approx(expected, rel=0.05)
    assert record["mfu"] == pytest.approx(record["flops_per_token"] * record["tokens_per_s"] / 1e12)
    assert 0 < record["timing"]["eval_s"] and record["timing"]["train_s"] < stopwatch.fit_s
    rows = list(csv.DictReader(open(tmp_path / "csv" / "metrics.csv")))
    logged = [float(r["tokens_per_s"]) for r in rows if r.get("tokens_per_s")]
    mfus = [float(r["mfu"]) for r in rows if r.get("mfu")]
    assert len(logged) == len(mfus) == 60 // cfg.trainer.log_every_n_steps
    assert all(m == pytest.approx(record["flops_per_token"] * t / 1e12) for m, t in zip(mfus, logged))


def test_a_cpu_run_without_a_peak_records_no_mfu(compose_tiny, tmp_path):
    from ffnlab.training.run import run

    run(compose_tiny(tmp_path))
    record = read_metrics(tmp_path)
    assert record["mfu"] is None and record["tokens_per_s"] > 0
    assert set(record["timing"]) == {"train_s", "eval_s", "between_steps_s"}


@pytest.mark.parametrize("name, chip, tflops", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM", 989.4),
    ("NVIDIA H100 PCIe", "H100 PCIe", 756.5),
    ("NVIDIA H100 NVL", "H100 NVL", 835.5),
    ("NVIDIA A100-SXM4-80GB", "A100", 312),
    ("NVIDIA A100 80GB PCIe", "A100", 312),
    ("NVIDIA L40S", "L40S", 362.05),  # Lightning's table takes this for an L4 (121)
    ("NVIDIA L40", "L40", 181.05),
    ("NVIDIA L4", "L4", 121),
    ("NVIDIA GeForce RTX 4090", "RTX 4090", 165.2),
])
def test_the_bf16_peak_table(name, chip, tflops):
    assert bf16_peak(name) == (chip, pytest.approx(tflops * 1e12))


def test_peaks_are_dense_bf16_only():
    import torch

    assert bf16_peak("NVIDIA Tesla T4") is None
    assert peak_flops(torch.device("cpu"), "32-true") is None  # a CPU has no table entry: give peak_flops
    assert peak_flops(torch.device("cpu"), "32-true", override=1.4e11) == 1.4e11


def test_fit_validations_on_a_subset_leave_the_final_figures_unchanged(compose_tiny, tmp_path):
    """data.fit_val_windows: fit's validations score the first windows only (the history shows it), the final
    validation and the test score whole splits, so a run's results are those of the same run without it."""
    from ffnlab.training.run import run

    results = {}
    for name, extra in (("whole", ()), ("subset", ("data.fit_val_windows=1",))):
        out = tmp_path / name
        run(compose_tiny(out, "trainer.max_steps=6", "trainer.val_check_interval=3", *extra))
        rows = list(csv.DictReader(open(out / "csv" / "metrics.csv")))
        results[name] = read_metrics(out), [float(r["val/loss"]) for r in rows if r.get("val/loss")]
    (whole, whole_curve), (subset, subset_curve) = results["whole"], results["subset"]
    assert subset["val_loss"] == whole["val_loss"] and subset["test_loss"] == whole["test_loss"]
    assert len(whole_curve) == 2 and subset_curve[:2] != whole_curve[:2]
    assert subset_curve[-1] == whole["val_loss"]  # the final, whole-split validation is in the history too
