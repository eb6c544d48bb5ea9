"""Scripted dialogue audio with exact ground truth, rendered with Debian `flite`.

A `Script` is a cast (speaker id -> role, flite voice) and a sequence of `Line`s. Each line is rendered
with flite (16 kHz mono), its leading/trailing silence is trimmed so that the truth times are the exact
speech bounds, and the lines are placed on one timeline:

* `gap` (default): start `gap` seconds after the *floor end*, i.e. the latest end of all lines placed so
  far. A negative gap starts that many seconds before the floor end (an overlap at the turn exchange, or
  an interruption when the previous line is cut, see below).
* `at`: start `at` seconds after the previous line's start (a backchannel laid over it, or an
  interruption that the other speaker talks through).
* `at_frac`: start at this fraction of the previous line's duration.
* `said_words`: only the first N words of `text` are rendered and said; the truth text is that prefix and
  the utterance is marked `cut`. Put the interrupter right after it with a negative `gap` (-0.3 .. -0.8)
  to script a *successful interruption* that sounds like one.

Ground truth is computed from the timeline by pure functions (`build_truth`):

* overlaps: every stretch where two speakers talk at once (`kind`: backchannel | interruption | terminal);
* interruptions: a non-backchannel utterance that starts inside another speaker's utterance. `successful`
  when the interrupted speaker stops within `yield_window_s` (1 s) of the interrupter's start *and* their
  utterance was cut short (`said_words`); when they stop within the window but had finished what they were
  saying, it is a terminal overlap, not an interruption; when they go on talking for longer it is
  `unsuccessful`;
* backchannels: short utterances made only of lexicon tokens ("mm-hmm", "yeah", "right", "okay", ...)
  that start inside the other speaker's speech with no floor change (the other speaker's utterance is
  still running when the backchannel ends, or the other speaker talks next);
* long pauses: silences of at least `long_pause_s` (3 s) where nobody speaks, with who spoke before/after;
* talk time per speaker and per role (union of each speaker's utterances);
* talk-time imbalance: one `talk_time_imbalance` event when the therapist role has at least
  `imbalance_share` (0.7) of the talk time (`therapist_dominates`) or at most 1 - that (`client_dominates`);
* ruptures/repairs: from line labels "rupture:<3RS subtype>" / "repair:<subtype>"; a rupture is resolved
  by the first repair of another speaker within the next `repair_window` non-backchannel utterances.

Event records are `pipeline.records.Event`; in the truth files `turn_index` and `repair_turn_index` index
the truth `utterances`. Outputs per session (`write_session`): `<id>.flac`, `<id>.rttm`, `<id>.stm`,
`<id>_truth.json`, `<id>_transcript.csv` (CONTRACT transcript CSV of the truth, for text-only tagging).

I/O lives in `render_line`/`render_script`/`write_session`; everything else is pure.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np


from pipeline.records import REPAIR_SUBTYPES, RUPTURE_SUBTYPES, Event, EventDetails  # noqa: E402
from pipeline.serialize import atomic_write_text, event_to_dict  # noqa: E402

SAMPLE_RATE = 16000
VOICES: Mapping[str, str] = {"slt": "female", "rms": "male", "awb": "male", "kal": "male"}
ROLES = ("therapist", "client", "other")

BACKCHANNEL_LEXICON: frozenset[str] = frozenset({
    "mm-hmm", "mhm", "mm", "hmm", "uh-huh", "yeah", "yes", "yep", "right", "okay", "ok", "sure", "i see",
    "i", "see", "got", "it", "exactly", "true",
})
BACKCHANNEL_MAX_WORDS = 3

TRUTH_FORMAT = "rupture-synth-truth/1"


class SynthError(RuntimeError):
    """A script cannot be rendered (unknown voice, flite missing, self-overlap, digits in text...)."""


# --------------------------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Part:
    """One speaker of a script."""

    speaker: str
    role: str  # therapist | client | other
    voice: str  # flite voice: slt (female), rms, awb, kal (male)
    gain_db: float = 0.0


@dataclass(frozen=True)
class Line:
    """One utterance spec. Timing: `at` / `at_frac` (relative to the previous line's start) win over `gap`
    (relative to the floor end). `labels`: "rupture:<subtype>", "repair:<subtype>" (CONTRACT.md)."""

    speaker: str
    text: str
    gap: float = 0.6
    at: float | None = None
    at_frac: float | None = None
    said_words: int | None = None
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Script:
    session_id: str
    cast: tuple[Part, ...]
    lines: tuple[Line, ...]
    lead_in_s: float = 0.6
    tail_s: float = 0.8

    def part(self, speaker: str) -> Part:
        for p in self.cast:
            if p.speaker == speaker:
                return p
        raise SynthError(f"speaker {speaker!r} is not in the cast of {self.session_id!r}")


@dataclass(frozen=True)
class Utterance:
    """One placed utterance of the truth (times are exact speech bounds, seconds)."""

    index: int
    speaker: str
    role: str
    voice: str
    start: float
    end: float
    text: str  # what is actually said
    planned_text: str  # the full line (differs from `text` when cut)
    cut: bool
    labels: tuple[str, ...]

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class TalkTime:
    by_speaker: tuple[tuple[str, float], ...]
    by_role: tuple[tuple[str, float], ...]
    total_speech_s: float  # union of everybody's speech
    overlap_s: float  # time with two or more speakers at once


@dataclass(frozen=True)
class Truth:
    session_id: str
    duration_s: float
    cast: tuple[Part, ...]
    utterances: tuple[Utterance, ...]
    events: tuple[Event, ...]
    talk_time: TalkTime


@dataclass(frozen=True)
class RenderedSession:
    audio: np.ndarray = field(repr=False)  # float32 at SAMPLE_RATE: (n,) mono or (n, channels)
    truth: Truth


# ------------------------------------------------------------------------------------------ text helpers

_WORD_RE = re.compile(r"[a-z0-9']+(?:-[a-z0-9']+)*")


def said_text(text: str, said_words: int | None) -> str:
    """The prefix of `text` with `said_words` words (whitespace-separated), trailing commas dropped."""
    if said_words is None:
        return text
    words = text.split()
    if not 0 < said_words <= len(words):
        raise SynthError(f"said_words={said_words} outside 1..{len(words)}")
    return " ".join(words[:said_words]).rstrip(",;:")


def normalize_words(text: str) -> list[str]:
    """Lower-case word tokens (apostrophes and inner hyphens kept), for STM/WER and lexicon checks."""
    return _WORD_RE.findall(text.lower().replace("\u2019", "'"))


def is_backchannel_text(text: str) -> bool:
    words = normalize_words(text)
    return 0 < len(words) <= BACKCHANNEL_MAX_WORDS and all(w in BACKCHANNEL_LEXICON for w in words)


# flite spells some backchannel tokens letter by letter ("mm-hmm" -> "em em aitch em em"); render these
# spellings instead (the truth text keeps the original spelling).
RENDER_SUBSTITUTIONS: Mapping[str, str] = {"mm-hmm": "um hum", "mhm": "um hum", "mm-hm": "um hum", "hmm": "hum",
                                           "mm": "um", "uh-huh": "uh huh"}


def flite_text(text: str) -> str:
    """The text handed to flite: backchannel spellings replaced by pronounceable ones."""
    def sub(m: re.Match[str]) -> str:
        return RENDER_SUBSTITUTIONS.get(m.group(0).lower(), m.group(0))

    return re.sub(r"[A-Za-z]+(?:-[A-Za-z]+)*", sub, text)


def check_text(text: str) -> None:
    if re.search(r"\d", text):
        raise SynthError("write numbers as words in scripts (keeps the WER reference clean)")
    if not normalize_words(text):
        raise SynthError("a line has no words")


# --------------------------------------------------------------------------------------------- audio I/O


def flite_available() -> bool:
    return shutil.which("flite") is not None


def trim_silence(x: np.ndarray, sr: int = SAMPLE_RATE, rel_db: float = -40.0, frame_s: float = 0.005) -> np.ndarray:
    """Cut leading/trailing frames whose RMS is below `rel_db` of the loudest frame (pure)."""
    n = max(1, int(round(frame_s * sr)))
    if x.size == 0:
        return x
    nf = int(np.ceil(x.size / n))
    pad = np.zeros(nf * n, dtype=np.float64)
    pad[: x.size] = x
    rms = np.sqrt(np.mean(pad.reshape(nf, n) ** 2, axis=1))
    peak = float(rms.max())
    if peak <= 0:
        return x[:0]
    active = np.flatnonzero(rms >= peak * 10 ** (rel_db / 20))
    a, b = int(active[0]) * n, min(x.size, (int(active[-1]) + 1) * n)
    return x[a:b]


def render_text(text: str, voice: str) -> np.ndarray:
    """flite -> float32 mono at SAMPLE_RATE, silence trimmed (I/O: runs flite in a temp dir)."""
    if voice not in VOICES:
        raise SynthError(f"unknown voice {voice!r}; use one of {sorted(VOICES)}")
    exe = shutil.which("flite")
    if exe is None:
        raise SynthError("flite is not installed (Debian: apt-get install flite)")
    import soundfile as sf
    from scipy.signal import resample_poly

    with tempfile.TemporaryDirectory(prefix="synth_") as tmp:
        wav = Path(tmp) / "u.wav"
        proc = subprocess.run([exe, "-voice", voice, "-t", text, "-o", str(wav)], capture_output=True)
        if proc.returncode != 0 or not wav.exists():
            raise SynthError(f"flite failed for voice {voice} (rc={proc.returncode})")
        x, sr = sf.read(str(wav), dtype="float64", always_2d=True)
    x = x.mean(axis=1)
    if sr != SAMPLE_RATE:
        from math import gcd

        g = gcd(sr, SAMPLE_RATE)
        x = resample_poly(x, SAMPLE_RATE // g, sr // g)
    y = trim_silence(x)
    if y.size == 0:
        raise SynthError("flite produced silence")
    return y.astype(np.float32)


# ------------------------------------------------------------------------------------------ layout (pure)


def layout(script: Script, lengths: Sequence[int], sr: int = SAMPLE_RATE) -> tuple[tuple[int, int], ...]:
    """Start/end sample of every line given each rendered clip's length in samples (pure)."""
    if len(lengths) != len(script.lines):
        raise SynthError("one rendered clip per line is needed")
    spans: list[tuple[int, int]] = []
    floor_end = 0
    for i, (line, n) in enumerate(zip(script.lines, lengths)):
        if i == 0:
            start = int(round(script.lead_in_s * sr))
        elif line.at is not None:
            start = spans[-1][0] + int(round(line.at * sr))
        elif line.at_frac is not None:
            ps, pe = spans[-1]
            start = ps + int(round(line.at_frac * (pe - ps)))
        else:
            start = floor_end + int(round(line.gap * sr))
        start = max(0, start)
        spans.append((start, start + int(n)))
        floor_end = max(floor_end, start + int(n))
    # a voice cannot talk over itself
    last_end: dict[str, int] = {}
    for line, (s, e) in zip(script.lines, spans):
        if s < last_end.get(line.speaker, -1):
            raise SynthError(f"speaker {line.speaker!r} overlaps their own previous line in {script.session_id!r}")
        last_end[line.speaker] = max(e, last_end.get(line.speaker, 0))
    return tuple(spans)


def place_utterances(script: Script, spans: Sequence[tuple[int, int]], sr: int = SAMPLE_RATE) -> tuple[Utterance, ...]:
    out = []
    for i, (line, (s, e)) in enumerate(zip(script.lines, spans)):
        p = script.part(line.speaker)
        out.append(Utterance(
            index=i, speaker=line.speaker, role=p.role, voice=p.voice, start=s / sr, end=e / sr,
            text=said_text(line.text, line.said_words), planned_text=line.text,
            cut=line.said_words is not None and line.said_words < len(line.text.split()), labels=tuple(line.labels),
        ))
    return tuple(out)


# ------------------------------------------------------------------------------------------- truth (pure)


def _union(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(a, b) for a, b in out]


def _length(intervals: Iterable[tuple[float, float]]) -> float:
    return float(sum(e - s for s, e in intervals))


def _r(x: float) -> float:
    return round(float(x), 4)


def backchannel_indices(utts: Sequence[Utterance]) -> frozenset[int]:
    """Utterances that are backchannels: lexicon-only, start inside another speaker's speech, no floor change."""
    out = set()
    for u in utts:
        if not is_backchannel_text(u.text):
            continue
        hosts = [v for v in utts if v.speaker != u.speaker and v.start < u.start < v.end]
        if not hosts:
            continue
        host = max(hosts, key=lambda v: v.end)
        if host.end >= u.end:
            out.add(u.index)
            continue
        later = [v for v in utts if v.start >= u.start and v.index != u.index and not is_backchannel_text(v.text)]
        if later and min(later, key=lambda v: (v.start, v.index)).speaker == host.speaker:
            out.add(u.index)
    return frozenset(out)


def talk_time(utts: Sequence[Utterance], cast: Sequence[Part]) -> TalkTime:
    by_speaker = []
    for p in cast:
        by_speaker.append((p.speaker, _r(_length(_union((u.start, u.end) for u in utts if u.speaker == p.speaker)))))
    by_role = []
    for role in ROLES:
        spk = {p.speaker for p in cast if p.role == role}
        if spk:
            by_role.append((role, _r(sum(t for s, t in by_speaker if s in spk))))
    total = _length(_union((u.start, u.end) for u in utts))
    per_spk_sum = sum(t for _, t in by_speaker)
    return TalkTime(tuple(by_speaker), tuple(by_role), _r(total), _r(max(0.0, per_spk_sum - total)))


def _cast_of(utts: Sequence[Utterance]) -> tuple[Part, ...]:
    seen: dict[str, Part] = {}
    for u in utts:
        seen.setdefault(u.speaker, Part(u.speaker, u.role, u.voice))
    return tuple(seen.values())


def _overlap_regions(utts: Sequence[Utterance]) -> list[tuple[float, float, Utterance, Utterance]]:
    """(start, end, earlier, later) for each pair of different-speaker utterances that overlap."""
    out = []
    for a in utts:
        for b in utts:
            if a.speaker == b.speaker or (a.start, a.index) >= (b.start, b.index):
                continue
            s, e = max(a.start, b.start), min(a.end, b.end)
            if e > s:
                out.append((s, e, a, b))
    return sorted(out, key=lambda t: (t[0], t[3].index))


def build_events(
    utts: Sequence[Utterance], *, long_pause_s: float = 3.0, yield_window_s: float = 1.0, repair_window: int = 4,
    imbalance_share: float = 0.7,
) -> tuple[Event, ...]:
    """Event truth from a placed timeline (pure). See the module docstring for the rules."""
    bcs = backchannel_indices(utts)
    events: list[Event] = []

    for s, e, a, b in _overlap_regions(utts):
        if b.index in bcs:
            kind = "backchannel"
        elif a.index in bcs:
            kind = "backchannel"
        elif a.start < b.start < a.end:
            remaining = a.end - b.start
            if remaining > yield_window_s:
                kind = "interruption"
                events.append(Event(
                    "interruption", "unsuccessful", _r(b.start), _r(a.end), b.speaker, a.speaker, b.index, 1.0,
                    f"{a.speaker} talked on for {remaining:.2f} s",
                    details=EventDetails(other=(("interrupted_index", a.index), ("overlap_s", _r(e - s)))),
                ))
            elif a.cut:
                kind = "interruption"
                events.append(Event(
                    "interruption", "successful", _r(b.start), _r(a.end), b.speaker, a.speaker, b.index, 1.0,
                    f"{a.speaker} stopped {remaining:.2f} s after {b.speaker} came in",
                    details=EventDetails(other=(("interrupted_index", a.index), ("overlap_s", _r(e - s)))),
                ))
            else:
                kind = "terminal"
        else:
            kind = "terminal"
        events.append(Event("overlap", kind, _r(s), _r(e), b.speaker, a.speaker, b.index, 1.0,
                            f"{e - s:.2f} s of simultaneous speech", details=EventDetails(other=(("kind", kind),))))

    for u in utts:
        if u.index in bcs:
            host = max((v for v in utts if v.speaker != u.speaker and v.start < u.start), key=lambda v: v.end)
            events.append(Event("backchannel", None, _r(u.start), _r(u.end), u.speaker, host.speaker, u.index, 1.0,
                                u.text, details=EventDetails(other=(("host_index", host.index),))))

    speech = _union((u.start, u.end) for u in utts)
    for (s0, e0), (s1, e1) in zip(speech, speech[1:]):
        gap = s1 - e0
        if gap >= long_pause_s:
            before = max((u for u in utts if u.end <= e0 + 1e-9), key=lambda u: (u.end, u.index))
            after = min((u for u in utts if u.start >= s1 - 1e-9), key=lambda u: (u.start, u.index))
            events.append(Event(
                "long_pause", "switch" if before.speaker != after.speaker else "within_speaker", _r(e0), _r(s1),
                before.speaker, after.speaker, after.index, 1.0, f"{gap:.2f} s of silence",
                details=EventDetails(other=(("duration_s", _r(gap)), ("speaker_before", before.speaker),
                                            ("speaker_after", after.speaker), ("before_index", before.index))),
            ))

    by_role: dict[str, float] = {}
    for u_role, t in talk_time(utts, _cast_of(utts)).by_role:
        by_role[u_role] = t
    total = sum(by_role.values())
    if total > 0 and "therapist" in by_role and "client" in by_role:
        share = by_role["therapist"] / total
        if share >= imbalance_share or share <= 1.0 - imbalance_share:
            therapists = sorted({u.speaker for u in utts if u.role == "therapist"})
            events.append(Event(
                "talk_time_imbalance", "therapist_dominates" if share >= imbalance_share else "client_dominates",
                _r(utts[0].start if utts else 0.0), _r(max(u.end for u in utts)), therapists[0], None, None, 1.0,
                f"therapist share of talk time {share:.2f}",
                details=EventDetails(other=(("therapist_share", _r(share)),)),
            ))

    main = [u for u in utts if u.index not in bcs]
    for pos, u in enumerate(main):
        prev_other = next((v for v in reversed(main[:pos]) if v.speaker != u.speaker), None)
        target = prev_other.speaker if prev_other else None
        for lab in u.labels:
            kind, _, sub = lab.partition(":")
            if kind == "rupture":
                if sub not in RUPTURE_SUBTYPES:
                    raise SynthError(f"unknown rupture subtype {sub!r}")
                repair = next((v for v in main[pos + 1: pos + 1 + repair_window]
                               if v.speaker != u.speaker and any(x.startswith("repair:") for x in v.labels)), None)
                events.append(Event("rupture", sub, _r(u.start), _r(u.end), u.speaker, target, u.index, 1.0,
                                    u.text, resolved=repair is not None,
                                    repair_turn_index=repair.index if repair else None))
            elif kind == "repair":
                if sub not in REPAIR_SUBTYPES:
                    raise SynthError(f"unknown repair subtype {sub!r}")
                events.append(Event("repair", sub, _r(u.start), _r(u.end), u.speaker, target, u.index, 1.0, u.text))
            else:
                raise SynthError(f"unknown label {lab!r} (use rupture:<subtype> or repair:<subtype>)")

    order = {t: i for i, t in enumerate(("talk_time_imbalance", "overlap", "interruption", "backchannel", "long_pause",
                                          "rupture", "repair"))}
    return tuple(sorted(events, key=lambda ev: (ev.start, order.get(ev.type, 9), ev.turn_index or 0)))


def build_truth(script: Script, spans: Sequence[tuple[int, int]], n_samples: int, sr: int = SAMPLE_RATE, **kw: Any) -> Truth:
    utts = place_utterances(script, spans, sr)
    return Truth(script.session_id, _r(n_samples / sr), script.cast, utts, build_events(utts, **kw),
                 talk_time(utts, script.cast))


# ------------------------------------------------------------------------------------------------- mixing


def mix(clips: Sequence[np.ndarray], spans: Sequence[tuple[int, int]], gains_db: Sequence[float], n_samples: int,
        *, peak: float = 0.7, noise_dbfs: float | None = -78.0, seed: int = 0,
        channels: Sequence[int] | None = None, n_channels: int = 1, crosstalk_db: float = -20.0) -> np.ndarray:
    """Place clips (each RMS-levelled, then speaker gain), peak-normalise, add a seeded noise floor (pure).

    Mono by default: returns (n_samples,). With `n_channels` > 1, clip i goes to channel `channels[i]` at
    its level and to every other channel `crosstalk_db` lower (one close-talk microphone per speaker, each
    picking up the others faintly); returns (n_samples, n_channels), with independent noise per channel."""
    if n_channels < 1:
        raise ValueError("n_channels must be at least 1")
    if n_channels > 1 and (channels is None or len(channels) != len(clips)
                           or any(not 0 <= c < n_channels for c in channels)):
        raise ValueError("channels: one channel index in [0, n_channels) per clip")
    shape = (n_samples,) if n_channels == 1 else (n_samples, n_channels)
    y = np.zeros(shape, dtype=np.float64)
    leak = 10 ** (crosstalk_db / 20)
    for i, (clip, (s, e), g) in enumerate(zip(clips, spans, gains_db)):
        c = clip.astype(np.float64)
        rms = float(np.sqrt(np.mean(c**2))) or 1.0
        placed = c * (0.1 / rms) * 10 ** (g / 20)
        if n_channels == 1:
            y[s:e] += placed
        else:
            for ch in range(n_channels):
                y[s:e, ch] += placed if ch == channels[i] else placed * leak  # type: ignore[index]
    m = float(np.max(np.abs(y))) or 1.0
    y *= peak / m
    if noise_dbfs is not None:
        rng = np.random.default_rng(seed)
        y += rng.standard_normal(shape) * 10 ** (noise_dbfs / 20)
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def render_script(script: Script, *, seed: int = 0, noise_dbfs: float | None = -78.0,
                  channel_of: Mapping[str, int] | None = None, crosstalk_db: float = -20.0,
                  **truth_kw: Any) -> RenderedSession:
    """Render every line with flite, place, mix and compute the truth (I/O: flite).

    `channel_of` (speaker -> channel index) renders one channel per speaker (close-talk microphones with
    `crosstalk_db` of leakage, see `mix`); the truth is the same as for the mono mix."""
    for line in script.lines:
        check_text(line.text)
        script.part(line.speaker)
    clips = [render_text(flite_text(said_text(l.text, l.said_words)), script.part(l.speaker).voice) for l in script.lines]
    spans = layout(script, [c.size for c in clips])
    n = max(e for _, e in spans) + int(round(script.tail_s * SAMPLE_RATE))
    gains = [script.part(l.speaker).gain_db for l in script.lines]
    if channel_of is None:
        audio = mix(clips, spans, gains, n, noise_dbfs=noise_dbfs, seed=seed)
    else:
        missing = sorted({l.speaker for l in script.lines} - set(channel_of))
        if missing:
            raise ValueError(f"channel_of: no channel for speaker(s) {', '.join(missing)}")
        audio = mix(clips, spans, gains, n, noise_dbfs=noise_dbfs, seed=seed,
                    channels=[channel_of[l.speaker] for l in script.lines],
                    n_channels=max(channel_of.values()) + 1, crosstalk_db=crosstalk_db)
    return RenderedSession(audio, build_truth(script, spans, n, **truth_kw))


# ---------------------------------------------------------------------------------------------- formats


def rttm_text(truth: Truth) -> str:
    lines = [f"SPEAKER {truth.session_id} 1 {u.start:.3f} {u.duration:.3f} <NA> <NA> {u.speaker} <NA> <NA>"
             for u in sorted(truth.utterances, key=lambda u: (u.start, u.index))]
    return "\n".join(lines) + "\n"


def parse_rttm(text: str) -> list[tuple[str, float, float, str]]:
    """(uri, start, end, speaker) per SPEAKER line."""
    out = []
    for ln in text.splitlines():
        f = ln.split()
        if not f or f[0] != "SPEAKER":
            continue
        if len(f) < 10:
            raise ValueError(f"bad RTTM line: {ln!r}")
        s, d = float(f[3]), float(f[4])
        out.append((f[1], s, s + d, f[7]))
    return out


def stm_text(truth: Truth) -> str:
    """STM reference: `<uri> 1 <speaker> <start> <end> <role> <normalised words>` in time order."""
    rows = [f";; reference transcript for {truth.session_id}: lower-case, punctuation removed"]
    for u in sorted(truth.utterances, key=lambda u: (u.start, u.index)):
        rows.append(f"{truth.session_id} 1 {u.speaker} {u.start:.3f} {u.end:.3f} <{u.role}> "
                    + " ".join(normalize_words(u.text)))
    return "\n".join(rows) + "\n"


def transcript_csv(truth: Truth) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["start", "end", "speaker", "text", "role"])
    for u in sorted(truth.utterances, key=lambda u: (u.start, u.index)):
        w.writerow([f"{u.start:.3f}", f"{u.end:.3f}", u.speaker, u.text, u.role])
    return buf.getvalue()


