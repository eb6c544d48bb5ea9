"""The marker corpus: both splits follow the documented format, the test split is separate from training
(no shared exchange), and every subtype is represented."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import check_tagger_corpus as cc  # noqa: E402

DATA = ROOT / "models" / "tagger" / "data"


def test_both_splits_are_valid_and_disjoint():
    train, test = cc.check_file(DATA / "train.jsonl"), cc.check_file(DATA / "test.jsonl")
    assert list(train.errors) == []
    assert list(test.errors) == []
    assert train.n_items >= 1500 and test.n_items >= 400
    assert cc.cross_file_overlaps([train, test]) == []
    assert cc.subtype_shortfalls([test], 8) == []
    assert cc.subtype_shortfalls([train], 8) == []


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
