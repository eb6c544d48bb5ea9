"""Rupture and repair events (3RS) from classifier probabilities plus conversational cues. Pure functions.

Input: the session's turns, the per-turn conversational cues (`TurnFeatures`, pipeline.measures) and one
`MarkerPrediction` per turn from `models.tagger.MarkerClassifier` (calibrated probabilities over `LABELS`).

Decision, per turn (see `decide`):
1. Family masses from the model: P(withdrawal) = sum of its subtypes, likewise confrontation and repair.
   Client turns can only be ruptures, therapist turns only repairs; when roles are unknown both are
   considered (and the evidence says so); turns of role "other" are never tagged.
2. Cues move the family's log-odds by a few fixed, documented amounts (`TaggingConfig.cue_*`):
   - withdrawal + `cue_minimal_response` when the turn is a minimal response after a question/invitation;
   - withdrawal + `cue_latency` when it also came after a long pause (>= `long_latency_s`);
   - withdrawal + `cue_talk_shift` when, after a question/invitation, the client says far less than usual
     (word count <= `talk_shift_ratio` x the client's median turn in this session);
   - confrontation + `cue_interrupt` when the client interrupted AND the model already sees complaint
     language (P(confrontation) >= `cue_interrupt_gate`): an interruption alone is not a rupture.
   All cue weights are multiplied by `cue_weight` (0 turns cues off). Subtype shares within a family
   come from the model only.
3. An event is emitted when the adjusted family probability >= `threshold` (default tuned on the dev split
   for review: few false alarms); its subtype is the model's most likely subtype in that family, its
   confidence the adjusted family probability.
Repair linking: a rupture is `resolved` when a repair event by another speaker starts within
`repair_window_s` seconds after the rupture turn ends; `repair_turn_index` is the first such repair.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median
from typing import Any, Sequence

from pipeline.config import TaggingConfig
from pipeline.records import (
    CONFRONTATION_SUBTYPES,
    REPAIR_SUBTYPES,
    WITHDRAWAL_SUBTYPES,
    Event,
    Turn,
    TurnFeatures,
)

LABELS: tuple[str, ...] = ("none",) + WITHDRAWAL_SUBTYPES + CONFRONTATION_SUBTYPES + REPAIR_SUBTYPES
FAMILIES: tuple[str, ...] = ("withdrawal", "confrontation", "repair", "none")


def family_of(label: str) -> str:
    if label == "none":
        return "none"
    if label in REPAIR_SUBTYPES:
        return "repair"
    return label.split(".", 1)[0]


def role_allows(role: str, label: str) -> bool:
    """Rupture subtypes on client turns, repairs on therapist turns, none on any; all when role unknown."""
    fam = family_of(label)
    if fam == "none":
        return True
    if role == "client":
        return fam in ("withdrawal", "confrontation")
    if role == "therapist":
        return fam == "repair"
    if role == "other":
        return False
    return True  # unknown


def role_mask(role: str, labels: Sequence[str] = LABELS) -> "Any":
    import numpy as np

    return np.array([role_allows(role, lab) for lab in labels], dtype=bool)


@dataclass(frozen=True)
class MarkerPrediction:
    """Calibrated label probabilities for one turn (they sum to 1 over the labels the role allows)."""

    turn_index: int
    probs: tuple[tuple[str, float], ...]

    def prob(self, label: str) -> float:
        return dict(self.probs).get(label, 0.0)

    def family_probs(self) -> dict[str, float]:
        out = {f: 0.0 for f in FAMILIES}
        for lab, p in self.probs:
            out[family_of(lab)] += p
        return out

    def best_subtype(self, family: str) -> tuple[str, float]:
        """Most likely subtype of a family, and its share of the family's mass."""
        items = [(lab, p) for lab, p in self.probs if family_of(lab) == family]
        lab, p = max(items, key=lambda x: x[1])
        total = sum(q for _, q in items)
        return lab, (p / total if total > 0 else 0.0)


