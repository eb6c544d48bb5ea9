"""Conversation measures (pipeline.measures): exact results on hand-made records, and property tests over
random scripted conversations whose ground truth comes from the synthetic-session generator's own pure
truth builder (scripts/synth.py: layout + build_truth, no audio rendering)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from pipeline.config import MeasuresConfig, config_from_dict
from pipeline.measures import (Measures, is_backchannel_text, is_question_or_invitation, measure_conversation,
                               minimal_response_evidence, segments_from_turns, speech_time, talk_time)
from pipeline.records import Event, Provenance, Segment, Turn, Word
from pipeline.serialize import event_to_dict, metrics_to_dict
from pipeline.turns import build_turns

ROOT = Path(__file__).resolve().parents[1]

import eval_measures  # noqa: E402
import synth  # noqa: E402

CFG = MeasuresConfig()
ROLES = {"T": "therapist", "C": "client"}


def spread(speaker: str, start: float, end: float, text: str) -> list[Word]:
    return eval_measures.words_from_text(speaker, start, end, text)


def session(utts: list[tuple[str, float, float, str]], roles=ROLES):
    """(speaker, start, end, text) utterances -> turns, words (exact speaker), overlapping segments."""
    words: list[Word] = []
    for spk, s, e, text in utts:
        words += spread(spk, s, e, text)
    ws = tuple(sorted(words, key=lambda w: (w.start, w.end)))
    segs = tuple(sorted((Segment(s, e, spk) for spk, s, e, _ in utts), key=lambda x: x.start))
    return build_turns(ws, roles), ws, segs


def run(utts, duration, cfg=CFG, roles=ROLES) -> Measures:
    turns, words, segs = session(utts, roles)
    return measure_conversation(turns, words, segs, roles, duration, cfg)


def of_type(m: Measures, typ: str) -> list[Event]:
    return [e for e in m.events if e.type == typ]


# ------------------------------------------------------------------------------------------ talk time


def test_talk_time_excludes_silence_and_merges_own_overlaps():
    segs = (Segment(0, 2, "A"), Segment(1, 3, "A"), Segment(5, 6, "A"), Segment(2.5, 4, "B"))
    assert talk_time(segs) == pytest.approx({"A": 4.0, "B": 1.5})
    assert speech_time(segs) == pytest.approx(5.0)  # 0-4 and 5-6


def test_session_talk_time_shares_and_overlap_starter():
    # T 0-10, C comes in at 8 (overlap 2 s started by C), C to 14; 6 s of silence
    m = run([("T", 0, 10, "one " * 10 + "end."), ("C", 8, 14, "two " * 8 + "end.")], 20.0)
    tt = m.metrics.talk_time.session
    assert tt.speech_s == pytest.approx(14.0)
    assert tt.silence_s == pytest.approx(6.0)
    assert tt.overlap_s == pytest.approx(2.0)
    assert tt.per_speaker["T"].talk_s == pytest.approx(10.0)
    assert tt.per_speaker["C"].talk_s == pytest.approx(6.0)
    assert tt.per_speaker["C"].overlap_started_s == pytest.approx(2.0)
    assert tt.per_speaker["T"].overlap_started_s == pytest.approx(0.0)
    assert tt.per_speaker["T"].solo_s == pytest.approx(8.0)
    assert m.metrics.therapist_share == pytest.approx(10 / 16, abs=1e-4)
    assert tt.per_role["client"].share + tt.per_role["therapist"].share == pytest.approx(1.0, abs=1e-3)


def test_talk_time_imbalance_per_window():
    # 3 windows of 100 s: T dominates the first (90 %), balanced second, T nearly absent third (10 %)
    utts = [("T", 0, 45, "a " * 60 + "b."), ("C", 46, 51, "c " * 6 + "d."),
            ("T", 100, 125, "a " * 30 + "b."), ("C", 126, 151, "c " * 30 + "d."),
            ("T", 200, 205, "a " * 6 + "b."), ("C", 206, 251, "c " * 60 + "d.")]
    cfg = replace(CFG, window_s=100.0, window_step_s=100.0, min_window_speech_s=20.0)
    m = run(utts, 300.0, cfg)
    imb = of_type(m, "talk_time_imbalance")
    assert [(e.start, e.end, e.subtype) for e in imb] == [(0.0, 100.0, "therapist_dominates"),
                                                          (200.0, 300.0, "client_dominates")]
    assert imb[0].details.measure.therapist_share == pytest.approx(0.9)
    assert "90%" in imb[0].evidence
    assert m.metrics.talk_time.windows[1].therapist_share == pytest.approx(0.5, abs=1e-3)
    turns, _, _ = session(utts)
    assert turns[imb[0].turn_index].speaker == "T" and imb[0].speaker == "T"
    assert imb[1].speaker == "C" and turns[imb[1].turn_index].speaker == "C"
    # a sliding step gives overlapping windows
    m2 = run(utts, 300.0, replace(cfg, window_step_s=50.0))
    assert [w.start for w in m2.metrics.talk_time.windows] == [0.0, 50.0, 100.0, 150.0, 200.0]


# ------------------------------------------------------------------------- overlaps and interruptions


def test_backchannel_inside_other_turn_is_not_an_interruption():
    m = run([("T", 0, 6, "so tell me what happened at work this week after the meeting."),
             ("C", 2.0, 2.5, "Mm-hmm.")], 8.0)
    assert of_type(m, "interruption") == []
    (bc,) = of_type(m, "backchannel")
    assert (bc.speaker, bc.target_speaker, bc.start, bc.end) == ("C", "T", 2.0, 2.5)
    assert bc.details.measure.in_overlap is True


def test_backchannel_lexicon_multiword_and_smeared_length():
    assert is_backchannel_text("I see.", CFG)
    assert is_backchannel_text("yeah, yeah", CFG)
    assert is_backchannel_text("Uh-huh", CFG)
    assert not is_backchannel_text("yeah but no", CFG)
    assert not is_backchannel_text("mm-hmm mm-hmm yeah right", CFG)  # more than 3 words
    # diarization made the burst 1.4 s long, but its words are a backchannel: still not an interruption
    m = run([("T", 0, 8, "and then the whole family came over and we had a long dinner together."),
             ("C", 3.0, 4.4, "yeah right")], 9.0)
    assert [e.type for e in m.events if e.speaker == "C"] == ["backchannel"]


def test_unsuccessful_interruption_holder_keeps_talking():
    m = run([("T", 0, 8, "I think what we could try this week is a small experiment with the diary."),
             ("C", 3.0, 5.0, "but I already told you that I")], 10.0)
    (it,) = of_type(m, "interruption")
    assert (it.subtype, it.speaker, it.target_speaker, it.start) == ("unsuccessful", "C", "T", 3.0)
    assert it.end == pytest.approx(5.0)
    assert it.details.direction == "client->therapist"
    assert "kept talking" in it.evidence
    turns, _, _ = session([("T", 0, 8, "x"), ("C", 3.0, 5.0, "y")])
    f = {x.turn_index: x for x in m.features}
    assert f[it.turn_index].interrupts_previous
    assert f[it.details.target_turn_index].was_interrupted


def test_successful_interruption_cut_off_holder_yields():
    # T is cut mid-sentence (no completion point), C starts 0.5 s before T stops and holds the floor
    m = run([("T", 0, 4.0, "What I wanted to ask is whether the"),
             ("C", 3.5, 8.0, "No, I really need to tell you something about that first.")], 9.0)
    (it,) = of_type(m, "interruption")
    assert (it.subtype, it.speaker, it.target_speaker) == ("successful", "C", "T")
    assert it.start == 3.5 and it.end == pytest.approx(4.0)


def test_terminal_overlap_at_completion_point_is_not_an_interruption():
    m = run([("T", 0, 4.0, "How did the week go for you?"),
             ("C", 3.7, 8.0, "It was a hard one, to be honest, really hard.")], 9.0)
    assert of_type(m, "interruption") == []
    (ov,) = of_type(m, "overlap")
    assert ov.subtype == "terminal" and ov.speaker == "C"


def test_transition_noise_below_min_overlap_is_ignored():
    m = run([("T", 0, 4.0, "What I wanted to ask is whether the"),
             ("C", 3.9, 8.0, "No, I really need to tell you something about that first.")], 9.0)
    assert [e for e in m.events if e.type in ("interruption", "overlap", "backchannel")] == []


def test_choral_overlap_both_stop_is_overlap_event():
    # both laugh briefly together: short wordless bursts, nobody claims the floor
    segs = (Segment(0, 3, "T"), Segment(2.5, 3.1, "C"), Segment(6, 8, "C"))
    words = tuple(spread("T", 0, 2.4, "so that was the plan") + spread("C", 6, 8, "okay then."))
    turns = build_turns(words, ROLES)
    m = measure_conversation(turns, words, segs, ROLES, 9.0, CFG)
    assert of_type(m, "interruption") == []
    assert [e.type for e in m.events if e.start == 2.5] == ["overlap"]


def test_text_only_mode_has_no_overlap_events_but_latencies():
    turns = (Turn(0, "T", "therapist", 0.0, 4.0, "How are you feeling today?", 5),
             Turn(1, "C", "client", 6.5, 7.0, "fine", 1),
             Turn(2, "T", "therapist", 11.0, 14.0, "Tell me more about that", 5))
    m = measure_conversation(turns, (), segments_from_turns(turns), ROLES, 15.0, CFG)
    assert [e.type for e in m.events] == ["long_pause"]
    (lp,) = of_type(m, "long_pause")
    assert (lp.start, lp.end, lp.subtype, lp.speaker, lp.target_speaker, lp.turn_index) == (7.0, 11.0, "switch", "T", "C", 2)
    f = m.features
    assert [x.latency_s for x in f] == [None, 2.5, 4.0]
    assert f[1].follows_question and f[1].minimal_response
    assert not f[2].minimal_response
    assert minimal_response_evidence(f[1]) == "1 word(s) after a question/invitation; latency 2.5 s"
    assert m.metrics.pauses.response_latency_s["therapist->client"].mean == 2.5
    assert m.metrics.minimal_responses.by_role == {"client": 1}


def test_long_pause_from_words_within_speaker_and_missed_speech_guard():
    # a 3.5 s silence inside T's speech (one diarization segment would merge it, words do not)
    words = tuple(spread("T", 0, 3, "I was thinking about") + spread("T", 6.5, 9, "what you said last week."))
    turns = build_turns(words, ROLES)
    segs = (Segment(0, 3, "T"), Segment(6.5, 9, "T"))
    m = measure_conversation(turns, words, segs, ROLES, 10.0, CFG)
    (lp,) = of_type(m, "long_pause")
    assert (lp.subtype, lp.speaker, lp.start, lp.end) == ("within_speaker", "T", 3.0, 6.5)
    assert m.metrics.pauses.within_turn_pause_share["T"] == pytest.approx(3.5 / 9.0, abs=1e-3)
    # the same word gap, but diarization hears speech there (ASR missed it): not a pause
    m2 = measure_conversation(turns, words, (Segment(0, 9, "T"),), ROLES, 10.0, CFG)
    assert of_type(m2, "long_pause") == []
    # 2.9 s is below the 3 s threshold
    words3 = tuple(spread("T", 0, 3, "I was thinking about") + spread("T", 5.9, 9, "what you said."))
    m3 = measure_conversation(build_turns(words3, ROLES), words3, (), ROLES, 10.0, CFG)
    assert of_type(m3, "long_pause") == []


def test_question_and_invitation_detector_with_and_without_punctuation():
    yes = ["How are you?", "What happened then", "tell me more about your mother",
           "I wonder what that was like for you", "can you say a bit more", "do you want to try that",
           "So you felt let down, right?", "and why do you think that is", "That sounds hard. Would you say more?",
           "ok so where were we", "Is that okay with you."]
    no = ["I see.", "That makes sense.", "we will meet next week", "You did well this week.",
          "mm-hmm", "", "I think you were angry."]
    assert [t for t in yes if not is_question_or_invitation(t)] == []
    assert [t for t in no if is_question_or_invitation(t)] == []


def test_minimal_response_feature_after_question_with_audio_words():
    m = run([("T", 0, 3, "How was the week?"), ("C", 5.5, 6.0, "Fine."),
             ("T", 7, 10, "You went to the gym."), ("C", 10.5, 11.0, "Yes.")], 12.0)
    f = m.features
    assert [x.minimal_response for x in f] == [False, True, False, False]
    assert f[1].latency_s == pytest.approx(2.5)


def test_session_metrics_counts_rates_turn_stats():
    utts = [("T", 0, 10, "so this week we will look at the diary together and see what came up."),
            ("C", 4.0, 4.5, "mm-hmm"),
            ("C", 10.5, 20, "I did not really fill it in because it felt pointless to me honestly."),
            ("T", 12.0, 14.0, "but we agreed that you would")]
    m = run(utts, 30.0)
    c = m.metrics.event_counts
    assert c["backchannel"] == 1 and c["interruption"] == 1
    assert c["interruption.unsuccessful.therapist->client"] == 1
    assert m.metrics.event_rates_per_hour["interruption"] == pytest.approx(120.0)
    t = m.metrics.turns
    assert t.count == len(m.features)
    # the backchannel turn does not break T's monologue: 0-10 s
    assert t.longest_monologue_s["T"] == pytest.approx(10.0)
    assert t.per_minute == pytest.approx(t.count / 0.5)
    json.dumps(metrics_to_dict(m.metrics))  # JSON-able
    for e in m.events:
        json.dumps(event_to_dict(e))


def test_pure_and_deterministic():
    utts = [("T", 0, 6, "so tell me what happened at work this week."), ("C", 2.0, 2.5, "yeah"),
            ("C", 5.5, 9, "well I was late again and my boss"), ("T", 7.0, 8.5, "and how did you")]
    a, b = run(utts, 10.0), run(utts, 10.0)
    assert a == b


def test_config_section_from_yaml_dict():
    cfg = config_from_dict({"measures": {"backchannel_lexicon": ["mm", "yeah"], "long_pause_s": 2}}).measures
    assert cfg.backchannel_lexicon == ("mm", "yeah") and cfg.long_pause_s == 2.0
    assert is_backchannel_text("yeah", cfg) and not is_backchannel_text("right", cfg)


# ---------------------------------------------------------------------------- property tests (truth)

WORDS = ("we", "talked", "about", "the", "plan", "and", "your", "week", "at", "work", "felt", "hard", "then",
         "mother", "called", "again")
BC_TEXTS = ("mm-hmm.", "yeah.", "right.", "okay.", "I see.", "uh-huh.")
FINAL = ("today", "again", "work", "plan", "hard", "home", "it")
CONTINUE = ("and", "the", "to", "was", "my")  # a cut-off utterance ends on a function word or a content word


@st.composite
def scripts(draw):
    """A random two-party script: plain turns (with long pauses), backchannels inside the other's speech,
    unsuccessful interruptions, successful interruptions (cut utterance) and terminal overlaps."""
    lines: list[synth.Line] = []
    lengths: list[int] = []
    spk = draw(st.sampled_from(["T", "C"]))
    other = {"T": "C", "C": "T"}
    n = draw(st.integers(3, 10))
    prev_long = False
    for _ in range(n):
        kind = draw(st.sampled_from(["plain", "plain", "pause", "bc", "unsucc", "succ", "terminal"]))
        if kind in ("bc", "unsucc") and not prev_long:
            kind = "plain"
        nw = draw(st.integers(4, 14))
        body = draw(st.lists(st.sampled_from(WORDS), min_size=nw - 1, max_size=nw - 1))
        text = " ".join(body + [draw(st.sampled_from(FINAL))]) + "."  # a complete sentence
        dur_n = lambda k: int(16000 * 0.3 * k)  # noqa: E731  0.3 s per word
        if kind == "bc":
            lines.append(synth.Line(other[spk], draw(st.sampled_from(BC_TEXTS)),
                                    at_frac=draw(st.floats(0.15, 0.6))))
            lengths.append(int(16000 * draw(st.floats(0.3, 0.8))))
            prev_long = False  # `at_frac` of a next overlap would be relative to the backchannel
            continue  # the floor stays with spk
        if kind == "unsucc":
            lines.append(synth.Line(other[spk], text, at_frac=draw(st.floats(0.1, 0.4))))
            lengths.append(dur_n(min(nw, 5)))
            prev_long = False
            continue  # spk keeps talking (the holder's line is long, see prev_long)
        if kind == "succ":
            cut = draw(st.integers(2, nw - 1))
            w = text.rstrip(".").split()
            w[cut - 1] = draw(st.sampled_from(CONTINUE + (w[cut - 1],)))
            lines.append(synth.Line(spk, " ".join(w) + ".", said_words=cut, gap=draw(st.floats(0.3, 1.0))))
            lengths.append(dur_n(cut))
            spk = other[spk]
            lines.append(synth.Line(spk, text, gap=-draw(st.floats(0.3, max(0.3, min(0.8, 0.3 * cut - 0.3))))))
            lengths.append(dur_n(nw))
            prev_long = nw >= 10
            continue
        if kind == "terminal":
            spk = other[spk]
            lines.append(synth.Line(spk, text, gap=-draw(st.floats(0.25, 0.6))))
            lengths.append(dur_n(nw))
            prev_long = nw >= 10
            continue
        spk = other[spk]
        gap = draw(st.floats(3.2, 5.0)) if kind == "pause" else draw(st.floats(0.3, 1.5))
        lines.append(synth.Line(spk, text, gap=gap))
        lengths.append(dur_n(nw))
        prev_long = nw >= 10
    script = synth.Script("prop", (synth.Part("T", "therapist", "slt"), synth.Part("C", "client", "rms")),
                          tuple(lines))
    try:
        spans = synth.layout(script, lengths)
    except synth.SynthError:  # a rare draw makes a voice overlap itself: not a valid conversation
        reject()
    by_voice: dict[str, list[tuple[int, int]]] = {}
    for line, span in zip(lines, spans):
        by_voice.setdefault(line.speaker, []).append(span)
    for spans_v in by_voice.values():  # two lines of one voice closer than 0.3 s are one utterance
        spans_v.sort()
        if any(b[0] - a[1] < 0.3 * 16000 for a, b in zip(spans_v, spans_v[1:])):
            reject()
    n_samples = max(e for _, e in spans) + 8000
    truth = synth.build_truth(script, spans, n_samples)
    return synth.truth_to_dict(truth)


def _check_invariants(truth, m: Measures, turns, segs) -> None:
    dur = float(truth["duration_s"])
    speech = speech_time(segs)
    tt = m.metrics.talk_time.session
    assert speech <= dur + 1e-6
    for spk, d in tt.per_speaker.items():
        assert d.talk_s <= speech + 1e-3  # talk time never exceeds speech time
        assert d.solo_s <= d.talk_s + 1e-3
    shares = [d.share for d in tt.per_speaker.values()]
    assert math.isclose(sum(shares), 1.0, abs_tol=2e-3)
    assert math.isclose(sum(d.share for d in tt.per_role.values()), 1.0, abs_tol=2e-3)
    for w in m.metrics.talk_time.windows:
        if w.speech_s > 0:
            assert math.isclose(sum(d.share for d in w.per_speaker.values()), 1.0, abs_tol=2e-3)
        assert w.speech_s <= w.end - w.start + 1e-6
    idx = {t.index for t in turns}
    for e in m.events:
        assert 0.0 <= e.start <= e.end <= dur + 1e-9  # within the session
        assert e.turn_index in idx  # references a real turn
        assert 0.0 <= e.confidence <= 1.0
    assert len(m.features) == len(turns)
    assert [f.turn_index for f in m.features] == [t.index for t in turns]
    # no backchannel is counted as an interruption
    bc_onsets = {(round(e["start"], 3), e["speaker"]) for e in truth["events"] if e["type"] == "backchannel"}
    for e in m.events:
        if e.type == "interruption":
            assert (round(e.start, 3), e.speaker) not in bc_onsets
    starts = {}
    for e in m.events:
        if e.type in ("interruption", "backchannel", "overlap"):
            assert (e.start, e.speaker) not in starts, "one class per burst"
            starts[(e.start, e.speaker)] = e.type


@settings(max_examples=int(__import__("os").environ.get("MEASURES_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scripts())
def test_property_invariants_and_exact_agreement_with_truth(truth):
    turns, words, segs, roles = eval_measures.oracle_inputs(truth)
    m = measure_conversation(turns, words, segs, roles, float(truth["duration_s"]), CFG)
    _check_invariants(truth, m, turns, segs)
    row = eval_measures.score_session(truth, m.events, m.metrics.therapist_share, segs, tol=0.05)
    # hand-made records: the measures are exact
    assert row["int_tp"] == row["int_pred"] == row["int_true"], row
    assert row["int_subtype_ok"] == row["int_tp"], row
    assert row["bc_as_interruption"] == 0
    assert row["bc_tp"] == row["bc_true"], row
    assert row["lp_hit"] == row["lp_true"] == row["lp_pred"], row
    assert row["therapist_share_err_pp"] < 0.05, row


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.floats(0, 100), st.floats(0.05, 12)),
                min_size=1, max_size=25),
       st.sampled_from([None, "A", "B"]))
def test_property_random_segments(items, therapist):
    """Arbitrary (messy, self-overlapping) diarization: invariants still hold, nothing crashes."""
    utts = [(spk, s, min(110.0, s + d), "yeah" if d < 0.8 else "we talked about the plan at work")
            for spk, s, d in items]
    roles = {s: ("therapist" if s == therapist else "client") for s in "ABC"}
    words: list[Word] = []
    for spk, s, e, text in utts:
        words += spread(spk, s, e, text)
    ws = tuple(sorted(words, key=lambda w: (w.start, w.end)))
    turns = build_turns(ws, roles)
    segs = tuple(Segment(s, e, spk) for spk, s, e, _ in utts)
    cfg = replace(CFG, window_s=30.0, window_step_s=10.0, min_window_speech_s=5.0)
    m = measure_conversation(turns, ws, segs, roles, 110.0, cfg)
    truth = {"duration_s": 110.0, "events": []}
    _check_invariants(truth, m, turns, segs)
    assert sum(talk_time(segs).values()) >= speech_time(segs) - 1e-6
    json.dumps(metrics_to_dict(m.metrics))


# ---------------------------------------------------------------------------------------- evaluation


def test_eval_oracle_on_demo_truth(demo_dir):
    p = demo_dir / "demo_truth.json"
    if not p.exists():
        pytest.skip("demo truth not generated")
    truth = json.loads(p.read_text())
    row = eval_measures.run_oracle(truth, CFG, tol=0.5)
    assert row["int_true"] >= 1
    assert row["int_tp"] == row["int_true"] == row["int_pred"]
    assert row["bc_as_interruption"] == 0
    assert row["lp_hit"] == row["lp_true"]


def test_eval_pyannote_sample_overlaps_found():
    out = eval_measures.pyannote_sample(CFG, None, tol=0.0)
    assert out["reference_overlaps"] == 6
    assert out["oracle"]["reference_overlaps_found"] == out["reference_overlaps_ge_min"]


# ------------------------------------------------------------- single-stream ASR (words attributed by the
# exclusive track: in an overlap the louder holder's words are handed to the incoming speaker)


def asr_like(holder_text: str, holder_span, incoming_span, after=None):
    """Holder A=T speaks `holder_span`; C's burst `incoming_span` overlaps it; the transcript holds only
    T's words, and those inside C's burst are attributed to C (as the exclusive track does)."""
    a0, a1 = holder_span
    b0, b1 = incoming_span
    words = []
    for w in spread("T", a0, a1, holder_text):
        mid = 0.5 * (w.start + w.end)
        words.append(Word(w.start, w.end, w.text, 1.0, "C" if b0 <= mid <= b1 else "T"))
    if after is not None:
        words += spread("C", after[0], after[1], after[2])
    ws = tuple(sorted(words, key=lambda w: w.start))
    segs = [Segment(a0, a1, "T"), Segment(b0, b1, "C")]
    if after is not None:
        segs.append(Segment(after[0], after[1], "C"))
    return build_turns(ws, ROLES), ws, tuple(segs)


def test_asr_overlap_words_are_not_trusted_for_backchannels():
    text = "so what I would like us to try this week is a short walk every single morning before work."
    turns, words, segs = asr_like(text, (0, 8), (3.0, 3.6))
    m = measure_conversation(turns, words, segs, ROLES, 9.0, CFG)
    # C "said" two of T's words according to the transcript, but they ran inside T's speech: a short
    # burst that T talks through is a backchannel, not an interruption
    assert [e.type for e in m.events if e.speaker == "C"] == ["backchannel"]
    assert of_type(m, "interruption") == []
    # a longer burst T talks through is an (unsuccessful) interruption attempt
    turns, words, segs = asr_like(text, (0, 8), (3.0, 4.1))
    m = measure_conversation(turns, words, segs, ROLES, 9.0, CFG)
    assert [(e.type, e.subtype) for e in of_type(m, "interruption")] == [("interruption", "unsuccessful")]


def test_asr_terminal_overlap_after_question_in_progress():
    # T asks a question; C answers 0.4 s before T's last word ends; the ASR garbles the overlap
    words = tuple(spread("T", 0, 3.0, "What was the hardest part of the week for")
                  + [Word(3.0, 3.3, "you", 1.0, "T"), Word(3.3, 3.4, "-", 1.0, "T"), Word(3.4, 3.6, "On", 1.0, "T")]
                  + spread("C", 3.6, 7.0, "day evening I started worrying about work."))
    segs = (Segment(0, 3.4, "T"), Segment(3.0, 7.0, "C"))
    turns = build_turns(words, ROLES)
    m = measure_conversation(turns, words, segs, ROLES, 8.0, CFG)
    assert of_type(m, "interruption") == []
    assert [(e.type, e.subtype) for e in m.events] == [("overlap", "terminal")]
    # the same timing in a statement cut mid-sentence is a successful interruption
    words2 = tuple(spread("T", 0, 3.0, "It sounds simple but it helps your body")
                   + [Word(3.0, 3.3, "get", 1.0, "T"), Word(3.3, 3.6, "lost.", 1.0, "T")]
                   + spread("C", 3.6, 7.0, "Actually I already tried something like that."))
    m2 = measure_conversation(build_turns(words2, ROLES), words2, segs, ROLES, 8.0, CFG)
    (it,) = of_type(m2, "interruption")
    assert it.subtype == "successful" and it.speaker == "C"
    assert m2.features[it.turn_index].interrupts_previous
    assert build_turns(words2, ROLES)[it.turn_index].speaker == "C"
    # a statement that opens with a wh-word and a subject ("what you're describing is ...", a free
    # relative) is not a question in progress: C cutting in is an interruption, not a terminal overlap
    words3 = tuple(spread("T", 0, 3.0, "What you're describing is a really common pattern, when")
                   + [Word(3.0, 3.3, "we", 1.0, "T"), Word(3.3, 3.6, "feel", 1.0, "T")]
                   + spread("C", 3.6, 7.0, "Actually I already tried something like that."))
    m3 = measure_conversation(build_turns(words3, ROLES), words3, segs, ROLES, 8.0, CFG)
    assert [(e.type, e.subtype) for e in of_type(m3, "interruption")] == [("interruption", "successful")]


def test_question_in_progress_wh_questions_and_free_relatives():
    from pipeline.measures._overlaps import _question_in_progress

    assert _question_in_progress("What do you think made the")
    assert _question_in_progress("Okay. What's been going on for")
    assert _question_in_progress("Why's that")
    assert not _question_in_progress("What you're describing is a really common pattern, when we feel")
    assert not _question_in_progress("So how I see it is")
    assert not _question_in_progress("I went home. Then I")
    # the same rule in the turn-level detector (roles, minimal responses)
    assert is_question_or_invitation("What's been hardest this week")
    assert not is_question_or_invitation("What you're describing is a really common pattern.")


def test_simultaneous_start_is_an_overlap_not_an_interruption():
    m = run([("T", 10.0, 13.0, "So what should we do about it then."),
             ("C", 10.1, 12.0, "I was going to say that.")], 14.0)
    assert of_type(m, "interruption") == []
    assert [(e.type, e.subtype) for e in m.events] == [("overlap", "simultaneous_start")]


def test_speaker_resuming_over_a_backchannel_is_not_interrupting_it():
    # C backchannels in T's short pause; T resumes while the backchannel is still running
    segs = (Segment(0, 4.0, "T"), Segment(4.1, 4.6, "C"), Segment(4.4, 9.0, "T"))
    words = tuple(spread("T", 0, 4.0, "and then I went to the office") + spread("C", 4.1, 4.6, "mm-hmm")
                  + spread("T", 4.6, 9.0, "and everyone was already there waiting."))
    m = measure_conversation(build_turns(words, ROLES), words, segs, ROLES, 10.0, CFG)
    assert [e.type for e in m.events] == ["backchannel"]


def test_diarization_label_flicker_and_tiny_bursts_are_ignored():
    # pyannote flips labels inside one voice: C's "segments" abut T's exactly and never overlap them
    segs = (Segment(0.0, 3.353, "T"), Segment(3.353, 3.387, "C"), Segment(3.387, 3.505, "T"),
            Segment(3.505, 3.707, "C"), Segment(3.707, 6.0, "T"), Segment(8.0, 8.1, "C"), Segment(7.0, 10.0, "T"))
    words = tuple(spread("T", 0.0, 6.0, "and how strongly did you believe that thought at the time")
                  + spread("T", 7.0, 10.0, "and what about now."))
    m = measure_conversation(build_turns(words, ROLES), words, segs, ROLES, 11.0, CFG)
    assert [e for e in m.events if e.type in ("interruption", "backchannel", "overlap")] == []
    # the same C burst overlapping T's speech is a real (backchannel) overlap
    segs2 = (Segment(0.0, 6.0, "T"), Segment(3.353, 3.707, "C"))
    m2 = measure_conversation(build_turns(words, ROLES), words, segs2, ROLES, 11.0, CFG)
    assert [e.type for e in m2.events if e.speaker == "C"] == ["backchannel"]


def test_eval_runs_mode_scores_a_session_json(tmp_path):
    """Mode (b): a session.json written by pipeline.serialize is scored against a truth dict; predicted
    speaker ids are mapped onto truth ids by time overlap."""
    from pipeline.records import SessionRecord, Speaker
    from pipeline.serialize import write_session_json

    script = synth.Script("s1", (synth.Part("T", "therapist", "slt"), synth.Part("C", "client", "rms")), (
        synth.Line("T", "So this week I would like us to look at the thought record together again today."),
        synth.Line("C", "Mm-hmm.", at_frac=0.3),
        synth.Line("C", "But I really do not think that it helps me at all.", gap=0.5),
        synth.Line("T", "Hang on a", at_frac=0.2),
        synth.Line("T", "What did you notice when you tried it?", gap=3.5),
        synth.Line("C", "Nothing much really.", gap=0.8),
    ))
    lengths = [int(16000 * 0.3 * len(l.text.split())) for l in script.lines]
    spans = synth.layout(script, lengths)
    truth = synth.truth_to_dict(synth.build_truth(script, spans, max(e for _, e in spans) + 8000))
    turns, words, segs, roles = eval_measures.oracle_inputs(truth)
    rename = {"T": "SPEAKER_00", "C": "SPEAKER_01"}  # the pipeline's own labels
    turns = tuple(Turn(t.index, rename[t.speaker], t.role, t.start, t.end, t.text, t.word_count) for t in turns)
    words = tuple(Word(w.start, w.end, w.text, w.probability, rename[w.speaker]) for w in words)
    segs = tuple(Segment(s.start, s.end, rename[s.speaker]) for s in segs)
    roles = {rename[k]: v for k, v in roles.items()}
    m = measure_conversation(turns, words, segs, roles, float(truth["duration_s"]), CFG)
    rec = SessionRecord("s1", float(truth["duration_s"]),
                        tuple(Speaker(s, r, talk_time(segs)[s], 1.0, "inferred") for s, r in roles.items()),
                        turns, words, m.events, m.metrics, Provenance(), segments=segs)
    path = tmp_path / "s1" / "session.json"
    write_session_json(rec, path)
    row = eval_measures.run_output(truth, path, tol=0.5)
    assert row["int_true"] == 1 and row["int_tp"] == 1 and row["int_pred"] == 1
    assert row["bc_true"] == 1 and row["bc_tp"] == 1 and row["bc_as_interruption"] == 0
    assert row["lp_true"] == 1 and row["lp_hit"] == 1
    assert row["therapist_share_err_pp"] < 0.1
    # recomputing from the stored turns/words/segments gives the same scores
    assert eval_measures.run_output(truth, path, tol=0.5, recompute=CFG) == row


def _channel_words(spk: str, start: float, text: str, step: float = 0.3, p: float = 0.95) -> list[Word]:
    """Words as a per-channel ASR gives them: one speaker's own timings, punctuation as heard."""
    return [Word(start + i * step, start + (i + 1) * step, tok, p, spk) for i, tok in enumerate(text.split())]


