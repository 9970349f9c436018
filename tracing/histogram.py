"""The duration histogram of the span rollups (``tracing.rollups``): its buckets, and the
percentiles read from it, for one histogram (``histogram_percentiles``, the definition) or
for many groups of merged sparse histograms at once (``merged_percentiles``, the same
numbers, vectorised: what ``spanStats`` uses).

Bucket 0 holds durations under ``FLOOR_MS`` (and negative ones, from skewed clocks);
bucket ``b >= 1`` holds [FLOOR_MS * RATIO**(b-1), FLOOR_MS * RATIO**b). A percentile read
from it takes the geometric middle of the bucket holding each order statistic (clamped to
the group's exact min and max, which are also returned exactly for the first and last),
interpolated as ``percentile_cont`` does: its relative error is at most
``MAX_RELATIVE_ERROR`` (sqrt(RATIO) - 1, under 2 %); under ``FLOOR_MS`` the absolute error
is under ``FLOOR_MS``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

FLOOR_MS = 0.001
RATIO = 1.04
MAX_BUCKET = 32767  # smallint
MAX_RELATIVE_ERROR = math.sqrt(RATIO) - 1

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


def bucket_sql(duration: str) -> str:
    """The histogram bucket of a duration column, as SQL (``duration`` is an identifier of
    our own, never user input)."""
    return (
        f"CASE WHEN {duration} < {FLOOR_MS!r} THEN 0 ELSE LEAST({MAX_BUCKET}, "
        f"1 + floor(ln({duration} / {FLOOR_MS!r}) / ln({RATIO!r})))::int END"
    )


def bucket_of(duration_ms: float) -> int:
    """``bucket_sql`` in Python (tests)."""
    if duration_ms < FLOOR_MS:
        return 0
    return min(MAX_BUCKET, 1 + math.floor(math.log(duration_ms / FLOOR_MS) / math.log(RATIO)))


def bucket_value(bucket: int) -> float:
    """The value a bucket stands for: the geometric middle of its bounds (0 for bucket 0)."""
    if bucket <= 0:
        return 0.0
    return float(FLOOR_MS * RATIO ** (bucket - 1) * math.sqrt(RATIO))


def histogram_percentiles(
    buckets: list[int], counts: list[int], low: float, high: float, fractions: Iterable[float]
) -> list[float | None]:
    """``percentile_cont`` of each fraction, estimated from a histogram (sorted buckets)
    of ``sum(counts)`` values whose exact min and max are ``low`` and ``high``."""
    total = sum(counts)
    if total == 0:
        return [None for _ in fractions]
    ends: list[int] = []
    running = 0
    for count in counts:
        running += count
        ends.append(running)

    def value(position: int) -> float:  # the position-th smallest value, 0-based
        if position == 0:
            return low
        if position == total - 1:
            return high
        lo_i, hi_i = 0, len(ends) - 1
        while lo_i < hi_i:  # the first bucket whose cumulative end passes position
            mid = (lo_i + hi_i) // 2
            if ends[mid] > position:
                hi_i = mid
            else:
                lo_i = mid + 1
        return min(high, max(low, bucket_value(buckets[lo_i])))

    out: list[float | None] = []
    for fraction in fractions:
        rank = fraction * (total - 1)
        k = math.floor(rank)
        part = rank - k
        v = value(k)
        out.append(v if part == 0 else v + part * (value(min(k + 1, total - 1)) - v))
    return out


def merged_percentiles(
    groups: Ints,
    buckets: Ints,
    counts: Ints,
    low: Floats,
    high: Floats,
    fractions: Sequence[float],
) -> list[list[float | None]]:
    """``histogram_percentiles`` of each group, its histogram the sum of the entries
    (``groups[i]``, ``buckets[i]``, ``counts[i]``) of that group (in any order, a bucket
    any number of times), its exact min and max ``low[g]`` and ``high[g]``: one list of
    ``fractions`` per group ``0 <= g < len(low)`` (Nones for a group without entries).
    Sums, cumulative counts and searches run over arrays, never a loop per entry."""
    n_groups = len(low)
    if n_groups == 0 or len(buckets) == 0:
        return [[None] * len(fractions) for _ in range(n_groups)]
    present = np.bincount(buckets) > 0
    used = np.flatnonzero(present)  # the buckets that occur, ascending
    width = len(used)
    column_of = np.cumsum(present) - 1  # a bucket's column among them
    cells = np.bincount(
        groups * width + column_of[buckets], weights=counts, minlength=n_groups * width
    ).astype(np.int64)  # float64 sums of integers: exact below 2**53
    running = np.cumsum(cells)  # over the groups' rows one after the other
    ends = running[width - 1 :: width]
    totals = np.diff(ends, prepend=0)
    before = ends - totals  # the entries of the groups before each
    low = np.where(totals > 0, low, 0.0)  # a group without entries may have no bounds
    high = np.where(totals > 0, high, 0.0)
    first_cell = np.arange(n_groups) * width
    values = _bucket_values(used)

    def value(position: Ints) -> Floats:  # the position-th smallest of each group, 0-based
        # the first cell of the group whose cumulative end passes position
        at = np.searchsorted(running, before + position, side="right")
        estimate = values[np.minimum(at - first_cell, width - 1)]
        estimate = np.minimum(high, np.maximum(low, estimate))
        return np.where(position == 0, low, np.where(position == totals - 1, high, estimate))

    last = np.maximum(totals - 1, 0)
    out = np.empty((n_groups, len(fractions)), dtype=np.float64)
    for j, fraction in enumerate(fractions):
        rank = fraction * last.astype(np.float64)
        k = np.floor(rank).astype(np.int64)
        part = rank - k
        v = value(k)
        out[:, j] = np.where(part == 0, v, v + part * (value(np.minimum(k + 1, last)) - v))
    return [
        list(row) if total else [None] * len(fractions)
        for row, total in zip(out.tolist(), totals.tolist(), strict=True)
    ]


# bucket_value of the buckets any real duration falls in (up to ~1e65 ms), once
_VALUES = np.array([bucket_value(b) for b in range(4096)], dtype=np.float64)


def _bucket_values(buckets: Ints) -> Floats:
    if len(buckets) == 0 or buckets[-1] < len(_VALUES):
        return _VALUES[buckets]
    return np.array([bucket_value(int(b)) for b in buckets], dtype=np.float64)
