"""The tagger's research code (scripts/research): the real-talk copies, utterance-level scoring, threshold
choice and LoRA adapters. Pure or tiny: no model files."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest
import torch

from pipeline.errors import ModelError
from research.realtalk import Conversation, TaggedTurn, Utterance, asr_text, noised_turns, to_utterances, turn_label
from research.tagger_metrics import TurnOutput, score
from research.tagger_train import _best_threshold


def U(i, role, text, family="none", conv="c1"):
    return Utterance(conv, i, role, text, family, "", 0, "high", "n/a", "n/a")


CONV = Conversation("c1", 0, "low", "t", (
    U(0, "therapist", "You really need to stop drinking, it's damaging your liver and you know it."),
    U(1, "client", "Well, I-I-I don't consider my drinking-- um, binge drinking.", "confrontation"),
    U(2, "client", "It's not like I was gonna sell it or anything. It's like-", "dontcare"),
    U(3, "therapist", "You're right, it's your call. " + "Tell me more about what matters to you here. " * 6, "repair"),
    U(4, "client", "Okay."),
))


def test_asr_text_lowercases_collapses_stutters_and_cutoffs():
    rng = random.Random(0)
    assert asr_text("Well, I-I-I don't-- um, know.", rng, "none", 1.0) == "well i don't know"
    assert asr_text("Well, I-I-I don't-- um, know.", rng, "sentence", 0.0) == "well, i don't um, know."


def test_noised_copy_is_deterministic_and_keeps_every_utterance_once():
    a, b = noised_turns(CONV, seed=3), noised_turns(CONV, seed=3)
    assert a == b
    carried = [i for t in a for i in t.origin]
    assert sorted(set(carried)) == [0, 1, 2, 3, 4]
    merged = next(t for t in a if 1 in t.origin)
    assert 2 in merged.origin  # the client's two utterances in a row are one ASR turn
    assert all(t.text == t.text.lower() for t in a)
    assert {t.role for t in noised_turns(CONV, seed=3, roles=False)} == {"unknown"}
    assert turn_label(CONV, merged) == "confrontation"


def test_scores_go_back_to_the_coded_utterances():
    turns = (TaggedTurn("therapist", "x", (0,)), TaggedTurn("client", "y", (1, 2)), TaggedTurn("therapist", "z", (3,)),
             TaggedTurn("therapist", "z2", (3,)), TaggedTurn("client", "w", (4,)))
    assert to_utterances(CONV, turns, [0, 1, 0, 5, 2]) == [0, 1, 1, 5, 2]
    outs = [TurnOutput(0, False, 0, False), TurnOutput(0.9, True, 0, False), TurnOutput(0, False, 0.2, False),
            TurnOutput(0, False, 0.8, True), TurnOutput(0.7, True, 0, False)]
    m = score([CONV], {"c1": turns}, {"c1": outs})
    # utterance 1 is a true rupture, 2 is don't-care (not counted), 4 is a false rupture among 1 calm one
    assert (m["rupture_tp"], m["rupture_fp"], m["rupture_fn"]) == (1, 1, 0)
    assert m["false_per_100_calm"] == pytest.approx(100.0)
    assert m["repair_f1"] == pytest.approx(1.0) and m["top3_precision"] == pytest.approx(0.5)


def test_single_coder_labels_only_fill_dont_care_turns():
    """turn_label(single_coder=True): a don't-care turn takes the family one coder gave; consensus labels and
    turns a coder only marked unusable stay as they are."""
    def V(i, fam, coders):
        return replace(U(i, "client", "w", fam, "s"), coder_families=coders)

    conv = Conversation("s", 0, "high", "t", (V(0, "dontcare", ("none", "withdrawal")), V(1, "confrontation",
                        ("confrontation", "confrontation")), V(2, "dontcare", ("unusable", "unusable")),
                        V(3, "none", ("none", "none"))))
    turns = [TaggedTurn("client", "w", (i,)) for i in range(4)]
    assert [turn_label(conv, t) for t in turns] == ["dontcare", "confrontation", "dontcare", "none"]
    assert [turn_label(conv, t, single_coder=True) for t in turns] == ["withdrawal", "confrontation", "dontcare", "none"]


def test_expected_count_ignores_utterances_no_turn_carries():
    """A filler the ASR-style copy dropped has no turn (to_utterances gives -inf): it adds nothing to the
    expected count instead of making the conversation's count -inf (which tied every such conversation last)."""
    convs, turns, outs = [], {}, {}
    for k, (p, n_true) in enumerate([(0.9, 2), (0.5, 1), (0.1, 0)]):
        cid = f"x{k}"
        fams = ["confrontation"] * n_true + ["none"] * (3 - n_true)
        convs.append(Conversation(cid, 0, "high", "t", tuple(U(i, "client", "w", f, cid) for i, f in enumerate(fams))))
        turns[cid] = (TaggedTurn("client", "w", (0,)), TaggedTurn("client", "w", (1,)))  # utterance 2: no turn
        outs[cid] = [TurnOutput(p, False, 0, False), TurnOutput(p, False, 0, False)]
    m = score(convs, turns, outs)
    assert m["expected_count_spearman"] == pytest.approx(1.0)


