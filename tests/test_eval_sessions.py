"""scripts/eval_sessions.py: the pure rupture/repair scoring on hand-made truth and prediction records
(no models, no audio)."""

from __future__ import annotations


import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


import eval_sessions as ev  # noqa: E402
from eval_sessions import SessionTruth  # noqa: E402

from pipeline.records import Event  # noqa: E402
from pipeline.serialize import event_to_dict  # noqa: E402

WD = "withdrawal.minimal_response"
WD2 = "withdrawal.denial"
CF = "confrontation.complaint_about_progress"


def rup(start: float, end: float, subtype: str = WD, resolved: bool | None = False, conf: float = 0.9) -> Event:
    return Event("rupture", subtype, start, end, "c", "t", 0, conf, "", resolved=resolved)


def rep(start: float, end: float, subtype: str = "invites_discussion", conf: float = 0.9) -> Event:
    return Event("repair", subtype, start, end, "t", "c", 1, conf, "")


def truth(ruptures=(), repairs=(), duration_s: float = 600.0, split: str = "dev", sid: str = "s") -> SessionTruth:
    return SessionTruth(sid, split, duration_s, tuple(ruptures), tuple(repairs))


# ------------------------------------------------------------------------------------------ matching


def test_family():
    assert ev.family(WD) == "withdrawal"
    assert ev.family(CF) == "confrontation"
    assert ev.family(None) is None


def test_events_match_by_overlap_or_start_tolerance():
    t = rup(10.0, 14.0)
    assert ev.events_match(rup(13.0, 20.0), t, tol=2.0)  # overlap, starts 3 s apart
    assert ev.events_match(rup(8.5, 9.5), t, tol=2.0)  # no overlap, starts 1.5 s apart
    assert not ev.events_match(rup(8.5, 9.5), t, tol=1.0)
    assert not ev.events_match(rup(7.0, 9.5), t, tol=2.0)  # no overlap, starts 3 s apart
    assert ev.events_match(rup(11.5, 11.6), t, tol=0.0)  # inside
    assert not ev.events_match(rup(14.0, 18.0), t, tol=2.0)  # touching is not overlapping, starts 4 s apart
    assert ev.events_match(rup(11.9, 11.9), rup(10.0, 10.0), tol=2.0)  # zero-length spans: start tolerance


def test_match_events_is_one_to_one_and_prefers_overlap():
    truth_ev = [rup(10.0, 12.0), rup(13.0, 15.0)]
    # p0 overlaps t1 and is within tol of t0; p1 overlaps t0 only -> p1-t0, p0-t1
    pred = [rup(12.5, 14.0), rup(10.5, 11.0)]
    assert ev.match_events(pred, truth_ev, tol=2.0) == [(1, 0), (0, 1)]
    # two predictions on one truth rupture: one match, the other is a false positive
    assert ev.match_events([rup(10.0, 12.0), rup(10.2, 11.0)], [rup(10.0, 12.0)], tol=2.0) == [(0, 0)]
    assert ev.match_events([], truth_ev, tol=2.0) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 5)), max_size=8),
       st.lists(st.tuples(st.floats(0, 100), st.floats(0, 5)), max_size=8),
       st.floats(0, 5))
def test_match_events_properties(p, t, tol):
    pred = [rup(s, s + d) for s, d in p]
    tru = [rup(s, s + d) for s, d in t]
    m = ev.match_events(pred, tru, tol)
    assert len({i for i, _ in m}) == len(m) == len({j for _, j in m})
    assert len(m) <= min(len(pred), len(tru))
    assert all(ev.events_match(pred[i], tru[j], tol) for i, j in m)


# ------------------------------------------------------------------------------------------ sessions


def test_score_session_counts():
    tr = truth(ruptures=[rup(10, 12, WD, resolved=True), rup(40, 45, CF, resolved=False), rup(80, 81, WD)],
               repairs=[rep(13, 18), rep(90, 95)])
    pred_r = (rup(10.5, 12, WD2, resolved=True),  # matches t0: family right, subtype wrong, resolved agrees
              rup(41, 44, CF, resolved=True),  # matches t1: subtype right, resolved disagrees
              rup(60, 62, CF))  # false positive; t2 missed
    pred_p = (rep(13.5, 17), rep(30, 31))
    s = ev.score_session(tr, pred_r, pred_p, tol=2.0)
    assert (s.truth_ruptures, s.pred_ruptures, s.matched_ruptures) == (3, 3, 2)
    assert (s.subtype_correct, s.family_correct) == (1, 2)
    assert (s.truth_repairs, s.pred_repairs, s.matched_repairs) == (2, 2, 1)
    assert (s.resolved_both, s.resolved_agree) == (2, 1)
    assert [m.truth_subtype for m in s.matches] == [WD, CF]
    assert s.has_ruptures


