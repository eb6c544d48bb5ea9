"""pipeline.channels: the stereo one-speaker-per-channel path on the real stereo clip and on synthetic
two-channel signals with exactly known speech times."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.channels import channel_separation_db, diarize_channels, frame_levels_db, smooth_activity
from pipeline.config import DiarizationConfig
from pipeline.records import Audio, Segment

SR = 16000
CFG = DiarizationConfig()


def _audio(samples: np.ndarray) -> Audio:
    x = np.ascontiguousarray(samples, dtype=np.float32)
    return Audio(x, SR, SR, x.shape[0], "test")


def _speech_like(duration: float, rng: np.random.Generator, level: float = 0.1) -> np.ndarray:
    """Amplitude-modulated noise + harmonics: a stand-in for speech with a steady level (4 Hz syllables
    never drop more than ~10 dB)."""
    t = np.arange(int(duration * SR)) / SR
    env = 0.65 + 0.35 * np.sin(2 * np.pi * 4 * t)
    voiced = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420, 560), 1))
    return (level * env * (0.6 * voiced / 2 + 0.4 * rng.standard_normal(t.size))).astype(np.float32)


def _two_channel(spans0, spans1, duration=8.0, gain1=1.0, noise=1e-3, seed=0):
    rng = np.random.default_rng(seed)
    x = noise * rng.standard_normal((2, int(duration * SR))).astype(np.float32)
    for c, spans, g in ((0, spans0, 1.0), (1, spans1, gain1)):
        for s, e in spans:
            seg = _speech_like(e - s, rng) * g
            x[c, int(s * SR): int(s * SR) + seg.size] += seg
    return x


def _union(segs, speaker):
    return [(s.start, s.end) for s in segs if s.speaker == speaker]


def _covered(segs, t0, t1, speaker):
    return sum(max(0.0, min(e, t1) - max(s, t0)) for s, e in _union(segs, speaker))


def _no_overlap_within(track):
    for a, b in zip(track, track[1:]):
        assert a.end <= b.start + 1e-9, (a, b)


# ------------------------------------------------------------------------------- synthetic, exact times


def test_known_speech_times_recovered():
    spans0 = [(1.0, 2.5), (4.0, 5.5)]
    spans1 = [(3.0, 3.8), (5.0, 7.0)]  # 5.0-5.5 overlaps channel 0
    d = diarize_channels(_audio(_two_channel(spans0, spans1, gain1=2.0)), CFG)
    assert d is not None and d.method == "channels"
    assert d.speakers == ("ch0", "ch1")
    got0, got1 = _union(d.overlapping, "ch0"), _union(d.overlapping, "ch1")
    assert len(got0) == 2 and len(got1) == 2
    for got, want in ((got0, spans0), (got1, spans1)):
        for (gs, ge), (ws, we) in zip(got, want):
            assert gs == pytest.approx(ws, abs=0.04) and ge == pytest.approx(we, abs=0.04)
    # exclusive: the louder channel 1 owns the overlap 5.0-5.5, channel 0 keeps 4.0-5.0
    _no_overlap_within(d.exclusive)
    assert _covered(d.exclusive, 5.05, 5.45, "ch1") == pytest.approx(0.4, abs=0.02)
    assert _covered(d.exclusive, 5.05, 5.45, "ch0") == pytest.approx(0.0, abs=0.02)
    assert _covered(d.exclusive, 4.05, 4.9, "ch0") == pytest.approx(0.85, abs=0.02)
    assert [s.start for s in d.overlapping] == sorted(s.start for s in d.overlapping)


def test_short_gap_bridged_and_blip_dropped():
    # a 0.1 s gap inside channel 0's speech is bridged; a 0.05 s blip on channel 1 is dropped
    d = diarize_channels(_audio(_two_channel([(1.0, 2.0), (2.1, 3.0)], [(4.0, 5.0), (6.0, 6.05)])), CFG)
    assert d is not None
    assert _union(d.overlapping, "ch0") == [pytest.approx((1.0, 3.0), abs=0.04)]
    assert len(_union(d.overlapping, "ch1")) == 1


def test_crosstalk_leak_is_not_speech():
    x = _two_channel([(1.0, 3.0)], [(4.0, 6.0)])
    leaky = np.stack([x[0] + 0.2 * x[1], x[1] + 0.2 * x[0]])  # -14 dB leak both ways
    d = diarize_channels(_audio(leaky), CFG)
    assert d is not None
    assert _covered(d.overlapping, 1.0, 3.0, "ch1") == pytest.approx(0.0, abs=0.05)
    assert _covered(d.overlapping, 4.0, 6.0, "ch0") == pytest.approx(0.0, abs=0.05)


def test_one_silent_channel_is_not_a_channel_recording():
    # everything on one channel: both speakers may be there, so the caller must use pyannote
    assert diarize_channels(_audio(_two_channel([(1.0, 3.0), (4.0, 6.0)], [])), CFG) is None


def test_silence_and_mono_are_declined():
    assert diarize_channels(_audio(np.zeros((2, SR * 2))), CFG) is None
    mono = _two_channel([(1.0, 2.0)], [])[:1]
    assert diarize_channels(_audio(mono), CFG) is None


# ------------------------------------------------------------------------------------ real stereo clip


@pytest.fixture(scope="module")
def stereo(stereo_clip) -> Audio:
    x, sr = sf.read(str(stereo_clip), dtype="float32", always_2d=True)
    assert sr == SR and x.shape[1] == 2
    return _audio(x.T)


def test_stereo_clip_two_speakers_by_channel(stereo):
    d = diarize_channels(stereo, CFG)
    assert d is not None and d.method == "channels"
    assert d.speakers == ("ch0", "ch1")
    # channel speech read off the clip's frame levels: ch0 talks ~0.3-4.65 s (pause ~2.4-2.7 s);
    # ch1 ("The horizon seems extremely distant.") ~0.35-2.4 s and is digitally silent after 2.6 s
    ch1 = _union(d.overlapping, "ch1")
    assert ch1[0][0] == pytest.approx(0.35, abs=0.1)
    assert ch1[-1][1] == pytest.approx(2.45, abs=0.15)
    assert _covered(d.overlapping, 0.4, 2.3, "ch1") > 0.9 * 1.9
    assert _covered(d.overlapping, 0.0, 0.25, "ch0") == 0.0  # leading noise is not speech
    assert _covered(d.overlapping, 0.4, 2.3, "ch0") > 0.9 * 1.9
    assert _covered(d.overlapping, 2.8, 4.5, "ch0") > 0.9 * 1.7
    assert _covered(d.overlapping, 2.7, 5.0, "ch1") == 0.0
    _no_overlap_within(d.exclusive)
    for sp in d.speakers:
        _no_overlap_within([s for s in d.overlapping if s.speaker == sp])


def test_stereo_clip_duplicated_mono_returns_none(stereo):
    left = stereo.samples[0]
    assert diarize_channels(_audio(np.stack([left, left])), CFG) is None
    mix = stereo.mono
    assert diarize_channels(_audio(np.stack([mix, mix])), CFG) is None
    assert diarize_channels(_audio(np.stack([mix, 0.5 * mix])), CFG) is None  # gain-scaled copy


def test_stereo_clip_heavy_crosstalk_returns_none(stereo):
    a, b = stereo.samples
    mixed = np.stack([a + 0.8 * b, b + 0.8 * a])  # ~2 dB separation < 6 dB
    assert diarize_channels(_audio(mixed), CFG) is None


def test_stereo_clip_separation_threshold_from_config(stereo):
    strict = DiarizationConfig(stereo_min_channel_separation_db=200.0)
    assert diarize_channels(stereo, strict) is None


# --------------------------------------------------------------------------------------------- helpers


def test_frame_levels_db_of_a_sine():
    t = np.arange(SR) / SR
    x = (0.5 * np.sin(2 * np.pi * 440 * t))[None]
    lv = frame_levels_db(x, SR, 0.03, 0.01)
    assert lv.shape == (1, 98)
    assert np.allclose(lv[0, 1:-1], 20 * np.log10(0.5 / np.sqrt(2)), atol=0.1)


def test_channel_separation_db():
    levels = np.array([[-20.0, -20.0, -80.0, -80.0], [-80.0, -80.0, -30.0, -30.0]])
    speech = levels > -60
    assert channel_separation_db(levels, speech) == pytest.approx(50.0)
    assert channel_separation_db(np.stack([levels[0], levels[0]]), np.stack([speech[0], speech[0]])) == 0.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=60), st.integers(0, 6), st.integers(0, 6))
def test_smooth_activity_properties(mask, min_silence, min_speech):
    m = np.array(mask)
    out = smooth_activity(m, min_silence, min_speech)
    assert out.shape == m.shape
    # every remaining speech run is long enough
    padded = np.concatenate([[False], out, [False]]).astype(int)
    starts, ends = np.flatnonzero(np.diff(padded) == 1), np.flatnonzero(np.diff(padded) == -1)
    assert all(e - s >= min_speech for s, e in zip(starts, ends))
    # nothing is invented outside the span of the original speech
    if m.any():
        first, last = np.flatnonzero(m)[[0, -1]]
        assert not out[:first].any() and not out[last + 1:].any()
    else:
        assert not out.any()


# ------------------------------------------------------------------------------- crosstalk gate for the ASR


def test_gate_to_speech_mutes_outside_padded_speech():
    from pipeline.channels import gate_to_speech

    x = np.ones((1, SR * 4), dtype=np.float32)
    segs = [Segment(1.0, 1.5, "ch0"), Segment(1.6, 2.0, "ch0")]  # padded by 0.2 s they merge into 0.8-2.2 s
    y = gate_to_speech(x, SR, segs, pad_s=0.2)
    assert y.shape == x.shape and x.all()  # the input is not modified
    on = np.flatnonzero(y[0])
    assert on[0] == int(0.8 * SR) and on[-1] == int(2.2 * SR) - 1 and on.size == int(1.4 * SR)
    assert not gate_to_speech(x, SR, [], pad_s=0.2).any()


def test_words_in_speech_keeps_words_mostly_inside():
    from pipeline.channels import words_in_speech
    from pipeline.records import Word

    segs = [Segment(1.0, 2.0, "ch0"), Segment(5.0, 6.0, "ch0")]
    w = lambda s, e, t: Word(s, e, t, 0.9, None)  # noqa: E731
    words = [w(0.2, 0.5, "before"), w(0.7, 1.1, "edge-in"), w(2.1, 2.6, "edge-out"), w(1.2, 1.5, "inside"),
             w(3.0, 3.4, "between"), w(5.5, 5.5, "point"), w(6.4, 6.5, "after")]
    kept = [x.text for x in words_in_speech(words, segs, pad_s=0.2)]
    # edge-in: 0.3 of 0.4 s inside 0.8-2.2; edge-out: 0.1 of 0.5 s inside
    assert kept == ["edge-in", "inside", "point"]
