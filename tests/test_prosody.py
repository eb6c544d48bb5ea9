"""Prosody stage (pipeline/prosody.py): unit tests of the pure parts on hand-built records and synthetic
signals (fast, no models), then accuracy on flite sessions with known sox manipulations of chosen turns
and F0 on real speech (the shared stereo clip) against an independent estimate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pipeline.config import ProsodyConfig
from pipeline.prosody import (
    analyse_prosody,
    baselines,
    own_speech_intervals,
    pearson,
    prosody_evidence,
    rate_measures,
    vocal_synchrony,
    with_prosody_evidence,
    with_z_scores,
)
from pipeline.records import Event, Segment, Turn, TurnProsody, Word

SR = 16000
CFG = ProsodyConfig()


# ----------------------------------------------------------------------------------------------- own speech

def test_own_speech_excludes_overlaps_and_other_speakers() -> None:
    exclusive = (Segment(0.0, 5.0, "A"), Segment(5.0, 8.0, "B"), Segment(8.0, 10.0, "A"))
    overlapping = (Segment(0.0, 5.5, "A"), Segment(4.5, 8.0, "B"), Segment(6.0, 6.5, "C"), Segment(8.0, 10.0, "A"))
    assert own_speech_intervals("A", exclusive, overlapping) == ((0.0, 4.5), (8.0, 10.0))
    assert own_speech_intervals("B", exclusive, overlapping) == ((5.5, 6.0), (6.5, 8.0))
    assert own_speech_intervals("C", exclusive, overlapping) == ()


# ----------------------------------------------------------------------------------------------------- rates

def _words(spans: list[tuple[float, float]], speaker: str = "A") -> list[Word]:
    return [Word(s, e, f"w{i}", 0.9, speaker) for i, (s, e) in enumerate(spans)]


def test_rates_and_pauses_from_word_times() -> None:
    # 5 words over 4.0 s with one 1.0 s pause (>= 0.25 s) and one 0.1 s gap (not a pause)
    ws = _words([(0.0, 0.5), (0.6, 1.0), (2.0, 2.5), (2.5, 3.2), (3.2, 4.0)])
    vals, notes = rate_measures(ws, CFG)
    assert notes == []
    assert vals["speech_rate_wps"] == pytest.approx(5 / 4.0)
    assert vals["articulation_rate_wps"] == pytest.approx(5 / 3.0)
    assert vals["pause_proportion"] == pytest.approx(1.0 / 4.0)
    vals, notes = rate_measures(ws[:2], CFG)
    assert vals["speech_rate_wps"] is None and notes == ["too few words for rates"]


# ---------------------------------------------------------------------------------------- baselines and z

def _tp(i: int, spk: str, f0: float | None, db: float | None, rate: float | None = None) -> TurnProsody:
    return TurnProsody(turn_index=i, speaker=spk, own_speech_s=2.0, voiced_s=1.5, f0_st=f0, intensity_db=db,
                       speech_rate_wps=rate)


def test_z_scores_against_own_baseline_and_arousal() -> None:
    raw = [_tp(0, "A", 0.0, -20.0, 3.0), _tp(1, "A", 2.0, -22.0, 3.0), _tp(2, "A", 4.0, -24.0, 6.0),
           _tp(3, "B", 10.0, -30.0, 2.0), _tp(4, "B", 10.0, -30.0, 2.0), _tp(5, "B", None, None, 2.0),
           _tp(6, "D", 5.0, -20.0), _tp(7, "D", 5.1, -20.1), _tp(8, "D", 5.2, -20.2)]
    base = baselines(raw, min_turns=3)
    assert base["A"]["f0_st"].mean == pytest.approx(2.0) and base["A"]["f0_st"].sd == pytest.approx(2.0)
    assert "f0_st" not in base.get("B", {})  # two values: no baseline
    scored = with_z_scores(raw, base)
    assert scored[2].f0_z == pytest.approx(1.0) and scored[2].intensity_z == pytest.approx(-1.0)
    assert scored[2].arousal == pytest.approx(0.0)
    assert scored[0].arousal == pytest.approx((-1.0 + 1.0) / 2)
    assert scored[2].speech_rate_change == pytest.approx(6.0 / 4.0 - 1.0)
    assert scored[3].arousal is None and "baseline" in scored[3].note
    assert scored[5].arousal is None
    # a very steady voice: SD 0.1 st / 0.1 dB, but z divides by the floors (0.5 st, 1 dB)
    assert base["D"]["f0_st"].sd == pytest.approx(0.1)
    assert scored[8].f0_z == pytest.approx(0.1 / 0.5) and scored[8].intensity_z == pytest.approx(-0.1 / 1.0)


# ------------------------------------------------------------------------------------------------ synchrony

def _chain(values: list[float]) -> tuple[list[Turn], dict[int, float]]:
    """Alternating therapist/client turns (therapist first) with the given arousal values."""
    turns = [Turn(i, "T" if i % 2 == 0 else "C", "therapist" if i % 2 == 0 else "client", 2.0 * i, 2.0 * i + 1.5,
                  "x", 1) for i in range(len(values))]
    return turns, {i: v for i, v in enumerate(values)}


def test_synchrony_exact_on_constructed_inputs() -> None:
    rng = np.random.default_rng(3)
    ther = rng.normal(size=12)
    # perfectly coupled: each client turn repeats the therapist's previous arousal (client follows)
    coupled: list[float] = []
    anti: list[float] = []
    for t in ther:
        coupled += [float(t), float(t)]
        anti += [float(t), float(-t)]
    turns, a = _chain(coupled)
    s = vocal_synchrony(turns, a, window_pairs=6)
    assert s.client_follows_r == pytest.approx(1.0, abs=1e-12) and s.client_follows_n == 12
    turns, a = _chain(anti)
    s = vocal_synchrony(turns, a, window_pairs=6)
    assert s.client_follows_r == pytest.approx(-1.0, abs=1e-12)
    # roles swapped: now each therapist turn repeats the client's previous one (therapist follows)
    turns, a = _chain(coupled)
    turns = [dataclasses.replace(t, role="client" if t.role == "therapist" else "therapist") for t in turns]
    s = vocal_synchrony(turns, a, window_pairs=6)
    assert s.therapist_follows_r == pytest.approx(1.0, abs=1e-12)
    # independent: orthogonal constructed sequences (leader +1,+1,-1,-1 against follower +1,-1,+1,-1)
    lead = [1.0, 1.0, -1.0, -1.0] * 3
    follow = [1.0, -1.0, 1.0, -1.0] * 3
    vals: list[float] = []
    for x, y in zip(lead, follow):
        vals += [x, y]
    turns, a = _chain(vals)
    s = vocal_synchrony(turns, a, window_pairs=4)
    assert s.client_follows_r == pytest.approx(0.0, abs=1e-12)
    # the pooled r is Pearson over every adjacent pair, leader -> follower
    pairs = [(vals[i], vals[i + 1]) for i in range(len(vals) - 1)]
    assert s.n_pairs == len(pairs)
    assert s.r == pytest.approx(float(np.corrcoef(*zip(*pairs))[0, 1]), abs=1e-12)
    # series: sliding windows of 4 pairs, step one pair
    assert len(s.series) == len(pairs) - 4 + 1 and all(p.n == 4 for p in s.series)
    assert s.series[0].t == pytest.approx(np.mean([turns[i + 1].start for i in range(4)]))


def test_synchrony_skips_unmeasured_turns_and_other_roles() -> None:
    turns, a = _chain([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    a[2] = None  # type: ignore[assignment]
    turns[4] = dataclasses.replace(turns[4], role="other")
    s = vocal_synchrony(turns, a, window_pairs=3)
    assert s.n_pairs == 1  # (0,1) only: (1,2),(2,3) lack a value, (3,4),(4,5) involve "other"
    assert s.r is None and s.series == ()


def test_pearson_degenerate() -> None:
    assert pearson([1.0, 2.0], [1.0, 2.0]) is None
    assert pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None
    assert pearson([1.0, 2.0, 3.0], [2.0, 4.0, 6.5]) == pytest.approx(float(np.corrcoef([1, 2, 3], [2, 4, 6.5])[0, 1]))


# ------------------------------------------------------------------------------------------ properties

from hypothesis import given, settings, strategies as st  # noqa: E402

_spans = st.lists(st.tuples(st.floats(0, 100), st.floats(0.01, 10), st.sampled_from("ABC")), max_size=25)


@settings(max_examples=150, deadline=None)
@given(_spans, _spans)
def test_own_speech_is_own_and_never_overlapped(excl: list, ovl: list) -> None:
    exclusive = [Segment(a, a + d, s) for a, d, s in excl]
    overlapping = [Segment(a, a + d, s) for a, d, s in ovl]
    own = own_speech_intervals("A", exclusive, overlapping)
    assert all(a < b for a, b in own) and all(b1 <= a2 for (_, b1), (a2, _) in zip(own, own[1:]))
    probes = [a + f * (b - a) for a, b in own for f in (0.01, 0.5, 0.99)]
    for t in probes:
        assert any(x.start <= t <= x.end for x in exclusive if x.speaker == "A")
        assert not any(x.start < t < x.end for x in overlapping if x.speaker != "A")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(-3, 3, allow_nan=False), min_size=2, max_size=40), st.floats(0.1, 10), st.floats(-5, 5))
def test_synchrony_is_bounded_and_scale_free(values: list[float], scale: float, shift: float) -> None:
    turns, a = _chain(values)
    s = vocal_synchrony(turns, a, window_pairs=5)
    t = vocal_synchrony(turns, {k: v * scale + shift for k, v in a.items()}, window_pairs=5)
    assert s.n_pairs == len(values) - 1
    for x, y in ((s.r, t.r), (s.client_follows_r, t.client_follows_r), (s.therapist_follows_r, t.therapist_follows_r)):
        if x is not None:
            assert -1.0 <= x <= 1.0
        if x is not None and y is not None:
            assert x == pytest.approx(y, abs=1e-6)


# ------------------------------------------------------------------------------------ synthetic signals

def _voice(f0: float, seconds: float, amp: float = 0.1) -> np.ndarray:
    """A vowel-like harmonic tone with a little vibrato (pyin sees it as voiced)."""
    t = np.arange(int(seconds * SR)) / SR
    inst = f0 * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(inst) / SR
    y = sum((0.6 ** k) * np.sin((k + 1) * phase) for k in range(5))
    return (amp * y / np.max(np.abs(y))).astype(np.float32)


def _session(parts: list[tuple[str, float, float, float]]) -> tuple[np.ndarray, list[Turn], list[Word], list[Segment]]:
    """(speaker, f0 Hz or 0 for noise, seconds, amplitude) back to back with 0.5 s gaps."""
    rng = np.random.default_rng(0)
    chunks, turns, words, segs = [np.zeros(SR // 2, np.float32)], [], [], []
    t = 0.5
    for i, (spk, f0, dur, amp) in enumerate(parts):
        sig = _voice(f0, dur, amp) if f0 > 0 else (amp * rng.standard_normal(int(dur * SR))).astype(np.float32)
        chunks += [sig, np.zeros(SR // 2, np.float32)]
        n = max(1, int(dur / 0.4))
        ws = [Word(t + k * dur / n, t + (k + 0.9) * dur / n, "la", 0.9, spk) for k in range(n)]
        words += ws
        turns.append(Turn(i, spk, "therapist" if spk == "T" else "client", ws[0].start, ws[-1].end, "la", n))
        segs.append(Segment(t, t + dur, spk))
        t += dur + 0.5
    return np.concatenate(chunks), turns, words, segs


def test_tones_f0_intensity_and_empty_values_with_reasons() -> None:
    parts = [("T", 200.0, 2.0, 0.1), ("C", 120.0, 2.0, 0.1), ("T", 200.0 * 2 ** (3 / 12), 2.0, 0.1),
             ("C", 120.0, 2.0, 0.1 * 10 ** (-10 / 20)), ("T", 200.0, 0.2, 0.1), ("C", 0.0, 2.0, 0.05),
             ("T", 200.0, 2.0, 0.1), ("C", 120.0, 2.0, 0.1)]
    x, turns, words, segs = _session(parts)
    res = analyse_prosody(x, SR, turns, words, segs, segs, CFG)
    p = res.turns
    assert p[0].f0_hz == pytest.approx(200.0, rel=0.01) and p[1].f0_hz == pytest.approx(120.0, rel=0.01)
    assert p[2].f0_st - p[0].f0_st == pytest.approx(3.0, abs=0.2)
    assert p[3].intensity_db - p[1].intensity_db == pytest.approx(-10.0, abs=0.3)
    assert p[3].f0_hz == pytest.approx(120.0, rel=0.01)
    # 0.2 s: too little own speech; noise: no F0 but an intensity; neither is an error
    assert p[4].f0_hz is None and p[4].intensity_db is None and "too little own speech" in p[4].note
    assert p[5].f0_hz is None and p[5].intensity_db is not None and "voiced" in p[5].note
    assert p[5].arousal is None


def test_prosody_evidence_on_flagged_events() -> None:
    turns = [Turn(0, "T", "therapist", 0.0, 2.0, "q", 3), Turn(1, "C", "client", 2.5, 3.0, "fine", 1)]
    p = TurnProsody(1, "C", 0.5, 0.4, f0_st=1.0, intensity_db=-30.0, speech_rate_wps=2.0, f0_z=-0.9,
                    intensity_z=-1.9, arousal=-1.4, speech_rate_change=-0.35)
    line = prosody_evidence(p, "client")
    assert line == "client voice: arousal -1.4 SD (pitch -0.9 SD, loudness -1.9 SD), speech rate -35% vs. own baseline"
    ev = (Event("rupture", "withdrawal.minimal_response", 2.5, 3.0, "C", "T", 1, 0.8, "one word", resolved=False),
          Event("long_pause", None, 2.0, 2.5, "C", None, 1, 1.0, "pause"))
    out = with_prosody_evidence(ev, [p], turns)
    d = out[0].details
    assert d.prosody_evidence == line and d.prosody.arousal == -1.4
    assert out[0].evidence == "one word"  # the tagger's evidence stays as it was
    assert out[1] == ev[1]
    # nothing measured against a baseline: the event is unchanged
    bare = TurnProsody(1, "C", 0.5, 0.4)
    assert with_prosody_evidence(ev, [bare], turns) == ev


# ---------------------------------------------------------------------------------------- session.json

def test_session_json_round_trip_keeps_prosody(tmp_path) -> None:
    import json
    from pathlib import Path

    from pipeline.serialize import read_session_json, record_to_dict, write_session_json

    src = Path(__file__).parent / "fixtures" / "session_small.json"
    rec = read_session_json(src)
    assert len(rec.prosody) == len(rec.turns)
    assert rec.prosody[5].arousal is not None and rec.prosody[3].f0_hz is None and rec.prosody[3].note
    write_session_json(rec, tmp_path / "s.json")
    assert json.loads((tmp_path / "s.json").read_text()) == json.loads(src.read_text())
    # a record without prosody (text mode, older files) writes no turns[].prosody key
    d = record_to_dict(dataclasses.replace(rec, prosody=()))
    assert d["turns"] and all("prosody" not in t for t in d["turns"])


# ------------------------------------------------------------------ flite sessions with sox manipulations

@pytest.fixture(scope="module")
def sox() -> str:
    """The sox binary (Debian `sox`, scripts/install_sysdeps.sh); skips without it, except in CI."""
    import os
    import shutil

    exe = shutil.which("sox")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("sox is not installed (scripts/install_sysdeps.sh)")
        pytest.skip("sox is not installed (scripts/install_sysdeps.sh)")
    return exe


@pytest.mark.slow
def test_recovers_sox_pitch_tempo_and_gain_changes(flite_synth, sox, transcriber, tmp_path) -> None:
    """scripts/eval_prosody.py with one cast pair (therapist slt, client rms): 12 lines rendered plain and
    with sox changes on six (pitch +/-300 cents, tempo 0.75/1.25, gain -10 dB); each change recovered
    within 0.5 semitone / 10% speech rate / 1.5 dB, and every other line and measure within those bounds
    of no change."""
    import eval_prosody as ev  # scripts/ is on sys.path (pyproject.toml: pythonpath)

    voices = {"T": "slt", "C": "rms"}
    plain = ev.measure(transcriber, *ev.render(flite_synth, sox, voices, False, tmp_path), CFG)
    manip = ev.measure(transcriber, *ev.render(flite_synth, sox, voices, True, tmp_path), CFG)
    rows = ev.changes(plain, manip)
    assert len(rows) == len(ev.LINES) and sum(bool(r["manipulation"]) for r in rows) == 6
    assert all(r["ok"] for r in rows), [r for r in rows if not r["ok"]]
    # the changes show against the speaker's own baseline, in the right direction
    assert manip[3].f0_z > 1.0 and manip[5].f0_z < -1.0
    assert manip[4].speech_rate_change < -0.15 and manip[6].speech_rate_change > 0.15
    assert manip[7].intensity_z < -1.0 and manip[10].intensity_z < -1.0
    assert manip[7].arousal < 0 and manip[3].arousal > 0
    print("line, F0 shift st, speech-rate ratio, intensity change dB:",
          [(r["line"], r["got_f0"], r["got_rate"], r["got_db"]) for r in rows])


# ------------------------------------------------------------------------------------------ real speech

def _acf_track(x: np.ndarray, sr: int, fmin: float = 75.0, fmax: float = 500.0) -> tuple[np.ndarray, np.ndarray]:
    """An independent F0 track (plain numpy, Boersma's 1993 autocorrelation method, not YIN): 40 ms Hann
    frames every 10 ms; the frame's normalised autocorrelation divided by the window's own, its highest peak
    in [1/fmax, 1/fmin] refined by parabolic interpolation; voiced when that peak exceeds 0.45 (Praat's
    voicing threshold). Returns (frame centre times, F0 Hz) of the voiced frames."""
    n, hop = int(0.04 * sr), int(0.01 * sr)
    win = np.hanning(n)
    rw = np.correlate(win, win, mode="full")[n - 1:]
    rw = rw / rw[0]
    lo, hi = int(sr / fmax), int(sr / fmin) + 1
    times, f0 = [], []
    for j, fr in enumerate(np.lib.stride_tricks.sliding_window_view(x, n)[::hop].astype(np.float64)):
        fr = (fr - fr.mean()) * win
        ra = np.correlate(fr, fr, mode="full")[n - 1:]
        if ra[0] <= 1e-10:
            continue
        r = (ra / ra[0])[: hi + 2] / rw[: hi + 2]
        lag = lo + int(np.argmax(r[lo:hi]))
        if r[lag] <= 0.45 or not lo < lag < hi - 1:
            continue
        a, b, c = r[lag - 1], r[lag], r[lag + 1]
        den = a - 2 * b + c
        times.append((j * hop + n / 2) / sr)
        f0.append(sr / (lag + (0.5 * (a - c) / den if den != 0 else 0.0)))
    return np.array(times), np.array(f0)


def _real_turns(pyannote_sample, stereo_clip) -> list[tuple[str, np.ndarray]]:
    """Real speech: the stereo clip's right channel (its left one carries 60 Hz hum, tested below) and
    every single-speaker stretch over 1 s of the pyannote sample (two real speakers, its reference RTTM)."""
    import soundfile as sf

    x, sr = sf.read(str(stereo_clip), dtype="float32", always_2d=True)
    out = [("stereo ch1", x[:, 1])]
    y, sr2 = sf.read(str(pyannote_sample["wav"]), dtype="float32")
    assert sr == sr2 == SR
    segs = []
    for line in pyannote_sample["rttm"].read_text().splitlines():
        f = line.split()
        segs.append(Segment(float(f[3]), float(f[3]) + float(f[4]), f[7]))
    for spk in sorted({s.speaker for s in segs}):
        for a, b in own_speech_intervals(spk, segs, segs):
            if b - a > 1.0:
                out.append((f"{spk} {a:.2f}", y[int(a * SR): int(b * SR)]))
    return out


def test_f0_on_real_speech_matches_an_independent_estimate(pyannote_sample, stereo_clip) -> None:
    """On frames both trackers call voiced, the stage's pyin F0 agrees with a plain autocorrelation
    tracker, frame by frame: per stretch, the median difference within 0.25 semitone, the mean absolute
    difference of the frames within 1 semitone of each other at most 0.35 semitone (pyin reports
    0.25-semitone bins), and at most 30% of frames further apart (octave slips; both trackers make them,
    on different frames). Turn statistics
    are not compared here: in a stretch whose F0 spans an octave (one of the sample's does) a few slips
    move a median by semitones while the tracks agree."""
    from pipeline.prosody import f0_track

    checked = 0
    report: list[tuple[str, int, float, float, float]] = []
    for name, y in _real_turns(pyannote_sample, stereo_clip):
        f0, voiced = f0_track(y, SR, CFG)
        tp = np.arange(f0.shape[0]) * CFG.hop_s
        ta, fa = _acf_track(y, SR)
        if ta.size == 0:
            continue
        j = np.searchsorted(ta, tp).clip(0, ta.size - 1)
        both = voiced & np.isfinite(f0) & (np.abs(ta[j] - tp) < 0.006)
        if both.sum() < 10:
            continue
        checked += 1
        st_p, st_a = 12 * np.log2(f0[both] / 100.0), 12 * np.log2(fa[j][both] / 100.0)
        diff = st_p - st_a
        close = np.abs(diff) <= 1.0
        report.append((name, int(both.sum()), round(float(np.median(diff)), 3),
                       round(float(np.mean(np.abs(diff[close]))), 3), round(float(np.mean(~close)), 3)))
        assert abs(float(np.median(diff))) <= 0.25, report[-1]
        assert float(np.mean(np.abs(diff[close]))) <= 0.35, report[-1]  # pyin bins: 0.25 st
        assert float(np.mean(~close)) <= 0.3, report[-1]  # octave slips of either tracker
    assert checked >= 6
    print("stretch, frames, median difference st, mean |difference| within 1 st, share > 1 st:", report)


def test_fast_pyin_is_librosa_pyin_on_real_speech(pyannote_sample, stereo_clip) -> None:
    """pipeline.prosody.pyin (observation probabilities for all frames at once) against librosa 0.11 on
    real speech, at the full search range and at a speaker's narrowed one: the observation probabilities
    equal those of librosa's per-frame `__pyin_helper` (scipy's boltzmann.pmf) to 1e-12, and the decoded
    track equals librosa.pyin's: the same voiced frames, the same F0. A wrong rank, N, λ or no-trough mass
    moves probabilities by far more than 1e-12."""
    import librosa
    import scipy.stats
    from librosa.core.pitch import _cumulative_mean_normalized_difference, _parabolic_interpolation

    from pipeline.prosody import _observation_probs, pyin

    frame, hop = int(round(CFG.frame_s * SR)), int(round(CFG.hop_s * SR))
    helper = getattr(librosa.core.pitch, "__pyin_helper")  # module-level name, not mangled
    thresholds = np.linspace(0, 1, 101)
    beta_probs = np.diff(scipy.stats.beta.cdf(thresholds, 2, 18))
    voiced_frames = frames = 0
    for fmin, fmax in ((CFG.fmin_hz, CFG.fmax_hz), (80.0, 320.0)):
        nbps = int(np.ceil(1.0 / CFG.resolution_st))
        n_bins = int(np.floor(12 * nbps * np.log2(fmax / fmin))) + 1
        min_period, max_period = int(np.floor(SR / fmax)), min(int(np.ceil(SR / fmin)), frame - 1)
        for name, y in _real_turns(pyannote_sample, stereo_clip):
            y = np.ascontiguousarray(y, dtype=np.float32)
            frames_y = librosa.util.frame(np.pad(y, frame // 2), frame_length=frame, hop_length=hop)
            yin = _cumulative_mean_normalized_difference(frames_y, min_period, max_period)
            shifts = _parabolic_interpolation(yin)
            ours = _observation_probs(yin, shifts, SR, fmin, min_period, n_bins, nbps)
            theirs = helper(yin, shifts, SR, thresholds, 2, beta_probs, 0.01, min_period, fmin, n_bins, nbps)[0][0]
            assert ours.shape == theirs.shape
            assert np.abs(ours - theirs).max() <= 1e-12, (name, fmin, float(np.abs(ours - theirs).max()))

            f0, voiced = pyin(y, sr=SR, fmin=fmin, fmax=fmax, frame_length=frame, hop_length=hop,
                              resolution=CFG.resolution_st)
            f0_l, voiced_l, _ = librosa.pyin(y, fmin=fmin, fmax=fmax, sr=SR, frame_length=frame, hop_length=hop,
                                             resolution=CFG.resolution_st, center=True)
            assert np.array_equal(voiced, voiced_l), name
            np.testing.assert_allclose(f0, f0_l, rtol=1e-12, equal_nan=True, err_msg=name)
            voiced_frames += int(voiced.sum())
            frames += voiced.size
    assert voiced_frames >= 500 and voiced_frames <= 0.9 * frames  # real voiced and unvoiced speech was compared


def test_fast_pyin_refuses_what_librosa_refuses() -> None:
    from librosa.util.exceptions import ParameterError

    from pipeline.prosody import pyin

    y = np.zeros(SR, np.float32)
    for fmin, fmax in ((100.0, 9000.0), (300.0, 200.0), (0.0, 200.0), (19.0, 200.0)):  # Nyquist, order, 0, frame
        with pytest.raises(ParameterError):
            pyin(y, sr=SR, fmin=fmin, fmax=fmax, frame_length=800, hop_length=480, resolution=0.25)


def test_mains_hum_is_not_taken_for_a_voice(stereo_clip) -> None:
    """The stereo clip's left channel: speech over 60 Hz hum at -35 dBFS. No F0 at the hum (the search
    floor is 75 Hz): an F0 in the voice range, or an empty value with its reason."""
    import soundfile as sf

    x, sr = sf.read(str(stereo_clip), dtype="float32", always_2d=True)
    seg = (Segment(0.0, x.shape[0] / sr, "ch0"),)
    p = analyse_prosody(x[:, 0], sr, [Turn(0, "ch0", "client", 0.0, x.shape[0] / sr, "x", 20)], [], seg, seg,
                        CFG).turns[0]
    assert p.intensity_db is not None
    assert (p.f0_hz is None and "voiced" in p.note) or p.f0_hz > 80.0


def test_corpus_turns_table_carries_prosody(tmp_path) -> None:
    import shutil
    from pathlib import Path

    import pyarrow.parquet as pq

    from pipeline.exports import write_corpus_tables
    from pipeline.exports._formats import TURN_PROSODY_COLUMNS
    from pipeline.serialize import read_session_json

    src = Path(__file__).parent / "fixtures" / "session_small.json"
    (tmp_path / "demo-small").mkdir()
    shutil.copy(src, tmp_path / "demo-small" / "session.json")
    write_corpus_tables(tmp_path)
    turns = pq.read_table(tmp_path / "turns.parquet").to_pylist()
    assert set(TURN_PROSODY_COLUMNS) <= set(turns[0])
    assert turns[5]["arousal"] == pytest.approx(-1.422, abs=1e-3) and turns[3]["f0_hz"] is None
    assert "too little own speech" in turns[3]["prosody_note"]
    session = pq.read_table(tmp_path / "sessions.parquet").to_pylist()[0]
    sync = read_session_json(src).metrics.prosody.vocal_synchrony
    assert session["vocal_synchrony_r"] == sync.r and session["vocal_synchrony_pairs"] == sync.n_pairs > 10


def test_child_and_low_voices_and_empty_session() -> None:
    """A child's voice (~380 Hz) and a low adult voice (~90 Hz) are both tracked: each speaker's pyin
    range follows their own typical F0. An empty session gives empty results, not an error."""
    parts = [("K", 380.0, 1.5, 0.1), ("L", 90.0, 1.5, 0.1)] * 3
    x, turns, words, segs = _session(parts)
    for hop in (0.02, 0.03, 0.04, 0.06):  # a narrow search range with a long hop was a librosa error
        res = analyse_prosody(x, SR, turns, words, segs, segs, dataclasses.replace(CFG, hop_s=hop))
        for p, (_, f0, _, _) in zip(res.turns, parts):
            assert p.f0_hz == pytest.approx(f0, rel=0.02), (hop, p)
    # voices at the edges of the search range, and a one-octave range in the config
    parts = [("H", 480.0, 1.5, 0.1), ("B", 78.0, 1.5, 0.1)] * 3
    x, turns, words, segs = _session(parts)
    for cfg in (CFG, dataclasses.replace(CFG, range_octaves=0.25), dataclasses.replace(CFG, fmin_hz=70.0, fmax_hz=90.0)):
        res = analyse_prosody(x, SR, turns, words, segs, segs, cfg)
        for p, (spk, f0, _, _) in zip(res.turns, parts):
            if cfg.fmax_hz >= f0:
                assert p.f0_hz == pytest.approx(f0, rel=0.02), (cfg, p)
    empty = analyse_prosody(np.zeros(SR, np.float32), SR, [], [], [], [], CFG)
    assert empty.turns == () and empty.synchrony.r is None and empty.synchrony.n_pairs == 0


def test_a_librosa_refusal_is_a_note_not_a_failed_session(monkeypatch) -> None:
    from librosa.util.exceptions import ParameterError

    import pipeline.prosody as pros

    def refuse(*a, **k):
        raise ParameterError("refused")

    monkeypatch.setattr(pros, "f0_track", refuse)
    x, turns, words, segs = _session([("T", 200.0, 1.5, 0.1), ("C", 120.0, 1.5, 0.1)])
    res = analyse_prosody(x, SR, turns, words, segs, segs, CFG)
    assert len(res.turns) == len(turns) == 2
    assert all(p.f0_hz is None and p.intensity_db is not None and "F0 not computed" in p.note for p in res.turns)
