"""scripts/synth.py: flite-rendered dialogue with exact ground truth, and the synthetic session generator.

Pure parts (layout, event truth, text rules, split separation) run everywhere; rendering tests skip cleanly
when Debian flite is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"

import synth  # noqa: E402
from synth import Line, Part, Script, SynthError, Utterance  # noqa: E402

needs_flite = pytest.mark.usefixtures("flite_synth")  # skips without flite, except in CI (conftest.py)

CAST = (Part("T", "therapist", "slt"), Part("C", "client", "rms"))


def _u(i: int, spk: str, s: float, e: float, text: str = "some words here please", cut: bool = False,
       labels: tuple[str, ...] = ()) -> Utterance:
    role = "therapist" if spk == "T" else "client"
    return Utterance(i, spk, role, "slt" if spk == "T" else "rms", s, e, text, text, cut, labels)


def _kinds(events):  # type: ignore[no-untyped-def]
    return sorted((e.type, e.subtype, e.speaker, e.target_speaker) for e in events)


# ---------------------------------------------------------------------------------------------- pure


def test_layout_gap_at_and_floor_end() -> None:
    sr = 1000
    script = Script("s", CAST, (
        Line("T", "one two", gap=0.0),
        Line("C", "three four", gap=0.5),
        Line("T", "mm-hmm", at=0.2),  # 0.2 s after C's start
        Line("T", "five six", gap=1.0),  # relative to the floor end (C's end), not to the backchannel
        Line("C", "seven", gap=-0.3),
        Line("T", "eight", at_frac=0.5),
    ), lead_in_s=0.1)
    spans = synth.layout(script, [1000, 2000, 300, 1000, 800, 400], sr=sr)
    assert spans == ((100, 1100), (1600, 3600), (1800, 2100), (4600, 5600), (5300, 6100), (5700, 6100))


def test_layout_refuses_self_overlap() -> None:
    script = Script("s", CAST, (Line("T", "one two"), Line("T", "three", gap=-0.5)))
    with pytest.raises(SynthError):
        synth.layout(script, [1000, 1000], sr=1000)


def test_event_rules_on_hand_built_timeline() -> None:
    utts = [
        _u(0, "T", 0.0, 4.0),
        _u(1, "C", 1.0, 1.4, "Mm-hmm."),  # backchannel inside T
        _u(2, "C", 4.5, 8.0, cut=True),  # cut off ...
        _u(3, "T", 7.5, 10.0),  # ... successfully: C stops 0.5 s later
        _u(4, "C", 9.8, 12.0),  # terminal overlap: T had finished its line (not cut)
        _u(5, "T", 10.5, 11.5, "can I just"),  # talked through: C goes on 1.5 s
        _u(6, "T", 15.5, 17.0),  # 3.5 s pause after C
        _u(7, "C", 17.5, 19.0, "anyway, lovely weather", labels=("rupture:withdrawal.topic_shift",)),
        _u(8, "T", 19.5, 21.0, "shall we talk about that", labels=("repair:invites_discussion",)),
    ]
    ev = synth.build_events(utts)
    assert _kinds([e for e in ev if e.type != "overlap"]) == sorted([
        ("backchannel", None, "C", "T"),
        ("interruption", "successful", "T", "C"),
        ("interruption", "unsuccessful", "T", "C"),
        ("long_pause", "switch", "C", "T"),
        ("rupture", "withdrawal.topic_shift", "C", "T"),
        ("repair", "invites_discussion", "T", "C"),
    ])
    overlaps = sorted((e.start, dict(e.details.other)["kind"]) for e in ev if e.type == "overlap")
    assert overlaps == [(1.0, "backchannel"), (7.5, "interruption"), (9.8, "terminal"), (10.5, "interruption")]
    pause = next(e for e in ev if e.type == "long_pause")
    assert (pause.start, pause.end) == (12.0, 15.5)
    rupture = next(e for e in ev if e.type == "rupture")
    assert rupture.resolved is True and rupture.repair_turn_index == 8
    succ = next(e for e in ev if e.subtype == "successful")
    assert (succ.start, succ.end, succ.turn_index) == (7.5, 8.0, 3)


def test_pause_just_under_threshold_and_unresolved_rupture() -> None:
    utts = [
        _u(0, "T", 0.0, 2.0),
        _u(1, "C", 4.99, 5.5, "fine", labels=("rupture:withdrawal.minimal_response",)),
        _u(2, "T", 6.0, 8.0),
        _u(3, "C", 8.5, 12.0),
    ]
    ev = synth.build_events(utts)
    assert [e.type for e in ev] == ["rupture"]
    assert ev[0].resolved is False and ev[0].repair_turn_index is None


def test_talk_time_and_imbalance() -> None:
    utts = [_u(0, "T", 0.0, 8.0), _u(1, "C", 7.0, 9.0), _u(2, "T", 9.5, 11.5)]
    tt = synth.talk_time(utts, CAST)
    assert dict(tt.by_speaker) == {"T": 10.0, "C": 2.0}
    assert dict(tt.by_role) == {"therapist": 10.0, "client": 2.0}
    assert tt.total_speech_s == 11.0 and tt.overlap_s == 1.0
    imb = [e for e in synth.build_events(utts) if e.type == "talk_time_imbalance"]
    assert len(imb) == 1 and imb[0].subtype == "therapist_dominates"
    balanced = [_u(0, "T", 0.0, 5.0), _u(1, "C", 5.5, 10.0)]
    assert not [e for e in synth.build_events(balanced) if e.type == "talk_time_imbalance"]


def test_text_rules() -> None:
    assert synth.is_backchannel_text("Mm-hmm.") and synth.is_backchannel_text("I see.")
    assert not synth.is_backchannel_text("Fine.") and not synth.is_backchannel_text("Yeah, I think so.")
    assert synth.said_text("one two, three four", 2) == "one two"
    assert synth.flite_text("Mm-hmm, okay.") == "um hum, okay."
    with pytest.raises(SynthError):
        synth.check_text("I slept 4 hours")
    with pytest.raises(SynthError):
        synth.build_events([_u(0, "C", 0.0, 1.0, labels=("rupture:not_a_subtype",))])


def test_rttm_and_stm_formats() -> None:
    utts = (_u(0, "T", 0.5, 2.25, "Hello, how are you?"), _u(1, "C", 2.75, 4.0, "Okay, I guess."))
    truth = synth.Truth("sx", 5.0, CAST, utts, synth.build_events(utts), synth.talk_time(utts, CAST))
    rows = synth.parse_rttm(synth.rttm_text(truth))
    assert rows == [("sx", 0.5, 2.25, "T"), ("sx", 2.75, 4.0, "C")]
    stm = [ln for ln in synth.stm_text(truth).splitlines() if not ln.startswith(";;")]
    assert stm[1] == "sx 1 C 2.750 4.000 <client> okay i guess"


def test_splits_use_separate_content() -> None:
    import make_synthetic_sessions as mss

    texts = {}
    for split, pool in mss.POOLS.items():
        seen = set()
        for i, scen in enumerate(mss.SCENARIOS * 3):
            script = mss.build_script(f"{split}{i}", scen, pool, np.random.default_rng([7, i]))
            seen |= {ln.text for ln in script.lines if not synth.is_backchannel_text(ln.text)}
            for ln in script.lines:
                synth.check_text(ln.text)
        texts[split] = seen
    assert texts["dev"] and texts["heldout"]
    assert not texts["dev"] & texts["heldout"]


# --------------------------------------------------------------------------------------- rendering


def _frame_rms(x: np.ndarray, a: float, b: float, sr: int = 16000) -> float:
    seg = x[int(round(a * sr)): int(round(b * sr))]
    return float(np.sqrt(np.mean(seg.astype(np.float64) ** 2)))


@needs_flite
@pytest.mark.parametrize("voices", [("slt", "rms"), ("awb", "kal")])  # kal is an 8 kHz voice: resampled
def test_rendered_truth_matches_audio(tmp_path: Path, voices: tuple[str, str]) -> None:
    import soundfile as sf
    from pyannote.database.util import load_rttm

    cast = (Part("T", "therapist", voices[0]), Part("C", "client", voices[1]))
    script = Script("tiny", cast, (
        Line("T", "How did the homework go this week?"),
        Line("C", "It went better than I expected.", gap=1.2),
        Line("T", "That's good to hear.", gap=0.8),
    ))
    paths = synth.write_session(tmp_path, synth.render_script(script, seed=3))
    x, sr = sf.read(str(paths["audio"]), dtype="float32")
    assert sr == 16000 and x.ndim == 1
    truth = json.loads(paths["truth"].read_text())
    utts = truth["utterances"]
    assert [u["speaker"] for u in utts] == ["T", "C", "T"]
    speech = [_frame_rms(x, u["start"], u["end"]) for u in utts]
    gaps = [_frame_rms(x, a["end"] + 0.01, b["start"] - 0.01) for a, b in zip(utts, utts[1:])]
    gaps.append(_frame_rms(x, 0.0, utts[0]["start"] - 0.01))
    gaps.append(_frame_rms(x, utts[-1]["end"] + 0.01, len(x) / sr))
    assert all(b["start"] - a["end"] > 0.7 for a, b in zip(utts, utts[1:]))
    assert max(gaps) < 0.01 * min(speech)  # silence (a faint noise floor) between utterances
    noise = max(gaps)
    for u in utts:
        # exact bounds: sound right at the start and right at the end of each utterance, well above the floor
        assert _frame_rms(x, u["start"], u["start"] + 0.02) > 10 * noise
        assert _frame_rms(x, u["end"] - 0.02, u["end"]) > 10 * noise
        # and nothing just outside them
        assert _frame_rms(x, u["start"] - 0.03, u["start"] - 0.005) < 2 * noise
        assert _frame_rms(x, u["end"] + 0.005, u["end"] + 0.03) < 2 * noise
    assert abs(truth["duration_s"] - len(x) / sr) < 1e-3

    ann = load_rttm(str(paths["rttm"]))["tiny"]
    segs = sorted((round(s.start, 3), round(s.end, 3), lab) for s, _, lab in ann.itertracks(yield_label=True))
    assert segs == [(round(u["start"], 3), round(u["end"], 3), u["speaker"]) for u in utts]
    assert abs(truth["talk_time"]["by_speaker"]["T"] - sum(u["end"] - u["start"] for u in utts if u["speaker"] == "T")) < 1e-3


@needs_flite
def test_rendered_event_script_gives_exact_event_truth(tmp_path: Path) -> None:
    script = Script("ev", CAST, (
        Line("T", "So tell me, what happened when you got to the office on Monday morning?"),
        Line("C", "Well, I walked in, and straight away my manager asked to see me in her office, and I "
                  "started to panic about what I had done wrong.", gap=0.6),
        Line("T", "Mm-hmm.", at=2.0),  # backchannel over the client
        Line("T", "And what went through your mind at that point, when she asked to see you?", gap=0.7),
        Line("C", "I thought I was going to lose my job, because I had missed the deadline for the report last "
                  "week and I knew she had noticed.", said_words=9, gap=0.6),
        Line("T", "Let's slow down there, because that sounds like the key moment.", gap=-0.5),  # cuts C off
        Line("C", "Right, but the thing is that it turned out she only wanted to ask me about the holiday rota, "
                  "nothing to do with the report at all.", gap=0.6),
        Line("T", "Can I ask", at=1.5),  # talked through
        Line("T", "What do you make of that now?", gap=3.5),  # long pause before it
        Line("C", "Maybe I jump to conclusions.", gap=0.6),
    ))
    rendered = synth.render_script(script, seed=1)
    ev = rendered.truth.events
    assert _kinds([e for e in ev if e.type != "overlap"]) == sorted([
        ("backchannel", None, "T", "C"),
        ("interruption", "successful", "T", "C"),
        ("interruption", "unsuccessful", "T", "C"),
        ("long_pause", "switch", "C", "T"),
    ])
    assert sorted(dict(e.details.other)["kind"] for e in ev if e.type == "overlap") == ["backchannel", "interruption",
                                                                                    "interruption"]
    cut = rendered.truth.utterances[4]
    assert cut.cut and cut.text == "I thought I was going to lose my job"
    # only the prefix was rendered: the cut utterance is much shorter than the full line would be
    full = synth.render_text(cut.planned_text, "rms").size / synth.SAMPLE_RATE
    assert cut.duration < 0.6 * full
    succ = next(e for e in ev if e.subtype == "successful")
    assert 0.3 <= succ.end - succ.start <= 0.8
    pause = next(e for e in ev if e.type == "long_pause")
    assert abs((pause.end - pause.start) - 3.5) < 1e-3


@needs_flite
def test_rendering_is_deterministic() -> None:
    script = Script("d", CAST, (Line("T", "Shall we begin?"), Line("C", "Yes, okay.", gap=0.5)))
    a = synth.render_script(script, seed=5)
    b = synth.render_script(script, seed=5)
    assert np.array_equal(a.audio, b.audio) and a.truth == b.truth


@needs_flite
def test_generated_interrupt_session_matches_its_script(tmp_path: Path) -> None:
    import make_synthetic_sessions as mss

    assert mss.main(["--out", str(tmp_path), "--split", "dev", "--n", "1", "--seed", "11",
                     "--scenarios", "interrupt_cut"]) == 0
    manifest = (tmp_path / "manifest.csv").read_text().splitlines()
    assert manifest[0].startswith("audio,session_id,consent_recording,consent_analysis,consent_date")
    row = manifest[1].split(",")
    assert row[2:4] == ["true", "true"]
    truth = json.loads((tmp_path / f"{row[1]}_truth.json").read_text())
    n_cut = sum(u["cut"] for u in truth["utterances"])
    assert n_cut >= 2
    assert truth["counts"]["interruption.successful"] == n_cut
    assert truth["counts"].get("overlap.terminal") == 1
    assert 60.0 <= truth["duration_s"] <= 130.0


def test_mix_stereo_puts_each_speaker_on_its_own_channel() -> None:
    sr = synth.SAMPLE_RATE
    tone = np.sin(2 * np.pi * 200 * np.arange(sr) / sr).astype(np.float32)
    spans = [(0, sr), (2 * sr, 3 * sr)]
    y = synth.mix([tone, tone], spans, [0.0, 0.0], 3 * sr, noise_dbfs=None, channels=[0, 1], n_channels=2,
                  crosstalk_db=-20.0)
    assert y.shape == (3 * sr, 2)
    rms = lambda x: float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))  # noqa: E731
    first, second = y[:sr], y[2 * sr:]
    assert 20 * np.log10(rms(first[:, 0]) / rms(first[:, 1])) == pytest.approx(20.0, abs=0.1)
    assert 20 * np.log10(rms(second[:, 1]) / rms(second[:, 0])) == pytest.approx(20.0, abs=0.1)
    assert not y[sr:2 * sr].any()  # no noise floor asked for: silence stays silent
    mono = synth.mix([tone, tone], spans, [0.0, 0.0], 3 * sr, noise_dbfs=None)
    assert mono.shape == (3 * sr,)
    with pytest.raises(ValueError, match="channel index"):
        synth.mix([tone, tone], spans, [0.0, 0.0], 3 * sr, channels=[0, 2], n_channels=2)


@needs_flite
def test_stereo_rendering_takes_the_exact_channel_path() -> None:
    """One channel per speaker: the pipeline's channel path finds each utterance on its speaker's channel,
    the backchannel laid over the other's speech included (the mono mix hides it from the ASR)."""
    from pipeline.channels import diarize_channels
    from pipeline.config import DiarizationConfig
    from pipeline.records import Audio

    script = Script("st", CAST, (
        Line("T", "What did you notice when you tried the breathing exercise this week?"),
        Line("C", "It helped a little. My shoulders dropped and I felt less tense afterwards, at least for a while.",
             gap=0.6),
        Line("T", "Mm-hmm.", at=2.0),
        Line("T", "That is a real change.", gap=0.8),
    ))
    rendered = synth.render_script(script, seed=2, channel_of={"T": 1, "C": 0})
    mono = synth.render_script(script, seed=2)
    assert rendered.truth == mono.truth and rendered.audio.shape == (mono.audio.size, 2)
    audio = Audio(np.ascontiguousarray(rendered.audio.T), synth.SAMPLE_RATE, synth.SAMPLE_RATE, 2, "0" * 64)
    d = diarize_channels(audio, DiarizationConfig())
    assert d is not None and d.method == "channels"
    channel = {"T": "ch1", "C": "ch0"}
    for u in rendered.truth.utterances:
        own = sum(max(0.0, min(s.end, u.end) - max(s.start, u.start))
                  for s in d.overlapping if s.speaker == channel[u.speaker])
        assert own >= 0.8 * u.duration, (u.text, own, u.duration)
    bc = next(u for u in rendered.truth.utterances if u.text == "Mm-hmm.")
    assert any(s.speaker == "ch1" and s.start < bc.end and s.end > bc.start for s in d.overlapping)