@dataclass(frozen=True)
class Decision:
    """The tagging decision for one turn (also used by scripts/eval_tagger.py)."""

    family: str  # withdrawal | confrontation | repair | none
    subtype: str  # a LABELS entry ("none" when family is none)
    confidence: float  # adjusted probability of `family` (of the best rupture/repair family when none)
    p_model: float  # the model's probability of that family before cues
    cue_boost: float  # log-odds added by cues
    cues: tuple[str, ...]  # human-readable cue descriptions


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
    fam = pred.family_probs()
    if role == "client":
        candidates = ("withdrawal", "confrontation")
    elif role == "therapist":
        candidates = ("repair",)
    elif role == "other":
        candidates = ()
    else:
        candidates = ("withdrawal", "confrontation", "repair")
    if not candidates:
        return Decision("none", "none", 0.0, 0.0, 0.0, ())
    boosts, notes = cue_boosts(role, feats, fam, client_median_words, cfg)
    adjusted = {f: _shift(fam[f], boosts[f]) for f in candidates}
    best = max(candidates, key=lambda f: adjusted[f])
    thr = cfg.repair_threshold if (best == "repair" and cfg.repair_threshold is not None) else cfg.threshold
    if thr is None:
        raise ValueError("tagging.threshold is unresolved: use MarkerClassifier.tagging_config() (the model's "
                         "tuned threshold) or set a threshold")
    if adjusted[best] >= thr:
        sub, _ = pred.best_subtype(best)
        return Decision(best, sub, adjusted[best], fam[best], boosts[best], tuple(notes))
    return Decision("none", "none", adjusted[best], fam[best], boosts[best], tuple(notes))


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


def tag_turns(turns: Sequence[Turn], features: Sequence[TurnFeatures], predictions: Sequence[MarkerPrediction],
              cfg: TaggingConfig) -> tuple[Event, ...]:
    """Rupture events on client turns and repair events on therapist turns (both kinds when roles are
    unknown), ruptures linked to the repair that followed them. Events are in turn order."""
    feats_by = {f.turn_index: f for f in features}
    pred_by = {p.turn_index: p for p in predictions}
    client_words = [t.word_count for t in turns if t.role in ("client", "unknown")]
    client_median = float(median(client_words)) if client_words else None
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
        details: tuple[tuple[str, Any], ...] = (("p_model", round(d.p_model, 4)), ("cue_boost", round(d.cue_boost, 3)),
                                                ("family", d.family),
                                                ("p_subtype", round(pred_by[t.index].prob(d.subtype), 4)))
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


def rupture_metrics(events: Sequence[Event]) -> dict[str, Any]:
    """Counts for session metrics: ruptures by family and subtype, resolved/unresolved, repairs."""
    ruptures = [e for e in events if e.type == "rupture"]
    repairs = [e for e in events if e.type == "repair"]
    by_sub: dict[str, int] = {}
    for e in ruptures:
        by_sub[e.subtype or "unknown"] = by_sub.get(e.subtype or "unknown", 0) + 1
    rep_sub: dict[str, int] = {}
    for e in repairs:
        rep_sub[e.subtype or "unknown"] = rep_sub.get(e.subtype or "unknown", 0) + 1
    resolved = sum(1 for e in ruptures if e.resolved)
    return {
        "ruptures": len(ruptures),
        "withdrawal": sum(1 for e in ruptures if (e.subtype or "").startswith("withdrawal")),
        "confrontation": sum(1 for e in ruptures if (e.subtype or "").startswith("confrontation")),
        "ruptures_by_subtype": dict(sorted(by_sub.items())),
        "resolved": resolved,
        "unresolved": len(ruptures) - resolved,
        "repairs": len(repairs),
        "repairs_by_subtype": dict(sorted(rep_sub.items())),
    }


INVITATION_OPENERS = ("tell me", "say more", "talk me through", "describe", "go on", "walk me through")


def text_features(turns: Sequence[Turn], latencies: Sequence[float | None] | None = None,
                  interrupts: Sequence[bool] | None = None, minimal_max_words: int = 3) -> tuple[TurnFeatures, ...]:
    """Cues from text alone (for labelled corpora and transcripts without timing): a stand-in for
    pipeline.measures when only the words, and optionally latency/interruption values, are known.
    follows_question: the previous other-speaker turn ends with "?" or opens with an invitation ("tell me...")."""
    out = []
    for i, t in enumerate(turns):
        prev = next((turns[j] for j in range(i - 1, -1, -1) if turns[j].speaker != t.speaker), None)
        fq = False
        if prev is not None:
            pt = prev.text.strip().lower()
            fq = pt.rstrip(" .").endswith("?") or pt.startswith(INVITATION_OPENERS)
        out.append(TurnFeatures(turn_index=t.index, word_count=t.word_count,
                                latency_s=latencies[i] if latencies is not None else None,
                                follows_question=fq, minimal_response=fq and t.word_count <= minimal_max_words,
                                interrupts_previous=bool(interrupts[i]) if interrupts is not None else False,
                                was_interrupted=False))
    return tuple(out)
