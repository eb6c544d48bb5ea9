"""Figures of a rupture/repair tagger against the real-talk coders' consensus, on the original utterances.

Input per conversation: the turns the tagger saw (`TaggedTurn`, clean or noised copy) and, per turn, a
rupture score, a rupture flag, a repair score and a repair flag. A merged turn's values apply to each of its
utterances; a split utterance takes the highest of its parts (realtalk.to_utterances). Don't-care utterances
are left out of every count.

- rupture P/R/F1: client utterances, rupture (withdrawal or confrontation) vs not;
- false ruptures per 100 calm client utterances: flagged client utterances the coders left `none`;
- repair P/R/F1: therapist utterances;
- moments: per conversation where the coders found a rupture, the flagged ruptures ranked by score, top 3
  and top 5; a moment is right when its utterance is a consensus rupture (pooled precision, and the share of
  such conversations where the list is empty);
- counts: Spearman correlation over all conversations of flagged vs consensus rupture counts, and of the
  expected count (the sum of P(rupture) over client utterances; an utterance no turn carries, such as a
  filler the ASR-style copy dropped, counts 0) vs consensus counts;
- ceilings, for diagnosis only: the best rupture and repair F1 that any single threshold on the scores would
  give (`best_f1`). They read the held-out labels to pick that threshold, so they are not figures a tagger
  reaches; they say how far the scores' ranking, not the threshold, limits F1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from research.realtalk import Conversation, TaggedTurn, to_utterances


@dataclass(frozen=True)
class TurnOutput:
    rupture_score: float
    rupture: bool
    repair_score: float
    repair: bool


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def sweep(scores: Sequence[float], labels: Sequence[bool]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every distinct threshold on `scores` (flag where score >= threshold), highest first, with the true and
    false flags it gives against `labels`. Tied scores are flagged together."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[s[1:] != s[:-1], True] if len(s) else np.zeros(0, bool)
    return s[last], np.cumsum(y)[last], np.cumsum(~y)[last]


def best_f1(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """The highest F1 over every threshold on `scores` against `labels`."""
    positives = int(np.asarray(labels, dtype=bool).sum())
    if not positives:
        return 0.0
    _, tp, fp = sweep(scores, labels)
    return float((2 * tp / (tp + fp + positives)).max())


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def score(convs: Sequence[Conversation], turns: Mapping[str, Sequence[TaggedTurn]],
          outputs: Mapping[str, Sequence[TurnOutput]]) -> dict[str, float]:
    rt = rf = rn = 0  # rupture tp, fp, fn
    pt = pf = pn = 0  # repair
    calm = 0
    top = {3: [0, 0], 5: [0, 0]}  # right, shown
    empty = 0
    with_rupture = 0
    pred_counts, true_counts, expected = [], [], []
    ceiling: dict[str, list[tuple[float, bool]]] = {"rupture": [], "repair": []}  # (score, coded) per utterance
    for c in convs:
        ts, outs = turns[c.conv], outputs[c.conv]
        r_score = to_utterances(c, ts, [o.rupture_score for o in outs])
        r_flag = to_utterances(c, ts, [float(o.rupture) for o in outs])
        p_flag = to_utterances(c, ts, [float(o.repair) for o in outs])
        p_score = to_utterances(c, ts, [o.repair_score for o in outs])
        n_true = n_pred = 0
        n_expected = 0.0
        flagged: list[tuple[float, bool]] = []
        for u in c.utterances:
            if not u.scored:
                continue
            flag_r, flag_p = r_flag[u.index] > 0, p_flag[u.index] > 0
            if u.role == "client":
                calm += not u.is_rupture
                rt += flag_r and u.is_rupture
                rf += flag_r and not u.is_rupture
                rn += (not flag_r) and u.is_rupture
                n_true += u.is_rupture
                n_pred += flag_r
                n_expected += max(0.0, r_score[u.index])  # -inf: no turn carries it
                if flag_r:
                    flagged.append((r_score[u.index], u.is_rupture))
                ceiling["rupture"].append((r_score[u.index], u.is_rupture))
            else:
                rep = u.family == "repair"
                ceiling["repair"].append((p_score[u.index], rep))
                pt += flag_p and rep
                pf += flag_p and not rep
                pn += (not flag_p) and rep
        pred_counts.append(n_pred)
        true_counts.append(n_true)
        expected.append(n_expected)
        if n_true:
            with_rupture += 1
            flagged.sort(key=lambda x: -x[0])
            empty += not flagged
            for k in top:
                top[k][0] += sum(ok for _, ok in flagged[:k])
                top[k][1] += len(flagged[:k])
    rp, rr, rf1 = prf(rt, rf, rn)
    qp, qr, qf1 = prf(pt, pf, pn)
    return {
        "rupture_p": rp, "rupture_r": rr, "rupture_f1": rf1, "rupture_tp": rt, "rupture_fp": rf, "rupture_fn": rn,
        "false_per_100_calm": 100.0 * rf / calm if calm else 0.0,
        "repair_p": qp, "repair_r": qr, "repair_f1": qf1,
        "top3_precision": top[3][0] / top[3][1] if top[3][1] else 0.0,
        "top5_precision": top[5][0] / top[5][1] if top[5][1] else 0.0,
        "moments_empty_share": empty / with_rupture if with_rupture else 0.0,
        "count_spearman": spearman(pred_counts, true_counts),
        "expected_count_spearman": spearman(expected, true_counts),
        **{f"{k}_f1_best": best_f1([x for x, _ in v], [y for _, y in v]) for k, v in ceiling.items()},
    }
