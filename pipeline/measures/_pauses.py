"""Pauses and response latencies from word timings (pipeline.measures)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Mapping, Sequence

from pipeline.records import Stats, Turn, Word
from pipeline.timeline import EPS, Interval, active_at


@dataclass(frozen=True)
class _Gap:
    start: float
    end: float
    before: str | None
    after: str | None

    @property
    def dur(self) -> float:
        return self.end - self.start


def _word_gaps(words: Sequence[Word], turns: Sequence[Turn]) -> list[_Gap]:
    """Silences between consecutive words (all speakers pooled); text-only mode: between turns."""
    if words:
        items = sorted(((w.start, w.end, w.speaker) for w in words), key=lambda x: (x[0], x[1]))
    else:
        items = sorted(((t.start, t.end, t.speaker) for t in turns), key=lambda x: (x[0], x[1]))
    gaps = []
    reach = -math.inf
    prev_spk: str | None = None
    for s, e, spk in items:
        if reach > -math.inf and s > reach + EPS:
            gaps.append(_Gap(reach, s, prev_spk, spk))
        if e >= reach:
            reach, prev_spk = e, spk
    return gaps


def _latency_for_turns(turns: Sequence[Turn], per_burst: Mapping[str, Sequence[Interval]]
                       ) -> list[float | None]:
    out: list[float | None] = []
    for i, t in enumerate(turns):
        if i == 0 or turns[i - 1].speaker == t.speaker:
            out.append(None)
            continue
        prev = turns[i - 1]
        lat = t.start - prev.end
        # the exclusive track hides an overlapped onset: if this speaker's burst covering the turn start
        # began before the previous turn ended, the response began in overlap (negative latency)
        ivs = per_burst.get(t.speaker, ())
        iv = active_at(ivs, t.start + 1e-6) if ivs else None
        if iv is not None and prev.start < iv[0] < prev.end - EPS:
            lat = min(lat, iv[0] - prev.end)
        out.append(lat)
    return out


def _stats(xs: Sequence[float]) -> Stats:
    if not xs:
        return Stats(count=0, mean=None, median=None)
    return Stats(count=len(xs), mean=round(statistics.fmean(xs), 3), median=round(statistics.median(xs), 3))
