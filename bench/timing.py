"""The timing helper the benchmarks share."""

from __future__ import annotations

import statistics
import time


def median_seconds(fn, repeats: int, warmup: bool = False) -> float:
    """Median wall seconds of one call of `fn` over `repeats` calls (after one untimed call)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
