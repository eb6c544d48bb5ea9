"""Thresholds from a deployment's own coded sessions (scripts/calibrate_tagger.py, research.calibration)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import TaggingConfig
from pipeline.records import LABELS, MarkerPrediction, Turn
from research.calibration import CodedTurns, at, best_point, scored_turns


def test_best_point_keeps_the_false_alarm_budget():
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5] + [0.1] * 95)
    y = np.array([True, False, True, False, True] + [False] * 95)
    assert best_point(p, y).threshold == pytest.approx(0.5)  # all three coded turns, two false: F1 0.75
    one = best_point(p, y, max_false_per_100=1.1)  # one false flag in 97 uncoded turns allowed
    assert one.threshold == pytest.approx(0.7) and (one.tp, one.fp, one.fn) == (2, 1, 1)
    assert best_point(p, y, max_false_per_100=0.0).threshold == pytest.approx(0.9)
    assert best_point(p, np.zeros(100, bool)) is None  # nothing coded: nothing to recommend
    pt = at(p, y, 0.75)
    assert (pt.tp, pt.fp, pt.fn) == (1, 1, 2) and pt.false_per_100 == pytest.approx(100 / 97)


def _pred(i: int, rupture: float, repair: float) -> MarkerPrediction:
    probs = {lab: 0.0 for lab in LABELS}
    probs["none"] = 1 - rupture - repair
    probs["withdrawal.minimal_response"], probs["invites_discussion"] = rupture, repair
    return MarkerPrediction(i, tuple(probs.items()))


def test_scored_turns_are_the_decisions_probabilities():
    """Client turns give their rupture probability, therapist turns their repair probability, as `decide`
    would compare them with the thresholds; turns of unknown role are left out."""
    turns = (Turn(0, "T", "therapist", 0.0, 2.0, "how was the week", 4), Turn(1, "C", "client", 2.5, 3.0, "fine", 1),
             Turn(2, "T", "therapist", 3.5, 6.0, "it sounds like that question missed", 6),
             Turn(3, "S", "unknown", 6.5, 7.0, "ok", 1))
    preds = [_pred(0, 0.0, 0.05), _pred(1, 0.3, 0.0), _pred(2, 0.0, 0.4), _pred(3, 0.2, 0.1)]
    cfg = TaggingConfig(threshold=0.5, repair_threshold=0.5, cue_weight=0.0)
    out = scored_turns(turns, (), preds, cfg, CodedTurns(frozenset({1}), frozenset({2}), True))
    assert [(s.family, round(s.p, 3), s.coded) for s in out] == [("repair", 0.05, False), ("rupture", 0.3, True),
                                                                 ("repair", 0.4, True)]


def test_calibration_from_a_coded_demo_session(model_store, demo_dir: Path, tmp_path: Path, monkeypatch):
    """The whole loop a deployment runs: `rupture tag` a session, a coder marks the ruptures and repairs in
    the EAF, `rupture import-eaf` reads it back, and the script recommends thresholds from it with the real
    tagger. An uncoded record is refused."""
    from pympi import Elan

    import calibrate_tagger
    from pipeline.cli import main as rupture

    monkeypatch.chdir(tmp_path)
    assert rupture(["tag", str(demo_dir / "demo_transcript.csv"), "--out", str(tmp_path / "out")]) == 0
    session = tmp_path / "out" / "demo_transcript" / "session.json"
    assert calibrate_tagger.main([str(session)]) == 2  # nobody coded it

    eaf = Elan.Eaf(str(session.with_name("session.eaf")))
    truth = json.loads((demo_dir / "demo_truth.json").read_text())
    coded = [e for e in truth["events"] if e["type"] in ("rupture", "repair")]
    for e in coded:
        eaf.add_annotation(e["type"], round(e["start"] * 1000), round(e["end"] * 1000), e["subtype"])
    Elan.to_eaf(str(tmp_path / "coded.eaf"), eaf)
    record = tmp_path / "coded" / "session.json"
    assert rupture(["import-eaf", str(tmp_path / "coded.eaf"), "--session", str(session), "--out", str(record)]) == 0

    assert calibrate_tagger.main([str(record), "--json", str(tmp_path / "cal.json")]) == 0
    res = json.loads((tmp_path / "cal.json").read_text())
    rup = res["rupture"]
    assert rup["coded"] == 2 and rup["uncertain"]
    best, now = rup["recommended"], rup["current"]
    assert best is not None and best["false_per_100"] <= 1.0
    assert best["f1"] >= now["f1"] and best["threshold"] < now["threshold"]  # the default flags neither
    # the recommendation, set in a config, flags what the script said it would
    cfg = tmp_path / "cal.yaml"
    cfg.write_text(f"tagging:\n  threshold: {best['threshold']}\n")
    assert rupture(["tag", str(demo_dir / "demo_transcript.csv"), "--out", str(tmp_path / "again"),
                    "--config", str(cfg)]) == 0
    again = json.loads((tmp_path / "again" / "demo_transcript" / "session.json").read_text())
    flagged = [e for e in again["events"] if e["type"] == "rupture"]
    hits = [e for e in flagged if any(c["type"] == "rupture" and e["start"] < c["end"] and c["start"] < e["end"]
                                      for c in coded)]
    assert (len(hits), len(flagged) - len(hits)) == (best["tp"], best["fp"])
