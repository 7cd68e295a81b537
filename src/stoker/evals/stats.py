"""Pass rates with their uncertainty, pass@k, and the gate: is a run's drop from its baseline
a regression or noise? Pure functions.

- pass@k: the chance that at least one of k samples of a case passes, estimated without bias
  from n ≥ k samples of which c passed (Chen et al., 2021): ``1 - C(n-c, k) / C(n, k)``.
- Wilson's score interval for a pass rate (good at small n and near 0 or 1).
- Newcombe's interval for the difference of two rates, from their Wilson intervals: a drop is
  a regression only when it exceeds the suite's ``max_drop`` and the whole interval is below
  zero (it is not noise at the suite's confidence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k of a case with ``c`` of ``n`` samples passing."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(passed: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for ``passed`` of ``total`` ((0, 1) for no trials)."""
    if total == 0:
        return 0.0, 1.0
    z = _z(confidence)
    p = passed / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    # At 0 or all passing the bound is exactly the rate; rounding must not move it past it.
    low = 0.0 if passed == 0 else max(0.0, centre - half)
    high = 1.0 if passed == total else min(1.0, centre + half)
    return low, high


def difference_interval(base: tuple[int, int], now: tuple[int, int],
                        confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's interval for (now's rate - base's rate), each given as (passed, total)."""
    p1, p2 = base[0] / max(base[1], 1), now[0] / max(now[1], 1)
    l1, u1 = wilson(*base, confidence)
    l2, u2 = wilson(*now, confidence)
    diff = p2 - p1
    return (diff - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2),
            diff + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2))


@dataclass(frozen=True, slots=True)
class Gate:
    """The gate's verdict: whether the run passes, and each reason it does not."""

    passed: bool
    reasons: tuple[str, ...]


def gate(now: tuple[int, int], base: tuple[int, int] | None, *, min_pass_rate: float,
         max_drop: float, confidence: float) -> Gate:
    """Fail a run under ``min_pass_rate``, or one whose drop from ``base`` is more than
    ``max_drop`` and not noise at ``confidence`` (see the module docstring)."""
    reasons = []
    rate = now[0] / max(now[1], 1)
    if rate < min_pass_rate:
        reasons.append(f"pass rate {rate:.1%} is under the minimum {min_pass_rate:.1%}")
    if base is not None and base[1] > 0:
        drop = base[0] / base[1] - rate
        low, high = difference_interval(base, now, confidence)
        if drop > max_drop and high < 0:
            reasons.append(f"pass rate fell {drop:.1%} from the baseline's {base[0] / base[1]:.1%}"
                           f" (more than {max_drop:.1%}; {confidence:.0%} interval of the "
                           f"change {low:+.1%} to {high:+.1%})")
    return Gate(not reasons, tuple(reasons))
