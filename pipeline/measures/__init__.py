"""Conversation measures: talk time, overlaps / interruptions / backchannels, pauses, minimal responses.

Modules, one per concern: `_talk` (talk time, windows), `_cues` (word cues), `_overlaps` (overlap
classification), `_pauses` (gaps, latencies); interval algebra is `pipeline.timeline`; this module composes
them (`measure_conversation`) and builds the per-turn features (`turn_features`, the one builder the tagger
uses in production and in training).

Pure functions of records and config (no I/O, no clocks, no randomness). `measure_conversation()` is the
entry point the runner calls; it returns a `Measures` record holding events (CONTRACT.md vocabulary),
the session's `Metrics` (pipeline.records) and one `TurnFeatures` per turn for the rupture tagger.

Inputs
------
- `turns`: maximal runs of one speaker's words, built from words attributed with the EXCLUSIVE diarization
  track (no two turns overlap). `Turn.index` is the turn's position.
- `words`: timed words carrying their attributed `speaker` (empty in text-only mode).
- `segments`: the OVERLAPPING diarization track (several speakers may be active at once). Overlaps,
  interruptions and backchannels are found here, never in ASR segments or the exclusive track (which
  erases overlap). Text-only mode passes `segments_from_turns(turns)`: then there is no overlap, and
  latencies / pauses come from turn times.
- `roles`: speaker id -> therapist | client | other | unknown.

Definitions (defaults and their sources are documented on `pipeline.config.MeasuresConfig`)
-----------------------------------------------------------------------------------------
Talk time
    A speaker's talk time is the length of the union of their segments (silence excluded). Speech time is
    the length of the union over all speakers; overlap time is where two or more speakers are active, and
    each overlapped stretch is credited to the speaker who started it (the one whose current burst began
    last). Shares are talk time / sum of all speakers' talk times, so they sum to one.

Bursts
    A speaker's segments merged across gaps shorter than `merge_gap_s` (a breath or a stop closure is not a
    change of floor).

Classification of an incoming burst `b` of speaker B while another speaker A holds the floor
    (A holds the floor when A is active at `b.start` having started earlier, or stopped at most
    `resume_gap_s` before it). Let `a_stop` be where A's burst covering the onset ends, `a_remaining =
    a_stop - b.start` and `overlap = min(a_stop, b.end) - b.start`.
    1. backchannel: `b` is backchannel-like and A goes on talking after it (A is still active when it ends
       or resumes within `resume_gap_s`: no floor change). Backchannel-like (`_backchannel_like`): B's
       trusted words are at most `backchannel_max_words`, all lexicon entries, in a burst of at most
       2 x `backchannel_max_s` (diarization smears short bursts; the words decide). Words in an overlap
       are trusted only if the transcript resolved it (an A word runs at the same time as a B word);
       a single-stream ASR transcribes the louder voice and the exclusive track hands A's words to B.
       With no trusted words, a burst of at most `backchannel_unheard_max_s`. A backchannel is never an
       interruption, by construction: each burst gets exactly one class. A burst that starts while the
       "holder" is only backchannelling is not classified at all.
    2. not in overlap at onset (A had stopped): an ordinary transition, no event.
    3. `overlap < min_overlap_s`: transition noise, no event.
    4. both started within `min_overlap_s` of each other (A not continuing a turn): `overlap`, subtype
       `simultaneous_start` (both self-selected at a transition place).
    5. A keeps talking for more than `yield_window_s` after the onset: `interruption`, `unsuccessful`
       (backchannel-like bursts never get here).
    6. A stops within `yield_window_s`. Did A reach a likely completion point (`_holder_complete`)?
       If a hand-made transcript resolved the overlap, A's last word decides: after a function word
       ("the", "to", "and", "I" ...) or on an ellipsis or dash A was cut off; in a punctuated transcript
       only terminal punctuation marks completion; without punctuation any other word does. Otherwise
       (and always for ASR words, which close cut-off phrases with a period, even with one transcript
       per channel) A's words after the onset are unreliable, and the clean words before it decide: a
       question or invitation, finished or in progress (its end is projectable: Jefferson 1984), is a
       completion point; so is a sentence end (terminal punctuation, not an ellipsis or dash, not on a
       function word) when A stops within `terminal_overlap_s` of the onset (the overlap began on A's last
       word; the ASR readily closes a cut-off phrase with a period). With no words for A, completion means
       `a_remaining <= terminal_overlap_s`.
       - completion: `overlap`, subtype `terminal`;
       - cut off, and B talks on at least `floor_claim_s` past `a_stop` with a non-backchannel burst:
         `interruption`, `successful`;
       - otherwise (both stop, choral laughter, a short burst): `overlap`, subtype `other`.

Talk-time imbalance
    Windows of `window_s` every `window_step_s` (the last one ends at the session end; a session shorter
    than a window is one window). A window with at least `min_window_speech_s` of speech whose therapist
    share is above `therapist_share_high` gives a `talk_time_imbalance` event, subtype
    `therapist_dominates`; below `therapist_share_low`, subtype `client_dominates`. Only when some speaker
    has the therapist role. Evidence: the share; `details`: therapist_share, speech_s.

Diarization noise
    A burst with less than `min_burst_s` of speech is ignored, and so is label flicker: a burst that never
    overlaps the holder's raw segments and abuts them (within `flicker_gap_s`) on both sides, i.e. the
    track switched labels inside one voice (a real overlap shows both speakers at once; a backchannel in
    a pause leaves a gap).

Event fields
    `speaker` is who does it (interrupter, backchanneller, the speaker who starts the overlap, the speaker
    who breaks a long pause / whose pause it is); `target_speaker` is the floor holder. `turn_index` rule:
    the doer's turn that covers the event onset or, failing that, the doer's first turn starting within
    the event's burst; if the doer has no turn there (a backchannel swallowed by the exclusive track), the
    turn (of anyone) that contains the onset, else the nearest turn in time. For an interruption the
    interrupted turn is in `details` as `target_turn_index`.

Pauses (from word timings, never diarization turns)
    A gap between consecutive words (all speakers pooled, sorted by start) with no word in between.
    Within-turn pause: both words by the same speaker; switch pause: different speakers (the later
    speaker's response latency). `long_pause` events for gaps `>= long_pause_s` where the overlapping track
    shows speech during at most `pause_max_speech_fraction` of the gap (a gap full of diarized speech is
    speech the ASR missed, not silence). Within-turn pause share = sum of within-turn gaps
    `>= pause_min_s` / total turn duration, per speaker.

Minimal responses
    A turn with at most `minimal_response_max_words` words that follows (directly) another speaker's turn
    which is a question or an invitation (`is_question_or_invitation`). Flagged on every speaker in
    `TurnFeatures.minimal_response` (the tagger filters by role); `minimal_response_evidence()` formats the
    measurement string (words, latency) for a withdrawal.minimal_response rupture event.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Collection, Iterable, Mapping, Sequence

from pipeline.config import MeasuresConfig
from pipeline.measures._cues import is_backchannel_text, is_question_or_invitation, minimal_response_evidence
from pipeline.measures._overlaps import _classify_overlaps, _short, _turn_for
from pipeline.measures._pauses import _Gap, _latency_for_turns, _stats, _word_gaps
from pipeline.measures._talk import (_role_of, _talk_block, _windows, overlap_time, segments_from_turns, speech_time,
                                     talk_time)
from pipeline.records import (Event, EventDetails, ImbalanceDetails, Metrics, MinimalResponseMetrics, PauseDetails,
                              PauseMetrics, Segment, TalkBlock, TalkTime, Turn, TurnFeatures, TurnMetrics, Word)
from pipeline.timeline import EPS, active_at, by_speaker, covered, elementary, union

__all__ = [
    "Measures",
    "measure_conversation",
    "talk_time",
    "segments_from_turns",
    "speech_time",
    "overlap_time",
    "is_question_or_invitation",
    "is_backchannel_text",
    "minimal_response_evidence",
]


@dataclass(frozen=True)
class Measures:
    events: tuple[Event, ...]  # interruption, backchannel, overlap, long_pause, talk_time_imbalance
    metrics: Metrics  # session.json "metrics" (the tagging and prosody stages add theirs)
    features: tuple[TurnFeatures, ...]  # one per turn, same order


def measure_conversation(
    turns: tuple[Turn, ...],
    words: tuple[Word, ...],
    segments: tuple[Segment, ...],
    roles: Mapping[str, str],
    duration_s: float,
    cfg: MeasuresConfig,
    *,
    asr_words: bool = False,
) -> Measures:
    """All conversation measures of one session (see the module docstring for definitions).

    `asr_words`: the words come from a speech recogniser (the pipeline), whose punctuation after an overlap
    onset does not mark completion; False for hand-made or corrected transcripts, whose punctuation does."""
    duration = float(duration_s)
    if not segments and turns:
        segments = segments_from_turns(turns)
    # clip everything to the session so no event can fall outside it
    segments = tuple(Segment(max(0.0, s.start), min(duration, s.end), s.speaker) for s in segments
                     if min(duration, s.end) > max(0.0, s.start))
    events: list[Event] = []

    # --- talk time -------------------------------------------------------------------------------------
    per = by_speaker(segments)
    session_block, _ = _talk_block(per, roles, 0.0, duration)
    windows = []
    for lo, hi in _windows(duration, cfg.window_s, cfg.window_step_s):
        wb, talk_s = _talk_block(per, roles, lo, hi)
        windows.append(wb)
        share = wb.therapist_share
        if share is None or wb.speech_s < cfg.min_window_speech_s or "therapist" not in wb.per_role:
            continue
        if share > cfg.therapist_share_high or share < cfg.therapist_share_low:
            high = share > cfg.therapist_share_high
            # speaker: who dominates (the therapist, or the other speaker who talked most in the window);
            # turn_index: that speaker's turn with the most time in the window
            if high:
                doer = max((s for s in per if _role_of(s, roles) == "therapist"), key=lambda s: talk_s[s])
            else:
                doer = max((s for s in per if _role_of(s, roles) != "therapist"), key=lambda s: talk_s[s],
                           default=None)
            t_idx = _first_turn_in(turns, lo, hi, doer)
            if t_idx is None:
                continue
            band = cfg.therapist_share_high if high else cfg.therapist_share_low
            margin = abs(share - band)
            events.append(Event(
                "talk_time_imbalance", "therapist_dominates" if high else "client_dominates", lo, hi, doer, None, t_idx,
                round(min(1.0, 0.5 + margin * 2.5), 4),
                f"therapist share {share:.0%} of {wb.speech_s:.0f} s speech "
                f"({'above' if high else 'below'} {band:.0%})",
                details=EventDetails(ImbalanceDetails(therapist_share=share, speech_s=wb.speech_s)),
            ))

    # --- overlaps, interruptions, backchannels --------------------------------------------------------
    events.extend(_classify_overlaps(turns, words, segments, roles, cfg, asr_words))

    # --- pauses ------------------------------------------------------------------------------------------
    seg_union = union((s.start, s.end) for s in segments)
    gaps = _word_gaps(words, turns)
    within: dict[str, list[float]] = {}
    for g in gaps:
        if g.before is not None and g.before == g.after and g.dur >= cfg.pause_min_s:
            within.setdefault(g.before, []).append(g.dur)
        if g.dur + EPS < cfg.long_pause_s:
            continue
        if words and covered(seg_union, g.start, g.end) > cfg.pause_max_speech_fraction * g.dur:
            continue
        same = g.before == g.after
        subtype = "within_speaker" if same else "switch"
        doer = g.after
        t_idx = _turn_for(turns, doer, g.end, g.end)
        if t_idx is None:
            continue
        ev = (f"{g.dur:.1f} s silence within {_short(doer, roles)}'s turn" if same and doer
              else f"{g.dur:.1f} s before {_short(doer, roles) if doer else '?'} responded")
        events.append(Event(
            "long_pause", subtype, g.start, g.end, doer, None if same else g.before, t_idx,
            round(min(1.0, 0.6 + 0.1 * (g.dur - cfg.long_pause_s)), 4), ev,
            details=EventDetails(PauseDetails(pause_s=round(g.dur, 3), speaker_before=g.before, speaker_after=g.after,
                                              direction=f"{_role_of(g.before, roles)}->{_role_of(g.after, roles)}")),
        ))

    # --- features -----------------------------------------------------------------------------------------
    bursts = by_speaker(segments, gap=cfg.merge_gap_s)
    latencies = _latency_for_turns(turns, bursts)
    interrupter_turns = {e.turn_index for e in events if e.type == "interruption"}
    interrupted_turns = {e.details.target_turn_index for e in events
                         if e.type == "interruption" and e.details.target_turn_index is not None}
    overlap_by_turn: dict[int, float] = {}
    ov_regions = [(a, b) for a, b, act in elementary(per) if len(act) >= 2]
    for t in turns:
        spk_ivs = per.get(t.speaker, ())
        tot = 0.0
        for a, b in ov_regions:
            lo, hi = max(a, t.start), min(b, t.end)
            if hi > lo and active_at(spk_ivs, 0.5 * (lo + hi)) is not None:
                tot += hi - lo
        overlap_by_turn[t.index] = tot
    features = turn_features(turns, latencies, interrupter_turns, interrupted_turns, overlap_by_turn,
                             cfg.minimal_response_max_words)

    events.sort(key=lambda e: (e.start, e.end, e.type))
    metrics = _metrics(turns, words, roles, duration, session_block, windows, events, features, latencies,
                       within, gaps, cfg)
    return Measures(events=tuple(events), metrics=metrics, features=tuple(features))


def turn_features(turns: Sequence[Turn], latencies: Sequence[float | None] | None = None,
                  interrupters: Collection[int] = (), interrupted: Collection[int] = (),
                  overlap_s: Mapping[int, float] | None = None,
                  minimal_max_words: int = 3) -> tuple[TurnFeatures, ...]:
    """The per-turn conversational cues, the one builder for the pipeline and for text-only data.

    From the text: follows_question (the previous turn is another speaker's question or invitation,
    `is_question_or_invitation`) and minimal_response (then at most `minimal_max_words` words). From audio,
    when known: latencies (one per turn), the indices of turns that interrupt / were interrupted, overlap
    seconds per turn index. A transcript without timing passes none of them."""
    out = []
    for i, t in enumerate(turns):
        prev_other = turns[i - 1] if i > 0 and turns[i - 1].speaker != t.speaker else None
        fq = prev_other is not None and is_question_or_invitation(prev_other.text)
        lat = latencies[i] if latencies is not None else None
        out.append(TurnFeatures(
            turn_index=t.index, word_count=t.word_count, latency_s=None if lat is None else round(lat, 3),
            follows_question=fq, minimal_response=fq and 0 < t.word_count <= minimal_max_words,
            interrupts_previous=t.index in interrupters, was_interrupted=t.index in interrupted,
            overlap_s=round((overlap_s or {}).get(t.index, 0.0), 3),
        ))
    return tuple(out)


def _first_turn_in(turns: Sequence[Turn], lo: float, hi: float, speaker: str | None) -> int | None:
    cands = [t for t in turns if t.end > lo and t.start < hi]
    if speaker is not None:
        own = [t for t in cands if t.speaker == speaker]
        if own:
            return max(own, key=lambda t: (min(t.end, hi) - max(t.start, lo), -t.start)).index
    return cands[0].index if cands else None


def _metrics(
    turns: Sequence[Turn], words: Sequence[Word], roles: Mapping[str, str], duration: float,
    session_block: TalkBlock, windows: Sequence[TalkBlock], events: Sequence[Event],
    features: Sequence[TurnFeatures], latencies: Sequence[float | None], within: Mapping[str, list[float]],
    gaps: Sequence[_Gap], cfg: MeasuresConfig,
) -> Metrics:
    hours = duration / 3600.0 if duration > 0 else 0.0

    def rate(n: int) -> float | None:
        return round(n / hours, 2) if hours > 0 else None

    # event counts: per type, per type.subtype, per type.direction (roles) and by speaker pair
    counts: dict[str, int] = {}
    for e in events:
        keys = [e.type]
        if e.subtype:
            keys.append(f"{e.type}.{e.subtype}")
        direction = e.details.direction
        if direction:
            keys.append(f"{e.type}.{direction}")
            if e.subtype:
                keys.append(f"{e.type}.{e.subtype}.{direction}")
        for k in keys:
            counts[k] = counts.get(k, 0) + 1
    for t in ("interruption", "backchannel", "overlap", "long_pause", "talk_time_imbalance"):
        counts.setdefault(t, 0)
    by_pair: dict[str, dict[str, int]] = {}
    for e in events:
        if e.type in ("interruption", "backchannel", "overlap") and e.speaker and e.target_speaker:
            key = f"{e.speaker}->{e.target_speaker}"
            d = by_pair.setdefault(key, {})
            name = e.type if e.type != "interruption" else f"interruption.{e.subtype}"
            d[name] = d.get(name, 0) + 1

    # latencies by direction (previous speaker's role -> responder's role)
    lat_dir: dict[str, list[float]] = {}
    for i, lat in enumerate(latencies):
        if lat is None:
            continue
        key = f"{_role_of(turns[i - 1].speaker, roles)}->{_role_of(turns[i].speaker, roles)}"
        lat_dir.setdefault(key, []).append(lat)
    # within-turn pause share per speaker
    turn_dur: dict[str, float] = {}
    for t in turns:
        turn_dur[t.speaker] = turn_dur.get(t.speaker, 0.0) + max(0.0, t.end - t.start)
    pause_share = {
        spk: (round(sum(within.get(spk, [])) / d, 4) if d > 0 else None) for spk, d in sorted(turn_dur.items())
    } if words else {}

    # turns and monologues (a monologue spans the speaker's turns separated only by backchannel-only turns)
    durs = [t.end - t.start for t in turns]
    wcs = [t.word_count for t in turns]
    longest: dict[str, float] = {}
    i = 0
    while i < len(turns):
        spk = turns[i].speaker
        start, end, j = turns[i].start, turns[i].end, i + 1
        while j < len(turns):
            if turns[j].speaker == spk:
                end, j = turns[j].end, j + 1
                continue
            if (is_backchannel_text(turns[j].text, cfg) and j + 1 < len(turns) and turns[j + 1].speaker == spk
                    and turns[j].end - turns[j].start <= cfg.backchannel_max_s):
                j += 1
                continue
            break
        longest[spk] = max(longest.get(spk, 0.0), end - start)
        i = j
    minutes = duration / 60.0 if duration > 0 else 0.0

    mr = [f for f in features if f.minimal_response]
    return Metrics(
        talk_time=TalkTime(session=session_block, window_s=cfg.window_s, window_step_s=cfg.window_step_s,
                           windows=tuple(windows)),
        therapist_share=session_block.therapist_share,
        event_counts=dict(sorted(counts.items())),
        event_rates_per_hour={k: rate(v) for k, v in sorted(counts.items())},
        overlap_events_by_speaker_pair=by_pair,
        pauses=PauseMetrics(
            response_latency_s={k: _stats(v) for k, v in sorted(lat_dir.items())},
            within_turn_pause_share=pause_share, within_turn_pause_min_s=cfg.pause_min_s,
            long_pause_s=cfg.long_pause_s, source="words" if words else "turns", gap_count=len(gaps)),
        turns=TurnMetrics(
            count=len(turns),
            mean_s=round(statistics.fmean(durs), 3) if durs else None,
            median_s=round(statistics.median(durs), 3) if durs else None,
            mean_words=round(statistics.fmean(wcs), 2) if wcs else None,
            median_words=statistics.median(wcs) if wcs else None,
            per_minute=round(len(turns) / minutes, 3) if minutes > 0 else None,
            longest_monologue_s={k: round(v, 3) for k, v in sorted(longest.items())}),
        minimal_responses=MinimalResponseMetrics(
            count=len(mr),
            by_role=_count_by(_role_of(turns[_pos(turns, f.turn_index)].speaker, roles) for f in mr),
            follows_question_count=sum(1 for f in features if f.follows_question),
            latency_s=_stats([f.latency_s for f in mr if f.latency_s is not None])),
    )


def _pos(turns: Sequence[Turn], index: int) -> int:
    for i, t in enumerate(turns):
        if t.index == index:
            return i
    raise KeyError(index)


def _count_by(keys: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for k in keys:
        out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items()))
