"""Grouped cross-validation of the tagger on the real-talk conversations, beside a bag-of-words baseline.

For each of the data's 5 folds (conversations never split), the model is trained on the other four
(research.tagger_train.train_head: its context weights and thresholds come from inner folds of those four),
then run through the inference code (models.tagger.head_predictions, pipeline.measures.turn_features,
pipeline.tagging.tag_turns) on the held-out conversations, in three copies: the ASR-style one (the figure
that counts), the clean transcript, and the ASR-style one with no roles. Scored on the coded utterances by
research.tagger_metrics.score.

The baseline, on the same folds, copies and training labels (TrainSettings.single_coder_positives): TF-IDF
of the turn and of the turn before it (words and word pairs), class-balanced logistic regressions for
rupture and repair, thresholds chosen the same way from inner folds; once plain, once with the same
session-context stage as the model.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Sequence

import numpy as np

from research.realtalk import Conversation, TaggedTurn
from research.tagger_metrics import TurnOutput, score
from research.tagger_train import (LOG, FitScorer, Table, TrainSettings, _logreg, fit_decision, lexical_part,
                                   oof_scores, text_rows, train_head, training_tables, turns_of)

EVAL_KINDS = ("noised", "clean", "noised_noroles")
IDENTITY_CONTEXT = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]


def outputs_from_predictions(tagged: Sequence[TaggedTurn], preds, cfg) -> list[TurnOutput]:  # type: ignore[no-untyped-def]
    """Run the pipeline's decision on one conversation and read back, per turn, the rupture/repair flags."""
    from pipeline.measures import turn_features
    from pipeline.tagging import configured_context, tag_turns

    turns = turns_of(tagged)
    ctx = configured_context(turns, preds, cfg)
    events = tag_turns(turns, turn_features(turns), ctx, replace(cfg, context_weights=()))  # context applied once
    by = {e.turn_index: e for e in events}
    out = []
    for t, p in zip(turns, ctx):
        fam = p.family_probs()
        e = by.get(t.index)
        out.append(TurnOutput(fam["withdrawal"] + fam["confrontation"], bool(e and e.type == "rupture"),
                              fam["repair"], bool(e and e.type == "repair")))
    return out


def tagging_config(fitted: Mapping) -> object:
    from pipeline.config import TaggingConfig

    ctx = fitted["context"]
    return TaggingConfig(threshold=fitted["threshold"], repair_threshold=fitted["repair_threshold"],
                         context_weights=tuple(ctx["weights"]), context_window=ctx["window"],
                         context_lookback=ctx["lookback"])


def model_outputs(fitted: Mapping, table: Table, convs: Sequence[Conversation]) -> dict[str, list[TurnOutput]]:
    from models.tagger import LinearHeads, head_predictions

    heads = LinearHeads({k: np.asarray(v, dtype=np.float64) for k, v in fitted["tensors"].items()
                         if not k.startswith(("lex.", "blend."))})
    lexical = lexical_part(fitted["terms"], fitted["tensors"]) if fitted.get("terms") else None
    cfg = tagging_config(fitted)
    out = {}
    for c in convs:
        rows = table.rows(c.conv)
        tagged = table.turns[c.conv]
        preds = head_predictions(heads, turns_of(tagged), table.X[rows], lexical)
        out[c.conv] = outputs_from_predictions(tagged, preds, cfg)
    return out


