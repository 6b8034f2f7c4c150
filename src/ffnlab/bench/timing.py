"""Interleaved timing: every contender runs a few steps per round, round after round, so a noisy neighbour or a
clock change hits them all alike; ratios are taken per round (paired) and summarised by their median."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from ffnlab.training.throughput import synchronize


def interleaved(
    contenders: dict[str, Callable[[], object]], rounds: int, steps: int, warmup: int, device: torch.device
) -> dict[str, list[float]]:
    """Seconds per call of each contender, one figure per round. Rounds alternate the order (forward, backward)
    so that neither end of a round is always the same contender's."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    synchronize(device)
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            fn = contenders[name]
            synchronize(device)
            started = time.perf_counter()
            for _ in range(steps):
                fn()
            synchronize(device)
            seconds[name].append((time.perf_counter() - started) / steps)
    return seconds


def median(values: list[float]) -> float:
    return statistics.median(values)


def paired_ratio(numerator: list[float], denominator: list[float]) -> tuple[float, float, float]:
    """(median, min, max) over rounds of numerator[r] / denominator[r]."""
    ratios = [a / b for a, b in zip(numerator, denominator)]
    return statistics.median(ratios), min(ratios), max(ratios)