def test_threshold_respects_the_false_alarm_budget():
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4] + [0.1] * 194)
    y = np.array([True, False, True, False, True, False] + [False] * 194)
    assert _best_threshold(s, y, None) == pytest.approx(0.5)  # best F1: all three positives
    assert _best_threshold(s, y, 0.6) == pytest.approx(0.7)  # 1 false alarm in 197 calm allowed: 0.6 is out
    assert _best_threshold(s, y, 0.4) == pytest.approx(0.9)  # none allowed


def test_lora_merge_equals_adapted_forward():
    """Merging trained adapters into the base weights gives the adapted layer's output (pure torch, tiny
    module, no model files); adapters that do not fit are refused."""
    from models.tagger import merge_lora
    from research.tagger_lora import LoRALinear, add_lora, lora_state

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


def _toy_table():
    from research.tagger_train import Table

    lines = [("therapist", "you should really cut down, it is hurting you", "none"),
             ("client", "whatever", "withdrawal"),
             ("therapist", "it sounds like i pushed too hard there", "repair"),
             ("client", "yeah i guess i don't know", "none"),
             ("therapist", "what would you like to talk about today", "none"),
             ("client", "i don't think that's the problem at all", "confrontation"),
             ("therapist", "you're right, that's your call and i hear you", "repair"),
             ("client", "yeah i guess so, whatever works", "none")]
    turns, convs, roles, labels = {}, [], [], []
    for conv in ("a", "b", "c"):
        turns[conv] = tuple(TaggedTurn(r, f"{t} {conv}", (i,)) for i, (r, t, _) in enumerate(lines))
        convs += [conv] * len(lines)
        roles += [r for r, _, _ in lines]
        labels += [lab for _, _, lab in lines]
    n = len(convs)
    return Table("toy", tuple(convs), np.asarray(roles), np.asarray(labels), np.asarray([""] * n),
                 np.zeros((n, 4)), turns)


