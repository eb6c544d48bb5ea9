"""pipeline.tagging: decision rule, cues, role handling, repair linking, metrics (pure, hand-built records)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import TaggingConfig
from pipeline.records import (LABELS, REPAIR_SUBTYPES, RUPTURE_SUBTYPES, MarkerPrediction, Turn, TurnFeatures,
                              family_of, role_allows)
from pipeline.tagging import (
    decide,
    rupture_metrics,
    context_inputs,
    in_context,
    tag_turns,
)
from pipeline.measures import turn_features

CFG = TaggingConfig(threshold=0.5)
# the text cues' boosts are off by default (the model reads them); these tests switch them on
CUES = replace(CFG, cue_minimal_response=1.0, cue_talk_shift=0.4)


def pred(i: int, role: str, **mass: float) -> MarkerPrediction:
    """A prediction with the given label masses; the rest goes to `none`; zero on labels the role forbids."""
    probs = {lab: 0.0 for lab in LABELS}
    for k, v in mass.items():
        probs[k.replace("__", ".")] = v
    probs["none"] = 1.0 - sum(probs.values())
    assert all(role_allows(role, lab) or p == 0.0 for lab, p in probs.items())
    return MarkerPrediction(i, tuple(probs.items()))


def turn(i: int, role: str, text: str, start: float | None = None, dur: float = 3.0) -> Turn:
    spk = {"therapist": "T", "client": "C"}.get(role, f"S{i % 2}")
    s = float(i * 4) if start is None else start
    return Turn(i, spk, role, s, s + dur, text, len(text.split()))


def feats(i: int, **kw) -> TurnFeatures:
    base = dict(turn_index=i, word_count=10, latency_s=0.5, follows_question=False, minimal_response=False,
                interrupts_previous=False, was_interrupted=False)
    base.update(kw)
    return TurnFeatures(**base)


def test_labels_cover_contract():
    assert set(LABELS) == {"none", *RUPTURE_SUBTYPES, *REPAIR_SUBTYPES}
    assert family_of("withdrawal.denial") == "withdrawal"
    assert family_of("confrontation.defends_self") == "confrontation"
    assert family_of("links_to_pattern") == "repair"


def test_rupture_then_repair_is_resolved_with_evidence():
    turns = (turn(0, "therapist", "How did the homework go?"), turn(1, "client", "Fine."),
             turn(2, "therapist", "Something I said didn't sit right. Can we talk about it?"))
    preds = (pred(0, "therapist"), pred(1, "client", withdrawal__minimal_response=0.7, withdrawal__denial=0.1),
             pred(2, "therapist", invites_discussion=0.8))
    fs = (feats(0), feats(1, word_count=1, latency_s=4.2, follows_question=True, minimal_response=True), feats(2))
    ev = tag_turns(turns, fs, preds, CFG)
    assert [e.type for e in ev] == ["rupture", "repair"]
    r, rep = ev
    assert r.subtype == "withdrawal.minimal_response" and r.speaker == "C" and r.target_speaker == "T"
    assert r.resolved is True and r.repair_turn_index == 2
    assert rep.subtype == "invites_discussion" and rep.speaker == "T" and rep.target_speaker == "C"
    assert r.evidence.startswith('"Fine."') and "latency 4.2 s" in r.evidence and "minimal response" in r.evidence
    d = r.details.measure
    assert d.p_model == pytest.approx(0.8) and d.cue_boost > 0 and r.confidence > d.p_model
    m = rupture_metrics(ev)
    assert m.ruptures == 1 and m.resolved == 1 and m.unresolved == 0 and m.repairs == 1
    assert m.ruptures_by_subtype == {"withdrawal.minimal_response": 1}


def test_repair_outside_window_leaves_rupture_unresolved():
    turns = (turn(0, "client", "You never listen."), turn(1, "therapist", "I'm sorry, I did interrupt.", start=300.0))
    preds = (pred(0, "client", confrontation__complaint_about_therapist=0.9),
             pred(1, "therapist", acknowledges_contribution=0.9))
    ev = tag_turns(turns, (feats(0), feats(1)), preds, replace(CFG, repair_window_s=60.0))
    assert ev[0].type == "rupture" and ev[0].resolved is False and ev[0].repair_turn_index is None
    assert rupture_metrics(ev).unresolved == 1
    ev2 = tag_turns(turns, (feats(0), feats(1)), preds, replace(CFG, repair_window_s=600.0))
    assert ev2[0].resolved is True and ev2[0].repair_turn_index == 1


def test_threshold_trades_recall_for_precision():
    turns = (turn(0, "client", "I'm not upset."),)
    preds = (pred(0, "client", withdrawal__denial=0.55),)
    assert len(tag_turns(turns, (feats(0),), preds, replace(CFG, threshold=0.5))) == 1
    assert tag_turns(turns, (feats(0),), preds, replace(CFG, threshold=0.6)) == ()


def test_family_mass_decides_not_a_single_subtype():
    # no subtype reaches the threshold, but withdrawal as a whole does: one event, the best subtype
    p = pred(0, "client", withdrawal__denial=0.3, withdrawal__minimal_response=0.25)
    d = decide("client", p, None, CFG)
    assert d.family == "withdrawal" and d.subtype == "withdrawal.denial" and d.confidence == pytest.approx(0.55)


def test_rupture_is_judged_on_its_total_mass():
    # neither family reaches the threshold, together they do: one rupture, named after the larger family
    p = pred(0, "client", withdrawal__denial=0.3, confrontation__defends_self=0.25)
    d = decide("client", p, None, CFG)
    assert d.family == "withdrawal" and d.subtype == "withdrawal.denial" and d.confidence == pytest.approx(0.55)
    assert decide("client", p, None, replace(CFG, threshold=0.6)).family == "none"


def test_minimal_response_cue_raises_withdrawal_only_after_invitation():
    p = pred(0, "client", withdrawal__minimal_response=0.35)
    plain = decide("client", p, feats(0, word_count=1), CUES)
    cued = decide("client", p, feats(0, word_count=1, follows_question=True, minimal_response=True, latency_s=5.0), CUES)
    assert plain.family == "none"
    assert cued.family == "withdrawal" and cued.cue_boost == pytest.approx(CUES.cue_minimal_response + CUES.cue_latency)
    # by default only the audio cue (latency) adds to the model's own reading of the text
    dflt = decide("client", p, feats(0, word_count=1, follows_question=True, minimal_response=True, latency_s=5.0), CFG)
    assert dflt.cue_boost == pytest.approx(CFG.cue_latency) and "minimal response after invitation" in dflt.cues
    off = decide("client", p, feats(0, word_count=1, follows_question=True, minimal_response=True, latency_s=5.0),
                 replace(CUES, cue_weight=0.0))
    assert off.family == "none" and off.cue_boost == 0.0


def test_interruption_raises_confrontation_only_with_complaint_language():
    complaint = pred(0, "client", confrontation__complaint_about_therapist=0.4)
    neutral = pred(0, "client", confrontation__complaint_about_therapist=0.05)
    f = feats(0, interrupts_previous=True, latency_s=0.0)
    assert decide("client", complaint, feats(0), CFG).family == "none"
    assert decide("client", complaint, f, CFG).family == "confrontation"
    d = decide("client", neutral, f, CFG)
    assert d.family == "none" and d.cue_boost == 0.0


def test_talk_time_shift_cue():
    p = pred(0, "client", withdrawal__minimal_response=0.45)
    f = feats(0, word_count=4, follows_question=True)
    assert decide("client", p, f, CUES, client_median_words=40.0).family == "withdrawal"
    assert decide("client", p, f, CUES, client_median_words=10.0).family == "none"


def test_roles_other_and_unknown():
    turns = (turn(0, "other", "You never listen."), turn(1, "unknown", "You never listen."),
             turn(2, "unknown", "I'm sorry, I did interrupt you."))
    preds = (pred(0, "other"),
             MarkerPrediction(1, tuple((lab, 0.9 if lab == "confrontation.complaint_about_therapist" else 0.1 / 24)
                                       for lab in LABELS)),
             MarkerPrediction(2, tuple((lab, 0.9 if lab == "acknowledges_contribution" else 0.1 / 24) for lab in LABELS)))
    ev = tag_turns(turns, (feats(0), feats(1), feats(2)), preds, CFG)
    assert [(e.type, e.turn_index) for e in ev] == [("rupture", 1), ("repair", 2)]
    assert all("role unknown" in e.evidence for e in ev)
    assert ev[0].resolved is True and ev[0].repair_turn_index == 2


def test_evidence_is_trimmed():
    long = "word " * 200
    ev = tag_turns((turn(0, "client", long),), (feats(0),), (pred(0, "client", withdrawal__avoidant_storytelling=0.9),),
                   replace(CFG, evidence_chars=50))
    quoted = ev[0].evidence.split('"')[1]
    assert len(quoted) <= 50 and quoted.endswith("…")


def test_turn_features_from_text_and_audio():
    turns = (turn(0, "therapist", "How did the week go?"), turn(1, "client", "Fine."),
             turn(2, "therapist", "Okay."), turn(3, "client", "Yes, I did all of it and more."))
    f = turn_features(turns, latencies=[None, 3.0, 0.4, 0.2], interrupters={3})
    assert f[1].follows_question and f[1].minimal_response and f[1].latency_s == 3.0
    assert not f[3].follows_question and not f[3].minimal_response and f[3].interrupts_previous
    text_only = turn_features(turns)
    assert text_only[1].minimal_response and text_only[1].latency_s is None and not text_only[3].interrupts_previous


def scored(i: int, role: str, z: float, **mass: float) -> MarkerPrediction:
    p = pred(i, role, **mass)
    return replace(p, rupture_logit=z if role in ("client", "unknown") else None,
                   repair_logit=z if role in ("therapist", "unknown") else None)


def test_context_inputs_session_mean_nearby_and_preceding_rupture():
    roles = ["therapist", "client", "therapist", "client", "therapist"]
    rup, rep = context_inputs(roles, [None, 2.0, None, -1.0, None], [0.1, None, 0.5, None, -0.3], window=2, lookback=2)
    assert rup[1] == (2.0, 0.5, -1.0) and rup[3] == (-1.0, 0.5, 2.0)
    assert rep[2] == (0.5, 2.0, 0.5)  # the client's strong rupture score just before
    assert rep[4] == (-0.3, -1.0, 0.5)  # two turns back: only the later client turn
    assert rep[0] == (0.1, 0.5, 0.5)  # nothing before: the session mean


def test_in_context_reweighs_ruptures_by_the_session():
    turns = tuple(turn(i, r, "text") for i, r in enumerate(["therapist", "client", "therapist", "client"]))
    calm = (scored(0, "therapist", -3.0), scored(1, "client", 0.0, withdrawal__denial=0.3, confrontation__defends_self=0.2),
            scored(2, "therapist", -3.0), scored(3, "client", -4.0))
    strained = calm[:3] + (scored(3, "client", 3.0),)
    w = (1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)  # own score + session mean
    a = in_context(turns, calm, w)[1].family_probs()
    b = in_context(turns, strained, w)[1].family_probs()
    assert b["withdrawal"] + b["confrontation"] > a["withdrawal"] + a["confrontation"]
    assert a["withdrawal"] / a["confrontation"] == pytest.approx(1.5)  # subtype shares kept
    for p in in_context(turns, strained, w):
        assert sum(v for _, v in p.probs) == pytest.approx(1.0)
    plain = pred(1, "client", withdrawal__denial=0.3)  # no raw scores: unchanged
    assert in_context(turns[1:2], (plain,), w) == (plain,)
    with pytest.raises(ValueError):
        in_context(turns, calm, (1.0, 2.0))


def test_moments_rank_ruptures_with_their_repairs():
    turns = (turn(0, "client", "No."), turn(1, "therapist", "Let's look at what just happened between us."),
             turn(2, "client", "Whatever."), turn(3, "client", "You never listen."))
    preds = (pred(0, "client", withdrawal__minimal_response=0.6), pred(1, "therapist", invites_discussion=0.9),
             pred(2, "client", withdrawal__minimal_response=0.7), pred(3, "client", confrontation__complaint_about_therapist=0.95))
    m = rupture_metrics(tag_turns(turns, (), preds, replace(CFG, repair_window_s=1.0)), moments=2)
    assert [x.turn_index for x in m.moments] == [3, 2]
    assert m.ruptures == 3 and m.resolved == 1 and m.share_resolved == pytest.approx(1 / 3, abs=1e-4)
    assert rupture_metrics(()).share_resolved is None and rupture_metrics(()).moments == ()


def test_missing_prediction_or_features_are_tolerated():
    turns = (turn(0, "client", "Fine."), turn(1, "client", "I'm useless."))
    ev = tag_turns(turns, (), (pred(1, "client", withdrawal__self_criticism_hopelessness=0.9),), CFG)
    assert [e.turn_index for e in ev] == [1]


@st.composite
def sessions(draw):
    n = draw(st.integers(1, 12))
    roles = draw(st.lists(st.sampled_from(["client", "therapist", "unknown", "other"]), min_size=n, max_size=n))
    turns, preds, fs = [], [], []
    t = 0.0
    for i, r in enumerate(roles):
        t += draw(st.floats(0.0, 100.0))
        turns.append(Turn(i, "A" if r in ("client", "other") else "B", r, t, t + 2.0, "text here", 2))
        allowed = [lab for lab in LABELS if role_allows(r, lab)]
        w = draw(st.lists(st.floats(0.0, 1.0), min_size=len(allowed), max_size=len(allowed)))
        tot = sum(w) or 1.0
        probs = {lab: 0.0 for lab in LABELS}
        for lab, x in zip(allowed, w):
            probs[lab] = x / tot
        if not sum(w):
            probs["none"] = 1.0
        preds.append(MarkerPrediction(i, tuple(probs.items())))
        fs.append(feats(i, word_count=2, latency_s=draw(st.none() | st.floats(0.0, 10.0)),
                        follows_question=draw(st.booleans()), minimal_response=draw(st.booleans()),
                        interrupts_previous=draw(st.booleans())))
    return tuple(turns), tuple(fs), tuple(preds)


@settings(max_examples=150, deadline=None)
@given(sessions(), st.floats(0.05, 0.95))
def test_properties(sess, thr):
    turns, fs, preds = sess
    cfg = replace(CFG, threshold=thr)
    ev = tag_turns(turns, fs, preds, cfg)
    by_index = {t.index: t for t in turns}
    for e in ev:
        t = by_index[e.turn_index]
        assert 0.0 <= e.confidence <= 1.0 and e.confidence >= thr
        assert t.role != "other"
        if e.type == "rupture":
            assert t.role in ("client", "unknown") and e.subtype in RUPTURE_SUBTYPES
            assert e.resolved == (e.repair_turn_index is not None)
            if e.resolved:
                assert e.repair_turn_index > e.turn_index
                assert any(x.type == "repair" and x.turn_index == e.repair_turn_index for x in ev)
        else:
            assert t.role in ("therapist", "unknown") and e.subtype in REPAIR_SUBTYPES
    # a higher threshold never adds events
    higher = tag_turns(turns, fs, preds, replace(cfg, threshold=min(0.99, thr + 0.2)))
    assert {(e.type, e.turn_index) for e in higher} <= {(e.type, e.turn_index) for e in ev}
    m = rupture_metrics(ev)
    assert m.resolved + m.unresolved == m.ruptures == m.withdrawal + m.confrontation
