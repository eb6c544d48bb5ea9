"""Conversation measures: talk time, overlaps / interruptions / backchannels, pauses, minimal responses.

Pure functions of records and config (no I/O, no clocks, no randomness). `measure_conversation()` is the
entry point the runner calls; it returns a `Measures` record holding events (CONTRACT.md vocabulary),
JSON-able session metrics and one `TurnFeatures` per turn for the rupture tagger.

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

import bisect
import math
import re
import statistics
from dataclasses import dataclass
from typing import Any, Collection, Iterable, Mapping, Sequence

from pipeline.config import MeasuresConfig
from pipeline.errors import SessionError
from pipeline.records import Event, Segment, Turn, TurnFeatures, Word

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

_EPS = 1e-9


@dataclass(frozen=True)
class Measures:
    events: tuple[Event, ...]  # interruption, backchannel, overlap, long_pause, talk_time_imbalance
    metrics: Mapping[str, Any]  # JSON-able; goes into session.json "metrics"
    features: tuple[TurnFeatures, ...]  # one per turn, same order


# ----------------------------------------------------------------------------------------------------------
# Interval helpers
# ----------------------------------------------------------------------------------------------------------

Interval = tuple[float, float]


def _union(intervals: Iterable[Interval], gap: float = 0.0) -> list[Interval]:
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


def _total(intervals: Iterable[Interval]) -> float:
    return float(sum(e - s for s, e in intervals))


def _clip(intervals: Iterable[Interval], lo: float, hi: float) -> list[Interval]:
    return [(max(s, lo), min(e, hi)) for s, e in intervals if min(e, hi) > max(s, lo)]


def _covered(intervals: Sequence[Interval], lo: float, hi: float) -> float:
    """Length of [lo, hi] covered by sorted, disjoint `intervals`."""
    return _total(_clip(intervals, lo, hi))


def _by_speaker(segments: Iterable[Segment], gap: float = 0.0) -> dict[str, list[Interval]]:
    raw: dict[str, list[Interval]] = {}
    for s in segments:
        raw.setdefault(s.speaker, []).append((float(s.start), float(s.end)))
    return {spk: _union(ivs, gap) for spk, ivs in sorted(raw.items())}


def _active_at(ivs: Sequence[Interval], t: float) -> Interval | None:
    """The interval of sorted disjoint `ivs` containing time t (start <= t < end), if any."""
    i = bisect.bisect_right(ivs, (t, math.inf)) - 1
    if i >= 0 and ivs[i][0] <= t < ivs[i][1]:
        return ivs[i]
    return None


# ----------------------------------------------------------------------------------------------------------
# Talk time
# ----------------------------------------------------------------------------------------------------------


def talk_time(segments: tuple[Segment, ...]) -> dict[str, float]:
    """Seconds each speaker talks: the length of the union of their segments (silence excluded; a
    speaker's own overlapping segments are not counted twice)."""
    return {spk: _total(ivs) for spk, ivs in _by_speaker(segments).items()}


def speech_time(segments: tuple[Segment, ...]) -> float:
    """Seconds in which at least one speaker talks."""
    return _total(_union((s.start, s.end) for s in segments))


def _elementary(per_speaker: Mapping[str, Sequence[Interval]]) -> list[tuple[float, float, tuple[str, ...]]]:
    """Split the timeline at every boundary; return (start, end, active speakers) for spans with speech."""
    bounds = sorted({t for ivs in per_speaker.values() for iv in ivs for t in iv})
    out = []
    for lo, hi in zip(bounds, bounds[1:]):
        mid = 0.5 * (lo + hi)
        act = tuple(spk for spk, ivs in per_speaker.items() if _active_at(ivs, mid) is not None)
        if act:
            out.append((lo, hi, act))
    return out


def overlap_time(segments: tuple[Segment, ...]) -> tuple[float, dict[str, float]]:
    """Total overlapped seconds (two or more speakers at once) and, per speaker, the overlapped seconds
    that speaker started (the active speaker whose segment run began last)."""
    per = _by_speaker(segments)
    started: dict[str, float] = {spk: 0.0 for spk in per}
    total = 0.0
    for lo, hi, act in _elementary(per):
        if len(act) < 2:
            continue
        total += hi - lo
        mid = 0.5 * (lo + hi)
        starter = max(act, key=lambda spk: (_active_at(per[spk], mid) or (0.0, 0.0))[0])
        started[starter] += hi - lo
    return total, started


def segments_from_turns(turns: tuple[Turn, ...]) -> tuple[Segment, ...]:
    """One segment per turn (text-only mode: no overlap information exists)."""
    return tuple(Segment(float(t.start), float(t.end), t.speaker) for t in turns if t.end > t.start)


def _role_of(spk: str | None, roles: Mapping[str, str]) -> str:
    return roles.get(spk, "unknown") if spk is not None else "unknown"


def _talk_block(per: Mapping[str, Sequence[Interval]], roles: Mapping[str, str], lo: float, hi: float
                ) -> dict[str, Any]:
    clipped = {spk: _clip(ivs, lo, hi) for spk, ivs in per.items()}
    talk = {spk: _total(ivs) for spk, ivs in clipped.items()}
    speech = _total(_union(iv for ivs in clipped.values() for iv in ivs))
    total_talk = sum(talk.values())
    ov_total = 0.0
    started = {spk: 0.0 for spk in clipped}
    solo = {spk: 0.0 for spk in clipped}
    for a, b, act in _elementary(clipped):
        if len(act) == 1:
            solo[act[0]] += b - a
            continue
        ov_total += b - a
        mid = 0.5 * (a + b)
        starter = max(act, key=lambda spk: (_active_at(clipped[spk], mid) or (0.0, 0.0))[0])
        started[starter] += b - a
    per_speaker = {
        spk: {
            "role": _role_of(spk, roles),
            "talk_s": round(talk[spk], 3),
            "solo_s": round(solo[spk], 3),
            "overlap_started_s": round(started[spk], 3),
            "share": round(talk[spk] / total_talk, 4) if total_talk > 0 else None,
        }
        for spk in clipped
    }
    per_role: dict[str, dict[str, Any]] = {}
    for spk in clipped:
        r = _role_of(spk, roles)
        d = per_role.setdefault(r, {"talk_s": 0.0, "overlap_started_s": 0.0})
        d["talk_s"] += talk[spk]
        d["overlap_started_s"] += started[spk]
    for d in per_role.values():
        d["share"] = round(d["talk_s"] / total_talk, 4) if total_talk > 0 else None
        d["talk_s"] = round(d["talk_s"], 3)
        d["overlap_started_s"] = round(d["overlap_started_s"], 3)
    th = per_role.get("therapist", {}).get("share") if total_talk > 0 else None
    if th is None and total_talk > 0 and any(_role_of(s, roles) != "unknown" for s in clipped):
        th = 0.0
    return {
        "start": round(lo, 3),
        "end": round(hi, 3),
        "speech_s": round(speech, 3),
        "silence_s": round(max(0.0, (hi - lo) - speech), 3),
        "overlap_s": round(ov_total, 3),
        "therapist_share": th,
        "per_speaker": per_speaker,
        "per_role": per_role,
        "_talk": talk,
    }


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
    while t + window < duration - _EPS:
        out.append((t, t + window))
        t += step
    out.append((max(0.0, duration - window), duration))  # last window ends at the session end
    # drop a duplicate if the last regular window already ended exactly at the end
    uniq: list[Interval] = []
    for w in out:
        if not uniq or abs(uniq[-1][0] - w[0]) > _EPS:
            uniq.append(w)
    return uniq


# ----------------------------------------------------------------------------------------------------------
# Text cues
# ----------------------------------------------------------------------------------------------------------

_WORD_RE = re.compile(r"[a-z0-9']+")


def _norm_token(tok: str) -> str:
    """Lower-case, strip punctuation, fold hyphens ("Mm-hmm." -> "mmhmm")."""
    return re.sub(r"[^a-z0-9']", "", tok.lower().replace("-", ""))


def _tokens(text: str) -> list[str]:
    return [t for t in (_norm_token(x) for x in text.split()) if t]


def is_backchannel_text(text: str, cfg: MeasuresConfig) -> bool:
    """True when `text` is a short run of backchannel lexicon entries (at most `backchannel_max_words`
    words; multi-word entries such as "i see" count as their words). Empty text is not a backchannel."""
    toks = _tokens(text)
    if not toks or len(toks) > cfg.backchannel_max_words:
        return False
    entries = {tuple(_tokens(x)) for x in cfg.backchannel_lexicon if _tokens(x)}
    longest = max((len(e) for e in entries), default=1)
    i = 0
    while i < len(toks):  # greedy segmentation into lexicon entries, longest first
        for n in range(min(longest, len(toks) - i), 0, -1):
            if tuple(toks[i:i + n]) in entries:
                i += n
                break
        else:
            return False
    return True


# Words that (almost) never end a complete English utterance (articles, conjunctions, possessives,
# subject pronouns, "to" and most prepositions): a speaker who stops on one of these was cut off, whatever
# punctuation the ASR added.
_INCOMPLETE_END = frozenset("""
a an the to of and but or nor so because if when while although though unless whether than as whose
my your our their its i we they he she i'm you're we're they're it's there's that's with from
into onto by for
""".split())


def _complete_unit(last_word: str, uses_punct: bool) -> bool:
    """Is a speaker's last word a likely completion point? Incomplete after a function word; with a
    punctuated transcript, complete only with terminal punctuation."""
    tok = _norm_token(last_word)
    if tok in _INCOMPLETE_END:
        return False
    if uses_punct:
        return _ends_sentence(last_word)
    return True


_WH = ("what", "why", "how", "when", "where", "who", "whom", "whose", "which")
_AUX = ("do", "does", "did", "are", "is", "was", "were", "can", "could", "would", "will", "should", "have",
        "has", "had", "may", "might", "shall", "am", "isn't", "aren't", "don't", "doesn't", "didn't",
        "won't", "wouldn't", "can't", "couldn't", "haven't", "hasn't")
_SUBJECTS = ("i", "you", "we", "they", "he", "she")


def _opens_wh_question(toks: Sequence[str], i: int) -> bool:
    """Does a wh-question start at token i? A wh-word, or one contracted with "is"/"has" ("what's"), but
    not a wh-word followed by a subject pronoun, alone or contracted ("what you're describing is ...",
    "how I see it"): that is a free relative or an embedded clause, not an inverted question."""
    w = toks[i]
    if w.split("'")[0] not in _WH:
        return False
    nxt = toks[i + 1] if i + 1 < len(toks) else ""
    return not (w in _WH and nxt.split("'")[0] in _SUBJECTS)


_INVITE = (
    "tell me", "say more", "talk about", "talk more", "tell us", "walk me through", "i wonder", "i'm wondering",
    "im wondering", "i was wondering", "help me understand", "describe", "what's that like", "whats that like",
    "go on", "share", "let's talk", "lets talk", "can you", "could you", "would you", "will you",
    "do you want", "how about", "what about", "any thoughts", "curious", "explain",
)
_TAGS = ("right", "yeah", "no", "okay", "ok", "huh", "isn't it", "don't you", "aren't you", "didn't you",
         "wouldn't you", "isn't that", "you know what i mean")
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+")


def is_question_or_invitation(text: str) -> bool:
    """Is the end of `text` a question or an invitation to speak?

    Works on Whisper text (with punctuation: a "?" ending the last or next-to-last sentence) and on
    transcripts without punctuation: the last sentence (or, with no punctuation, the last 12 words) starts
    with a wh-word or an inverted auxiliary ("do you", "can you"), contains an invitation phrase ("tell me",
    "I wonder", "can you", "say more"), or ends in a question tag ("..., right", "isn't it")."""
    t = text.strip()
    if not t:
        return False
    sentences = [s for s in _SENT_SPLIT.split(t) if s.strip()]
    if any(s.rstrip().endswith("?") for s in sentences[-2:]):
        return True
    has_punct = bool(re.search(r"[.!?,]", t))
    last = sentences[-1] if has_punct else t
    toks = [x for x in _WORD_RE.findall(last.lower())]
    if not has_punct:
        toks = toks[-12:]
    if not toks:
        return False
    joined = " ".join(toks)
    clause_starts = [0]
    # clause starts: after commas in punctuated text; in unpunctuated text any wh/aux position near the end
    if has_punct:
        for part in re.split(r"[,;:]", last)[1:]:
            pt = _WORD_RE.findall(part.lower())
            if pt:
                clause_starts.append(len(toks) - len(pt))
    else:
        clause_starts = list(range(max(0, len(toks) - 8), len(toks)))
    for i in clause_starts:
        if i < 0 or i >= len(toks):
            continue
        w0 = toks[i]
        w1 = toks[i + 1] if i + 1 < len(toks) else ""
        if _opens_wh_question(toks, i) and (has_punct or i + 1 < len(toks)):
            return True
        if w0 in _AUX and w1 in ("you", "we", "i", "it", "that", "this", "they", "he", "she", "there", "your"):
            return True
    if any(re.search(rf"\b{re.escape(p)}\b", joined) for p in _INVITE):
        return True
    if has_punct and any(re.search(rf",\s*{re.escape(tag)}\W*$", last.lower()) for tag in _TAGS):
        return True
    return False


def _ends_sentence(text: str) -> bool:
    return text.rstrip().rstrip("\"')]").endswith((".", "?", "!", "…"))


def minimal_response_evidence(feature: TurnFeatures) -> str:
    """Measurement string for a minimal-response cue (no transcript text)."""
    lat = "n/a" if feature.latency_s is None else f"{feature.latency_s:.1f} s"
    return f"{feature.word_count} word(s) after a question/invitation; latency {lat}"


# ----------------------------------------------------------------------------------------------------------
# Overlap classification
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Burst:
    speaker: str
    start: float
    end: float

    @property
    def dur(self) -> float:
        return self.end - self.start


class _WordIndex:
    """Words per speaker, sorted by midpoint, for fast time-range lookups."""

    def __init__(self, words: Sequence[Word]) -> None:
        per: dict[str | None, list[tuple[float, Word]]] = {}
        for w in words:
            per.setdefault(w.speaker, []).append((0.5 * (w.start + w.end), w))
        self._mids = {k: [m for m, _ in sorted(v, key=lambda x: x[0])] for k, v in per.items()}
        self._words = {k: [w for _, w in sorted(v, key=lambda x: x[0])] for k, v in per.items()}

    def between(self, speaker: str, lo: float, hi: float) -> list[Word]:
        """`speaker`'s words whose midpoint lies in [lo, hi]."""
        mids = self._mids.get(speaker)
        if not mids:
            return []
        i, j = bisect.bisect_left(mids, lo), bisect.bisect_right(mids, hi)
        return self._words[speaker][i:j]


def _turn_for(turns: Sequence[Turn], speaker: str | None, lo: float, hi: float) -> int | None:
    """Event turn rule (module docstring): the doer's turn covering `lo`, else the doer's first turn that
    starts within [lo, hi], else any turn containing `lo`, else the nearest turn."""
    if not turns:
        return None
    if speaker is not None:
        for t in turns:
            if t.speaker == speaker and t.start - _EPS <= lo <= t.end + _EPS:
                return t.index
        for t in turns:
            if t.speaker == speaker and lo - _EPS <= t.start <= hi + _EPS:
                return t.index
    for t in turns:
        if t.start - _EPS <= lo <= t.end + _EPS:
            return t.index
    return min(turns, key=lambda t: min(abs(t.start - lo), abs(t.end - lo))).index


def _backchannel_like(b: _Burst, b_words: list[Word], a_words: list[Word], a_ivs: Sequence[Interval],
                      cfg: MeasuresConfig) -> tuple[bool, list[Word]]:
    """Is burst `b` backchannel-like, and which of its words can be trusted?

    Words inside an overlap are trusted only when the transcript resolved the overlap (some word of the
    holder runs at the same time as a word of B, e.g. hand-made or per-channel transcripts). A single-stream
    ASR transcribes the louder voice, and the exclusive track then hands the holder's words in the overlap
    to B: those words say nothing about what B said. B's words outside the holder's speech are trusted.
    Decision: trusted words -> lexicon test (all entries, at most `backchannel_max_words`) with a burst of
    at most 2 x `backchannel_max_s` (diarization smears short bursts); untrusted words that are all
    lexicon entries -> the same; otherwise the duration alone: at most `backchannel_unheard_max_s`."""
    simultaneous = any(min(wa.end, wb.end) - max(wa.start, wb.start) > 0.02 for wb in b_words for wa in a_words)
    # a word is B's own only when well clear (>= pause_min_s) of the holder's speech: diarization leaves
    # short holes in the holder's track that the exclusive track hands to B together with A's words
    m = cfg.pause_min_s
    solo = [w for w in b_words if _covered(a_ivs, w.start - m, w.end + m) <= 0.0]
    trusted = b_words if simultaneous else solo
    if trusted and sum(w.probability for w in trusted) / len(trusted) < cfg.backchannel_min_word_probability:
        trusted = []  # the recogniser guessed (a lone hum comes out as "hungry" or "I'm fine"): judge the length
    lex_cap = b.dur <= 2.0 * cfg.backchannel_max_s + _EPS
    if trusted:
        return is_backchannel_text(" ".join(w.text for w in trusted), cfg) and lex_cap, trusted
    if b_words and is_backchannel_text(" ".join(w.text for w in b_words), cfg):
        return lex_cap, b_words
    return b.dur <= cfg.backchannel_unheard_max_s + _EPS, []


def _holder_complete(a_words: list[Word], b_words: list[Word], onset: float, a_remaining: float,
                     uses_punct: bool, cfg: MeasuresConfig, asr_words: bool = False) -> bool:
    """Had the holder reached a likely completion point when B came in (A stopping within the yield
    window)?

    - A hand-made transcript resolved the overlap (some A word runs at the same time as a B word): A's
      last word decides (`_complete_unit`; an ellipsis or dash is a cut-off).
    - Otherwise A's words after the onset are unreliable: a single-stream ASR garbles the overlap, and any
      ASR (`asr_words`), per-channel ones included, closes a phrase that was cut off with a period or a
      question mark. The clean words before the onset decide: B came in at a
      transition-relevance place if they end a sentence (terminal punctuation, not on a function word),
      or if the sentence in progress is a question or an invitation, whose end the answerer can project
      (Jefferson 1984: terminal overlap).
    - No words for A: A stopping within `terminal_overlap_s` means the overlap began on A's last word.
    """
    if not a_words:
        return a_remaining <= cfg.terminal_overlap_s + _EPS
    simultaneous = any(min(wa.end, wb.end) - max(wa.start, wb.start) > 0.02 and wa.end > onset
                       for wa in a_words for wb in b_words)
    if simultaneous and not asr_words:
        last = max(a_words, key=lambda w: w.end).text
        return _complete_unit(last, uses_punct) and not _trails_off(last)
    pre = [w for w in a_words if 0.5 * (w.start + w.end) < onset]
    if not pre:
        return a_remaining <= cfg.terminal_overlap_s + _EPS
    text = " ".join(w.text for w in pre)
    if _question_in_progress(text):
        return True
    last = pre[-1]
    if not _ends_sentence(last.text) or _trails_off(last.text) or _norm_token(last.text) in _INCOMPLETE_END:
        return False
    # a sentence end counts only when A stopped within `terminal_overlap_s` of the onset (the overlap
    # began on A's last word): the ASR readily closes a phrase that was cut off with a period, and A
    # going on for longer means A had started something new that B cut into
    return a_remaining <= cfg.terminal_overlap_s + _EPS


def _trails_off(word: str) -> bool:
    """An ellipsis or a dash marks a cut-off or trailing-off word, not a completion point."""
    w = word.rstrip("\"')]")
    return w.endswith(("...", "…", "-", "—", "–"))


_PRONOUNS = ("you", "we", "i", "it", "that", "this", "they", "he", "she", "there", "your")


def _question_in_progress(text: str) -> bool:
    """Is the last sentence a question just finished ("?"), or does the sentence in progress (after the
    last terminal punctuation) open like a question or an invitation: a wh-word, an inverted auxiliary
    ("do you", "can we"), or an invitation phrase?"""
    parts = [p for p in re.split(r"(?<=[.!?])\s+", text.strip()) if p]
    current = parts[-1] if parts else ""
    if current.rstrip().endswith("?"):
        return True  # a question just finished
    if not current or _ends_sentence(current):
        return False
    toks = _WORD_RE.findall(current.lower())
    if not toks:
        return False
    if toks[0] in ("so", "and", "but", "okay", "ok", "well", "now") and len(toks) > 1:
        toks = toks[1:]
    if _opens_wh_question(toks, 0):
        return True
    if toks[0] in _AUX and len(toks) > 1 and toks[1] in _PRONOUNS:
        return True
    joined = " ".join(toks)
    return any(re.search(rf"\b{re.escape(p)}\b", joined) for p in _INVITE)


def _classify_overlaps(
    turns: Sequence[Turn], words: Sequence[Word], segments: Sequence[Segment], roles: Mapping[str, str],
    cfg: MeasuresConfig, asr_words: bool = False,
) -> list[Event]:
    per = _by_speaker(segments, gap=cfg.merge_gap_s)
    raw = _by_speaker(segments)
    bursts = sorted((_Burst(spk, s, e) for spk, ivs in per.items() for s, e in ivs), key=lambda b: b.start)
    uses_punct = any(re.search(r"[.?!]", w.text) for w in words)
    index = _WordIndex(words)
    events: list[Event] = []
    backchannel_bursts: set[tuple[str, float]] = set()
    for b in bursts:
        # floor holder: another speaker active at the onset (started earlier), else one who stopped at
        # most `resume_gap_s` before it (a backchannel in the holder's pause).
        holder: tuple[str, Interval] | None = None
        in_overlap = False
        for spk, ivs in per.items():
            if spk == b.speaker:
                continue
            iv = _active_at(ivs, b.start)
            if iv is not None and iv[0] < b.start - _EPS and (holder is None or iv[1] > holder[1][1]):
                holder, in_overlap = (spk, iv), True
        if holder is None:
            for spk, ivs in per.items():
                if spk == b.speaker:
                    continue
                i = bisect.bisect_right(ivs, (b.start, math.inf)) - 1
                if i >= 0 and b.start - ivs[i][1] <= cfg.resume_gap_s:
                    if holder is None or ivs[i][1] > holder[1][1]:
                        holder = (spk, ivs[i])
        if holder is None:
            continue
        a_spk, a_iv = holder
        if (a_spk, a_iv[0]) in backchannel_bursts:
            continue  # the "holder" only backchannelled: B is going on with its own turn
        b_raw = _clip(raw[b.speaker], b.start, b.end)
        if _total(b_raw) < cfg.min_burst_s - _EPS:
            continue  # too short to be a word: diarization noise
        a_raw = raw[a_spk]
        if (sum(_covered(a_raw, s0, s1) for s0, s1 in b_raw) < 0.02
                and _covered(a_raw, b.start - cfg.flicker_gap_s, b.start) > 0
                and _covered(a_raw, b.end, b.end + cfg.flicker_gap_s) > 0):
            continue  # label flicker: the track alternates between two labels inside one voice
        a_ivs = per[a_spk]
        a_stop = a_iv[1]
        # does A go on talking after B's burst (no floor change)?
        a_continues = a_stop > b.end + _EPS or any(
            b.start < s <= b.end + cfg.resume_gap_s for s, _ in a_ivs
        )
        b_words = index.between(b.speaker, b.start - 0.15, b.end + 0.15)
        bc_like, b_words = _backchannel_like(b, b_words, index.between(a_spk, b.start - 0.5, b.end + 0.5), a_ivs, cfg)
        target_turn = _turn_for(turns, a_spk, b.start, b.start)
        doer_turn = _turn_for(turns, b.speaker, b.start, b.end)
        direction = f"{_role_of(b.speaker, roles)}->{_role_of(a_spk, roles)}"
        base = [("direction", direction), ("target_turn_index", target_turn)]
        if bc_like and a_continues:
            backchannel_bursts.add((b.speaker, b.start))
            conf = 0.9 if b_words else 0.6
            where = "in overlap" if in_overlap else "in a pause"
            events.append(Event(
                "backchannel", None, b.start, b.end, b.speaker, a_spk, doer_turn, conf,
                f"{b.dur:.1f} s, {len(b_words)} word(s) {where}; floor kept",
                details=tuple(base + [("in_overlap", in_overlap), ("words", len(b_words))]),
            ))
            continue
        if not in_overlap:
            continue
        overlap = min(a_stop, b.end) - b.start
        if overlap < cfg.min_overlap_s - _EPS:
            continue
        a_prev = [e for _, e in a_ivs if e <= a_iv[0]]
        a_fresh = not a_prev or a_iv[0] - a_prev[-1] > cfg.resume_gap_s
        if a_fresh and b.start - a_iv[0] < cfg.min_overlap_s - _EPS:
            # both started together (within the transition-noise margin): a simultaneous start at a
            # transition place, where both self-select, not a cut into a running turn
            events.append(Event(
                "overlap", "simultaneous_start", b.start, min(a_stop, b.end), b.speaker, a_spk,
                _turn_for(turns, b.speaker, b.start, b.end), 0.5, f"overlap {overlap:.1f} s; simultaneous start",
                details=(("direction", f"{_role_of(b.speaker, roles)}->{_role_of(a_spk, roles)}"),
                         ("target_turn_index", _turn_for(turns, a_spk, b.start, b.start)),
                         ("overlap_s", round(overlap, 3))),
            ))
            continue
        a_remaining = a_stop - b.start
        ov_end = min(a_stop, b.end)
        details = base + [("overlap_s", round(overlap, 3)), ("holder_remaining_s", round(a_remaining, 3))]
        if a_remaining > cfg.yield_window_s + _EPS:
            if bc_like:  # a short lexical burst the holder talks through is a backchannel (handled above)
                continue
            kept = max(0.0, a_stop - b.end)
            events.append(Event(
                "interruption", "unsuccessful", b.start, ov_end, b.speaker, a_spk, doer_turn, 0.8,
                f"overlap {overlap:.1f} s; {_short(a_spk, roles)} kept talking {a_remaining:.1f} s",
                details=tuple(details + [("holder_kept_s", round(kept, 3))]),
            ))
            continue
        # A stopped within the yield window: a terminal overlap if A had reached a completion point,
        # otherwise A was cut off: a successful interruption when B goes on to hold the floor.
        completion = _holder_complete(index.between(a_spk, a_iv[0] - 0.15, a_stop + 0.15),
                                      index.between(b.speaker, b.start - 0.15, a_stop + 0.15), b.start,
                                      a_remaining, uses_punct, cfg, asr_words)
        b_after = b.end - a_stop
        if completion:
            events.append(Event(
                "overlap", "terminal", b.start, ov_end, b.speaker, a_spk, doer_turn, 0.7,
                f"overlap {overlap:.1f} s at a turn end", details=tuple(details),
            ))
        elif bc_like or b_after < cfg.floor_claim_s - _EPS:
            events.append(Event(
                "overlap", "other", b.start, ov_end, b.speaker, a_spk, doer_turn, 0.5,
                f"overlap {overlap:.1f} s; no floor claim", details=tuple(details),
            ))
        else:
            events.append(Event(
                "interruption", "successful", b.start, ov_end, b.speaker, a_spk, doer_turn,
                0.8,
                f"overlap {overlap:.1f} s; {_short(a_spk, roles)} stopped after {a_remaining:.1f} s, cut off",
                details=tuple(details + [("interrupter_continued_s", round(b_after, 3))]),
            ))
    return events


def _short(spk: str, roles: Mapping[str, str]) -> str:
    r = _role_of(spk, roles)
    return {"therapist": "T", "client": "C"}.get(r, spk)


# ----------------------------------------------------------------------------------------------------------
# Pauses and latencies
# ----------------------------------------------------------------------------------------------------------


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
        if reach > -math.inf and s > reach + _EPS:
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
        iv = _active_at(ivs, t.start + 1e-6) if ivs else None
        if iv is not None and prev.start < iv[0] < prev.end - _EPS:
            lat = min(lat, iv[0] - prev.end)
        out.append(lat)
    return out


def _stats(xs: Sequence[float]) -> dict[str, Any]:
    if not xs:
        return {"count": 0, "mean": None, "median": None}
    return {"count": len(xs), "mean": round(statistics.fmean(xs), 3), "median": round(statistics.median(xs), 3)}


# ----------------------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------------------


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
    per = _by_speaker(segments)
    session_block = _talk_block(per, roles, 0.0, duration)
    windows = []
    for lo, hi in _windows(duration, cfg.window_s, cfg.window_step_s):
        wb = _talk_block(per, roles, lo, hi)
        windows.append(wb)
        share = wb["therapist_share"]
        if share is None or wb["speech_s"] < cfg.min_window_speech_s or "therapist" not in wb["per_role"]:
            continue
        if share > cfg.therapist_share_high or share < cfg.therapist_share_low:
            high = share > cfg.therapist_share_high
            # speaker: who dominates (the therapist, or the other speaker who talked most in the window);
            # turn_index: that speaker's turn with the most time in the window
            if high:
                doer = max((s for s in per if _role_of(s, roles) == "therapist"), key=lambda s: wb["_talk"][s])
            else:
                doer = max((s for s in per if _role_of(s, roles) != "therapist"), key=lambda s: wb["_talk"][s],
                           default=None)
            t_idx = _first_turn_in(turns, lo, hi, doer)
            if t_idx is None:
                continue
            band = cfg.therapist_share_high if high else cfg.therapist_share_low
            margin = abs(share - band)
            events.append(Event(
                "talk_time_imbalance", "therapist_dominates" if high else "client_dominates", lo, hi, doer, None, t_idx,
                round(min(1.0, 0.5 + margin * 2.5), 4),
                f"therapist share {share:.0%} of {wb['speech_s']:.0f} s speech "
                f"({'above' if high else 'below'} {band:.0%})",
                details=(("therapist_share", share), ("speech_s", wb["speech_s"])),
            ))

    # --- overlaps, interruptions, backchannels --------------------------------------------------------
    events.extend(_classify_overlaps(turns, words, segments, roles, cfg, asr_words))

    # --- pauses ------------------------------------------------------------------------------------------
    seg_union = _union((s.start, s.end) for s in segments)
    gaps = _word_gaps(words, turns)
    within: dict[str, list[float]] = {}
    for g in gaps:
        if g.before is not None and g.before == g.after and g.dur >= cfg.pause_min_s:
            within.setdefault(g.before, []).append(g.dur)
        if g.dur + _EPS < cfg.long_pause_s:
            continue
        if words and _covered(seg_union, g.start, g.end) > cfg.pause_max_speech_fraction * g.dur:
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
            details=(("pause_s", round(g.dur, 3)), ("speaker_before", g.before), ("speaker_after", g.after),
                     ("direction", f"{_role_of(g.before, roles)}->{_role_of(g.after, roles)}")),
        ))

    # --- features -----------------------------------------------------------------------------------------
    bursts = _by_speaker(segments, gap=cfg.merge_gap_s)
    latencies = _latency_for_turns(turns, bursts)
    interrupter_turns = {e.turn_index for e in events if e.type == "interruption"}
    interrupted_turns = {dict(e.details).get("target_turn_index") for e in events if e.type == "interruption"}
    overlap_by_turn: dict[int, float] = {}
    ov_regions = [(a, b) for a, b, act in _elementary(per) if len(act) >= 2]
    for t in turns:
        spk_ivs = per.get(t.speaker, ())
        tot = 0.0
        for a, b in ov_regions:
            lo, hi = max(a, t.start), min(b, t.end)
            if hi > lo and _active_at(spk_ivs, 0.5 * (lo + hi)) is not None:
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
    session_block: Mapping[str, Any], windows: Sequence[Mapping[str, Any]], events: Sequence[Event],
    features: Sequence[TurnFeatures], latencies: Sequence[float | None], within: Mapping[str, list[float]],
    gaps: Sequence[_Gap], cfg: MeasuresConfig,
) -> dict[str, Any]:
    hours = duration / 3600.0 if duration > 0 else 0.0

    def rate(n: int) -> float | None:
        return round(n / hours, 2) if hours > 0 else None

    def public(block: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in block.items() if not k.startswith("_")}

    # event counts: per type, per type.subtype, per type.direction (roles) and by speaker pair
    counts: dict[str, int] = {}
    for e in events:
        keys = [e.type]
        if e.subtype:
            keys.append(f"{e.type}.{e.subtype}")
        d = dict(e.details).get("direction")
        if d:
            keys.append(f"{e.type}.{d}")
            if e.subtype:
                keys.append(f"{e.type}.{e.subtype}.{d}")
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
    return {
        "talk_time": {
            "session": public(session_block),
            "window_s": cfg.window_s,
            "window_step_s": cfg.window_step_s,
            "windows": [public(w) for w in windows],
        },
        "therapist_share": session_block["therapist_share"],
        "event_counts": dict(sorted(counts.items())),
        "event_rates_per_hour": {k: rate(v) for k, v in sorted(counts.items())},
        "overlap_events_by_speaker_pair": by_pair,
        "pauses": {
            "response_latency_s": {k: _stats(v) for k, v in sorted(lat_dir.items())},
            "within_turn_pause_share": pause_share,
            "within_turn_pause_min_s": cfg.pause_min_s,
            "long_pause_s": cfg.long_pause_s,
            "source": "words" if words else "turns",
            "gap_count": len(gaps),
        },
        "turns": {
            "count": len(turns),
            "mean_s": round(statistics.fmean(durs), 3) if durs else None,
            "median_s": round(statistics.median(durs), 3) if durs else None,
            "mean_words": round(statistics.fmean(wcs), 2) if wcs else None,
            "median_words": statistics.median(wcs) if wcs else None,
            "per_minute": round(len(turns) / minutes, 3) if minutes > 0 else None,
            "longest_monologue_s": {k: round(v, 3) for k, v in sorted(longest.items())},
        },
        "minimal_responses": {
            "count": len(mr),
            "by_role": _count_by(_role_of(turns[_pos(turns, f.turn_index)].speaker, roles) for f in mr),
            "follows_question_count": sum(1 for f in features if f.follows_question),
            "latency_s": _stats([f.latency_s for f in mr if f.latency_s is not None]),
        },
    }


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
