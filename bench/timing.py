"""The timing helpers the benchmarks share."""

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


def alternating_medians(ours, theirs, repeats: int) -> tuple[float, float]:
    """Median wall seconds of one call of `ours` and of `theirs`, timed in alternating order
    (theirs first on even repeats), so that drifts of the machine hit both sides alike."""
    times: dict = {ours: [], theirs: []}
    for rep in range(repeats):
        for fn in (ours, theirs) if rep % 2 else (theirs, ours):
            start = time.perf_counter()
            fn()
            times[fn].append(time.perf_counter() - start)
    return statistics.median(times[ours]), statistics.median(times[theirs])