def test_lexical_part_at_inference_equals_the_fitted_tfidf_model():
    """models.tagger.LexicalHeads (numpy, no scikit-learn at run time) reproduces the scikit-learn TF-IDF +
    logistic regression that research.tagger_train.fit_lexical trains."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from models.tagger import lexical_terms
    from research.tagger_train import fit_lexical, lexical_part

    tab = _toy_table()
    terms, tensors = fit_lexical([tab], {"a", "b", "c"}, C=1.0)
    assert "don't" in terms and "i guess" in terms  # words keep apostrophes; word pairs are terms
    part = lexical_part(terms, tensors)
    rows = np.arange(len(tab.roles))
    cur, prev = tab.texts(rows)
    assert prev[0] == "" and prev[1] == cur[0]
    r, q = part.scores(cur, prev)
    vec = TfidfVectorizer(analyzer=lexical_terms, min_df=2, sublinear_tf=True).fit(cur)
    X = hstack([vec.transform(cur), vec.transform(prev)]).tocsr()
    client = tab.roles == "client"
    ref = LogisticRegression(C=1.0, max_iter=3000, class_weight="balanced").fit(
        X[client], np.isin(tab.labels[client], ("withdrawal", "confrontation")).astype(int))
    np.testing.assert_allclose(r, ref.decision_function(X), atol=1e-6)
    assert r[1] > r[3]  # "whatever" after a push reads as more rupture-like than the calm reply
    assert q[2] > q[4]


def test_blend_combines_encoder_and_lexical_scores():
    from models.tagger import blend_scores

    t = {"blend.rupture": np.array([2.0, 0.5, -1.0]), "blend.repair": np.array([1.0, 0.0, 0.0])}
    r, q = blend_scores(t, (np.array([1.0, 0.0]), np.array([3.0, 4.0])), (np.array([2.0, -2.0]), np.array([9.0, 9.0])))
    np.testing.assert_allclose(r, [2.0, -2.0])
    np.testing.assert_allclose(q, [3.0, 4.0])



def test_best_f1_is_the_best_single_threshold():
    """The ceiling in the CV tables: the best F1 any one threshold gives; tied scores are flagged together."""
    from research.tagger_metrics import best_f1

    assert best_f1([0.9, 0.8, 0.7, 0.1], [True, False, True, False]) == pytest.approx(0.8)  # at 0.7: P 2/3, R 1
    # the tie at 0.5 cannot be split (splitting it would give 1.0): flag both, P 2/3, R 1
    assert best_f1([0.9, 0.5, 0.5, 0.2], [True, True, False, False]) == pytest.approx(0.8)
    assert best_f1([0.3, 0.2], [False, False]) == 0.0


def test_score_reports_the_threshold_ceiling():
    turns = (TaggedTurn("client", "a", (0,)), TaggedTurn("client", "b", (1,)), TaggedTurn("client", "c", (2,)))
    conv = Conversation("z", 0, "high", "t", tuple(U(i, "client", "w", f, "z")
                                                   for i, f in enumerate(["none", "confrontation", "none"])))
    outs = [TurnOutput(0.9, True, 0, False), TurnOutput(0.6, False, 0, False), TurnOutput(0.1, False, 0, False)]
    m = score([conv], {"z": turns}, {"z": outs})
    assert m["rupture_f1"] == 0.0  # the one flag is a calm utterance
    assert m["rupture_f1_best"] == pytest.approx(2 / 3)  # flagging at 0.6 catches the rupture with one false flag


def test_next_turn_block_stays_inside_its_conversation():
    """research.tagger_blocks (exploration): the `next` block is the next row's turn embedding in the same
    conversation, zeros after a conversation's last turn; the role columns stay last."""
    from research.tagger_blocks import with_block
    from research.tagger_train import Table

    d = 2
    X = np.arange(5 * (3 * d + 2), dtype=np.float32).reshape(5, 3 * d + 2)
    convs = ("a", "a", "a", "b", "b")
    t = Table("noised", convs, np.asarray(["client"] * 5), np.asarray(["none"] * 5), np.asarray([""] * 5), X, {})
    out = with_block(t, "next").X
    assert out.shape == (5, 4 * d + 2)
    np.testing.assert_array_equal(out[:, 3 * d:4 * d], [X[1, :d], X[2, :d], [0, 0], X[4, :d], [0, 0]])
    np.testing.assert_array_equal(out[:, -2:], X[:, -2:])
    with pytest.raises(ValueError):
        with_block(t, "nope")
