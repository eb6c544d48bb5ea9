"""models.tagger: the bundled head on the real MiniLM encoder (integrity check, role masks, context
sensitivity, calibration bounds), the pluggable sequence-classification path, and the whole tagging path
on a short scripted session."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

import pipeline.offline  # noqa: F401
from pipeline.config import ModelsConfig, TaggingConfig
from pipeline.errors import ModelError, ModelIntegrityError
from pipeline.records import Turn
from pipeline.tagging import LABELS, role_allows, rupture_metrics, tag_turns, text_features

pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")


def _store_ok() -> bool:
    try:
        from models.store import resolve

        resolve("minilm")
        return True
    except Exception:
        return False


needs_store = pytest.mark.skipif(not _store_ok(), reason="minilm not provisioned: run `rupture models fetch`")


@pytest.fixture(scope="module")
def clf():
    from models.tagger import MarkerClassifier

    torch.set_num_threads(2)
    return MarkerClassifier(TaggingConfig(), ModelsConfig())


def T(i, role, text, start=None):
    s = float(i * 5) if start is None else start
    return Turn(i, {"therapist": "T", "client": "C"}.get(role, "U"), role, s, s + 4.0, text, len(text.split()))


SESSION = (
    T(0, "therapist", "Last week we agreed you'd try the thought record. How did that go?"),
    T(1, "client", "These worksheets are pointless. I'm not doing another one."),
    T(2, "therapist", "That's fair. Let's put the worksheet aside today and just talk about what's been happening."),
    T(3, "client", "Okay. It's been a hard week, honestly. My sister moved out on Tuesday."),
    T(4, "therapist", "That sounds like a big change. How did you feel when she left?"),
    T(5, "client", "I cried the whole evening. I didn't expect it to hit me that hard."),
    T(6, "therapist", "Shall we stop here for today?"),
    T(7, "client", "Fine."),
)


@needs_store
def test_probabilities_respect_roles_and_sum_to_one(clf):
    preds = clf(SESSION)
    assert [p.turn_index for p in preds] == [t.index for t in SESSION]
    for t, p in zip(SESSION, preds):
        assert [lab for lab, _ in p.probs] == list(LABELS)
        assert sum(v for _, v in p.probs) == pytest.approx(1.0, abs=1e-5)
        assert all(v == 0.0 for lab, v in p.probs if not role_allows(t.role, lab))
    names = [m.name for m in clf.model_infos]
    assert names[0] == "minilm" and names[1].startswith("tagger-head")
    head_sha = json.loads((Path(clf.head_dir) / "head.json").read_text())["sha256"]
    assert clf.model_infos[1].sha256 == head_sha


@needs_store
def test_context_changes_the_reading_of_a_minimal_response(clf):
    after_invite = (T(0, "therapist", "How did the homework go this week?"), T(1, "client", "Fine."))
    after_close = (T(0, "therapist", "Shall we stop here for today?"), T(1, "client", "Fine."))
    p_inv = clf(after_invite)[1].family_probs()["withdrawal"]
    p_close = clf(after_close)[1].family_probs()["withdrawal"]
    assert p_inv > p_close + 0.2


@needs_store
def test_scripted_session_tags_rupture_repair_and_no_false_alarms(clf):
    preds = clf(SESSION)
    feats = text_features(SESSION)
    ev = tag_turns(SESSION, feats, preds, clf.tagging_config())
    kinds = {(e.type, e.turn_index) for e in ev}
    assert ("rupture", 1) in kinds and ("repair", 2) in kinds
    r = next(e for e in ev if e.turn_index == 1)
    assert r.subtype.startswith("confrontation") and r.resolved and r.repair_turn_index == 2
    # ordinary disclosure and "Fine." at closing are not ruptures
    assert not any(e.type == "rupture" and e.turn_index in (3, 5, 7) for e in ev)
    assert rupture_metrics(ev)["resolved"] >= 1


@needs_store
def test_roles_unknown_still_tags(clf):
    unknown = tuple(replace(t, role="unknown") for t in SESSION)
    preds = clf(unknown)
    for p in preds:
        assert sum(v for _, v in p.probs) == pytest.approx(1.0, abs=1e-5)
    ev = tag_turns(unknown, text_features(unknown), preds, clf.tagging_config())
    assert all("role unknown" in e.evidence for e in ev)


@needs_store
def test_tampered_head_is_refused(tmp_path):
    from models.tagger import HEAD_DIR, MarkerClassifier

    d = tmp_path / "head"
    shutil.copytree(HEAD_DIR, d, ignore=shutil.ignore_patterns("data", "*.md"))
    MarkerClassifier(TaggingConfig(classifier=str(d)), ModelsConfig())  # a copy loads as the user's own head
    raw = bytearray((d / "head.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (d / "head.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ModelIntegrityError):
        MarkerClassifier(TaggingConfig(classifier=str(d)), ModelsConfig())
    with pytest.raises(ModelError):
        MarkerClassifier(TaggingConfig(classifier=str(tmp_path / "missing")), ModelsConfig())


@needs_store
def test_pluggable_sequence_classifier(tmp_path):
    """A user's transformers sequence-classification directory with a label map (here a MiniLM with a
    freshly initialised 3-way head, saved and reloaded locally)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from models.store import resolve
    from models.tagger import MarkerClassifier

    src = resolve("minilm").path
    torch.manual_seed(0)
    m = AutoModelForSequenceClassification.from_pretrained(str(src), num_labels=3, local_files_only=True)
    m.config.id2label = {0: "calm", 1: "shutdown", 2: "repairing"}
    m.config.label2id = {v: k for k, v in m.config.id2label.items()}
    d = tmp_path / "own"
    m.save_pretrained(str(d))
    AutoTokenizer.from_pretrained(str(src), local_files_only=True).save_pretrained(str(d))
    (d / "label_map.json").write_text(json.dumps({"calm": "none", "shutdown": "withdrawal.denial",
                                                  "repairing": "invites_discussion",
                                                  "_calibration": {"temperature": 1.5}}))
    c = MarkerClassifier(TaggingConfig(classifier=str(d), threshold=0.0), ModelsConfig())
    preds = c(SESSION[:4])
    for t, p in zip(SESSION, preds):
        pr = dict(p.probs)
        assert sum(pr.values()) == pytest.approx(1.0, abs=1e-5)
        assert set(k for k, v in pr.items() if v > 0) <= {"none", "withdrawal.denial", "invites_discussion"}
        assert all(v == 0.0 for lab, v in pr.items() if not role_allows(t.role, lab))
    assert c.model_infos[0].version == "local"
    (d / "label_map.json").write_text(json.dumps({"calm": "not-a-label"}))
    with pytest.raises(ModelError):
        MarkerClassifier(TaggingConfig(classifier=str(d)), ModelsConfig())


