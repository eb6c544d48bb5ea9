"""Word-to-speaker attribution and turn building. Pure functions.

Every word gets exactly one speaker from the EXCLUSIVE diarization track: the speaker whose segments overlap
the word most; a word that falls in a gap between segments (diarization trims word edges, and Whisper's word
boundaries are approximate) takes the nearest segment, so no word is left unlabelled at turn boundaries.
Turns are maximal runs of one speaker's words, in time order.
"""

from __future__ import annotations

import bisect
from typing import Mapping

from pipeline.records import Segment, Turn, Word


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def attribute_words(words: tuple[Word, ...], exclusive: tuple[Segment, ...]) -> tuple[Word, ...]:
    """Return the words with `speaker` set. `exclusive` must not overlap itself (the exclusive track)."""
    if not words:
        return ()
    if not exclusive:
        raise ValueError("cannot attribute words: the diarization found no speech segments")
    segs = sorted(exclusive, key=lambda s: (s.start, s.end))
    starts = [s.start for s in segs]
    out = []
    for w in words:
        # candidate segments: those starting before the word ends, scanning back while they may overlap
        i = bisect.bisect_right(starts, w.end)
        best, best_ov = None, 0.0
        j = i - 1
        while j >= 0 and j >= i - 8:
            s = segs[j]
            ov = _overlap(w.start, w.end, s.start, s.end)
            if ov > best_ov:
                best, best_ov = s, ov
            j -= 1
        if best is None:
            mid = 0.5 * (w.start + w.end)
            cands = segs[max(0, i - 2): i + 2]
            best = min(cands, key=lambda s: 0.0 if s.start <= mid <= s.end else min(abs(mid - s.start), abs(mid - s.end)))
        out.append(Word(w.start, w.end, w.text, w.probability, best.speaker))
    return tuple(out)


def join_words(words: list[Word] | tuple[Word, ...]) -> str:
    return " ".join(w.text for w in words).strip()


def build_turns(words: tuple[Word, ...], roles: Mapping[str, str]) -> tuple[Turn, ...]:
    """Group attributed words into maximal same-speaker runs."""
    ordered = sorted(words, key=lambda w: (w.start, w.end))
    turns: list[Turn] = []
    run: list[Word] = []

    def flush() -> None:
        if not run:
            return
        spk = run[0].speaker or "unknown"
        turns.append(Turn(index=len(turns), speaker=spk, role=roles.get(spk, "unknown"), start=run[0].start,
                          end=max(w.end for w in run), text=join_words(run), word_count=len(run)))

    for w in ordered:
        if run and w.speaker != run[-1].speaker:
            flush()
            run = []
        run.append(w)
    flush()
    return tuple(turns)


def with_roles(turns: tuple[Turn, ...], roles: Mapping[str, str]) -> tuple[Turn, ...]:
    return tuple(Turn(t.index, t.speaker, roles.get(t.speaker, "unknown"), t.start, t.end, t.text, t.word_count)
                 for t in turns)
