"""Timeline algebra on (start, end) intervals in seconds: unions, clipping, coverage, per-speaker tracks and
the split of a multi-speaker timeline into solo and overlapped stretches (who started each overlap). Pure,
no records beyond `Segment`; the core layer (measures, channels and levels build on it)."""

from __future__ import annotations

import bisect
import math
from typing import Iterable, Mapping, Sequence

from pipeline.records import Segment

Interval = tuple[float, float]
EPS = 1e-9  # seconds: times closer than this are equal


def union(intervals: Iterable[Interval], gap: float = 0.0) -> list[Interval]:
    """Sorted union of intervals; intervals separated by at most `gap` are merged. Empty ones dropped."""
    ivs = sorted((s, e) for s, e in intervals if e > s)
    out: list[list[float]] = []
    for s, e in ivs:
        if out and s <= out[-1][1] + gap:
            if e > out[-1][1]:
                out[-1][1] = e
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def total(intervals: Iterable[Interval]) -> float:
    return float(sum(e - s for s, e in intervals))


def clip(intervals: Iterable[Interval], lo: float, hi: float) -> list[Interval]:
    return [(max(s, lo), min(e, hi)) for s, e in intervals if min(e, hi) > max(s, lo)]


def covered(intervals: Sequence[Interval], lo: float, hi: float) -> float:
    """Length of [lo, hi] covered by sorted, disjoint `intervals`."""
    return total(clip(intervals, lo, hi))


def by_speaker(segments: Iterable[Segment], gap: float = 0.0) -> dict[str, list[Interval]]:
    raw: dict[str, list[Interval]] = {}
    for s in segments:
        raw.setdefault(s.speaker, []).append((float(s.start), float(s.end)))
    return {spk: union(ivs, gap) for spk, ivs in sorted(raw.items())}


def active_at(ivs: Sequence[Interval], t: float) -> Interval | None:
    """The interval of sorted disjoint `ivs` containing time t (start <= t < end), if any."""
    i = bisect.bisect_right(ivs, (t, math.inf)) - 1
    if i >= 0 and ivs[i][0] <= t < ivs[i][1]:
        return ivs[i]
    return None


def elementary(per_speaker: Mapping[str, Sequence[Interval]]) -> list[tuple[float, float, tuple[str, ...]]]:
    """Split the timeline at every boundary; return (start, end, active speakers) for spans with speech."""
    bounds = sorted({t for ivs in per_speaker.values() for iv in ivs for t in iv})
    out = []
    for lo, hi in zip(bounds, bounds[1:]):
        mid = 0.5 * (lo + hi)
        act = tuple(spk for spk, ivs in per_speaker.items() if active_at(ivs, mid) is not None)
        if act:
            out.append((lo, hi, act))
    return out


def overlap_split(per_speaker: Mapping[str, Sequence[Interval]]
                  ) -> tuple[dict[str, float], dict[str, float], float]:
    """Per speaker, the seconds they talk alone and the overlapped seconds they started (of the speakers
    active in an overlapped stretch, the one whose interval began last), and the total overlapped seconds."""
    solo = {spk: 0.0 for spk in per_speaker}
    started = {spk: 0.0 for spk in per_speaker}
    total_overlap = 0.0
    for lo, hi, act in elementary(per_speaker):
        if len(act) == 1:
            solo[act[0]] += hi - lo
            continue
        total_overlap += hi - lo
        mid = 0.5 * (lo + hi)
        starter = max(act, key=lambda spk: (active_at(per_speaker[spk], mid) or (0.0, 0.0))[0])
        started[starter] += hi - lo
    return solo, started, total_overlap


def windows(intervals: Iterable[Interval], max_len: float, max_gap: float = math.inf) -> list[Interval]:
    """Cover the union of `intervals` with sorted, disjoint windows of at most `max_len` seconds (the clips a
    recogniser with a fixed window decodes one at a time). A window starts where speech starts and takes in
    the following intervals, gaps included, while the gap before each is at most `max_gap` and the window
    stays within `max_len`; an interval longer than `max_len` is cut into equal pieces. Every second of the
    union lies in exactly one window."""
    if not max_len > 0:
        raise ValueError(f"max_len must be positive (got {max_len})")
    out: list[Interval] = []
    for s, e in union(intervals):
        if out and s - out[-1][1] <= max_gap and e - out[-1][0] <= max_len:
            out[-1] = (out[-1][0], e)
            continue
        n = max(1, math.ceil((e - s) / max_len - EPS))
        step = (e - s) / n
        out += [(s + i * step, e if i == n - 1 else s + (i + 1) * step) for i in range(n)]
    return out
