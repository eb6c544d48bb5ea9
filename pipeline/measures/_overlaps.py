"""Overlap classification: bursts of the overlapping track as backchannels, interruptions (successful or
not) and overlaps (pipeline.measures; the rules are in its docstring)."""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

from pipeline.config import MeasuresConfig
from pipeline.measures._cues import (_AUX, _INCOMPLETE_END, _INVITE, _WORD_RE, _complete_unit, _ends_sentence,
                                     _norm_token, _opens_wh_question, is_backchannel_text)
from pipeline.measures._talk import _role_of
from pipeline.records import Event, EventDetails, OverlapDetails, Segment, Turn, Word
from pipeline.timeline import EPS, Interval, active_at, by_speaker, clip, covered, total


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
            if t.speaker == speaker and t.start - EPS <= lo <= t.end + EPS:
                return t.index
        for t in turns:
            if t.speaker == speaker and lo - EPS <= t.start <= hi + EPS:
                return t.index
    for t in turns:
        if t.start - EPS <= lo <= t.end + EPS:
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
    solo = [w for w in b_words if covered(a_ivs, w.start - m, w.end + m) <= 0.0]
    trusted = b_words if simultaneous else solo
    if trusted and sum(w.probability for w in trusted) / len(trusted) < cfg.backchannel_min_word_probability:
        trusted = []  # the recogniser guessed (a lone hum comes out as "hungry" or "I'm fine"): judge the length
    lex_cap = b.dur <= 2.0 * cfg.backchannel_max_s + EPS
    if trusted:
        return is_backchannel_text(" ".join(w.text for w in trusted), cfg) and lex_cap, trusted
    if b_words and is_backchannel_text(" ".join(w.text for w in b_words), cfg):
        return lex_cap, b_words
    return b.dur <= cfg.backchannel_unheard_max_s + EPS, []


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
        return a_remaining <= cfg.terminal_overlap_s + EPS
    simultaneous = any(min(wa.end, wb.end) - max(wa.start, wb.start) > 0.02 and wa.end > onset
                       for wa in a_words for wb in b_words)
    if simultaneous and not asr_words:
        last = max(a_words, key=lambda w: w.end).text
        return _complete_unit(last, uses_punct) and not _trails_off(last)
    pre = [w for w in a_words if 0.5 * (w.start + w.end) < onset]
    if not pre:
        return a_remaining <= cfg.terminal_overlap_s + EPS
    text = " ".join(w.text for w in pre)
    if _question_in_progress(text):
        return True
    last = pre[-1]
    if not _ends_sentence(last.text) or _trails_off(last.text) or _norm_token(last.text) in _INCOMPLETE_END:
        return False
    # a sentence end counts only when A stopped within `terminal_overlap_s` of the onset (the overlap
    # began on A's last word): the ASR readily closes a phrase that was cut off with a period, and A
    # going on for longer means A had started something new that B cut into
    return a_remaining <= cfg.terminal_overlap_s + EPS


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
    per = by_speaker(segments, gap=cfg.merge_gap_s)
    raw = by_speaker(segments)
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
            iv = active_at(ivs, b.start)
            if iv is not None and iv[0] < b.start - EPS and (holder is None or iv[1] > holder[1][1]):
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
        b_raw = clip(raw[b.speaker], b.start, b.end)
        if total(b_raw) < cfg.min_burst_s - EPS:
            continue  # too short to be a word: diarization noise
        a_raw = raw[a_spk]
        if (sum(covered(a_raw, s0, s1) for s0, s1 in b_raw) < 0.02
                and covered(a_raw, b.start - cfg.flicker_gap_s, b.start) > 0
                and covered(a_raw, b.end, b.end + cfg.flicker_gap_s) > 0):
            continue  # label flicker: the track alternates between two labels inside one voice
        a_ivs = per[a_spk]
        a_stop = a_iv[1]
        # does A go on talking after B's burst (no floor change)?
        a_continues = a_stop > b.end + EPS or any(
            b.start < s <= b.end + cfg.resume_gap_s for s, _ in a_ivs
        )
        b_words = index.between(b.speaker, b.start - 0.15, b.end + 0.15)
        bc_like, b_words = _backchannel_like(b, b_words, index.between(a_spk, b.start - 0.5, b.end + 0.5), a_ivs, cfg)
        target_turn = _turn_for(turns, a_spk, b.start, b.start)
        doer_turn = _turn_for(turns, b.speaker, b.start, b.end)
        direction = f"{_role_of(b.speaker, roles)}->{_role_of(a_spk, roles)}"
        base = OverlapDetails(direction=direction, target_turn_index=target_turn)
        if bc_like and a_continues:
            backchannel_bursts.add((b.speaker, b.start))
            conf = 0.9 if b_words else 0.6
            where = "in overlap" if in_overlap else "in a pause"
            events.append(Event(
                "backchannel", None, b.start, b.end, b.speaker, a_spk, doer_turn, conf,
                f"{b.dur:.1f} s, {len(b_words)} word(s) {where}; floor kept",
                details=EventDetails(replace(base, in_overlap=in_overlap, words=len(b_words))),
            ))
            continue
        if not in_overlap:
            continue
        overlap = min(a_stop, b.end) - b.start
        if overlap < cfg.min_overlap_s - EPS:
            continue
        a_prev = [e for _, e in a_ivs if e <= a_iv[0]]
        a_fresh = not a_prev or a_iv[0] - a_prev[-1] > cfg.resume_gap_s
        if a_fresh and b.start - a_iv[0] < cfg.min_overlap_s - EPS:
            # both started together (within the transition-noise margin): a simultaneous start at a
            # transition place, where both self-select, not a cut into a running turn
            events.append(Event(
                "overlap", "simultaneous_start", b.start, min(a_stop, b.end), b.speaker, a_spk,
                _turn_for(turns, b.speaker, b.start, b.end), 0.5, f"overlap {overlap:.1f} s; simultaneous start",
                details=EventDetails(OverlapDetails(
                    direction=f"{_role_of(b.speaker, roles)}->{_role_of(a_spk, roles)}",
                    target_turn_index=_turn_for(turns, a_spk, b.start, b.start), overlap_s=round(overlap, 3))),
            ))
            continue
        a_remaining = a_stop - b.start
        ov_end = min(a_stop, b.end)
        details = replace(base, overlap_s=round(overlap, 3), holder_remaining_s=round(a_remaining, 3))
        if a_remaining > cfg.yield_window_s + EPS:
            if bc_like:  # a short lexical burst the holder talks through is a backchannel (handled above)
                continue
            kept = max(0.0, a_stop - b.end)
            events.append(Event(
                "interruption", "unsuccessful", b.start, ov_end, b.speaker, a_spk, doer_turn, 0.8,
                f"overlap {overlap:.1f} s; {_short(a_spk, roles)} kept talking {a_remaining:.1f} s",
                details=EventDetails(replace(details, holder_kept_s=round(kept, 3))),
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
                f"overlap {overlap:.1f} s at a turn end", details=EventDetails(details),
            ))
        elif bc_like or b_after < cfg.floor_claim_s - EPS:
            events.append(Event(
                "overlap", "other", b.start, ov_end, b.speaker, a_spk, doer_turn, 0.5,
                f"overlap {overlap:.1f} s; no floor claim", details=EventDetails(details),
            ))
        else:
            events.append(Event(
                "interruption", "successful", b.start, ov_end, b.speaker, a_spk, doer_turn,
                0.8,
                f"overlap {overlap:.1f} s; {_short(a_spk, roles)} stopped after {a_remaining:.1f} s, cut off",
                details=EventDetails(replace(details, interrupter_continued_s=round(b_after, 3))),
            ))
    return events


def _short(spk: str, roles: Mapping[str, str]) -> str:
    r = _role_of(spk, roles)
    return {"therapist": "T", "client": "C"}.get(r, spk)
