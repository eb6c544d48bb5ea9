"""Who is the therapist? Pure functions.

From the manifest when given (`therapist` column: a channel "ch0"/"ch1" or a speaker label). Otherwise
inferred from the turns with a simple, explainable score per speaker:

  score = question/invitation share of the speaker's turns   (therapists ask; clients answer;
                                                             pipeline.measures.is_question_or_invitation)
        + 0.5 * therapist-phrase share ("how did", "let's", "homework", "what comes up", ...)
        + 0.3 if the speaker opens the session (first words within `opening_window_s`)

The top scorer is the therapist; every other speaker is a client (couples and families keep all their
speakers as clients). Confidence is a logistic function of the margin between the top two scores, so a
session where both speakers look alike gets a confidence near 0.5.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping

from pipeline.config import RolesConfig
from pipeline.measures import is_question_or_invitation
from pipeline.records import Turn

_THERAPIST_PHRASES = re.compile(
    r"\b(how did|how are you|how have you|what comes up|tell me (more|about)|let'?s|homework|this week|"
    r"last (week|session)|our session|in our work|it sounds like|sounds like|i hear|i'?m hearing|"
    r"what i'?m hearing|i wonder|can we|could we|would you be willing|notice|on a scale|"
    r"how does that feel|what was that like)\b", re.I)


@dataclass(frozen=True)
class RoleAssignment:
    roles: Mapping[str, str]
    confidence: Mapping[str, float]
    source: str  # manifest | inferred


def assign_roles(turns: tuple[Turn, ...], speakers: tuple[str, ...], cfg: RolesConfig,
                 therapist_hint: str | None = None) -> RoleAssignment:
    speakers = tuple(speakers)
    if not speakers:
        return RoleAssignment({}, {}, "inferred")
    if therapist_hint:
        if therapist_hint not in speakers:
            raise ValueError(f"therapist {therapist_hint!r} is not one of the speakers found ({', '.join(speakers)})")
        roles = {s: ("therapist" if s == therapist_hint else "client") for s in speakers}
        return RoleAssignment(roles, {s: 1.0 for s in speakers}, "manifest")
    if len(speakers) == 1:
        return RoleAssignment({speakers[0]: "unknown"}, {speakers[0]: 0.0}, "inferred")
    scores = role_scores(turns, speakers, cfg)
    ranked = sorted(speakers, key=lambda s: -scores[s])
    margin = scores[ranked[0]] - scores[ranked[1]]
    conf = 1.0 / (1.0 + math.exp(-6.0 * margin))
    roles = {s: ("therapist" if s == ranked[0] else "client") for s in speakers}
    return RoleAssignment(roles, {s: round(conf, 3) for s in speakers}, "inferred")


def role_scores(turns: tuple[Turn, ...], speakers: tuple[str, ...], cfg: RolesConfig) -> dict[str, float]:
    scores = {}
    first = min(turns, key=lambda t: t.start) if turns else None
    for s in speakers:
        mine = [t for t in turns if t.speaker == s]
        if not mine:
            scores[s] = -1.0
            continue
        q = sum(is_question_or_invitation(t.text) for t in mine) / len(mine)
        p = sum(bool(_THERAPIST_PHRASES.search(t.text)) for t in mine) / len(mine)
        opens = 0.3 if first is not None and first.speaker == s and first.start <= cfg.opening_window_s else 0.0
        scores[s] = q + 0.5 * p + opens
    return scores
