"""The marker corpus: both splits follow the documented format, the test split is separate from training
(no shared exchange), and every subtype is represented."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import check_tagger_corpus as cc  # noqa: E402

DATA = ROOT / "models" / "tagger" / "data"


TRAIN_FILES = [DATA / "train.jsonl", *sorted(DATA.glob("train_hw_*.jsonl"))]
HELD_OUT_FILES = [DATA / "dev.jsonl", DATA / "test.jsonl", *sorted(DATA.glob("test2_*.jsonl"))]


def test_all_splits_are_valid_and_disjoint():
    train = [cc.check_file(p) for p in TRAIN_FILES]
    held = [cc.check_file(p) for p in HELD_OUT_FILES]
    assert len(train) >= 4 and len(held) >= 4  # generated + 3 hand-written; dev, test, test2 a/b
    for r in train + held:
        assert list(r.errors) == [], r
    assert sum(r.n_items for r in train) >= 1500 and sum(r.n_items for r in held) >= 1200
    # no exchange of a held-out split (dev or a test split) is in a training file or another held-out split
    for i, h in enumerate(held):
        for other in train + held[i + 1:]:
            assert cc.cross_file_overlaps([other, h]) == [], (other.path, h.path)
    assert cc.subtype_shortfalls(train, 8) == []
    assert cc.subtype_shortfalls(held[1:2], 8) == []  # test.jsonl alone
    assert cc.subtype_shortfalls(held[2:], 8) == []  # test2 a+b


def test_calm_sessions_load_with_timing():
    """The written calm sessions that scripts/eval_tagger.py checks for false ruptures."""
    from research.tagger_report import CALM_FILES, timed_turns

    for name in CALM_FILES[:2]:
        sessions = [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]
        assert len(sessions) >= 4
        for s in sessions:
            turns = timed_turns([(t["role"], t["text"]) for t in s["turns"]])
            assert len(turns) >= 60 and all(b.start >= a.end for a, b in zip(turns, turns[1:]))
            assert all(t.get("label", "none") == "none" for t in s["turns"])  # calm: no turn labelled a marker


def test_validator_rejects_bad_items():
    good = {"id": "x1", "modality": "cbt", "context": [{"role": "therapist", "text": "How was the week?"}],
            "target": {"role": "client", "text": "Fine."}, "label": "withdrawal.minimal_response",
            "cues": {"latency_s": 4.0, "interrupts_previous": False}}
    assert cc.validate_item(good) == []
    wrong_role = dict(good, target={"role": "therapist", "text": "Fine."})  # rupture label on a therapist turn
    assert cc.validate_item(wrong_role)
    unknown = dict(good, label="withdrawal.sulking")
    assert cc.validate_item(unknown)
    no_context = dict(good, context=[])
    assert cc.validate_item(no_context)
    report = cc.check_lines([json.dumps(good), json.dumps(good), "{not json"])
    assert len(report.errors) >= 2  # duplicate id, invalid JSON
