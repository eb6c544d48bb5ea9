"""Recording quality and trust: per-speaker level, SNR and word coverage, and the plain warnings that mark a
session's numbers as untrustworthy (issue 17; issue 16's "too noisy to trust" adds its checks here).

    word_coverage(speech, words, pad_s) -> float | None
    quality_warnings(rows, cfg) -> (QualityWarning, ...)
    word_rate_spans(segments, words, cfg) -> ((Segment, words), ...)
    assess_quality(levels, diarization, words, roles, cfg) -> Quality
    with_warnings(quality, extra) -> Quality

Pure functions. Definitions:
- word coverage of a speaker: the share of their own speech (exclusive-track time; overlaps go to whoever
  the exclusive track gives them) that lies within a recognised word, each word widened by `word_pad_s`
  either side (Whisper's word times leave short gaps between words). A voice the recogniser dropped shows
  up as speech without words. Any word counts, whichever speaker it was given to.
- warnings (speakers with at least `min_speech_s` of own speech only):
  `low_word_coverage`: coverage below `min_word_coverage`, or more than `max_coverage_gap` below the
  best-covered speaker's;
  `low_snr`: speech level less than `min_snr_db` above the noise floor;
  `low_confidence`: a speaker whose speech was raised before transcription (`asr_gain_db` > 0: the quieter
  voice, pipeline.levels), whose SNR is below `confidence_max_snr_db`, and whose words the recogniser is
  less sure of than the loudest speaker's: their word confidence (mean Whisper word probability) more than
  `max_confidence_gap` below the loudest speaker's. The gain restores the level, not the SNR: in noise, a
  voice raised by 10-15 dB keeps its words (coverage) at an SNR above `min_snr_db` and can still get many
  of them wrong, and the recogniser's own confidence shows it. Only raised speakers in some noise are
  compared: at equal levels, or in a quiet room, two voices differ in confidence by themselves (up to 0.05
  on the dev sessions) without losing words;
  `word_rate`: a diarized segment of at least `rate_min_segment_s` holds more than `max_words_per_s`
  recognised words per second (word midpoints inside it, any speaker's). Speech runs at 2-4 words per
  second; far more is Whisper repeating itself (its batched decoder has no temperature fallback), which
  inflates that speaker's words and can fake a rupture.
  Each says, in words, who is affected, how much quieter they are than the loudest speaker, and what share
  of their speech has no words ("client speech is 12 dB quieter than the therapist's; 40% of it has no
  words: check the recording").
- word confidence of a speaker: the mean recogniser probability of the words given to them.
- trustworthy: no warning. Talk shares, flags and measures of an untrustworthy session are still reported,
  but the record and the review page say why they may be wrong.
"""

from __future__ import annotations

import bisect
import math
from typing import Mapping, Sequence

from pipeline.config import QualityConfig
from pipeline.records import Diarization, Levels, Quality, QualityWarning, Segment, SpeakerQuality, Word
from pipeline.timeline import union




def _intersection_s(a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]]) -> float:
    """Total overlap of two sorted lists of disjoint spans."""
    i = j = 0
    total = 0.0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            total += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def word_coverage(speech: Sequence[Segment], words: Sequence[Word], pad_s: float) -> float | None:
    """Share of the time of `speech` (one speaker's segments) within a word widened by `pad_s`; None when
    there is no speech."""
    own = union([(s.start, s.end) for s in speech])
    total = sum(b - a for a, b in own)
    if total <= 0:
        return None
    covered = union([(max(0.0, w.start - pad_s), w.end + pad_s) for w in words])
    return min(1.0, _intersection_s(own, covered) / total)


def _who(row: SpeakerQuality) -> str:
    return row.role if row.role in ("therapist", "client") else f"speaker {row.speaker}"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _quieter(row: SpeakerQuality, loudest: SpeakerQuality | None) -> str:
    if loudest is None or loudest is row or row.level_re_loudest_db is None or row.level_re_loudest_db > -3.0:
        return ""
    return f" is {-row.level_re_loudest_db:.0f} dB quieter than the {_who(loudest)}'s"


