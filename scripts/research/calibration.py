"""Thresholds for one's own sessions, from a few that a person coded (scripts/calibrate_tagger.py).

The bundled tagger's thresholds were chosen on AnnoMI's counselling demonstrations. Sessions in another style
can score on another scale (MODEL_CARD.md: in one fold of the cross-validation no coded rupture reached the
threshold), so a deployment may set `tagging.threshold` and `tagging.repair_threshold` from its own coded
sessions. Everything here is pure: the probabilities come from the pipeline's own decision
(`pipeline.tagging.in_context` and `decide`) on predictions made elsewhere.

Coded sessions are session.json records whose rupture and repair events a coder corrected in ELAN and
`rupture import-eaf` read back: then every such event carries `details.coding` (coder "human"), and the
record's rupture and repair events are the coder's. A record without any human-coded event is not taken as
coded (the coder may not have looked at it) unless the caller says every record is coded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from pipeline.config import TaggingConfig
from pipeline.records import MarkerPrediction, SessionRecord, Turn, TurnFeatures


@dataclass(frozen=True)
class CodedTurns:
    """The coder's rupture and repair turns of one record, and whether the record shows it was coded."""

    ruptures: frozenset[int]
    repairs: frozenset[int]
    human_coded: bool


def coded_turns(rec: SessionRecord) -> CodedTurns:
    rup = frozenset(e.turn_index for e in rec.events if e.type == "rupture" and e.turn_index is not None)
    rep = frozenset(e.turn_index for e in rec.events if e.type == "repair" and e.turn_index is not None)
    return CodedTurns(rup, rep, any(e.details.human_coded for e in rec.events))


def record_features(rec: SessionRecord) -> tuple[TurnFeatures, ...]:
    """The per-turn cues the decision reads, from what the record keeps: the turns' timing (latency to the
    previous turn of another speaker) and its interruption events."""
    from pipeline.measures import turn_features

    turns = rec.turns
    latencies = [t.start - turns[i - 1].end if i > 0 and turns[i - 1].speaker != t.speaker else None
                 for i, t in enumerate(turns)]
    interrupters = {e.turn_index for e in rec.events if e.type == "interruption" and e.turn_index is not None}
    interrupted = {e.details.target_turn_index for e in rec.events
                   if e.type == "interruption" and e.details.target_turn_index is not None}
    return turn_features(turns, latencies, interrupters, interrupted)


@dataclass(frozen=True)
class Scored:
    """One turn's probability before the threshold: of a rupture for a client turn, of a repair for a
    therapist turn, with whether the coder coded it so."""

    family: str  # rupture | repair
    p: float
    coded: bool


def scored_turns(turns: Sequence[Turn], features: Sequence[TurnFeatures], predictions: Sequence[MarkerPrediction],
                 cfg: TaggingConfig, coded: CodedTurns) -> list[Scored]:
    """The adjusted probabilities `pipeline.tagging.decide` compares with the thresholds (session context and
    cues included), for client turns (rupture) and therapist turns (repair). Turns whose role is unknown or
    other are left out: the threshold they would use depends on which family wins."""
    from pipeline.tagging import client_median_words, configured_context, decide

    feats = {f.turn_index: f for f in features}
    preds = {p.turn_index: p for p in configured_context(turns, predictions, cfg)}
    median = client_median_words(turns)
    probe = replace(cfg, threshold=2.0, repair_threshold=2.0)  # nothing passes: decide returns the probability
    out = []
    for t in turns:
        if t.role not in ("client", "therapist") or t.index not in preds:
            continue
        d = decide(t.role, preds[t.index], feats.get(t.index), probe, median)
        if t.role == "client":
            out.append(Scored("rupture", d.confidence, t.index in coded.ruptures))
        else:
            out.append(Scored("repair", d.confidence, t.index in coded.repairs))
    return out


@dataclass(frozen=True)
class Point:
    """Figures of one threshold over the coded turns of one family."""

    threshold: float
    tp: int
    fp: int
    fn: int
    false_per_100: float  # false flags per 100 turns the coder left uncoded

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp else 0.0


def at(p: np.ndarray, y: np.ndarray, threshold: float) -> Point:
    flag = p >= threshold
    tp, fp = int((flag & y).sum()), int((flag & ~y).sum())
    calm = int((~y).sum())
    return Point(threshold, tp, fp, int(y.sum()) - tp, 100.0 * fp / calm if calm else 0.0)


def best_point(p: np.ndarray, y: np.ndarray, max_false_per_100: float | None = None) -> Point | None:
    """The threshold with the best F1 (ties: the higher threshold, fewer flags) among those flagging at most
    `max_false_per_100` false turns per 100 uncoded ones; candidates are the probabilities themselves. None
    when no turn is coded or no threshold keeps the budget while catching one."""
    from research.tagger_metrics import sweep

    y = np.asarray(y, dtype=bool)
    thresholds, tp, fp = sweep(p, y)
    positives, calm = int(y.sum()), int((~y).sum())
    false = 100.0 * fp / calm if calm else np.zeros(len(fp))
    ok = (tp > 0) & ((false <= max_false_per_100) if max_false_per_100 is not None else True)
    if not ok.any():
        return None
    i = int(np.argmax(np.where(ok, 2 * tp / (tp + fp + positives), -1.0)))  # the first (highest) of equal F1s
    return Point(float(thresholds[i]), int(tp[i]), int(fp[i]), positives - int(tp[i]), float(false[i]))


__all__ = ["CodedTurns", "Point", "Scored", "at", "best_point", "coded_turns", "record_features", "scored_turns"]
