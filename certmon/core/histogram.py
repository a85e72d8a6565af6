"""Delay quantiles from the rollups' fine, log-scaled histogram, within 1 % of PostgreSQL's percentile_cont.

certmon_delay_bucket (migration 0012) puts a zero delay in bucket 0, one under a millisecond in bucket 1, and one
in [0.001 * 1.01^(k-2), 0.001 * 1.01^(k-1)) seconds in bucket k >= 2, and keeps each bucket's count and sum. A
bucket reads as the mean of its delays: under 1 % from any delay in it (half a millisecond below a millisecond),
and exact when its delays are equal, as whole-minute ones often are. percentile_cont interpolates between two
ordered delays with positive weights, so reading both from their buckets keeps the result within the same bound.
A period's histogram has as many rows as buckets in use (about 1,400 span a day), whatever its incidents.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

RATIO = 1.01
SMALLEST = 0.001  # seconds: the lower edge of bucket 2
RELATIVE_ERROR = RATIO - 1
ABSOLUTE_ERROR_BELOW_SMALLEST = SMALLEST
# A bucket's sum is kept by adding and subtracting delays; its mean is rounded back to the microseconds that
# timestamps have, so that equal delays read back as themselves.
_DIGITS = 6

Buckets = Mapping[int, tuple[int, float]]  # bucket -> (count, sum of the delays in seconds)


def bucket_of(delay: float) -> int:
    """certmon_delay_bucket in Python, for tests."""
    if delay <= 0:
        return 0
    if delay < SMALLEST:
        return 1
    return 2 + math.floor(math.log(delay / SMALLEST) / math.log(RATIO))


def _value(n: int, total: float) -> float:
    return round(total / n, _DIGITS)


def quantiles(buckets: Buckets, fractions: Sequence[float]) -> list[float] | None:
    """percentile_cont(fractions) over the delays counted per bucket; None when there are none."""
    ordered = [(_value(n, total), n) for _, (n, total) in sorted(buckets.items()) if n > 0]
    count = sum(n for _, n in ordered)
    if count == 0:
        return None
    result = []
    for fraction in fractions:
        rank = fraction * (count - 1)
        below = math.floor(rank)
        low, high = _at(ordered, below), _at(ordered, min(below + 1, count - 1))
        result.append(low + (rank - below) * (high - low))
    return result


def largest(buckets: Buckets) -> float | None:
    """The largest delay, read from its bucket."""
    used = [bucket for bucket, (n, _) in buckets.items() if n > 0]
    if not used:
        return None
    n, total = buckets[max(used)]
    return _value(n, total)


def _at(ordered: Sequence[tuple[float, int]], index: int) -> float:
    """The delay at a 0-based rank."""
    seen = 0
    for value, n in ordered:
        seen += n
        if index < seen:
            return value
    raise IndexError(index)
