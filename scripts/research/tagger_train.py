"""Train the rupture/repair tagger on the real-talk conversations and write a head directory that
models.tagger.MarkerClassifier loads.

Every number the head carries is fitted without the conversations it will be judged on:
1. features: models.tagger.featurize (the inference code) on the clean and the ASR-style copies of each
   training conversation (realtalk.copies), cached by content;
2. stage 1, linear heads on standardised features: rupture (client turns), repair (therapist turns),
   rupture family and subtypes (consensus subtypes), class-balanced logistic regressions;
3. stage 2, session context: stage-1 scores of the training conversations are taken out of fold (grouped by
   conversation, the data's own folds), turned into context inputs by pipeline.tagging.context_inputs (the
   inference code) and a 4-weight logistic model is fitted for ruptures and one for repairs;
4. thresholds: on those out-of-fold, in-context probabilities of the ASR-style copy, scored on the coded
   utterances: the rupture threshold with the best F1 among those raising at most `max_false_per_100` false
   ruptures per 100 calm client utterances; the repair threshold with the best repair F1.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from research.realtalk import Conversation, TaggedTurn, copies, turn_label, to_utterances

LOG = Callable[[str], None]


def turns_of(tagged: Sequence[TaggedTurn]):  # type: ignore[no-untyped-def]
    """TaggedTurns as pipeline Turn records (speakers T/C, or S0/S1 when roles are unknown; times are
    the turn order: the text copies carry no timing)."""
    from pipeline.records import Turn

    out = []
    for i, t in enumerate(tagged):
        spk = {"therapist": "T", "client": "C"}.get(t.role, "S")
        out.append(Turn(i, spk, t.role, float(i), float(i) + 0.5, t.text, len(t.text.split())))
    return tuple(out)


@dataclass
class Table:
    """One copy of some conversations, one row per turn: features X and what training needs."""

    kind: str
    convs: tuple[str, ...]  # per row
    roles: np.ndarray
    labels: np.ndarray  # turn_label: confrontation | withdrawal | repair | dontcare | none
    subtypes: np.ndarray  # consensus subtype of the turn's rupture/repair utterance ("" when none)
    X: np.ndarray
    turns: dict[str, tuple[TaggedTurn, ...]]
    # turn_label(single_coder=True): a don't-care turn that one coder coded with a family takes that family
    labels_single: np.ndarray | None = None

    def with_single_coder_labels(self) -> "Table":
        """This table with the single-coder labels as training labels (scoring always reads the consensus
        from the utterances, research.tagger_metrics)."""
        return self if self.labels_single is None else replace(self, labels=self.labels_single)

    def rows(self, conv: str) -> np.ndarray:
        return np.flatnonzero(np.asarray(self.convs) == conv)

    def texts(self, rows: np.ndarray) -> tuple[list[str], list[str]]:
        """The text of each row's turn and of the turn before it in its conversation ("" for the first)."""
        flat = [(conv, i) for conv in dict.fromkeys(self.convs) for i in range(len(self.turns[conv]))]
        cur, prev = [], []
        for r in rows:
            conv, i = flat[r]
            ts = self.turns[conv]
            cur.append(ts[i].text)
            prev.append(ts[i - 1].text if i > 0 else "")
        return cur, prev


def cached_features(encoder, examples: Sequence, name: str, context_turns: int, cache_dir: Path | None,
                    log: LOG = print, features: str = "frozen3") -> np.ndarray:  # type: ignore[no-untyped-def]
    """models.tagger.featurize of `examples`, cached under cache_dir by their content, the encoder and the
    feature kind."""
    from models.tagger import featurize

    kind = [] if features == "frozen3" else [features]  # frozen3 keeps the keys it had before frozen3t
    key = hashlib.sha256(json.dumps([name, context_turns, encoder.model.name_or_path, *kind,
                                     [(e.context, e.target) for e in examples]]).encode()).hexdigest()[:20]
    path = cache_dir / f"features-{name}-{key}.npy" if cache_dir else None
    if path is not None and path.is_file():
        return np.load(path)
    t0 = time.perf_counter()
    X = featurize(encoder, examples, features=features)
    log(f"features of {name}: {len(examples)} turns in {time.perf_counter() - t0:.0f} s")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, X)
    return X