def quality_warnings(rows: Sequence[SpeakerQuality], cfg: QualityConfig) -> tuple[QualityWarning, ...]:
    """The warning rule (see the module docstring), in speaker order."""
    judged = [r for r in rows if r.speech_s >= cfg.min_speech_s]
    covered = [r.word_coverage for r in judged if r.word_coverage is not None]
    best = max(covered) if covered else None
    levelled = [r for r in rows if r.level_re_loudest_db is not None]
    loudest = max(levelled, key=lambda r: r.level_re_loudest_db or 0.0) if len(levelled) > 1 else None
    ref = loudest if loudest is not None and loudest.speech_s >= cfg.min_speech_s else None
    out: list[QualityWarning] = []
    for r in judged:
        who = _who(r)
        quieter = _quieter(r, loudest)
        if r.word_coverage is not None and best is not None and (
                r.word_coverage < cfg.min_word_coverage or best - r.word_coverage > cfg.max_coverage_gap):
            missing = f"{1.0 - r.word_coverage:.0%}"
            lead = (f"{_cap(who)} speech{quieter}; {missing} of it has no words" if quieter
                    else f"{missing} of the {who}'s speech has no words")
            out.append(QualityWarning(
                "low_word_coverage",
                f"{_cap(lead)}: check the recording. Words, talk share and flags for the {who} "
                "may be incomplete.", r.speaker))
        if (ref is not None and r is not ref and r.asr_gain_db > 0 and r.snr_db is not None
                and r.snr_db < cfg.confidence_max_snr_db and r.word_confidence is not None
                and ref.word_confidence is not None
                and ref.word_confidence - r.word_confidence > cfg.max_confidence_gap):
            lead = f"{_cap(who)} speech{quieter}" if quieter else f"{_cap(who)} speech is quieter than the {_who(ref)}'s"
            out.append(QualityWarning(
                "low_confidence",
                f"{lead}, and even raised by {r.asr_gain_db:.0f} dB before transcription the recogniser is less sure "
                f"of its words (mean word confidence {r.word_confidence:.2f} against {ref.word_confidence:.2f} for "
                f"the {_who(ref)}): check the recording. Words and flags for the {who} may be wrong.", r.speaker))
        if r.snr_db is not None and r.snr_db < cfg.min_snr_db:
            out.append(QualityWarning(
                "low_snr",
                f"{_cap(who)} speech is only {math.floor(r.snr_db)} dB above the background noise (at least "
                f"{cfg.min_snr_db:.0f} dB is needed): check the recording. Words, talk share and flags may be "
                "wrong.", r.speaker))
    return tuple(out)


def word_rate_spans(segments: Sequence[Segment], words: Sequence[Word], cfg: QualityConfig
                    ) -> tuple[tuple[Segment, int], ...]:
    """(segment, words in it) for every segment of at least `rate_min_segment_s` with more than
    `max_words_per_s` recognised words per second (by word midpoint), in time order."""
    mids = sorted((w.start + w.end) / 2.0 for w in words)
    out = []
    for seg in sorted(segments, key=lambda s: (s.start, s.end)):
        if seg.duration < cfg.rate_min_segment_s:
            continue
        n = bisect.bisect_left(mids, seg.end) - bisect.bisect_left(mids, seg.start)
        if n > cfg.max_words_per_s * seg.duration:
            out.append((seg, n))
    return tuple(out)


def _clock(t: float) -> str:
    m, s = divmod(int(t), 60)
    return f"{m}:{s:02d}"


def rate_warnings(spans: Sequence[tuple[Segment, int]], roles: Mapping[str, str]) -> tuple[QualityWarning, ...]:
    out = []
    for seg, n in spans:
        role = roles.get(seg.speaker, "unknown")
        who = role if role in ("therapist", "client") else f"speaker {seg.speaker}"
        out.append(QualityWarning(
            "word_rate",
            f"The recogniser heard {n} words in {seg.duration:.0f} s of the {who}'s speech at {_clock(seg.start)}: "
            "it probably repeated itself there. Check the transcript at that point; the words, flags and measures "
            "around it may be wrong.", seg.speaker))
    return tuple(out)


def assess_quality(levels: Levels, diar: Diarization, words: Sequence[Word], roles: Mapping[str, str],
                   cfg: QualityConfig) -> Quality:
    """The quality block of one session from its levels (pipeline.levels), diarization and words."""
    measured = [s.level_dbfs for s in levels.speakers if s.level_dbfs is not None]
    top = max(measured) if measured else None
    rows = []
    for s in levels.speakers:
        cov = word_coverage([seg for seg in diar.exclusive if seg.speaker == s.speaker], words, cfg.word_pad_s)
        conf = [w.probability for w in words if w.speaker == s.speaker]
        rows.append(SpeakerQuality(
            speaker=s.speaker, role=roles.get(s.speaker, "unknown"), speech_s=s.speech_s, level_dbfs=s.level_dbfs,
            level_re_loudest_db=None if s.level_dbfs is None or top is None else round(s.level_dbfs - top, 2),
            snr_db=s.snr_db, asr_gain_db=s.asr_gain_db, word_coverage=None if cov is None else round(cov, 3),
            word_confidence=round(sum(conf) / len(conf), 3) if conf else None))
    rows_t = tuple(rows)
    warnings = quality_warnings(rows_t, cfg) + rate_warnings(word_rate_spans(diar.overlapping, words, cfg), roles)
    return Quality(noise_floor_dbfs=levels.noise_dbfs, speakers=rows_t, warnings=warnings)


def with_warnings(quality: Quality, extra: Sequence[QualityWarning]) -> Quality:
    """The same quality block with more warnings (other checks, e.g. issue 16's noise check)."""
    return Quality(quality.noise_floor_dbfs, quality.speakers, quality.warnings + tuple(extra))
