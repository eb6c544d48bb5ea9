"""Talk time: per speaker and role, overlaps and who started them, sliding windows (pipeline.measures)."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from pipeline.errors import SessionError
from pipeline.records import RoleTalk, Segment, SpeakerTalk, TalkBlock, Turn
from pipeline.timeline import EPS, Interval, by_speaker, clip, overlap_split, total, union

def talk_time(segments: tuple[Segment, ...]) -> dict[str, float]:
    """Seconds each speaker talks: the length of the union of their segments (silence excluded; a
    speaker's own overlapping segments are not counted twice)."""
    return {spk: total(ivs) for spk, ivs in by_speaker(segments).items()}


def speech_time(segments: tuple[Segment, ...]) -> float:
    """Seconds in which at least one speaker talks."""
    return total(union((s.start, s.end) for s in segments))


def overlap_time(segments: tuple[Segment, ...]) -> tuple[float, dict[str, float]]:
    """Total overlapped seconds (two or more speakers at once) and, per speaker, the overlapped seconds
    that speaker started (the active speaker whose segment run began last)."""
    _, started, total_overlap = overlap_split(by_speaker(segments))
    return total_overlap, started


def segments_from_turns(turns: tuple[Turn, ...]) -> tuple[Segment, ...]:
    """One segment per turn (text-only mode: no overlap information exists)."""
    return tuple(Segment(float(t.start), float(t.end), t.speaker) for t in turns if t.end > t.start)


def _role_of(spk: str | None, roles: Mapping[str, str]) -> str:
    return roles.get(spk, "unknown") if spk is not None else "unknown"


def _talk_block(per: Mapping[str, Sequence[Interval]], roles: Mapping[str, str], lo: float, hi: float
                ) -> tuple[TalkBlock, dict[str, float]]:
    """The session.json talk-time block of [lo, hi] and each speaker's talk seconds in it."""
    clipped = {spk: clip(ivs, lo, hi) for spk, ivs in per.items()}
    talk = {spk: total(ivs) for spk, ivs in clipped.items()}
    speech = total(union(iv for ivs in clipped.values() for iv in ivs))
    total_talk = sum(talk.values())
    solo, started, ov_total = overlap_split(clipped)
    per_speaker = {
        spk: SpeakerTalk(role=_role_of(spk, roles), talk_s=round(talk[spk], 3), solo_s=round(solo[spk], 3),
                         overlap_started_s=round(started[spk], 3),
                         share=round(talk[spk] / total_talk, 4) if total_talk > 0 else None)
        for spk in clipped
    }
    role_sums: dict[str, list[float]] = {}  # role -> [talk_s, overlap_started_s]
    for spk in clipped:
        sums = role_sums.setdefault(_role_of(spk, roles), [0.0, 0.0])
        sums[0] += talk[spk]
        sums[1] += started[spk]
    per_role = {r: RoleTalk(talk_s=round(t, 3), overlap_started_s=round(o, 3),
                            share=round(t / total_talk, 4) if total_talk > 0 else None)
                for r, (t, o) in role_sums.items()}
    th = per_role["therapist"].share if total_talk > 0 and "therapist" in per_role else None
    if th is None and total_talk > 0 and any(_role_of(s, roles) != "unknown" for s in clipped):
        th = 0.0
    return TalkBlock(start=round(lo, 3), end=round(hi, 3), speech_s=round(speech, 3),
                     silence_s=round(max(0.0, (hi - lo) - speech), 3), overlap_s=round(ov_total, 3),
                     therapist_share=th, per_speaker=per_speaker, per_role=per_role), talk


# Talk-time windows per session at most: the loop below is bounded by this, never by a field alone (a
# transcript row with end=1e9, or a tiny window_step_s, made it allocate until the kernel killed the run).
MAX_WINDOWS = 100_000


def _windows(duration: float, window: float, step: float) -> list[Interval]:
    if not math.isfinite(duration):
        raise SessionError("the session duration is not a finite number of seconds", stage="measures")
    if duration <= 0:
        return []
    if window <= 0 or duration <= window:
        return [(0.0, duration)]
    step = step if step > 0 else window
    if (duration - window) / step + 2 > MAX_WINDOWS:
        raise SessionError(f"a {duration:.0f} s session with measures.window_step_s {step:g} gives more than "
                           f"{MAX_WINDOWS} talk-time windows; raise measures.window_step_s", stage="measures")
    out = []
    t = 0.0
    while t + window < duration - EPS:
        out.append((t, t + window))
        t += step
    out.append((max(0.0, duration - window), duration))  # last window ends at the session end
    # drop a duplicate if the last regular window already ended exactly at the end
    uniq: list[Interval] = []
    for w in out:
        if not uniq or abs(uniq[-1][0] - w[0]) > EPS:
            uniq.append(w)
    return uniq