def truth_to_dict(truth: Truth, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    tt = truth.talk_time
    total_spk = sum(t for _, t in tt.by_speaker) or 1.0
    counts: dict[str, int] = {}
    for ev in truth.events:
        key = ev.type if ev.subtype is None or ev.type in ("rupture", "repair") else f"{ev.type}.{ev.subtype}"
        counts[key] = counts.get(key, 0) + 1
    d: dict[str, Any] = {
        "format": TRUTH_FORMAT,
        "session_id": truth.session_id,
        "duration_s": truth.duration_s,
        "sample_rate": SAMPLE_RATE,
        "note": "event turn_index / repair_turn_index index `utterances`; times are exact speech bounds (s)",
        "speakers": [{"id": p.speaker, "role": p.role, "voice": p.voice, "talk_time_s": dict(tt.by_speaker)[p.speaker]}
                     for p in truth.cast],
        "talk_time": {
            "by_speaker": dict(tt.by_speaker),
            "by_role": dict(tt.by_role),
            "share_by_speaker": {k: round(v / total_spk, 4) for k, v in tt.by_speaker},
            "share_by_role": {k: round(v / total_spk, 4) for k, v in tt.by_role},
            "total_speech_s": tt.total_speech_s,
            "overlap_s": tt.overlap_s,
        },
        "utterances": [
            {"index": u.index, "speaker": u.speaker, "role": u.role, "voice": u.voice, "start": _r(u.start),
             "end": _r(u.end), "text": u.text, "planned_text": u.planned_text, "cut": u.cut,
             "backchannel": u.index in {ev.turn_index for ev in truth.events if ev.type == "backchannel"},
             "labels": list(u.labels)}
            for u in truth.utterances
        ],
        "events": [event_to_dict(ev) for ev in truth.events],
        "counts": dict(sorted(counts.items())),
    }
    if extra:
        d["metadata"] = dict(extra)
    return d


def write_session(out_dir: Path, rendered: RenderedSession, extra: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """Write `<id>.flac` (16 kHz PCM_16, mono or one channel per speaker), `.rttm`, `.stm`, `_truth.json`, `_transcript.csv`."""
    import soundfile as sf

    out_dir.mkdir(parents=True, exist_ok=True)
    sid = rendered.truth.session_id
    paths = {k: out_dir / f"{sid}{suf}" for k, suf in (
        ("audio", ".flac"), ("rttm", ".rttm"), ("stm", ".stm"), ("truth", "_truth.json"),
        ("transcript", "_transcript.csv"))}
    tmp = paths["audio"].with_suffix(".flac.tmp")
    sf.write(str(tmp), rendered.audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16", compression_level=1.0)
    tmp.replace(paths["audio"])
    atomic_write_text(paths["rttm"], rttm_text(rendered.truth), mode=0o644)
    atomic_write_text(paths["stm"], stm_text(rendered.truth), mode=0o644)
    atomic_write_text(paths["transcript"], transcript_csv(rendered.truth), mode=0o644)
    atomic_write_text(paths["truth"], json.dumps(truth_to_dict(rendered.truth, extra), indent=1, ensure_ascii=False) + "\n",
                      mode=0o644)
    return paths


MANIFEST_HEADER = ("audio", "session_id", "consent_recording", "consent_analysis", "consent_date", "num_speakers",
                   "therapist")


def manifest_csv(rows: Sequence[Mapping[str, Any]], extra_columns: Sequence[str] = ()) -> str:
    """CONTRACT manifest: one row per session (`therapist` left empty: the pipeline infers roles)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = list(MANIFEST_HEADER) + list(extra_columns)
    w.writerow(cols)
    for r in rows:
        w.writerow([r.get(c, "") for c in cols])
    return buf.getvalue()
