"""Talk-time histograms: exact medians that can be added up across rollup rows.

Talk time is counted in whole seconds (rounded to the nearest second): one bin per second up to
an hour, then one bin per minute up to a day (longer calls go into the last bin). A median that
falls in a minute bin is that minute's middle; below an hour it is exact to the second.

A histogram is stored sparsely as little-endian pairs ``(bin: uint16, count: uint32)``, sorted by
bin, so many rows can be merged with numpy without decoding them one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

SECOND_BINS = 3600
MINUTE_BINS = 23 * 60
BIN_COUNT = SECOND_BINS + MINUTE_BINS
PAIR = np.dtype([("bin", "<u2"), ("count", "<u4")])

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


def encode(counts: Mapping[int, int]) -> bytes:
    """The stored form of ``{bin: count}``."""
    if not counts:
        return b""
    pairs = np.array(sorted(counts.items()), dtype=np.int64)
    packed = np.empty(len(pairs), dtype=PAIR)
    packed["bin"] = pairs[:, 0]
    packed["count"] = pairs[:, 1]
    return packed.tobytes()


def decode(blob: bytes) -> dict[int, int]:
    pairs = np.frombuffer(blob, dtype=PAIR)
    return {int(pair["bin"]): int(pair["count"]) for pair in pairs}


def merge(blobs: Iterable[bytes]) -> bytes:
    """One histogram holding the counts of all ``blobs``."""
    joined = b"".join(blobs)
    if not joined:
        return b""
    pairs = np.frombuffer(joined, dtype=PAIR)
    dense = np.bincount(pairs["bin"], weights=pairs["count"], minlength=BIN_COUNT)
    bins = np.flatnonzero(dense)
    packed = np.empty(len(bins), dtype=PAIR)
    packed["bin"] = bins
    packed["count"] = dense[bins]
    return packed.tobytes()


def grouped_medians(
    blobs: Sequence[bytes], groups: IntArray, group_count: int
) -> list[float | None]:
    """The median talk time of each group; ``groups[i]`` is the group of ``blobs[i]``.

    With an even number of calls the median is the mean of the two middle ones; a group without
    calls has None.
    """
    medians: list[float | None] = [None] * group_count
    if group_count == 0 or not blobs:
        return medians
    lengths = np.fromiter((len(blob) // PAIR.itemsize for blob in blobs), np.int64, len(blobs))
    pairs = np.frombuffer(b"".join(blobs), dtype=PAIR)
    if len(pairs) == 0:
        return medians
    owners = np.repeat(groups, lengths)
    dense = np.bincount(
        owners * BIN_COUNT + pairs["bin"].astype(np.int64),
        weights=pairs["count"].astype(np.float64),
        minlength=group_count * BIN_COUNT,
    ).reshape(group_count, BIN_COUNT)
    cumulative = np.cumsum(dense, axis=1)
    totals = cumulative[:, -1]
    for group in np.flatnonzero(totals):
        row = cumulative[group]
        total = int(totals[group])
        lower = int(np.searchsorted(row, (total + 1) // 2))  # 1-based rank ceil(n/2)
        upper = int(np.searchsorted(row, total // 2 + 1))  # 1-based rank n/2+1
        if total % 2:
            medians[group] = bin_seconds(lower)
        else:
            medians[group] = (bin_seconds(lower) + bin_seconds(upper)) / 2
    return medians
