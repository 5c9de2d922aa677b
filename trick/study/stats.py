"""Seed statistics: mean, sample standard deviation, and Welch's interval of a difference."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """The mean and the sample standard deviation s = sqrt(Σ(x - x̄)² / (n - 1)) (None for one value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


@dataclass(frozen=True)
class Difference:
    """b̄ - ā with its 95% Welch interval; `beyond_noise` when the interval excludes 0."""

    value: float
    low: float | None
    high: float | None

    @property
    def beyond_noise(self) -> bool | None:
        if self.low is None or self.high is None:
            return None
        return self.low > 0 or self.high < 0


def welch(a: list[float], b: list[float], confidence: float = 0.95) -> Difference:
    """The difference of the means, b̄ - ā, and Welch's t interval for it:

        d ± t(1 - α/2; ν) · sqrt(s_a²/n_a + s_b²/n_b),
        ν = (s_a²/n_a + s_b²/n_b)² / ((s_a²/n_a)²/(n_a - 1) + (s_b²/n_b)²/(n_b - 1))

    (no interval with fewer than two values on a side; a zero spread gives the point)."""
    d = statistics.fmean(b) - statistics.fmean(a)
    if len(a) < 2 or len(b) < 2:
        return Difference(d, None, None)
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Difference(d, d, d)
    nu = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    from scipy.stats import t

    half = float(t.ppf(1 - (1 - confidence) / 2, nu)) * se
    return Difference(d, d - half, d + half)
