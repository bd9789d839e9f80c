"""Talk-time histograms: exact medians that can be added up across rollup rows.

Talk time is counted in whole seconds (rounded to the nearest second): one bin per second up to
an hour, then one bin per minute up to a day (longer calls go into the last bin). A median that
falls in a minute bin is that minute's middle; below an hour it is exact to the second.

A histogram is stored sparsely as little-endian pairs ``(bin: uint16, count: uint16)``, sorted by
bin (a count over 65 535 takes several pairs of the same bin), so many rows can be merged with
numpy without decoding them one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

SECOND_BINS = 3600
MINUTE_BINS = 23 * 60
BIN_COUNT = SECOND_BINS + MINUTE_BINS
PAIR = np.dtype([("bin", "<u2"), ("count", "<u2")])
MAX_PAIR_COUNT = 0xFFFF

IntArray = npt.NDArray[np.int64]


def talk_bin(talk_seconds: float) -> int:
    """The bin of a talk time in seconds."""
    whole = int(talk_seconds + 0.5) if talk_seconds > 0 else 0
    if whole < SECOND_BINS:
        return whole
    return min(SECOND_BINS + (whole - SECOND_BINS) // 60, BIN_COUNT - 1)


def bin_seconds(index: int) -> float:
    """The talk time a bin stands for (its second, or the middle of its minute)."""
    if index < SECOND_BINS:
        return float(index)
    return float(SECOND_BINS + (index - SECOND_BINS) * 60 + 30)


def _pack(bins: IntArray, counts: IntArray) -> bytes:
    """Pairs for positive ``counts`` of sorted ``bins``, splitting counts over one pair's limit."""
    pieces = -(-counts // MAX_PAIR_COUNT)
    packed = np.empty(int(pieces.sum()), dtype=PAIR)
    packed["bin"] = np.repeat(bins, pieces)
    split = np.full(len(packed), MAX_PAIR_COUNT, dtype=np.int64)
    ends = np.cumsum(pieces) - 1
    split[ends] = counts - (pieces - 1) * MAX_PAIR_COUNT
    packed["count"] = split
    return packed.tobytes()


def encode(counts: Mapping[int, int]) -> bytes:
    """The stored form of ``{bin: count}`` (counts must be positive)."""
    if not counts:
        return b""
    pairs = np.array(sorted(counts.items()), dtype=np.int64)
    return _pack(pairs[:, 0], pairs[:, 1])


def decode(blob: bytes) -> dict[int, int]:
    pairs = np.frombuffer(blob, dtype=PAIR)
    counts: dict[int, int] = {}
    for talk_bin, count in zip(pairs["bin"].tolist(), pairs["count"].tolist(), strict=True):
        counts[talk_bin] = counts.get(talk_bin, 0) + count
    return counts


def merge(blobs: Iterable[bytes]) -> bytes:
    """One histogram holding the counts of all ``blobs``."""
    joined = b"".join(blobs)
    if not joined:
        return b""
    pairs = np.frombuffer(joined, dtype=PAIR)
    dense = np.bincount(pairs["bin"], weights=pairs["count"], minlength=BIN_COUNT)
    bins = np.flatnonzero(dense)
    return _pack(bins.astype(np.int64), dense[bins].astype(np.int64))


def grouped_medians(
    blobs: Sequence[bytes], groups: IntArray, group_count: int
) -> list[float | None]:
    """The median talk time of each group; ``groups[i]`` is the group of ``blobs[i]``.

    With an even number of calls the median is the mean of the two middle ones; a group without
    calls has None. Works on the pairs themselves (sorted by group and bin), not on a dense
    table of every bin of every group.
    """
    medians: list[float | None] = [None] * group_count
    if group_count == 0 or not blobs:
        return medians
    lengths = np.fromiter((len(blob) // PAIR.itemsize for blob in blobs), np.int64, len(blobs))
    pairs = np.frombuffer(b"".join(blobs), dtype=PAIR)
    if len(pairs) == 0:
        return medians
    owners = np.repeat(groups, lengths)
    bins = pairs["bin"].astype(np.int64)
    order = np.argsort(owners * BIN_COUNT + bins, kind="stable")
    owners, bins = owners[order], bins[order]
    cumulative = np.cumsum(pairs["count"].astype(np.int64)[order])
    totals = np.bincount(owners, weights=pairs["count"][order], minlength=group_count)
    totals = totals.astype(np.int64)
    before = np.concatenate(([0], np.cumsum(totals)[:-1]))
    present = np.flatnonzero(totals)
    lower_rank = before[present] + (totals[present] + 1) // 2
    upper_rank = before[present] + totals[present] // 2 + 1
    lower = bins[np.searchsorted(cumulative, lower_rank)]
    upper = bins[np.searchsorted(cumulative, upper_rank)]
    for group, low, high, total in zip(
        present.tolist(), lower.tolist(), upper.tolist(), totals[present].tolist(), strict=True
    ):
        if total % 2:
            medians[group] = bin_seconds(low)
        else:
            medians[group] = (bin_seconds(low) + bin_seconds(high)) / 2
    return medians