def build_table(encoder, convs: Sequence[Conversation], kind: str, context_turns: int, cache_dir: Path | None,
                seed: int = 0, log: LOG = print, features: str = "frozen3") -> Table:  # type: ignore[no-untyped-def]
    from models.tagger import examples_from_turns

    cp = copies(convs, kind, seed)
    conv_ids, roles, labels, single, subs, examples = [], [], [], [], [], []
    for c in convs:
        ts = cp[c.conv]
        examples.extend(examples_from_turns(turns_of(ts), context_turns))
        for t in ts:
            lab = turn_label(c, t)
            conv_ids.append(c.conv)
            roles.append(t.role)
            labels.append(lab)
            single.append(turn_label(c, t, single_coder=True))
            sub = next((c.utterances[i].subtype for i in t.origin if c.utterances[i].family == lab), "")
            subs.append(sub)
    X = cached_features(encoder, examples, kind, context_turns, cache_dir, log, features)
    return Table(kind, tuple(conv_ids), np.asarray(roles), np.asarray(labels), np.asarray(subs), X, cp,
                 np.asarray(single))


WRITTEN_FILES = ("train.jsonl", "train_hw_a.jsonl", "train_hw_b.jsonl", "train_hw_c.jsonl")


def written_table(encoder, data_dir: Path, context_turns: int, cache_dir: Path | None,
                  log: LOG = print, features: str = "frozen3") -> Table:  # type: ignore[no-untyped-def]
    """The team's written corpus (models/tagger/data, JSON Lines items {context, target, label}) as extra
    stage-1 training rows: it covers subtypes and styles the real talk lacks (explicit complaints about
    homework or the therapist). It is never scored."""
    from models.tagger import Example
    from pipeline.records import family_of

    examples, roles, labels, subs = [], [], [], []
    for name in WRITTEN_FILES:
        for line in (data_dir / name).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            it = json.loads(line)
            ctx = tuple((c["role"], c["text"]) for c in it["context"][-context_turns:]) if context_turns else ()
            examples.append(Example(ctx, (it["target"]["role"], it["target"]["text"])))
            roles.append(it["target"]["role"])
            labels.append(family_of(it["label"]))
            subs.append(it["label"] if it["label"] != "none" else "")
    X = cached_features(encoder, examples, "written", context_turns, cache_dir, log, features)
    return Table("written", tuple("written" for _ in examples), np.asarray(roles), np.asarray(labels),
                 np.asarray(subs), X, {})


# ---- stage 1 ---------------------------------------------------------------------------------------------
RUPTURE = ("withdrawal", "confrontation")


def _logreg(X: np.ndarray, y: np.ndarray, C: float, balanced: bool = True,
            weight: np.ndarray | None = None):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=C, max_iter=3000, class_weight="balanced" if balanced else None)
    clf.fit(X, y, sample_weight=weight)
    return clf


