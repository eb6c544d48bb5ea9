"""models.tagger: the bundled head on the real MiniLM encoder (integrity check, role masks, context
sensitivity, calibration bounds), the pluggable sequence-classification path, and the whole tagging path
on a short scripted session."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

import pipeline.offline  # noqa: F401
from pipeline.config import ModelsConfig, TaggingConfig
from pipeline.errors import ModelError, ModelIntegrityError
from pipeline.records import Turn
from pipeline.measures import turn_features
from pipeline.records import LABELS, role_allows
from pipeline.tagging import rupture_metrics, tag_turns

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # MiniLM from the model store

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
    from models.tagger import BUNDLED_HEAD_SHA256, head_digest

    # provenance records the digest of head.json + head.safetensors, pinned for the bundled head
    assert clf.model_infos[1].sha256 == head_digest(Path(clf.head_dir)) == BUNDLED_HEAD_SHA256
    assert all(p.rupture_logit is not None and p.repair_logit is not None for p in preds)


@needs_store
def test_context_changes_the_reading_of_the_same_reply(clf):
    after_invite = (T(0, "therapist", "How did the homework go this week?"), T(1, "client", "Fine."))
    after_close = (T(0, "therapist", "Shall we stop here for today?"), T(1, "client", "Fine."))
    assert abs(clf(after_invite)[1].rupture_logit - clf(after_close)[1].rupture_logit) > 0.3


REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-talk" / "annomi_coded.csv"


@needs_store
@pytest.mark.skipif(not REAL.is_file() and not os.environ.get("CI"), reason="../shared/data/real-talk not beside the checkout")
def test_real_conversations_through_the_pipeline_decision(clf):
    """Two coded real conversations through the inference path (features, heads, session context,
    decision): the strained one gets flags, mostly on the coders' ruptures; the calm one gets at most one.
    (The bundled head was trained on them: this checks the path, the figures come from scripts/eval_tagger.py.)"""
    from research.realtalk import load_conversations, noised_turns
    from research.tagger_train import turns_of

    convs = {c.conv: c for c in load_conversations(REAL)}
    strained = max(convs.values(), key=lambda c: sum(u.is_rupture for u in c.utterances))
    calm = next(c for c in convs.values() if c.mi_quality == "high" and len(c.utterances) > 60
                and not any(u.family != "none" for u in c.utterances))
    for conv, want_flags in ((strained, True), (calm, False)):
        tagged = noised_turns(conv)
        turns = turns_of(tagged)
        ev = tag_turns(turns, turn_features(turns), clf(turns), clf.tagging_config())
        ruptures = [e for e in ev if e.type == "rupture"]
        if want_flags:
            moments = rupture_metrics(ev).moments[:3]
            right = sum(any(conv.utterances[i].is_rupture for i in tagged[m.turn_index].origin) for m in moments)
            assert len(moments) == 3 and right >= 2
        else:
            assert len(ruptures) <= 1


@needs_store
def test_roles_unknown_still_tags(clf):
    unknown = tuple(replace(t, role="unknown") for t in SESSION)
    preds = clf(unknown)
    for p in preds:
        assert sum(v for _, v in p.probs) == pytest.approx(1.0, abs=1e-5)
    ev = tag_turns(unknown, turn_features(unknown), preds, clf.tagging_config())
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
def test_edited_head_json_is_refused_or_shows_in_provenance(tmp_path, monkeypatch):
    import models.tagger as mt

    d = tmp_path / "head"
    shutil.copytree(mt.HEAD_DIR, d, ignore=shutil.ignore_patterns("data", "*.md"))
    before = mt.MarkerClassifier(TaggingConfig(classifier=str(d)), ModelsConfig()).model_infos[1].sha256
    cfg = json.loads((d / "head.json").read_text())
    cfg["threshold"] = 0.01
    (d / "head.json").write_text(json.dumps(cfg))
    # a user's own head: loads, but provenance shows another model
    after = mt.MarkerClassifier(TaggingConfig(classifier=str(d)), ModelsConfig()).model_infos[1].sha256
    assert before == mt.BUNDLED_HEAD_SHA256 and after != before
    # the bundled head (its folder): the pinned digest refuses the edit
    monkeypatch.setattr(mt, "HEAD_DIR", d)
    with pytest.raises(ModelIntegrityError):
        mt.MarkerClassifier(TaggingConfig(), ModelsConfig())


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


@needs_store
def test_encoder_batches_on_two_threads_give_the_same_numbers(clf):
    """tagging.parallel_batches (default 2) encodes batches on threads: bitwise the same as one at a time."""
    enc = clf.encoder
    assert enc.parallel_batches == 2  # the default config's
    texts = [f"{'well ' * (i % 7)}I don't know, maybe {i} times a week, it's not like I" for i in range(150)]
    prev = [""] + texts[:-1]
    both = enc.embed_pairs(prev, texts, batch_size=16)
    enc.parallel_batches = 1
    try:
        one = enc.embed_pairs(prev, texts, batch_size=16)
    finally:
        enc.parallel_batches = 2
    assert both.shape == (150, enc.dim) and float(abs(both).sum()) > 0
    assert (both == one).all()


@needs_store
def test_frozen3t_reads_the_turn_after_its_context(clf):
    """featurize(features="frozen3t"): the exchange block is the mean of the encoder's states over the turn's
    own tokens, read after the context (computed here by hand), so the same reply differs with the context;
    the single-turn blocks are the same as frozen3's."""
    from models.tagger import Example, context_string, featurize

    enc = clf.encoder
    ctx_a, ctx_b = (("therapist", "How did the homework go this week?"),), (("therapist", "Shall we stop here?"),)
    exs = [Example(ctx_a, ("client", "Fine, I guess.")), Example(ctx_b, ("client", "Fine, I guess."))]
    t3, f3 = featurize(enc, exs, features="frozen3t"), featurize(enc, exs, features="frozen3")
    d = enc.dim
    assert (t3[:, :2 * d] == f3[:, :2 * d]).all() and not (t3[:, 2 * d:3 * d] == f3[:, 2 * d:3 * d]).all()
    toks = enc.tokenizer([context_string(ctx_a)], ["Fine, I guess."], return_tensors="pt")
    with torch.inference_mode():
        hidden = enc.model(**toks).last_hidden_state[0]
    own = [j for j, s in enumerate(toks.sequence_ids(0)) if s == 1]
    assert len(own) == len(enc.tokenizer("Fine, I guess.", add_special_tokens=False)["input_ids"])
    want = torch.nn.functional.normalize(hidden[own].mean(0), dim=-1).numpy()
    assert abs(t3[0, 2 * d:3 * d] - want).max() < 1e-5
    assert abs(t3[0, 2 * d:3 * d] - t3[1, 2 * d:3 * d]).max() > 1e-3  # the context changes the turn's reading
