"""Issue 17 (the quieter voice), pure parts: per-speaker levels and SNR, the gain plan and its application,
word coverage, the warning rule, the quality block in session.json and on the review page, per-speaker WER
scoring and the generator's attenuation option. No models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.config import LevelsConfig, QualityConfig
from pipeline.exports._html import render_index, render_report
from pipeline.exports._summary import session_counts
from pipeline.levels import apply_gains, frame_mask, gain_curve_db, measure_levels, plan_gains, with_gains
from pipeline.quality import assess_quality, quality_warnings, with_warnings, word_coverage
from pipeline.records import (Diarization, Levels, Metrics, Provenance, Quality, QualityWarning, Segment, SessionRecord, Speaker,
                              SpeakerLevel, SpeakerQuality, Turn, Word)
from pipeline.serialize import record_from_dict, record_to_dict

SR = 16000


def _tone_speech(rng: np.random.Generator, seconds: float, level_dbfs: float) -> np.ndarray:
    """Noise-like 'speech' at an RMS of `level_dbfs`, with short pauses (so the active level matters)."""
    n = int(seconds * SR)
    x = rng.standard_normal(n)
    env = np.ones(n)
    for k in range(int(seconds)):  # 0.15 s pause each second
        env[k * SR + int(0.85 * SR):(k + 1) * SR] = 0.0
    x = x * env
    active = x[env > 0]
    return x * (10 ** (level_dbfs / 20) / np.sqrt(np.mean(active**2)))


def _two_speakers(client_db: float, noise_dbfs: float = -70.0, seed: int = 0) -> tuple[np.ndarray, Diarization]:
    """Therapist (S1) at -20 dBFS and client (S2) `client_db` relative, 6 s each, alternating, over noise."""
    rng = np.random.default_rng(seed)
    parts, segs, t = [], [], 0.0
    gap = np.zeros(int(1.0 * SR))
    for i in range(4):
        spk, db = ("S1", -20.0) if i % 2 == 0 else ("S2", -20.0 + client_db)
        parts += [gap, _tone_speech(rng, 6.0, db)]
        segs.append(Segment(t + 1.0, t + 7.0, spk))
        t += 7.0
    parts.append(gap)
    x = np.concatenate(parts)
    x = x + rng.standard_normal(x.size) * 10 ** (noise_dbfs / 20)
    seg = tuple(segs)
    return x.astype(np.float32), Diarization(seg, seg, ("S1", "S2"), "test")


# ------------------------------------------------------------------------------------------------ levels

def test_frame_mask_marks_frames_whose_centre_is_inside() -> None:
    m = frame_mask([Segment(0.1, 0.2, "A")], 40, hop_s=0.01, frame_s=0.0)
    assert np.flatnonzero(m).tolist() == list(range(10, 21))
    assert frame_mask([(0.1, 0.2)], 40, 0.01, 0.0, pad_s=0.05).sum() == 21
    assert not frame_mask([], 10, 0.01, 0.03).any()


@pytest.mark.parametrize("client_db", [0.0, -6.0, -10.0, -15.0])
def test_measure_levels_finds_the_level_difference_and_snr(client_db: float) -> None:
    x, diar = _two_speakers(client_db)
    lv = measure_levels(x, SR, diar, LevelsConfig())
    s1, s2 = lv.of("S1"), lv.of("S2")
    assert s1 is not None and s2 is not None and s1.level_dbfs is not None and s2.level_dbfs is not None
    assert s2.level_dbfs - s1.level_dbfs == pytest.approx(client_db, abs=1.0)
    assert lv.noise_dbfs == pytest.approx(-70.0, abs=2.0)
    assert s1.snr_db == pytest.approx(50.0, abs=2.5)
    assert s1.speech_s == pytest.approx(12.0, abs=0.2)


def test_measure_levels_on_separate_channels_and_too_little_speech() -> None:
    x, diar = _two_speakers(-10.0)
    lv = measure_levels({"S1": x, "S2": x * 0.5}, SR, diar, LevelsConfig())
    assert lv.of("S2").level_dbfs - lv.of("S1").level_dbfs == pytest.approx(-10.0 - 6.0, abs=1.0)
    short = measure_levels(x, SR, diar, LevelsConfig(min_speech_s=20.0))
    assert all(s.level_dbfs is None and s.snr_db is None for s in short.speakers)
    assert plan_gains(short, LevelsConfig()) == {"S1": 0.0, "S2": 0.0}


def _levels(*rows: tuple[str, float | None], noise: float | None = -70.0) -> Levels:
    return Levels(noise, tuple(SpeakerLevel(s, 30.0, lv, None if lv is None or noise is None else lv - noise)
                               for s, lv in rows))


def test_plan_gains_rule() -> None:
    cfg = LevelsConfig(min_gain_db=3.0, max_gain_db=20.0, noise_margin_db=20.0)
    assert plan_gains(_levels(("A", -20.0), ("B", -22.5)), cfg) == {"A": 0.0, "B": 0.0}  # about equal: untouched
    assert plan_gains(_levels(("A", -20.0), ("B", -30.0)), cfg) == {"A": 0.0, "B": 10.0}
    assert plan_gains(_levels(("A", -32.0), ("B", -20.0)), cfg) == {"A": 12.0, "B": 0.0}  # therapist quieter
    assert plan_gains(_levels(("A", -20.0), ("B", -50.0)), cfg)["B"] == 20.0  # capped
    # a loud background: raising B by 10 dB would put the noise 15 dB under A's speech: only 5 dB
    assert plan_gains(_levels(("A", -20.0), ("B", -30.0), noise=-45.0), cfg)["B"] == 5.0
    assert plan_gains(_levels(("A", -20.0), ("B", -30.0), noise=-38.0), cfg)["B"] == 0.0
    assert plan_gains(_levels(("A", -20.0), ("B", -30.0)), LevelsConfig(equalize=False)) == {"A": 0.0, "B": 0.0}
    assert plan_gains(_levels(("A", -20.0), ("B", None)), cfg) == {"A": 0.0, "B": 0.0}


def test_apply_gains_raises_only_the_quiet_speakers_speech() -> None:
    x, diar = _two_speakers(-10.0)
    cfg = LevelsConfig()
    lv = measure_levels(x, SR, diar, cfg)
    gains = plan_gains(lv, cfg)
    assert gains["S1"] == 0.0 and gains["S2"] == pytest.approx(10.0, abs=1.0)
    y = apply_gains(x, SR, diar.exclusive, gains, cfg)
    assert y.dtype == np.float32 and y.shape == x.shape
    after = measure_levels(y, SR, diar, cfg)
    assert after.of("S2").level_dbfs - after.of("S1").level_dbfs == pytest.approx(0.0, abs=1.0)
    assert after.of("S1").level_dbfs == pytest.approx(lv.of("S1").level_dbfs, abs=0.05)
    mid_gap = slice(int(7.4 * SR), int(7.6 * SR))  # silence between turns: not raised
    np.testing.assert_array_equal(y[mid_gap], x[mid_gap])
    assert apply_gains(x, SR, diar.exclusive, {"S1": 0.0, "S2": 0.0}, cfg) is x  # nothing to do: the same array
    curve = gain_curve_db(x.size, SR, diar.exclusive, gains, cfg)  # ramped over ramp_s: no step
    assert curve.max() == pytest.approx(gains["S2"]) and np.abs(np.diff(curve)).max() <= gains["S2"] / 5 + 1e-9
    assert with_gains(lv, gains).of("S2").asr_gain_db == gains["S2"]


# ---------------------------------------------------------------------------------------------- quality

def test_word_coverage() -> None:
    speech = [Segment(0.0, 4.0, "A"), Segment(10.0, 12.0, "A")]
    words = [Word(0.3, 0.6, "a", 0.9), Word(0.8, 1.5, "b", 0.9), Word(10.0, 12.0, "c", 0.9)]
    # covered with 0.2 s padding: 0.1-1.7 (1.6 s) + 10-12 (2 s) of 6 s
    assert word_coverage(speech, words, 0.2) == pytest.approx(3.6 / 6.0)
    assert word_coverage(speech, [], 0.2) == 0.0
    assert word_coverage([], words, 0.2) is None
    assert word_coverage(speech, [Word(0.0, 4.0, "x", 1.0), Word(9.0, 13.0, "y", 1.0)], 0.2) == 1.0


def _row(spk: str, role: str, level_re: float | None, cov: float | None, snr: float | None = 50.0,
         speech_s: float = 60.0) -> SpeakerQuality:
    return SpeakerQuality(spk, role, speech_s, None if level_re is None else -20.0 + level_re, level_re, snr, 0.0, cov)


def test_warning_rule_quiet_client_with_missing_words() -> None:
    cfg = QualityConfig()
    ws = quality_warnings((_row("S1", "therapist", 0.0, 0.97), _row("S2", "client", -12.0, 0.60)), cfg)
    assert [(w.code, w.speaker) for w in ws] == [("low_word_coverage", "S2")]
    assert ws[0].message.startswith("Client speech is 12 dB quieter than the therapist's; 40% of it has no words: "
                                     "check the recording")


def test_warning_rule_no_warning_when_coverage_is_even_and_snr_fine() -> None:
    cfg = QualityConfig()
    assert quality_warnings((_row("S1", "therapist", 0.0, 0.97), _row("S2", "client", -12.0, 0.92)), cfg) == ()
    # a speaker with little speech is not judged
    assert quality_warnings((_row("S1", "therapist", 0.0, 0.97),
                             _row("S2", "client", -12.0, 0.10, speech_s=4.0)), cfg) == ()


def test_warning_rule_low_snr_and_low_absolute_coverage() -> None:
    cfg = QualityConfig()
    ws = quality_warnings((_row("S1", "therapist", 0.0, 0.55, snr=8.0), _row("S2", "client", -1.0, 0.5, snr=7.0)), cfg)
    assert [(w.code, w.speaker) for w in ws] == [("low_word_coverage", "S1"), ("low_snr", "S1"),
                                                 ("low_word_coverage", "S2"), ("low_snr", "S2")]
    assert "only 8 dB above the background noise" in ws[1].message
    assert ws[0].message.startswith("45% of the therapist's speech has no words")  # not quieter: no dB phrase
    unknown = quality_warnings((_row("S1", "unknown", 0.0, 0.95), _row("S2", "unknown", -9.0, 0.5)), cfg)
    assert unknown[0].message.startswith("Speaker S2 speech is 9 dB quieter than the speaker S1's")


def test_assess_quality_and_trust() -> None:
    x, diar = _two_speakers(-12.0)
    lv = measure_levels(x, SR, diar, LevelsConfig())
    # the therapist's turns full of words, the client's second turn without any
    words = [Word(t, t + 0.4, "w", 0.9) for t in np.arange(1.0, 7.0, 0.5)]
    words += [Word(t, t + 0.4, "w", 0.9) for t in np.arange(8.0, 14.0, 0.5)]
    words += [Word(t, t + 0.4, "w", 0.9) for t in np.arange(15.0, 21.0, 0.5)]
    q = assess_quality(lv, diar, words, {"S1": "therapist", "S2": "client"}, QualityConfig(min_speech_s=5.0))
    assert not q.trustworthy
    assert [w.code for w in q.warnings] == ["low_word_coverage"]
    assert "Client speech is 12 dB quieter" in q.warnings[0].message and "50% of it has no words" in q.warnings[0].message
    s2 = next(s for s in q.speakers if s.speaker == "S2")
    assert s2.word_coverage == pytest.approx(0.5, abs=0.02) and s2.level_re_loudest_db == pytest.approx(-12.0, abs=1.0)
    more = with_warnings(q, [QualityWarning("too_noisy", "Too noisy to trust.")])
    assert [w.code for w in more.warnings] == ["low_word_coverage", "too_noisy"]


# ---------------------------------------------------------------------------------- session.json and page

def _record(quality: Quality | None) -> SessionRecord:
    turns = (Turn(0, "S1", "therapist", 1.0, 7.0, "How was your week?", 4),
             Turn(1, "S2", "client", 8.0, 14.0, "Fine.", 1))
    return SessionRecord("q1", 22.0, (Speaker("S1", "therapist", 6.0, 1.0, "test"), Speaker("S2", "client", 6.0, 1.0, "test")), turns,
                         (), (), Metrics(), Provenance(), quality=quality)


def _quality(warn: bool) -> Quality:
    rows = (_row("S1", "therapist", 0.0, 0.97), _row("S2", "client", -12.0, 0.6 if warn else 0.95))
    return Quality(-70.0, rows, quality_warnings(rows, QualityConfig()))


def test_quality_block_round_trips_through_session_json() -> None:
    rec = _record(_quality(True))
    d = json.loads(json.dumps(record_to_dict(rec)))
    q = d["quality"]
    assert q["trustworthy"] is False and q["noise_floor_dbfs"] == -70.0
    assert q["warnings"][0]["code"] == "low_word_coverage" and q["warnings"][0]["speaker"] == "S2"
    assert [s["id"] for s in q["speakers"]] == ["S1", "S2"]
    assert set(q["speakers"][0]) == {"id", "role", "speech_s", "level_dbfs", "level_re_loudest_db", "snr_db",
                                     "asr_gain_db", "word_coverage", "word_confidence"}
    back = record_from_dict(d)
    assert back.quality == rec.quality
    assert "quality" not in record_to_dict(_record(None))  # text mode and old records: no block


def test_review_page_says_plainly_when_not_to_trust_the_numbers() -> None:
    bad = render_report(_record(_quality(True)), None)
    assert 'id="quality-warning"' in bad and "Client speech is 12 dB quieter than the therapist&#x27;s" in bad
    assert "40% of it has no words: check the recording" in bad
    assert 'id="quality"' in bad and "check: 1 warning" in bad
    good = render_report(_record(_quality(False)), None)
    assert 'id="quality-warning"' not in good and 'id="quality"' in good
    none = render_report(_record(None), None)
    assert 'id="quality-warning"' not in none and 'id="quality"' not in none
    assert session_counts(_record(_quality(True)))["quality_warnings"] == 1
    from pipeline.exports._html import summary_from_record

    index = render_index([summary_from_record(_record(_quality(True)))])
    assert "check the recording: 1 quality warning" in index


# ------------------------------------------------------------------------------------------------ scoring

def test_per_speaker_word_error_counts_follow_reference_times() -> None:
    from pipeline.scoring import speaker_word_error_counts, word_error_counts, words_by_reference_speaker

    ref = [(0.0, 2.0, "T", "how was your week"), (2.5, 4.0, "C", "fine thanks"), (5.0, 6.0, "T", "good")]
    words = [Word(0.1, 0.4, "How", 0.9, "S9"), Word(0.5, 0.8, "was", 0.9), Word(0.9, 1.2, "your", 0.9),
             Word(1.3, 1.9, "week?", 0.9), Word(2.6, 3.0, "fine", 0.9), Word(4.2, 4.4, "uh", 0.9),
             Word(5.1, 5.5, "good", 0.9)]
    heard = words_by_reference_speaker(ref, words)
    assert [w.text for w in heard["T"]] == ["How", "was", "your", "week?", "good"]
    assert [w.text for w in heard["C"]] == ["fine", "uh"]  # "uh" (4.2) is nearest the client's utterance
    assert speaker_word_error_counts(ref, words) == {"T": (0, 5), "C": (1, 2)}  # thanks -> uh
    assert word_error_counts("a b c", "") == (3, 3) and word_error_counts("", "a") == (1, 0)
    assert words_by_reference_speaker([], words) == {}


def test_generator_attenuation_option() -> None:
    import make_synthetic_sessions as mss

    assert mss.parse_attenuation("client:10") == {"therapist": 0.0, "client": -10.0}
    assert mss.parse_attenuation("therapist:6") == {"therapist": -6.0, "client": 0.0}
    assert mss.parse_attenuation("none") == {"therapist": 0.0, "client": 0.0}
    for bad in ("client", "patient:3", "client:-4", "client:x"):
        with pytest.raises(ValueError):
            mss.parse_attenuation(bad)
    a = mss.build_script("s", "calm", mss.DEV, np.random.default_rng(1), {"therapist": 0.0, "client": -10.0})
    b = mss.build_script("s", "calm", mss.DEV, np.random.default_rng(1))
    assert a.lines == b.lines and a.part("client").gain_db == -10.0 and a.part("therapist").gain_db == 0.0


def test_word_rate_check_flags_a_repetition_loop() -> None:
    from pipeline.quality import rate_warnings, word_rate_spans

    cfg = QualityConfig()
    segs = (Segment(0.0, 4.0, "S1"), Segment(5.0, 15.0, "S2"), Segment(16.0, 16.5, "S1"))
    normal = [Word(t, t + 0.25, "w", 0.9) for t in np.arange(0.0, 4.0, 0.34)]  # ~3 words/s
    loop = [Word(t, t + 0.05, "w", 0.9) for t in np.arange(5.0, 15.0, 0.08)]  # 125 words in 10 s
    burst = [Word(t, t + 0.04, "w", 0.9) for t in np.arange(16.0, 16.5, 0.05)]  # short segment: not judged
    spans = word_rate_spans(segs, normal + loop + burst, cfg)
    assert [(s.speaker, n) for s, n in spans] == [("S2", 125)]
    ws = rate_warnings(spans, {"S2": "client"})
    assert ws[0].code == "word_rate" and ws[0].message.startswith("The recogniser heard 125 words in 10 s of the "
                                                                  "client's speech at 0:05")
    assert word_rate_spans(segs, normal, cfg) == ()


def test_overlap_gain_rule_min_keeps_a_loud_backchannel_at_its_level() -> None:
    # quiet S2 talks 1-9 s (gain 10 dB); loud S1 backchannels over it at 4-5 s (gain 0)
    segs = (Segment(1.0, 9.0, "S2"), Segment(4.0, 5.0, "S1"))
    gains = {"S1": 0.0, "S2": 10.0}
    n = 10 * SR
    low = gain_curve_db(n, SR, segs, gains, LevelsConfig(overlap_gain="min"))
    high = gain_curve_db(n, SR, segs, gains, LevelsConfig(overlap_gain="max"))
    at = lambda c, t: float(c[int(round(t / 0.01))])  # noqa: E731
    assert at(low, 2.0) == pytest.approx(10.0) and at(low, 4.5) == pytest.approx(0.0) and at(low, 9.5) == 0.0
    assert at(high, 4.5) == pytest.approx(10.0) and at(high, 0.5) == 0.0
    with pytest.raises(Exception, match="overlap_gain"):
        LevelsConfig(overlap_gain="mean")


def test_low_snr_message_never_reads_as_enough() -> None:
    ws = quality_warnings((_row("S1", "therapist", 0.0, 0.97, snr=35.0), _row("S2", "client", -15.0, 0.97, snr=19.97)),
                          QualityConfig())
    assert [w.code for w in ws] == ["low_snr"] and "only 19 dB above" in ws[0].message


def _conf_row(spk: str, role: str, level_re: float, gain: float, conf: float | None, snr: float = 25.0) -> SpeakerQuality:
    return SpeakerQuality(spk, role, 40.0, -20.0 + level_re, level_re, snr, gain, 0.99, conf)


def test_low_confidence_marks_a_raised_voice_the_recogniser_is_unsure_of() -> None:
    cfg = QualityConfig()
    # dev session 17_004 (mixed), white noise at -50 dBFS, the client 15 dB down and raised by 14.7 dB: client
    # SNR 21.7 dB (no low_snr), coverage 99.8%, client WER 12.1% against 4.8% at equal levels; word confidence
    # 0.872 against the therapist's 0.939
    ws = quality_warnings((_conf_row("S1", "therapist", 0.0, 0.0, 0.939, snr=36.4),
                           _conf_row("S2", "client", -14.7, 14.7, 0.872, snr=21.7)), cfg)
    assert [(w.code, w.speaker) for w in ws] == [("low_confidence", "S2")]
    assert ws[0].message.startswith("Client speech is 15 dB quieter than the therapist's, and even raised by 15 dB "
                                    "before transcription the recogniser is less sure of its words (mean word "
                                    "confidence 0.87 against 0.94 for the therapist): check the recording.")
    # 17_000 (calm), same noise, the client 10 dB down: SNR 22.8 dB, 0.912 against 0.962, WER 9.4% against 2.8%
    ws = quality_warnings((_conf_row("S1", "therapist", 0.0, 0.0, 0.962, snr=32.8),
                           _conf_row("S2", "client", -10.0, 10.0, 0.912, snr=22.8)), cfg)
    assert [(w.code, w.speaker) for w in ws] == [("low_confidence", "S2")]


def test_low_confidence_spares_equal_levels_quiet_rooms_and_raised_voices_that_kept_their_words() -> None:
    cfg = QualityConfig()
    # equal levels (no gain): the two flite voices differ by 0.05 by themselves (dev 17_001, quiet room)
    assert quality_warnings((_conf_row("S1", "therapist", 0.0, 0.0, 0.889, snr=57.2),
                             _conf_row("S2", "client", -0.4, 0.0, 0.939, snr=56.8)), cfg) == ()
    # white noise, the client 10 dB down and raised, WER 7.9% against 4.8% at equal levels (dev 17_004):
    # 0.038 below the therapist
    assert quality_warnings((_conf_row("S1", "therapist", 0.0, 0.0, 0.941, snr=36.4),
                             _conf_row("S2", "client", -9.7, 9.7, 0.903, snr=26.75)), cfg) == ()
    # quiet room, the client 15 dB down and raised (SNR 50 dB): 0.063 below, words kept (17_004: client WER
    # 9.1% against 4.8%, within 5 points): the SNR gate keeps it trustworthy
    quiet = (_conf_row("S1", "therapist", 0.0, 0.0, 0.958, snr=64.4), _conf_row("S2", "client", -14.6, 14.6, 0.895, snr=49.8))
    assert quality_warnings(quiet, cfg) == ()
    assert [w.code for w in quality_warnings(quiet, QualityConfig(confidence_max_snr_db=60.0))] == ["low_confidence"]
    # no words, or a loudest speaker too short to judge against: nothing to compare
    assert quality_warnings((_conf_row("S1", "therapist", 0.0, 0.0, 0.95),
                             _conf_row("S2", "client", -12.0, 12.0, None)), cfg) == ()
    short = SpeakerQuality("S1", "therapist", 4.0, -20.0, 0.0, 30.0, 0.0, 0.99, 0.99)
    assert quality_warnings((short, _conf_row("S2", "client", -12.0, 12.0, 0.80)), cfg) == ()
    # the threshold is a setting
    assert quality_warnings((_conf_row("S1", "therapist", 0.0, 0.0, 0.939),
                             _conf_row("S2", "client", -14.7, 14.7, 0.872)), QualityConfig(max_confidence_gap=0.1)) == ()


def test_assess_quality_reports_each_speakers_word_confidence() -> None:
    x, diar = _two_speakers(-12.0, noise_dbfs=-50.0)
    lv = with_gains(measure_levels(x, SR, diar, LevelsConfig()), {"S1": 0.0, "S2": 12.0})
    words = [Word(t, t + 0.4, "w", 0.95, "S1") for t in np.arange(1.0, 7.0, 0.5)]
    words += [Word(t, t + 0.4, "w", p, "S2") for t, p in zip(np.arange(8.0, 14.0, 0.5), [0.9, 0.7] * 6)]
    q = assess_quality(lv, diar, words, {"S1": "therapist", "S2": "client"}, QualityConfig(min_speech_s=5.0))
    conf = {s.speaker: s.word_confidence for s in q.speakers}
    assert conf == {"S1": 0.95, "S2": 0.8}
    s2 = next(s for s in q.speakers if s.speaker == "S2")
    assert s2.snr_db is not None and s2.snr_db < 30.0
    assert "low_confidence" in [w.code for w in q.warnings]
