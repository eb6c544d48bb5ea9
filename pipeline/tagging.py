"""Rupture and repair events (3RS) from classifier scores, the session around each turn, and conversational
cues. Pure functions.

Input: the session's turns, the per-turn conversational cues (`TurnFeatures`, `pipeline.measures.turn_features`,
the one builder used by the pipeline and by training) and one `MarkerPrediction` per turn from
`models.tagger.MarkerClassifier` (probabilities over `LABELS` plus the raw rupture and repair scores).

Decision, per session (`tag_turns`):
1. Session context (`in_context`, when the model brings `TaggingConfig.context_weights`): real ruptures
   cluster in strained sessions and repairs answer ruptures, so each client turn's rupture score is
   re-weighed with the session's mean client score and the strongest client score nearby, and each therapist
   turn's repair score with the strongest client rupture score in the turns just before it (a logistic
   model with 4 + 4 weights, fitted on out-of-fold scores of the real-talk data; see scripts/train_tagger.py).
   The family probabilities are rescaled to the new rupture and repair probabilities; subtype shares stay.
2. Per turn (`decide`): family masses P(withdrawal), P(confrontation), P(repair). Client turns can only be
   ruptures, therapist turns only repairs; when roles are unknown both are considered (and the evidence
   says so); turns of role "other" are never tagged. Audio cues move the family's log-odds by a few fixed,
   documented amounts (`TaggingConfig.cue_*`; they cannot be fitted on text, so they are small):
   - withdrawal + `cue_latency` when a minimal response after a question/invitation came after a long pause
     (>= `long_latency_s`);
   - confrontation + `cue_interrupt` when the client interrupted AND the model already sees complaint
     language (P(confrontation) >= `cue_interrupt_gate`): an interruption alone is not a rupture.
   The text cues (minimal response, talk drop after an invitation) are read by the model itself; they stay
   in the evidence. `cue_minimal_response` and `cue_talk_shift` default to 0 (the model was fitted without
   them). All cue weights are multiplied by `cue_weight` (0 turns cues off).
3. A rupture is emitted when the adjusted P(withdrawal) + P(confrontation) >= `threshold`, a repair when
   the adjusted P(repair) >= `repair_threshold` (the model's, chosen on the real-talk folds: the rupture one
   for the best F1 with at most 1 false rupture per 100 calm client turns); the family is the larger of the
   two rupture families, the subtype the model's most likely one in it, the confidence that probability.
Repair linking: a rupture is `resolved` when a repair event by another speaker starts within
`repair_window_s` seconds after the rupture turn ends; `repair_turn_index` is the first such repair.
Session summary (`rupture_metrics`): counts, the share resolved, and the ranked moments to review.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median
from typing import Sequence

from pipeline.config import TaggingConfig
from pipeline.records import (AllianceMetrics, Event, EventDetails, MarkerPrediction, Moment, TaggerDetails, Turn,
                              TurnFeatures, family_of)

@dataclass(frozen=True)
class Decision:
    """The tagging decision for one turn (also used by scripts/eval_tagger.py)."""

    family: str  # withdrawal | confrontation | repair | none
    subtype: str  # a LABELS entry ("none" when family is none)
    confidence: float  # adjusted probability of a rupture (withdrawal + confrontation) or a repair
    p_model: float  # the model's probability of that before cues
    cue_boost: float  # log-odds added by cues
    cues: tuple[str, ...]  # human-readable cue descriptions


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def _rescale(pred: MarkerPrediction, p_rupture: float, p_repair: float) -> MarkerPrediction:
    """The same prediction with its rupture families summing to p_rupture and repair to p_repair (subtype
    shares kept; a family the role forbids stays at 0); `none` takes the rest."""
    fam = pred.family_probs()
    old_r = fam["withdrawal"] + fam["confrontation"]
    old_q = fam["repair"]
    new_r = p_rupture if old_r > 0 else 0.0
    new_q = p_repair if old_q > 0 else 0.0
    if new_r + new_q > 1.0:
        new_r, new_q = new_r / (new_r + new_q), new_q / (new_r + new_q)
    probs = []
    for lab, p in pred.probs:
        f = family_of(lab)
        if f == "none":
            probs.append((lab, 1.0 - new_r - new_q))
        elif f == "repair":
            probs.append((lab, p * new_q / old_q if old_q > 0 else 0.0))
        else:
            probs.append((lab, p * new_r / old_r if old_r > 0 else 0.0))
    return MarkerPrediction(pred.turn_index, tuple(probs), pred.rupture_logit, pred.repair_logit)


def context_inputs(roles: Sequence[str], rupture_logits: Sequence[float | None],
                   repair_logits: Sequence[float | None], window: int = 6,
                   lookback: int = 4) -> tuple[list[tuple[float, float, float]], list[tuple[float, float, float]]]:
    """Per turn, the inputs of the session-context stage (also what training fits the weights on):
    rupture: (own score, mean score of the session's client turns, highest client score within `window`
    turns either side, own turn excluded); repair: (own score, highest client rupture score in the
    `lookback` turns before, session mean client score). Client turns are those of role client or unknown;
    a missing score counts as the session mean."""
    cand = [i for i, r in enumerate(roles) if r in ("client", "unknown") and rupture_logits[i] is not None]
    mean = sum(float(rupture_logits[i]) for i in cand) / len(cand) if cand else 0.0  # type: ignore[arg-type]
    z = [float(v) if v is not None else mean for v in rupture_logits]
    is_cand = set(cand)
    rup, rep = [], []
    for i in range(len(roles)):
        near = [z[j] for j in range(max(0, i - window), min(len(roles), i + window + 1)) if j != i and j in is_cand]
        rup.append((z[i], mean, max(near) if near else mean))
        before = [z[j] for j in range(max(0, i - lookback), i) if j in is_cand]
        q = repair_logits[i]
        rep.append((float(q) if q is not None else 0.0, max(before) if before else mean, mean))
    return rup, rep


def in_context(turns: Sequence[Turn], predictions: Sequence[MarkerPrediction],
               weights: Sequence[float], window: int = 6, lookback: int = 4) -> tuple[MarkerPrediction, ...]:
    """Predictions re-weighed by the session around each turn (stage 2, see the module docstring).
    weights: 8 numbers, rupture (own, session mean, nearby max, bias) then repair (own, preceding rupture
    max, session mean, bias). Predictions without raw scores are returned unchanged."""
    if len(weights) != 8:
        raise ValueError(f"context weights: expected 8 numbers, got {len(weights)}")
    by = {p.turn_index: p for p in predictions}
    seq = [(t, by.get(t.index)) for t in turns]
    roles = [t.role for t, _ in seq]
    rl = [p.rupture_logit if p is not None else None for _, p in seq]
    ql = [p.repair_logit if p is not None else None for _, p in seq]
    rup, rep = context_inputs(roles, rl, ql, window, lookback)
    wr, wq = weights[:4], weights[4:]
    out = []
    for (t, p), xr, xq in zip(seq, rup, rep):
        if p is None:
            continue
        if p.rupture_logit is None and p.repair_logit is None:
            out.append(p)
            continue
        pr = _sigmoid(sum(w * x for w, x in zip(wr[:3], xr)) + wr[3]) if p.rupture_logit is not None else 0.0
        pq = _sigmoid(sum(w * x for w, x in zip(wq[:3], xq)) + wq[3]) if p.repair_logit is not None else 0.0
        out.append(_rescale(p, pr, pq))
    return tuple(out)


def _shift(p: float, boost: float) -> float:
    if boost == 0.0 or p <= 0.0:
        return p
    if p >= 1.0:
        return 1.0
    z = math.log(p) - math.log1p(-p) + boost
    return 1.0 / (1.0 + math.exp(-z))


def cue_boosts(role: str, feats: TurnFeatures | None, fam: dict[str, float], client_median_words: float | None,
               cfg: TaggingConfig) -> tuple[dict[str, float], list[str]]:
    """Log-odds boosts per family from the conversational cues, with their descriptions."""
    boosts = {"withdrawal": 0.0, "confrontation": 0.0, "repair": 0.0}
    notes: list[str] = []
    if feats is None or role not in ("client", "unknown"):
        return boosts, notes
    w = cfg.cue_weight
    lat = feats.latency_s
    if lat is not None:
        notes.append(f"latency {lat:.1f} s")
    if feats.follows_question:
        if feats.minimal_response:
            boosts["withdrawal"] += w * cfg.cue_minimal_response
            notes.append("minimal response after invitation")
            if lat is not None and lat >= cfg.long_latency_s:
                boosts["withdrawal"] += w * cfg.cue_latency
                notes.append("after a long pause")
        elif client_median_words and feats.word_count <= cfg.talk_shift_ratio * client_median_words:
            boosts["withdrawal"] += w * cfg.cue_talk_shift
            notes.append(f"talk drops to {feats.word_count} words (client median {client_median_words:.0f})")
    if feats.interrupts_previous:
        notes.append("interrupts")
        if fam["confrontation"] >= cfg.cue_interrupt_gate:
            boosts["confrontation"] += w * cfg.cue_interrupt
            notes.append("interruption with complaint language")
    return boosts, notes


def decide(role: str, pred: MarkerPrediction, feats: TurnFeatures | None, cfg: TaggingConfig,
           client_median_words: float | None = None) -> Decision:
    """A rupture is judged on its total mass, P(withdrawal) + P(confrontation) (the family only names it:
    the larger of the two after cues); a repair on P(repair); with the role unknown, the likelier of the two."""
    fam = pred.family_probs()
    may_rupture = role in ("client", "unknown")
    may_repair = role in ("therapist", "unknown")
    if not (may_rupture or may_repair):
        return Decision("none", "none", 0.0, 0.0, 0.0, ())
    boosts, notes = cue_boosts(role, feats, fam, client_median_words, cfg)
    options: dict[str, tuple[float, float, float]] = {}  # family -> (adjusted, model, boost)
    if may_rupture:
        named = max(("withdrawal", "confrontation"), key=lambda f: _shift(fam[f], boosts[f]))
        p = fam["withdrawal"] + fam["confrontation"]
        b = boosts["withdrawal"] + boosts["confrontation"]
        options[named] = (_shift(p, b), p, b)
    if may_repair:
        options["repair"] = (_shift(fam["repair"], boosts["repair"]), fam["repair"], boosts["repair"])
    best = max(options, key=lambda f: options[f][0])
    adjusted, p_model, boost = options[best]
    thr = cfg.repair_threshold if (best == "repair" and cfg.repair_threshold is not None) else cfg.threshold
    if thr is None:
        raise ValueError("tagging.threshold is unresolved: use MarkerClassifier.tagging_config() (the model's "
                         "tuned threshold) or set a threshold")
    if adjusted >= thr:
        sub, _ = pred.best_subtype(best)
        return Decision(best, sub, adjusted, p_model, boost, tuple(notes))
    return Decision("none", "none", adjusted, p_model, boost, tuple(notes))


def trim(text: str, n: int) -> str:
    t = " ".join(text.split())
    return t if len(t) <= n else t[: n - 1].rstrip() + "…"


def _other_speaker(turns: Sequence[Turn], i: int) -> str | None:
    me = turns[i].speaker
    want = {"client": "therapist", "therapist": "client"}.get(turns[i].role)
    for j in range(i - 1, -1, -1):
        if turns[j].speaker != me and (want is None or turns[j].role == want):
            return turns[j].speaker
    for j in range(i + 1, len(turns)):
        if turns[j].speaker != me and (want is None or turns[j].role == want):
            return turns[j].speaker
    return None


def configured_context(turns: Sequence[Turn], predictions: Sequence[MarkerPrediction],
                       cfg: TaggingConfig) -> Sequence[MarkerPrediction]:
    """`in_context` with the config's weights, window and lookback; the predictions unchanged when the config
    has no context weights."""
    if not cfg.context_weights:
        return predictions
    return in_context(turns, predictions, cfg.context_weights, cfg.context_window, cfg.context_lookback)


def client_median_words(turns: Sequence[Turn]) -> float | None:
    """The median word count of the turns that may be ruptures (client or unknown role), which `decide`'s
    minimal-response cue compares with; None without such turns."""
    words = [t.word_count for t in turns if t.role in ("client", "unknown")]
    return float(median(words)) if words else None


def tag_turns(turns: Sequence[Turn], features: Sequence[TurnFeatures], predictions: Sequence[MarkerPrediction],
              cfg: TaggingConfig) -> tuple[Event, ...]:
    """Rupture events on client turns and repair events on therapist turns (both kinds when roles are
    unknown), ruptures linked to the repair that followed them. Events are in turn order."""
    predictions = configured_context(turns, predictions, cfg)
    feats_by = {f.turn_index: f for f in features}
    pred_by = {p.turn_index: p for p in predictions}
    client_median = client_median_words(turns)
    raw: list[tuple[int, Decision]] = []
    for i, t in enumerate(turns):
        pred = pred_by.get(t.index)
        if pred is None:
            continue
        d = decide(t.role, pred, feats_by.get(t.index), cfg, client_median)
        if d.family != "none":
            raw.append((i, d))
    repairs = [(i, d) for i, d in raw if d.family == "repair"]
    events: list[Event] = []
    for i, d in raw:
        t = turns[i]
        evidence = "; ".join([f'"{trim(t.text, cfg.evidence_chars)}"', *d.cues]
                             + ([f"role unknown: tagged as {d.family}"] if t.role not in ("client", "therapist") else []))
        details = EventDetails(TaggerDetails(p_model=round(d.p_model, 4), cue_boost=round(d.cue_boost, 3),
                                             family=d.family, p_subtype=round(pred_by[t.index].prob(d.subtype), 4)))
        if d.family == "repair":
            events.append(Event(type="repair", subtype=d.subtype, start=t.start, end=t.end, speaker=t.speaker,
                                target_speaker=_other_speaker(turns, i), turn_index=t.index,
                                confidence=min(1.0, max(0.0, d.confidence)), evidence=evidence, details=details))
            continue
        link = next((j for j, _ in repairs if j > i and turns[j].speaker != t.speaker
                     and turns[j].start - t.end <= cfg.repair_window_s), None)
        events.append(Event(type="rupture", subtype=d.subtype, start=t.start, end=t.end, speaker=t.speaker,
                            target_speaker=_other_speaker(turns, i), turn_index=t.index,
                            confidence=min(1.0, max(0.0, d.confidence)), evidence=evidence,
                            resolved=link is not None,
                            repair_turn_index=turns[link].index if link is not None else None, details=details))
    return tuple(events)


def rupture_metrics(events: Sequence[Event], moments: int = 5) -> AllianceMetrics:
    """Session summary: ruptures by family and subtype, resolved/unresolved and the share resolved,
    repairs, and the `moments` most likely ruptures to review first (with their repairs)."""
    ruptures = [e for e in events if e.type == "rupture"]
    repairs = [e for e in events if e.type == "repair"]
    by_sub: dict[str, int] = {}
    for e in ruptures:
        by_sub[e.subtype or "unknown"] = by_sub.get(e.subtype or "unknown", 0) + 1
    rep_sub: dict[str, int] = {}
    for e in repairs:
        rep_sub[e.subtype or "unknown"] = rep_sub.get(e.subtype or "unknown", 0) + 1
    resolved = sum(1 for e in ruptures if e.resolved)
    ranked = sorted(ruptures, key=lambda e: (-e.confidence, e.start))[:moments]
    return AllianceMetrics(
        ruptures=len(ruptures),
        withdrawal=sum(1 for e in ruptures if (e.subtype or "").startswith("withdrawal")),
        confrontation=sum(1 for e in ruptures if (e.subtype or "").startswith("confrontation")),
        ruptures_by_subtype=dict(sorted(by_sub.items())),
        resolved=resolved,
        unresolved=len(ruptures) - resolved,
        share_resolved=round(resolved / len(ruptures), 4) if ruptures else None,
        repairs=len(repairs),
        repairs_by_subtype=dict(sorted(rep_sub.items())),
        # the few most likely ruptures, most likely first, each with the repair that followed it
        moments=tuple(Moment(turn_index=e.turn_index, start=e.start, subtype=e.subtype,
                             confidence=round(e.confidence, 4), resolved=e.resolved,
                             repair_turn_index=e.repair_turn_index) for e in ranked),
    )