# ---- the bag-of-words baseline --------------------------------------------------------------------------
def bow_scorer(train_tabs: Sequence[Table], score_tab: Table, C: float = 1.0) -> FitScorer:
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer

    def fit(convs: set[str]) -> object:
        vc = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        vp = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        cur_all, prev_all, role, lab = text_rows(train_tabs, convs)
        X = hstack([vc.fit_transform(cur_all), vp.fit_transform(prev_all)]).tocsr()
        models = []
        for r, pos in (("client", ("withdrawal", "confrontation")), ("therapist", ("repair",))):
            m = (role == r) & (lab != "dontcare")
            models.append(_logreg(X[m], np.isin(lab[m], pos).astype(int), C))

        def scorer(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            c, p = score_tab.texts(rows)
            Xt = hstack([vc.transform(c), vp.transform(p)]).tocsr()
            return models[0].decision_function(Xt), models[1].decision_function(Xt)
        return scorer
    return fit  # type: ignore[return-value]


def baseline_outputs(fit_scorer_for, decision: Mapping, convs: Sequence[Conversation], train_ids: set[str],
                     table: Table) -> dict[str, list[TurnOutput]]:  # type: ignore[no-untyped-def]
    from pipeline.records import LABELS, MarkerPrediction

    scorer = fit_scorer_for(table)(train_ids)
    cfg = tagging_config(decision)
    out = {}
    for c in convs:
        rows = table.rows(c.conv)
        r, q = scorer(rows)
        tagged = table.turns[c.conv]
        preds = []
        for i, t in enumerate(tagged):
            pr = 1 / (1 + np.exp(-r[i])) if t.role in ("client", "unknown") else 0.0
            pq = 1 / (1 + np.exp(-q[i])) if t.role in ("therapist", "unknown") else 0.0
            if pr + pq > 1:
                pr, pq = pr / (pr + pq), pq / (pr + pq)
            probs = {lab: 0.0 for lab in LABELS}
            probs["none"], probs["withdrawal.denial"], probs["clarifies_misunderstanding"] = 1 - pr - pq, pr, pq
            preds.append(MarkerPrediction(i, tuple(probs.items()), float(r[i]) if pr else None,
                                          float(q[i]) if pq else None))
        out[c.conv] = outputs_from_predictions(tagged, tuple(preds), cfg)
    return out


def cross_validate(convs: Sequence[Conversation], tables: Mapping[str, Table], settings: TrainSettings,
                   log: LOG = print, baseline: bool = True, eval_kinds: Sequence[str] = EVAL_KINDS
                   ) -> dict[str, dict[str, dict]]:
    """{system: {copy: {"pooled": metrics over all held-out conversations, "folds": [metrics per fold]}}}
    for the systems model, bow and bow+context. Nested: for each held-out fold, everything (stage 1, the
    blend, stage 2, thresholds) is fitted on the other folds only, the out-of-fold scores that stage 2 and
    the thresholds need coming from inner folds of those."""
    outputs: dict[str, dict[str, dict[str, list[TurnOutput]]]] = {}
    labelled = training_tables(tables, settings)  # the baseline learns from the same labels as the model
    train_tabs = [labelled[k] for k in settings.train_kinds]
    tab = labelled[settings.choose_on]
    folds = sorted({c.fold for c in convs})
    for k in folds:
        train = [c for c in convs if c.fold != k]
        test = [c for c in convs if c.fold == k]
        train_ids = {c.conv for c in train}
        log(f"fold {k}: trained on the other {len(train)} conversations (inner folds for stage 2 and thresholds)")
        fitted = train_head(train, tables, settings, log)
        for kind in eval_kinds:
            outputs.setdefault("model", {}).setdefault(kind, {}).update(model_outputs(fitted, tables[kind], test))
        if baseline:
            r, q, _ = oof_scores(train, tab, bow_scorer(train_tabs, tab))
            for name in ("bow", "bow+context"):
                dec = fit_decision(train, tab, r, q, settings, log, fit_context_stage=name != "bow")
                for kind in eval_kinds:
                    outs = baseline_outputs(lambda t: bow_scorer(train_tabs, t), dec, test, train_ids, labelled[kind])
                    outputs.setdefault(name, {}).setdefault(kind, {}).update(outs)
        m = score(test, tables["noised"].turns, outputs["model"]["noised"])
        line = (f"fold {k} noised: model rupture F1 {m['rupture_f1']:.3f} (P {m['rupture_p']:.2f} R {m['rupture_r']:.2f}, "
                f"{m['false_per_100_calm']:.2f} false/100 calm), repair F1 {m['repair_f1']:.3f}")
        if baseline:
            b = score(test, tables["noised"].turns, outputs["bow"]["noised"])
            line += f"; bow rupture F1 {b['rupture_f1']:.3f}"
        log(line)
    res: dict[str, dict[str, dict]] = {}
    for name, by_kind in outputs.items():
        for kind, outs in by_kind.items():
            res.setdefault(name, {})[kind] = {
                "pooled": score(convs, tables[kind].turns, outs),
                "folds": [score([c for c in convs if c.fold == k], tables[kind].turns, outs) for k in folds]}
    return res


__all__ = ["cross_validate", "EVAL_KINDS", "model_outputs", "outputs_from_predictions"]
