"""The degradation suite's conditions (scripts/research/degrade.py) and its scoring (scripts/research/robustness.py):
each condition does what its name says, on hand-built signals; no models, no flite."""

from __future__ import annotations

import numpy as np
import pytest

from research import degrade as d
from research.robustness import SessionScore, markdown_table, pool, verdict

SR = 16000
SPANS = ((0.5, 2.5), (3.2, 5.0), (6.0, 8.5), (9.5, 11.0))


def speechlike(seconds: float = 12.0, spans: d.Spans = SPANS, seed: int = 0) -> np.ndarray:
    """A syllable-rate modulated harmonic complex with a noisy part inside `spans`, silence elsewhere."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    voiced = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 20))
    x = (0.1 * voiced + 0.03 * rng.standard_normal(t.size)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    return np.where(d.span_mask(t.size, SR, spans), x, 0.0)


def band_db(y: np.ndarray, sr: int, lo: float, hi: float, ref: tuple[float, float] = (500.0, 3000.0)) -> float:
    """Mean power density in [lo, hi) Hz relative to the reference band, dB."""
    f = np.fft.rfftfreq(y.size, 1 / sr)
    p = np.abs(np.fft.rfft(y)) ** 2
    return float(10 * np.log10(p[(f >= lo) & (f < hi)].mean() / p[(f >= ref[0]) & (f < ref[1])].mean()))


def test_speech_spans_are_the_union_of_utterances() -> None:
    truth = {"utterances": [{"start": 3.0, "end": 4.0}, {"start": 0.5, "end": 2.0}, {"start": 1.5, "end": 2.5},
                            {"start": 5.0, "end": 5.0}]}
    assert d.speech_spans(truth) == ((0.5, 2.5), (3.0, 4.0))


@pytest.mark.parametrize("snr", [20, 10, 5])
def test_stationary_noise_condition_hits_its_snr(snr: int) -> None:
    x = speechlike()
    y, sr = d.render(d.condition(f"noise_{snr}db"), x, SR, SPANS, d.condition_rng(1, "noise", "s"))
    assert sr == SR and y.dtype == np.float32
    # measured from the recording alone: noise from the silences, speech as the excess inside the spans
    assert abs(d.estimate_snr_db(y.astype(np.float64), SR, SPANS) - snr) < 0.5


@pytest.mark.parametrize("snr", [20, 10, 5])
def test_babble_is_added_at_its_snr(snr: int) -> None:
    x = speechlike()
    sources = [speechlike(7.0, ((0.2, 3.0), (3.5, 6.8)), seed=s) for s in (2, 3, 4)]
    rng = np.random.default_rng(5)
    noise = d.babble_noise(x.size, sources, rng)
    y = d.add_noise(x, SR, noise, snr, SPANS)
    measured = d.power_db(d.speech_power(x, SR, SPANS)) - d.power_db(float(np.mean((y - x) ** 2)))
    assert abs(measured - snr) < 0.5
    # babble fills the silences too (eight streams at random offsets), unlike the speech
    assert np.mean(noise[~d.span_mask(x.size, SR, SPANS)] ** 2) > 0.2


def test_babble_condition_needs_sources() -> None:
    with pytest.raises(ValueError, match="babble"):
        d.render(d.condition("babble_10db"), speechlike(), SR, SPANS, np.random.default_rng(0))


@pytest.mark.parametrize("name,rt60,drr", [("office_reverb", 0.4, 3.0), ("large_room_reverb", 0.9, -3.0)])
def test_reverb_has_its_rt60_and_drr_and_keeps_time(name: str, rt60: float, drr: float) -> None:
    step = d.condition(name).steps[0]
    assert isinstance(step, d.Reverb) and (step.rt60_s, step.drr_db) == (rt60, drr)
    h = d.room_impulse_response(step.rt60_s, step.drr_db, SR, np.random.default_rng(3))
    assert h[0] == 1.0 and abs(d.schroeder_rt60(h, SR) - rt60) < 0.1 * rt60
    assert abs(10 * np.log10(1.0 / np.sum(h[1:] ** 2)) - drr) < 0.01
    x = speechlike()
    y, _ = d.render(d.condition(name), x, SR, SPANS, np.random.default_rng(3))
    assert d.best_lag(x, np.concatenate([y, np.zeros(400)]), 400) == 0  # direct path at lag 0: truth times hold
    tail = d.span_mask(x.size, SR, ((2.5, 2.5 + rt60 / 4),))  # the reverberant tail rings past the speech
    assert np.mean(y[tail] ** 2) > 1e-4 and np.all(x[tail] == 0)


def test_telephone_band_removes_energy_outside_300_3400_hz() -> None:
    rng = np.random.default_rng(4)
    white = 0.1 * rng.standard_normal(SR * 4)
    y, sr = d.render(d.condition("telephone"), white, SR, ((0.0, 4.0),), rng)
    assert sr == 8000 and y.size == white.size // 2
    assert band_db(white, SR, 3600, 8000) > -3  # flat input
    assert band_db(y, sr, 3600, 4000) < -30  # above 3.4 kHz: only mu-law quantisation noise is left
    assert band_db(y, sr, 0, 200) < -30
    assert band_db(y, sr, 400, 3300, ref=(500, 3000)) > -1


def test_telephone_keeps_time() -> None:
    x = speechlike()
    y, sr = d.telephone(x, SR, d.Telephone(mulaw=False))
    ref, _ = d.telephone(x, SR, d.Telephone(mulaw=False, sr=SR))  # the same band at 16 kHz, downsampled
    assert d.best_lag(ref[::2], np.concatenate([y, np.zeros(100)]), 100) == 0


@pytest.mark.parametrize("name", ["opus_16k", "aac_24k", "mp3_32k"])
def test_codec_round_trip_is_aligned_and_near_its_bit_rate(name: str) -> None:
    step = d.condition(name).steps[0]
    assert isinstance(step, d.Codec)
    x = speechlike(6.0, ((0.3, 2.5), (3.0, 5.5)))
    y, kbps = d.codec_round_trip(x, SR, step)
    assert y.size == x.size
    assert kbps < 1.5 * step.kbps
    assert d.best_lag(x, np.concatenate([y, np.zeros(200)]), 200) == 0
    assert np.corrcoef(x, y)[0, 1] > 0.8
    assert not np.allclose(x, y, atol=1e-3)  # lossy


def test_clipping_clips() -> None:
    x = speechlike()
    x *= 0.7 / np.max(np.abs(x))
    y, _ = d.render(d.condition("clipping"), x, SR, SPANS, np.random.default_rng(0))
    assert np.max(np.abs(y)) == pytest.approx(1.0)
    clipped = np.abs(y) >= 1.0 - 1e-6
    assert 0.01 < clipped.mean() < 0.5
    quiet = np.abs(x) < 0.1  # below full scale after the 12 dB drive: only gained
    assert np.allclose(y[quiet], 10 ** (12 / 20) * x[quiet], atol=1e-5)


def test_quieter_client_renders_the_client_10_db_down() -> None:
    """The condition names a source in which the generator mixes the client 10 dB down: its gains, applied by
    synth.mix to two voices, leave the client's regions 10 dB below the therapist's."""
    from make_synthetic_sessions import parse_attenuation
    from synth import mix

    cond = d.condition("quieter_client_10db")
    assert cond.steps == () and cond.attenuate == "client:10"
    gains = parse_attenuation(cond.attenuate)
    t_clip, c_clip = speechlike(2.0, ((0.0, 2.0),), seed=1), speechlike(2.0, ((0.0, 2.0),), seed=2)
    y = mix([t_clip, c_clip], [(0, 2 * SR), (3 * SR, 5 * SR)], [gains["therapist"], gains["client"]], 6 * SR,
            noise_dbfs=None)
    level = lambda a, b: 10 * np.log10(np.mean(y[a * SR:b * SR].astype(np.float64) ** 2))  # noqa: E731
    assert level(3, 5) - level(0, 2) == pytest.approx(-10.0, abs=0.1)


def test_render_is_seeded() -> None:
    x = speechlike()
    cond = d.condition("office_noise_10db")
    a, _ = d.render(cond, x, SR, SPANS, d.condition_rng(11, cond.name, "s1"))
    b, _ = d.render(cond, x, SR, SPANS, d.condition_rng(11, cond.name, "s1"))
    c, _ = d.render(cond, x, SR, SPANS, d.condition_rng(11, cond.name, "s2"))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_every_condition_is_named_once_and_the_done_when_ones_exist() -> None:
    names = [c.name for c in d.CONDITIONS]
    assert len(names) == len(set(names)) and names[0] == "clean"
    for name in ("office_noise_10db", "office_babble_10db"):
        steps = d.condition(name).steps
        assert steps[0] == d.OFFICE and isinstance(steps[1], d.Noise) and steps[1].snr_db == 10
    with pytest.raises(KeyError):
        d.condition("underwater")


# ------------------------------------------------------------------------------------------ scoring


def _score(**kw: object) -> SessionScore:
    base: dict[str, object] = dict(condition="c", session_id="s", duration_s=120.0, ok=True, wer_errors=5,
                                   wer_words=100, der=0.04, share_err_pp=1.0, int_tp=2, int_pred=2, int_true=3,
                                   lp_hit=1, lp_true=1, ruptures=1, truth_ruptures=2, seconds=30.0, trustworthy=True)
    base.update(kw)
    return SessionScore(**base)  # type: ignore[arg-type]


def test_pool_sums_counts_and_averages_rates() -> None:
    rows = [_score(), _score(session_id="t", wer_errors=15, der=0.08, share_err_pp=3.0, trustworthy=False,
                             warnings=("low_snr",), seconds=90.0), _score(session_id="u", ok=False)]
    r = pool("c", rows)
    assert (r.sessions, r.failed, r.untrustworthy, r.warnings) == (3, 1, 1, ("low_snr",))
    assert r.wer == pytest.approx(0.10) and r.der == pytest.approx(0.06)
    assert (r.share_err_pp_mean, r.share_err_pp_max) == (2.0, 3.0)
    assert r.interruption_precision == 1.0 and r.interruption_recall == pytest.approx(4 / 6)
    assert r.ruptures_per_10min == pytest.approx(2 / 240 * 600) and r.speed_x == pytest.approx(2.0)
    assert r.truth_ruptures_per_10min == pytest.approx(4 / 240 * 600)
    table = markdown_table([r])
    lines = table.strip().splitlines()
    assert len(lines) == 3 and lines[2].startswith("| c (1 failed) | 10.0% | 6.0% | 2.0 / 3.0 pp |")
    assert "| 5.0 (truth 10.0) |" in lines[2] and "1/2 (low_snr)" in lines[2]


def test_verdict_of_the_done_when_clause() -> None:
    assert verdict(_score()).startswith("within")
    assert verdict(_score(der=0.2, trustworthy=False, warnings=("low_snr",))).startswith(
        "marked untrustworthy: low_snr")
    assert verdict(_score(share_err_pp=6.0)).startswith("MISSED")
    assert verdict(_score(ok=False)).startswith("failed")


def test_brown_noise_falls_6_db_per_octave_and_hits_its_snr() -> None:
    n = d.brown_noise(SR * 8, np.random.default_rng(6))
    assert abs(float(np.std(n)) - 1.0) < 1e-6
    for lo in (100.0, 200.0, 400.0, 800.0):  # -6 dB per octave (power 1/f^2)
        assert abs(band_db(n, SR, 2 * lo, 4 * lo) - band_db(n, SR, lo, 2 * lo) + 6.0) < 1.0
    x = speechlike()
    y, _ = d.render(d.Condition("b", "", (d.Noise("brown", 5),)), x, SR, SPANS, np.random.default_rng(7))
    measured = d.power_db(d.speech_power(x, SR, SPANS)) - d.power_db(float(np.mean((y - x) ** 2)))
    assert abs(measured - 5.0) < 0.5


def test_issue_17_conditions_are_named_but_not_in_the_default_set() -> None:
    default = {c.name for c in d.CONDITIONS}
    for name, att in (("large_room_brown_5db", None), ("large_room_brown_5db_client10", "client:10"),
                      ("large_room_brown_5db_client15", "client:15")):
        c = d.condition(name)
        assert name not in default and c.attenuate == att
        assert c.steps == (d.LARGE_ROOM, d.Noise("brown", 5))
    with pytest.raises(ValueError, match="brown"):
        d.Noise("purple", 5)
