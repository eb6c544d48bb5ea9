"""Session-level counts shown in the review page header, the batch index and the corpus tables.

Computed from the record's speakers and events (always present), so they do not depend on which keys
`metrics` happens to hold. Pure functions.
"""

from __future__ import annotations

from typing import Any

from pipeline.records import Event, SessionRecord
from pipeline.exports._labels import speaker_roles


def therapist_talk_share(record: SessionRecord) -> float | None:
    """Therapist talk time / all talk time (None when there is no talk or no therapist).

    Uses metrics.therapist_share (pipeline.measures) when it is a number in [0, 1], else the
    speakers' talk times."""
    m = record.metrics.therapist_share
    if m is not None and 0.0 <= float(m) <= 1.0:
        return float(m)
    total = sum(s.talk_time_s for s in record.speakers)
    ther = sum(s.talk_time_s for s in record.speakers if s.role == "therapist")
    if total <= 0 or not any(s.role == "therapist" for s in record.speakers):
        return None
    return ther / total


def is_human_coded(e: Event) -> bool:
    return e.details.human_coded


def interruption_directions(record: SessionRecord) -> dict[str, int]:
    """Counts of interruption events keyed 'therapist→client' style (roles; ids where the role is unknown)."""
    roles = speaker_roles(record)
    out: dict[str, int] = {}
    for e in record.events:
        if e.type != "interruption":
            continue
        a = roles.get(e.speaker or "", "") or (e.speaker or "?")
        b = roles.get(e.target_speaker or "", "") or (e.target_speaker or "?")
        if a == "unknown":
            a = e.speaker or "?"
        if b == "unknown":
            b = e.target_speaker or "?"
        key = f"{a}→{b}"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


def session_counts(record: SessionRecord) -> dict[str, Any]:
    """Flat JSON-able counts: ruptures (resolved/unresolved), repairs, interruptions (by direction), other
    event types, turns, words, therapist talk share."""
    ev = record.events
    ruptures = [e for e in ev if e.type == "rupture"]
    counts: dict[str, Any] = {
        "turns": len(record.turns),
        "words": None if record.words is None else len(record.words),
        "ruptures": len(ruptures),
        "ruptures_resolved": sum(1 for e in ruptures if e.resolved),
        "ruptures_unresolved": sum(1 for e in ruptures if not e.resolved),
        "repairs": sum(1 for e in ev if e.type == "repair"),
        "interruptions": sum(1 for e in ev if e.type == "interruption"),
        "interruptions_by_direction": interruption_directions(record),
        "backchannels": sum(1 for e in ev if e.type == "backchannel"),
        "overlaps": sum(1 for e in ev if e.type == "overlap"),
        "long_pauses": sum(1 for e in ev if e.type == "long_pause"),
        "imbalances": sum(1 for e in ev if e.type == "talk_time_imbalance"),
        "human_coded_events": sum(1 for e in ev if is_human_coded(e)),
        "therapist_talk_share": therapist_talk_share(record),
        # recording-quality warnings (pipeline.quality); None when the record has no quality block
        "quality_warnings": None if record.quality is None else len(record.quality.warnings),
    }
    return counts