def fit_stage1(tables: Sequence[Table], convs: set[str], C: float = 0.5, standardise: bool = False,
               extra: Table | None = None, extra_weight: float = 0.3) -> dict[str, np.ndarray]:
    """The head tensors (models.tagger.HEAD_TENSORS) fitted on the rows of `convs` in every table. Without
    `standardise` the features enter as they are (mean 0, scale 1 recorded): the embeddings are on a common
    small scale, and C then regularises strongly enough that the scores keep one scale across folds."""
    from pipeline.records import CONFRONTATION_SUBTYPES, REPAIR_SUBTYPES, WITHDRAWAL_SUBTYPES

    sel = [np.isin(np.asarray(t.convs), list(convs)) for t in tables]
    weight = np.concatenate([np.ones(int(m.sum())) for m in sel])
    if extra is not None:  # every row of the extra table, down-weighted
        tables = [*tables, extra]
        sel = [*sel, np.ones(len(extra.roles), bool)]
        weight = np.concatenate([weight, np.full(len(extra.roles), extra_weight)])
    X = np.vstack([t.X[m] for t, m in zip(tables, sel)])
    roles = np.concatenate([t.roles[m] for t, m in zip(tables, sel)])
    labels = np.concatenate([t.labels[m] for t, m in zip(tables, sel)])
    subs = np.concatenate([t.subtypes[m] for t, m in zip(tables, sel)])
    mean = X.mean(axis=0) if standardise else np.zeros(X.shape[1])
    scale = X.std(axis=0) + 1e-6 if standardise else np.ones(X.shape[1])
    Z = (X - mean) / scale
    out = {"mean": mean, "scale": scale}
    usable = labels != "dontcare"
    for name, role, positive in (("rupture", "client", RUPTURE), ("repair", "therapist", ("repair",))):
        m = usable & (roles == role)
        clf = _logreg(Z[m], np.isin(labels[m], positive).astype(int), C, weight=weight[m])
        out[f"{name}.weight"], out[f"{name}.bias"] = clf.coef_.reshape(1, -1), clf.intercept_.reshape(1)
    m = np.isin(labels, RUPTURE)
    clf = _logreg(Z[m], (labels[m] == "confrontation").astype(int), C, weight=weight[m])
    out["family.weight"], out["family.bias"] = clf.coef_.reshape(1, -1), clf.intercept_.reshape(1)
    for name, fam, subtypes in (("withdrawal", "withdrawal", WITHDRAWAL_SUBTYPES),
                                ("confrontation", "confrontation", CONFRONTATION_SUBTYPES),
                                ("repair_sub", "repair", REPAIR_SUBTYPES)):
        out[f"{name}.weight"], out[f"{name}.bias"] = _subtype_head(Z, labels == fam, subs, subtypes, C)
    return out


def _subtype_head(Z: np.ndarray, fam_mask: np.ndarray, subs: np.ndarray, subtypes: Sequence[str],
                  C: float) -> tuple[np.ndarray, np.ndarray]:
    """Softmax weights over `subtypes`; subtypes never seen get a bias of -20 (probability ~0); with one
    subtype seen, that one takes the family's whole mass."""
    w = np.zeros((len(subtypes), Z.shape[1]))
    b = np.full(len(subtypes), -20.0)
    m = fam_mask & np.isin(subs, list(subtypes))
    seen = sorted(set(subs[m]))
    if len(seen) == 1:
        b[list(subtypes).index(seen[0])] = 0.0
    elif len(seen) > 1:
        clf = _logreg(Z[m], subs[m], C, balanced=False)
        for j, lab in enumerate(clf.classes_):
            k = list(subtypes).index(lab)
            w[k] = clf.coef_[j] if len(seen) > 2 else (clf.coef_[0] if j == 1 else -clf.coef_[0]) / 2
            b[k] = clf.intercept_[j] if len(seen) > 2 else (clf.intercept_[0] if j == 1 else -clf.intercept_[0]) / 2
    return w, b