def test_calm_session_counts_false_ruptures():
    s = ev.score_session(truth(duration_s=300.0), (rup(5, 6), rup(50, 52)), (rep(7, 9),), tol=2.0)
    assert not s.has_ruptures
    assert (s.pred_ruptures, s.matched_ruptures, s.pred_repairs) == (2, 0, 1)


def test_summarize_separates_rupture_and_calm_sessions():
    a = ev.score_session(truth([rup(10, 12, WD), rup(40, 45, CF)], [rep(13, 15)], 120.0, sid="a"),
                         (rup(10, 12, WD), rup(70, 71, WD)), (rep(13, 14),), tol=2.0)
    calm1 = ev.score_session(truth(duration_s=600.0, sid="c1"), (rup(5, 6), rup(300, 301)), (), tol=2.0)
    calm2 = ev.score_session(truth(duration_s=300.0, sid="c2"), (rup(20, 21),), (rep(30, 33),), tol=2.0)
    s = ev.summarize([a, calm1, calm2])
    assert s.sessions == 3 and s.audio_min == pytest.approx(17.0)
    assert s.pred_ruptures == 5
    assert (s.rupture_sessions, s.truth_ruptures) == (1, 2)
    assert (s.pred_ruptures_in_rupture_sessions, s.matched_ruptures) == (2, 1)
    assert s.rupture_recall == 0.5 and s.rupture_precision == 0.5  # calm false positives are not in precision
    assert s.subtype_accuracy == 1.0 and s.family_accuracy == 1.0
    assert s.repair_recall == 1.0
    assert (s.calm_sessions, s.calm_audio_min, s.false_ruptures) == (2, 15.0, 3)
    assert s.false_ruptures_per_10min == pytest.approx(2.0)
    assert s.calm_pred_repairs == 1


def test_summarize_empty_denominators_are_none():
    s = ev.summarize([ev.score_session(truth(duration_s=60.0), (), (), tol=2.0)])
    assert s.rupture_recall is None and s.rupture_precision is None and s.subtype_accuracy is None
    assert s.repair_recall is None and s.resolved_agreement is None
    assert s.false_ruptures == 0 and s.false_ruptures_per_10min == 0.0
    s2 = ev.summarize([ev.score_session(truth([rup(1, 2)], duration_s=60.0), (), (), tol=2.0)])
    assert s2.rupture_recall == 0.0 and s2.rupture_precision is None and s2.false_ruptures_per_10min is None


def test_summarize_by_split_has_all():
    rows = [ev.score_session(truth(duration_s=60.0, split="calm_test", sid="x"), (rup(1, 2),), (), 2.0),
            ev.score_session(truth([rup(1, 2)], duration_s=60.0, split="dev", sid="y"), (rup(1, 2),), (), 2.0)]
    out = ev.summarize_by_split(rows)
    assert list(out) == ["calm_test", "dev", "all"]
    assert out["all"].sessions == 2 and out["calm_test"].false_ruptures == 1 and out["dev"].rupture_recall == 1.0
    text = ev.format_report(out, 2.0)
    assert "sessions with truth ruptures" in text and "1.00 (1/1)" in text
    assert "calm_test" in text and "10.00" in text  # 1 false rupture in 1 minute


def test_truth_from_dict_and_select_predictions():
    events = [rup(3, 4, resolved=True), rep(5, 6), Event("long_pause", "switch", 7, 11, "c", "t", 2, 1.0, "")]
    d = {"session_id": "s1", "duration_s": 42.0, "events": [event_to_dict(e) for e in events]}
    t = ev.truth_from_dict(d, "dev")
    assert (t.session_id, t.split, t.duration_s) == ("s1", "dev", 42.0)
    assert [e.subtype for e in t.ruptures] == [WD] and t.ruptures[0].resolved is True
    assert [e.type for e in t.repairs] == ["repair"]
    r, p = ev.select_predictions([rep(9, 10, conf=0.8), rup(5, 6, conf=0.4), rup(1, 2, conf=0.7)], 0.5)
    assert [e.start for e in r] == [1] and [e.start for e in p] == [9]