def test_lora_merge_equals_adapted_forward():
    """Merging trained adapters into the base weights gives the adapted layer's output (pure torch, tiny
    module, no model files); adapters that do not fit are refused."""
    from models.tagger import LoRALinear, add_lora, lora_state, merge_lora

    torch.manual_seed(0)
    net = torch.nn.Sequential()
    net.add_module("query", torch.nn.Linear(6, 5))
    net.add_module("other", torch.nn.Linear(5, 3))
    base = {k: v.clone() for k, v in net.state_dict().items()}
    wrapped = add_lora(net, rank=2, alpha=4.0, targets=("query",))
    assert wrapped == ["query"] and isinstance(net.query, LoRALinear)
    assert [n for n, p in net.named_parameters() if p.requires_grad] == ["query.lora_A", "query.lora_B"]
    with torch.no_grad():
        net.query.lora_B.normal_()  # as if trained (B starts at zero)
    x = torch.randn(4, 6)
    with torch.no_grad():
        adapted = net(x)
    adapters = lora_state(net)
    plain = torch.nn.Sequential()
    plain.add_module("query", torch.nn.Linear(6, 5))
    plain.add_module("other", torch.nn.Linear(5, 3))
    plain.load_state_dict(base)
    with torch.no_grad():
        before = plain(x)
    assert merge_lora(plain, adapters, scale=4.0 / 2) == 1
    with torch.no_grad():
        merged = plain(x)
    assert torch.allclose(merged, adapted, atol=1e-5) and not torch.allclose(before, adapted, atol=1e-3)
    with pytest.raises(ModelError):
        merge_lora(plain, {"other.lora_A": torch.zeros(2, 6), "other.lora_B": torch.zeros(3, 2)}, 1.0)
    with pytest.raises(ModelError):
        merge_lora(plain, {"missing.lora_A": torch.zeros(2, 6), "missing.lora_B": torch.zeros(5, 2)}, 1.0)