def stage1_scores(tensors: Mapping[str, np.ndarray], X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from models.tagger import LinearHeads

    return LinearHeads(dict(tensors)).scores(X)


# ---- the lexical part ------------------------------------------------------------------------------------
IDENTITY_BLEND = np.array([1.0, 0.0, 0.0])


def text_rows(tables: Sequence[Table], convs: set[str]) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """The rows of `convs` in every table: turn texts, the texts of the turns before, roles, labels."""
    cur: list[str] = []
    prev: list[str] = []
    roles, labels = [], []
    for t in tables:
        rows = np.flatnonzero(np.isin(np.asarray(t.convs), list(convs)))
        c, p = t.texts(rows)
        cur += c
        prev += p
        roles.append(t.roles[rows])
        labels.append(t.labels[rows])
    return cur, prev, np.concatenate(roles), np.concatenate(labels)


def lexical_vocabulary(tables: Sequence[Table], convs: set[str]):  # type: ignore[no-untyped-def]
    """A TF-IDF vectoriser fitted on the turn texts of `convs`: the terms (models.tagger.lexical_terms) seen
    in at least two turns, with their smoothed idf. Uses no labels."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from models.tagger import lexical_terms

    cur, _, _, _ = text_rows(tables, convs)
    return TfidfVectorizer(analyzer=lexical_terms, min_df=2, sublinear_tf=True, norm="l2", smooth_idf=True).fit(cur)


def fit_lexical(tables: Sequence[Table], convs: set[str], C: float = 1.0,
                vectoriser=None) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:  # type: ignore[no-untyped-def]
    """The lexical part (models.tagger.LexicalHeads) fitted on the rows of `convs`: the vocabulary
    (`lexical_vocabulary` of `convs`, or the given one) and class-balanced logistic regressions on
    [TF-IDF(turn) | TF-IDF(turn before)] for ruptures (client turns) and repairs (therapist turns). The blend
    is the identity (encoder score only) until fit_blend."""
    from scipy.sparse import hstack

    vec = vectoriser if vectoriser is not None else lexical_vocabulary(tables, convs)
    cur, prev, role, lab = text_rows(tables, convs)
    X = hstack([vec.transform(cur), vec.transform(prev)]).tocsr()
    out = {"lex.idf": np.asarray(vec.idf_, dtype=np.float64),
           "blend.rupture": IDENTITY_BLEND.copy(), "blend.repair": IDENTITY_BLEND.copy()}
    for name, r, positive in (("rupture", "client", RUPTURE), ("repair", "therapist", ("repair",))):
        m = (role == r) & (lab != "dontcare")
        clf = _logreg(X[m], np.isin(lab[m], positive).astype(int), C)
        out[f"lex.{name}.weight"], out[f"lex.{name}.bias"] = clf.coef_.reshape(1, -1), clf.intercept_.reshape(1)
    return tuple(str(t) for t in vec.get_feature_names_out()), out


def lexical_part(terms: Sequence[str], tensors: Mapping[str, np.ndarray]):  # type: ignore[no-untyped-def]
    from models.tagger import LexicalHeads

    return LexicalHeads(tuple(terms), {k: np.asarray(v, dtype=np.float64) for k, v in tensors.items()
                                       if k.startswith(("lex.", "blend."))})


def fit_blend(tab: Table, rows: np.ndarray, encoder: tuple[np.ndarray, np.ndarray],
              lexical: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
    """blend.rupture / blend.repair: logistic regressions (not class-balanced, so the blended score stays a
    calibrated log-odds) of the label on the out-of-fold (encoder score, lexical score) of `rows`."""
    usable = tab.labels[rows] != "dontcare"
    out = {}
    for k, (name, role, positive) in enumerate((("rupture", "client", RUPTURE), ("repair", "therapist", ("repair",)))):
        m = rows[usable & (tab.roles[rows] == role)]
        x = np.c_[encoder[k][m], lexical[k][m]]
        clf = _logreg(x, np.isin(tab.labels[m], positive).astype(int), C=1.0, balanced=False)
        out[f"blend.{name}"] = np.r_[clf.coef_.reshape(-1), clf.intercept_.reshape(-1)]
    return out


# ---- stage 2 and thresholds --------------------------------------------------------------------------------
def context_table(table: Table, conv_list: Sequence[str], r: np.ndarray, q: np.ndarray,
                  window: int, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    """Context inputs (n, 3) for ruptures and repairs, row-aligned with the table (pipeline code)."""
    from pipeline.tagging import context_inputs

    xr = np.zeros((len(table.roles), 3))
    xq = np.zeros((len(table.roles), 3))
    for conv in conv_list:
        rows = table.rows(conv)
        roles = [str(x) for x in table.roles[rows]]
        rl = [float(r[i]) if roles[k] in ("client", "unknown") else None for k, i in enumerate(rows)]
        ql = [float(q[i]) if roles[k] in ("therapist", "unknown") else None for k, i in enumerate(rows)]
        a, b = context_inputs(roles, rl, ql, window, lookback)
        xr[rows] = a
        xq[rows] = b
    return xr, xq


def fit_context(xr: np.ndarray, xq: np.ndarray, table: Table, rows: np.ndarray) -> list[float]:
    usable = table.labels[rows] != "dontcare"
    out: list[float] = []
    for x, role, positive in ((xr, "client", RUPTURE), (xq, "therapist", ("repair",))):
        m = rows[usable & (table.roles[rows] == role)]
        clf = _logreg(x[m], np.isin(table.labels[m], positive).astype(int), C=1.0, balanced=False)
        out += [float(v) for v in clf.coef_.reshape(-1)] + [float(clf.intercept_[0])]
    return out


def utterance_flags(convs: Sequence[Conversation], table: Table, values: np.ndarray) -> dict[str, list[float]]:
    return {c.conv: to_utterances(c, table.turns[c.conv], [float(v) for v in values[table.rows(c.conv)]])
            for c in convs}


def choose_thresholds(convs: Sequence[Conversation], table: Table, p_rupture: np.ndarray, p_repair: np.ndarray,
                      max_false_per_100: float) -> tuple[float, float]:
    """Rupture threshold: best utterance-level F1 with at most max_false_per_100 false ruptures per 100 calm
    client utterances; repair threshold: best repair F1."""
    pr = utterance_flags(convs, table, np.where(table.roles == "client", p_rupture, 0.0))
    pq = utterance_flags(convs, table, np.where(table.roles == "therapist", p_repair, 0.0))
    cl_s, cl_y, th_s, th_y = [], [], [], []
    for c in convs:
        for u in c.utterances:
            if not u.scored:
                continue
            if u.role == "client":
                cl_s.append(pr[c.conv][u.index])
                cl_y.append(u.is_rupture)
            else:
                th_s.append(pq[c.conv][u.index])
                th_y.append(u.family == "repair")
    return (_best_threshold(np.asarray(cl_s), np.asarray(cl_y), max_false_per_100),
            _best_threshold(np.asarray(th_s), np.asarray(th_y), None))


def _best_threshold(s: np.ndarray, y: np.ndarray, max_false_per_100: float | None) -> float:
    calm = max(1, int((~y).sum()))
    best_f, best_t = -1.0, 0.99
    for t in np.unique(np.round(s[s > 0.01], 4)):
        flag = s >= t
        tp, fp = int((flag & y).sum()), int((flag & ~y).sum())
        fn = int(y.sum()) - tp
        if max_false_per_100 is not None and 100.0 * fp / calm > max_false_per_100:
            continue
        f = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        if f > best_f:
            best_f, best_t = f, float(t)
    return best_t


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


@dataclass(frozen=True)
class TrainSettings:
    C: float = 0.5
    standardise: bool = False
    window: int = 6
    lookback: int = 4
    max_false_per_100: float = 1.0
    train_kinds: tuple[str, ...] = ("noised",)  # copies trained on
    choose_on: str = "noised"  # copy the context weights and thresholds are chosen on
    written_weight: float = 0.0  # weight of the written corpus rows in stage 1 (0: not used; see MODEL_CARD.md)
    written_families: tuple[str, ...] = ()  # only the written rows of these families (none, withdrawal, ...); (): all
    lexical: bool = True  # blend in the lexical part (TF-IDF heads) with the encoder heads
    lexical_C: float = 0.3  # 1.0 and 0.3 compared on the grouped CV (MODEL_CARD.md)
    # ship the average of the fold models whose out-of-fold scores set the blend, context weights and
    # thresholds (instead of one model refitted on all conversations, which scores more sharply than they do)
    fold_average: bool = True  # v3.1 shipped the refit (F1 0.361, 1.18 false / 100 calm); see MODEL_CARD.md
    # a don't-care turn that one of the two coders coded as a rupture (or a repair) trains as one (version
    # 3.3; the consensus alone before); every figure is still scored on the consensus
    single_coder_positives: bool = True
    features: str = "frozen3t"  # models.tagger.featurize: the exchange read as the turn after its context (3.3)


Scorer = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # table rows -> (rupture, repair) scores
FitScorer = Callable[[set[str]], Scorer]  # training conversation ids -> scorer


def dense_scorer(tables: Sequence[Table], score_table: Table, C: float, standardise: bool = False,
                 extra: Table | None = None, extra_weight: float = 0.3) -> FitScorer:
    """Stage 1 of the model: linear heads on the encoder features of `tables` (train), scoring rows of
    `score_table`."""
    def fit(convs: set[str]) -> Scorer:
        t = fit_stage1(tables, convs, C, standardise, extra, extra_weight)
        return lambda rows: stage1_scores(t, score_table.X[rows])
    return fit


def lexical_scorer(tables: Sequence[Table], score_table: Table, C: float) -> FitScorer:
    """The lexical part alone (identity blend would ignore it: scores taken before the blend)."""
    def fit(convs: set[str]) -> Scorer:
        terms, t = fit_lexical(tables, convs, C)
        part = lexical_part(terms, t)
        return lambda rows: part.scores(*score_table.texts(rows))
    return fit


def oof_scores(convs: Sequence[Conversation], tab: Table, fit_scorer: FitScorer
               ) -> tuple[np.ndarray, np.ndarray, dict[int, Scorer]]:
    """Stage-1 scores of every row of `convs` in `tab` from the model trained without its fold, and those
    per-fold scorers."""
    r = np.zeros(len(tab.roles))
    q = np.zeros(len(tab.roles))
    scorers = {}
    for k in sorted({c.fold for c in convs}):
        scorers[k] = fit_scorer({c.conv for c in convs if c.fold != k})
        rows = np.concatenate([tab.rows(c.conv) for c in convs if c.fold == k])
        r[rows], q[rows] = scorers[k](rows)
    return r, q, scorers


def fit_decision(convs: Sequence[Conversation], tab: Table, r: np.ndarray, q: np.ndarray, settings: TrainSettings,
                 log: LOG = print, fit_context_stage: bool = True) -> dict:
    """Stage 2 weights (or, without `fit_context_stage`, the identity: own score only) and thresholds fitted
    on the out-of-fold stage-1 scores r, q of `convs`' rows in `tab`."""
    conv_list = [c.conv for c in convs]
    xr, xq = context_table(tab, conv_list, r, q, settings.window, settings.lookback)
    rows = np.concatenate([tab.rows(c) for c in conv_list])
    weights = fit_context(xr, xq, tab, rows) if fit_context_stage else [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    p_r = _sigmoid(xr @ np.asarray(weights[:3]) + weights[3])
    p_q = _sigmoid(xq @ np.asarray(weights[4:7]) + weights[7])
    thr_r, thr_q = choose_thresholds(convs, tab, p_r, p_q, settings.max_false_per_100)
    log(f"  context weights {np.round(weights, 3).tolist()}, thresholds rupture {thr_r:.3f} repair {thr_q:.3f}")
    return {"context": {"weights": weights, "window": settings.window, "lookback": settings.lookback},
            "threshold": thr_r, "repair_threshold": thr_q}


def training_tables(tables: Mapping[str, Table], settings: TrainSettings) -> dict[str, Table]:
    """The tables with the labels training uses (settings.single_coder_positives)."""
    if not settings.single_coder_positives:
        return dict(tables)
    return {k: t.with_single_coder_labels() for k, t in tables.items()}


def written_rows(tables: Mapping[str, Table], settings: TrainSettings) -> Table | None:
    """The written corpus's rows stage 1 adds (settings.written_weight, settings.written_families), or None."""
    w = tables.get("written") if settings.written_weight > 0 else None
    if w is None or not settings.written_families:
        return w
    m = np.isin(w.labels, settings.written_families)
    return replace(w, convs=tuple(np.asarray(w.convs)[m]), roles=w.roles[m], labels=w.labels[m],
                   subtypes=w.subtypes[m], X=w.X[m])


def train_head(convs: Sequence[Conversation], tables: Mapping[str, Table], settings: TrainSettings,
               log: LOG = print) -> dict:
    """The shipped head: stage 1 (encoder heads and, with settings.lexical, the lexical part) on all of
    `convs`; the blend of the two, stage 2 and the thresholds on their out-of-fold scores (the folds of
    `convs`)."""
    tables = training_tables(tables, settings)
    if settings.fold_average:
        return train_fold_average(convs, tables, settings, log)
    train_tabs = [tables[k] for k in settings.train_kinds]
    tab = tables[settings.choose_on]
    ids = {c.conv for c in convs}
    extra = written_rows(tables, settings)
    r, q, _ = oof_scores(convs, tab, dense_scorer(train_tabs, tab, settings.C, settings.standardise, extra,
                                                  settings.written_weight))
    tensors = fit_stage1(train_tabs, ids, settings.C, settings.standardise, extra, settings.written_weight)
    lexical = None
    if settings.lexical:
        rl, ql, _ = oof_scores(convs, tab, lexical_scorer(train_tabs, tab, settings.lexical_C))
        lexical = (rl, ql, *fit_lexical(train_tabs, ids, settings.lexical_C))
    return _blend_and_decide(convs, tab, r, q, tensors, lexical, settings, log)


def _blend_and_decide(convs: Sequence[Conversation], tab: Table, r: np.ndarray, q: np.ndarray,
                      tensors: dict[str, np.ndarray], lexical: tuple | None, settings: TrainSettings,
                      log: LOG) -> dict:
    """The fitted head from the encoder heads' out-of-fold scores r, q and `tensors`, and, when given, the
    lexical part's (out-of-fold rupture and repair scores, terms, tensors): their blend, stage 2 and the
    thresholds, all fitted on the out-of-fold scores of `convs`."""
    from models.tagger import blend_scores

    terms: tuple[str, ...] = ()
    if lexical is not None:
        rl, ql, terms, lex = lexical
        rows = np.concatenate([tab.rows(c.conv) for c in convs])
        blend = fit_blend(tab, rows, (r, q), (rl, ql))
        log(f"  blend rupture {np.round(blend['blend.rupture'], 3).tolist()} repair "
            f"{np.round(blend['blend.repair'], 3).tolist()} (encoder, lexical, bias)")
        r, q = blend_scores(blend, (r, q), (rl, ql))
        tensors = {**tensors, **lex, **blend}
    decision = fit_decision(convs, tab, r, q, settings, log)
    return {"tensors": tensors, "terms": terms, **decision}


def train_fold_average(convs: Sequence[Conversation], tables: Mapping[str, Table], settings: TrainSettings,
                       log: LOG = print) -> dict:
    """Like train_head, but the shipped heads are the average of the fold models (each trained without one
    fold of `convs`) whose out-of-fold scores fit the blend, stage 2 and the thresholds: the scorer that is
    shipped and the scorers that set its thresholds then saw the same amount of data. Linear heads average
    exactly (the mean of their scores); the lexical part shares one vocabulary (fitted without labels on
    all of `convs`) so that its weights average too."""
    train_tabs = [tables[k] for k in settings.train_kinds]
    tab = tables[settings.choose_on]
    ids = {c.conv for c in convs}
    extra = written_rows(tables, settings)
    vec = lexical_vocabulary(train_tabs, ids) if settings.lexical else None
    n = len(tab.roles)
    r, q, rl, ql = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    dense, lexical = [], []
    terms: tuple[str, ...] = ()
    for k in sorted({c.fold for c in convs}):
        train = {c.conv for c in convs if c.fold != k}
        rows = np.concatenate([tab.rows(c.conv) for c in convs if c.fold == k])
        dense.append(fit_stage1(train_tabs, train, settings.C, settings.standardise, extra, settings.written_weight))
        r[rows], q[rows] = stage1_scores(dense[-1], tab.X[rows])
        if vec is not None:
            terms, lex = fit_lexical(train_tabs, train, settings.lexical_C, vec)
            lexical.append(lex)
            rl[rows], ql[rows] = lexical_part(terms, lex).scores(*tab.texts(rows))
    mean = lambda fitted: {key: np.mean([t[key] for t in fitted], axis=0) for key in fitted[0]}  # noqa: E731
    return _blend_and_decide(convs, tab, r, q, mean(dense), (rl, ql, terms, mean(lexical)) if lexical else None,
                             settings, log)


def write_head(out_dir: Path, fitted: dict, info: Mapping[str, object]) -> str:
    """head.safetensors + head.json; returns the pair digest (models.tagger.head_digest)."""
    from safetensors.numpy import save_file

    from models.tagger import HEAD_CONFIG, HEAD_FILE, head_digest
    from pipeline.records import LABELS

    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in fitted["tensors"].items()}
    save_file(tensors, str(out_dir / HEAD_FILE))
    sha = hashlib.sha256((out_dir / HEAD_FILE).read_bytes()).hexdigest()
    cfg = {**info, "labels": list(LABELS), "context": fitted["context"], "threshold": round(fitted["threshold"], 4),
           "repair_threshold": round(fitted["repair_threshold"], 4), "sha256": sha}
    if fitted.get("terms"):
        cfg["lexical"] = {"analyzer": "models.tagger.lexical_terms", "terms": list(fitted["terms"])}
    (out_dir / HEAD_CONFIG).write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    return head_digest(out_dir)
