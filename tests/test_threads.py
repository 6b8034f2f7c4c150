"""cpu_threads: applied, resolved into the config hash and the setting, and old records stay reusable."""

from __future__ import annotations

import torch

from ffnlab.record import config_hash, identity_differences, read_config, read_metrics
from ffnlab.threads import apply_threads, default_threads


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
    from ffnlab.config import schema_defaults
    from ffnlab.data import data_identity
    from ffnlab.record import run_identity
    from ffnlab.train import run

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