def test_per_channel_asr_period_on_a_cut_off_phrase_is_not_a_completion():
    """One transcript per channel resolves the overlap, but Whisper closes a phrase that was cut off with a
    period. From an ASR, the words before the onset decide (as for a single stream); a hand-made transcript's
    period is trusted."""
    words = tuple(sorted(_channel_words("T", 0.0, "the thought that you will fail leads to anxiety, the anxiety leads.")
                         + _channel_words("C", 3.3, "Yes, that's exactly what happened to me on Tuesday."),
                         key=lambda w: (w.start, w.end)))
    segs = (Segment(0.0, 3.9, "T"), Segment(3.3, 6.6, "C"))  # C comes in on "anxiety"; T stops 0.6 s later
    turns = build_turns(words, ROLES)
    asr = measure_conversation(turns, words, segs, ROLES, 7.0, CFG, asr_words=True)
    assert [(e.type, e.subtype, e.speaker) for e in of_type(asr, "interruption")] == [
        ("interruption", "successful", "C")]
    hand = measure_conversation(turns, words, segs, ROLES, 7.0, CFG)
    assert [(e.type, e.subtype) for e in hand.events if e.type in ("interruption", "overlap")] == [
        ("overlap", "terminal")]


def test_low_probability_words_in_a_short_burst_are_judged_by_length():
    """A lone hum on a close-talk channel comes out as low-probability guesses ("hungry"): not evidence of
    an interruption attempt. The same burst heard clearly as words of a floor claim is one."""
    t_words = _channel_words("T", 0.0, "so what I would like us to try this week is a short walk every morning.")
    segs = (Segment(0.0, 4.5, "T"), Segment(2.0, 2.6, "C"))
    for p, expected in ((0.3, "backchannel"), (0.9, "interruption")):
        c_words = [Word(2.0, 2.3, "Hang", p, "C"), Word(2.3, 2.6, "on.", p, "C")]
        words = tuple(sorted(t_words + c_words, key=lambda w: (w.start, w.end)))
        m = measure_conversation(build_turns(words, ROLES), words, segs, ROLES, 5.0, CFG, asr_words=True)
        assert [e.type for e in m.events if e.speaker == "C"] == [expected], p
