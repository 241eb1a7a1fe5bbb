"""Small statistics helpers for benchmark figures."""

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile `pct` (0-100) of `samples`."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be within 0..100, not {pct}")
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]
