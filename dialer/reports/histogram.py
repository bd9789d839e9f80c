"""Talk-time histograms: exact medians that can be added up (and subtracted) across rollup rows.

Talk time is counted in whole seconds (rounded to the nearest second): one bin per second up to
an hour, then one bin per minute up to a day (longer calls go into the last bin). A median that
falls in a minute bin is that minute's middle; below an hour it is exact to the second.

A histogram is stored sparsely as little-endian pairs ``(bin: uint16, count: uint16)``, sorted by
bin (a count over 65 535 takes several pairs of the same bin), so many rows can be merged with
numpy without decoding them one by one. Many histograms at once are handled as three parallel
arrays ``(owner, bin, count)`` (``decode_many``, ``sum_pairs``, ``encode_many``).
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
# Cells of the dense table of ``grouped_medians`` above which only the bins present get columns.
DENSE_CELLS = 1 << 20

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def talk_bin(talk_seconds: float) -> int:
    """The bin of a talk time in seconds."""
    whole = int(talk_seconds + 0.5) if talk_seconds > 0 else 0
    if whole < SECOND_BINS:
        return whole
    return min(SECOND_BINS + (whole - SECOND_BINS) // 60, BIN_COUNT - 1)


def talk_bins(talk_seconds: FloatArray) -> IntArray:
    """``talk_bin`` of every value of an array."""
    whole = np.where(talk_seconds > 0, np.floor(talk_seconds + 0.5), 0).astype(np.int64)
    minutes = np.minimum(SECOND_BINS + (whole - SECOND_BINS) // 60, BIN_COUNT - 1)
    return np.where(whole < SECOND_BINS, whole, minutes)


def bin_seconds(index: int) -> float:
    """The talk time a bin stands for (its second, or the middle of its minute)."""
    if index < SECOND_BINS:
        return float(index)
    return float(SECOND_BINS + (index - SECOND_BINS) * 60 + 30)


def _pack(bins: IntArray, counts: IntArray) -> npt.NDArray[np.void]:
    """Pairs for positive ``counts`` of sorted ``bins``, splitting counts over one pair's limit."""
    pieces = -(-counts // MAX_PAIR_COUNT)
    packed = np.empty(int(pieces.sum()), dtype=PAIR)
    packed["bin"] = np.repeat(bins, pieces)
    split = np.full(len(packed), MAX_PAIR_COUNT, dtype=np.int64)
    ends = np.cumsum(pieces) - 1
    split[ends] = counts - (pieces - 1) * MAX_PAIR_COUNT
    packed["count"] = split
    return packed


def encode(counts: Mapping[int, int]) -> bytes:
    """The stored form of ``{bin: count}`` (counts must be positive)."""
    if not counts:
        return b""
    pairs = np.array(sorted(counts.items()), dtype=np.int64)
    return _pack(pairs[:, 0], pairs[:, 1]).tobytes()


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
    return _pack(bins.astype(np.int64), dense[bins].astype(np.int64)).tobytes()


def decode_many(blobs: Sequence[bytes]) -> tuple[IntArray, IntArray, IntArray]:
    """``(owner, bin, count)`` of every pair of ``blobs`` (owner: the blob's index)."""
    lengths = np.fromiter((len(blob) // PAIR.itemsize for blob in blobs), np.int64, len(blobs))
    pairs = np.frombuffer(b"".join(blobs), dtype=PAIR)
    owners = np.repeat(np.arange(len(blobs), dtype=np.int64), lengths)
    return owners, pairs["bin"].astype(np.int64), pairs["count"].astype(np.int64)


def sum_pairs(
    owners: IntArray, bins: IntArray, counts: IntArray
) -> tuple[IntArray, IntArray, IntArray]:
    """The pairs added up per ``(owner, bin)``, sorted by owner then bin, zero sums dropped
    (counts may be negative: a difference of histograms)."""
    if len(owners) == 0:
        return owners, bins, counts
    keys = owners * BIN_COUNT + bins
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    sums = np.add.reduceat(counts[order], starts)
    kept = sums != 0
    unique = keys[starts][kept]
    return unique // BIN_COUNT, unique % BIN_COUNT, sums[kept]


def encode_many(
    owners: IntArray, bins: IntArray, counts: IntArray, owner_count: int
) -> list[bytes]:
    """The stored histogram of each owner ``0..owner_count-1`` from summed pairs (``sum_pairs``
    output: sorted, positive counts)."""
    if len(owners) == 0:
        return [b""] * owner_count
    if int(counts.min()) <= 0:
        raise ValueError("a stored histogram count must be positive")
    packed = _pack(bins, counts)
    pieces = -(-counts // MAX_PAIR_COUNT)
    pair_owners = np.repeat(owners, pieces)
    bounds = np.searchsorted(pair_owners, np.arange(owner_count + 1, dtype=np.int64))
    data = packed.tobytes()
    size = PAIR.itemsize
    return [
        data[start * size : end * size]
        for start, end in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)
    ]


def _median(low: int, high: int, total: int) -> float:
    """The median from the bins of the two middle calls (the same bin for an odd count)."""
    if total % 2:
        return bin_seconds(low)
    return (bin_seconds(low) + bin_seconds(high)) / 2


def grouped_medians(
    blobs: Sequence[bytes],
    groups: IntArray,
    group_count: int,
    signs: IntArray | None = None,
) -> list[float | None]:
    """The median talk time of each group; ``groups[i]`` is the group of ``blobs[i]``, added
    (``signs[i]`` = 1, the default) or subtracted (-1).

    With an even number of calls the median is the mean of the two middle ones; a group without
    calls has None. A group of one added histogram is read as it is (its pairs are sorted by
    bin); the others are added up in one dense table of groups x bins (the bins up to the
    highest one present, or only those present when that table would be large) and searched
    through its running total: linear in the number of pairs either way.
    """
    medians: list[float | None] = [None] * group_count
    if group_count == 0 or not blobs:
        return medians
    lengths = np.fromiter((len(blob) // PAIR.itemsize for blob in blobs), np.int64, len(blobs))
    rows_per_group = np.bincount(groups[lengths > 0], minlength=group_count)
    positive = np.ones(len(blobs), dtype=np.bool_) if signs is None else signs > 0
    alone = (rows_per_group[groups] == 1) & positive & (lengths > 0)
    if alone.any():
        single = np.flatnonzero(alone)
        _single_medians(medians, [blobs[index] for index in single.tolist()], groups[single])
    if not alone.all():
        rest = np.flatnonzero(~alone)
        _merged_medians(
            medians,
            [blobs[index] for index in rest.tolist()],
            lengths[rest],
            groups[rest],
            group_count,
            None if signs is None else signs[rest],
        )
    return medians


def _single_medians(medians: list[float | None], blobs: list[bytes], groups: IntArray) -> None:
    """Medians of groups made of one histogram each (``blobs[i]`` is all of ``groups[i]``)."""
    words = np.frombuffer(b"".join(blobs), dtype="<u2")
    bins, counts = words[0::2], words[1::2]
    lengths = np.fromiter((len(blob) // PAIR.itemsize for blob in blobs), np.int64, len(blobs))
    running = np.cumsum(counts, dtype=np.int64)
    ends = running[np.cumsum(lengths) - 1]
    totals = np.diff(ends, prepend=0)
    before = ends - totals
    lower = bins[np.searchsorted(running, before + (totals + 1) // 2)]
    upper = bins[np.searchsorted(running, before + totals // 2 + 1)]
    for group, low, high, total in zip(
        groups.tolist(), lower.tolist(), upper.tolist(), totals.tolist(), strict=True
    ):
        medians[group] = _median(low, high, total)


def _merged_medians(
    medians: list[float | None],
    blobs: list[bytes],
    lengths: IntArray,
    groups: IntArray,
    group_count: int,
    signs: IntArray | None,
) -> None:
    words = np.frombuffer(b"".join(blobs), dtype="<u2")
    if len(words) == 0:
        return
    bins, counts = words[0::2], words[1::2]
    pair_groups = np.repeat(groups, lengths)
    width = int(bins.max()) + 1
    bin_of_column: npt.NDArray[np.intp] = np.arange(width, dtype=np.intp)
    if group_count * width > DENSE_CELLS:
        # Columns only for the bins that occur.
        occurs = np.zeros(width, dtype=np.bool_)
        occurs[bins] = True
        bin_of_column = np.flatnonzero(occurs)
        cells = pair_groups * len(bin_of_column) + (np.cumsum(occurs) - 1)[bins]
        width = len(bin_of_column)
    else:
        cells = pair_groups * width + bins
    weights = counts if signs is None or signs.min() > 0 else counts * np.repeat(signs, lengths)
    # Whole numbers well below 2**53: exact in float64 (the table's running total too).
    running = np.cumsum(np.bincount(cells, weights=weights, minlength=group_count * width))
    ends = running[width - 1 :: width]
    totals = np.rint(np.diff(ends, prepend=0.0)).astype(np.int64)
    present = np.flatnonzero(totals > 0)
    before = ends[present] - totals[present]
    base = present * width
    lower_rank = before + (totals[present] + 1) // 2
    upper_rank = before + totals[present] // 2 + 1
    lower = bin_of_column[np.searchsorted(running, lower_rank - 0.5) - base]
    upper = bin_of_column[np.searchsorted(running, upper_rank - 0.5) - base]
    for group, low, high, total in zip(
        present.tolist(), lower.tolist(), upper.tolist(), totals[present].tolist(), strict=True
    ):
        medians[group] = _median(low, high, total)
