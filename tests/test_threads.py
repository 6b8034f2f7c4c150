"""cpu_threads: applied, resolved into the config hash and the setting, and old records stay reusable."""

from __future__ import annotations

import torch

from ffnlab.runs.record import config_hash, identity_differences, read_config, read_metrics
from ffnlab.training.threads import apply_threads, default_threads


def test_null_resolves_to_the_process_default_and_a_number_is_applied(compose_tiny, tmp_path):
    default = default_threads()
    try:
        one = compose_tiny(tmp_path, "cpu_threads=1")
        assert apply_threads(one) == 1 and torch.get_num_threads() == 1
        null = compose_tiny(tmp_path)
        assert apply_threads(null) == default == null.cpu_threads  # restored after the explicit point
        assert torch.get_num_threads() == default
        assert config_hash(one) != config_hash(null) or default == 1
    finally:
        torch.set_num_threads(default)


def test_the_thread_count_is_recorded_and_an_older_record_without_the_key_still_matches(compose_tiny, tmp_path):
    from ffnlab.config.schemas import schema_defaults
    from ffnlab.data.module import data_identity
    from ffnlab.runs.record import run_identity
    from ffnlab.training.run import run

    default = default_threads()
    try:
        run(compose_tiny(tmp_path, "cpu_threads=1"))
    finally:
        torch.set_num_threads(default)
    record = read_metrics(tmp_path)
    assert record["setting"]["cpu_threads"] == 1 and read_config(tmp_path)["cpu_threads"] == 1

    # A record written before the key existed: its config.yaml lacks it, its setting says 1.
    old_config = read_config(tmp_path)
    del old_config["cpu_threads"]
    old_record = record | {"config_hash": config_hash(old_config)}
    for threads, same in ((1, True), (2, False)):
        cfg = compose_tiny(tmp_path, f"cpu_threads={threads}")
        identity = run_identity(cfg, data_identity(cfg.data))
        differences = identity_differences(old_record, identity, old_config, cfg, schema_defaults())
        assert (differences == []) == same, differences


def test_a_multi_process_point_takes_its_share_and_lightning_leaves_it(compose_tiny, tmp_path, monkeypatch):
    """Under trainer=ddp_cpu every point runs with default // 2 threads, the first as the rest: OMP_NUM_THREADS is set,
    so Lightning's launcher does not lower the count for the first point only (issue 22.2)."""
    from lightning.fabric.utilities.distributed import _set_num_threads_if_needed

    import ffnlab.training.threads

    default = default_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(ffnlab.training.threads, "_STARTED_WITH", 8)  # a count Lightning's own rule would not give here
    try:
        cfg = compose_tiny(tmp_path, "trainer=ddp_cpu")
        assert apply_threads(cfg) == 4 == cfg.cpu_threads
        _set_num_threads_if_needed(num_processes=2)  # what Lightning's launcher calls at each point
        assert torch.get_num_threads() == cfg.cpu_threads
    finally:
        torch.set_num_threads(default)


def test_the_thread_count_is_in_the_identity_on_a_cpu_only(compose_tiny, tmp_path):
    on_cpu = [config_hash(compose_tiny(tmp_path, f"cpu_threads={n}")) for n in (1, 2)]
    on_gpu = [config_hash(compose_tiny(tmp_path, "trainer=gpu", f"cpu_threads={n}")) for n in (1, 2)]
    assert on_cpu[0] != on_cpu[1] and on_gpu[0] == on_gpu[1]
