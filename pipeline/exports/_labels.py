"""Plain-word labels for event types and subtypes, speaker display names, time formatting.

Pure functions shared by every export; no I/O.
"""

from __future__ import annotations

from typing import Mapping

from pipeline.records import (
    INTERRUPTION_SUBTYPES,
    REPAIR_SUBTYPES,
    RUPTURE_SUBTYPES,
    ModelInfo,
    SessionRecord,
    Speaker,
)

TYPE_LABELS: Mapping[str, str] = {
    "rupture": "rupture",
    "repair": "repair",
    "interruption": "interruption",
    "backchannel": "backchannel",
    "overlap": "overlap",
    "long_pause": "long pause",
    "talk_time_imbalance": "talk-time imbalance",
}

SUBTYPE_LABELS: Mapping[str, str] = {
    "withdrawal.denial": "withdrawal: denial",
    "withdrawal.minimal_response": "withdrawal: minimal response",
    "withdrawal.abstract_communication": "withdrawal: abstract communication",
    "withdrawal.avoidant_storytelling": "withdrawal: avoidant storytelling",
    "withdrawal.topic_shift": "withdrawal: shifts the topic",
    "withdrawal.deferential_appeasing": "withdrawal: deferential, appeasing",
    "withdrawal.content_affect_split": "withdrawal: content/affect split",
    "withdrawal.self_criticism_hopelessness": "withdrawal: self-criticism or hopelessness",
    "confrontation.complaint_about_therapist": "confrontation: complaint about the therapist",
    "confrontation.complaint_about_activities": "confrontation: complaint about the activities of therapy",
    "confrontation.complaint_about_parameters": "confrontation: complaint about the parameters of therapy",
    "confrontation.complaint_about_progress": "confrontation: complaint about progress",
    "confrontation.rejects_intervention": "confrontation: rejects an intervention",
    "confrontation.defends_self": "confrontation: defends self against the therapist",
    "confrontation.efforts_to_control": "confrontation: efforts to control or pressure the therapist",
    "clarifies_misunderstanding": "clarifies a misunderstanding",
    "changes_tasks_goals": "changes tasks or goals",
    "provides_rationale": "explains the rationale",
    "invites_discussion": "invites discussion of the rupture",
    "acknowledges_contribution": "acknowledges own contribution",
    "discloses_internal_experience": "discloses own internal experience",
    "links_to_pattern": "links the rupture to a larger pattern",
    "validates_defensive_posture": "validates the client's defensive posture",
    "redirects": "redirects or changes the topic",
    "successful": "successful (the other speaker yields)",
    "unsuccessful": "unsuccessful (the other speaker keeps talking)",
}

# Controlled vocabularies of the coded event tiers (ELAN CVs, import check).
CODED_VOCABULARIES: Mapping[str, tuple[str, ...]] = {
    "rupture": RUPTURE_SUBTYPES,
    "repair": REPAIR_SUBTYPES,
    "interruption": INTERRUPTION_SUBTYPES,
}

# The event types a reviewer is shown as "flags" (the others are context on the timeline).
FLAG_TYPES: tuple[str, ...] = ("rupture", "repair", "interruption", "talk_time_imbalance")


def type_label(event_type: str) -> str:
    return TYPE_LABELS.get(event_type, event_type.replace("_", " "))


def subtype_label(subtype: str | None) -> str:
    """'withdrawal.minimal_response' -> 'withdrawal: minimal response'; unknown codes are made readable."""
    if not subtype:
        return ""
    if subtype in SUBTYPE_LABELS:
        return SUBTYPE_LABELS[subtype]
    return subtype.replace(".", ": ").replace("_", " ")


def speaker_names(record: SessionRecord) -> dict[str, str]:
    """Display name per speaker id: "Therapist"/"Client" when that role is held by exactly one speaker,
    "Therapist 2" style when several share it, the id itself for other/unknown roles."""
    by_role: dict[str, list[Speaker]] = {}
    for s in record.speakers:
        by_role.setdefault(s.role, []).append(s)
    names: dict[str, str] = {}
    for role, group in by_role.items():
        for n, s in enumerate(group, start=1):
            if role in ("therapist", "client"):
                names[s.id] = role.capitalize() if len(group) == 1 else f"{role.capitalize()} {n}"
            else:
                names[s.id] = s.id
    # Speakers that appear only in turns/segments (defensive: a record without a speakers entry).
    for t in record.turns:
        names.setdefault(t.speaker, t.speaker)
    for seg in record.segments:
        names.setdefault(seg.speaker, seg.speaker)
    return names


def speaker_roles(record: SessionRecord) -> dict[str, str]:
    roles = {s.id: s.role for s in record.speakers}
    for t in record.turns:
        roles.setdefault(t.speaker, t.role)
    return roles


def hms(seconds: float, decimals: int = 1) -> str:
    """Seconds -> 'hh:mm:ss.d' (decimals=0: 'hh:mm:ss')."""
    total = max(0.0, float(seconds))
    scale = 10 ** decimals
    ticks = int(round(total * scale))
    whole, frac = divmod(ticks, scale)
    h, rem = divmod(whole, 3600)
    m, s = divmod(rem, 60)
    out = f"{h:02d}:{m:02d}:{s:02d}"
    if decimals:
        out += f".{frac:0{decimals}d}"
    return out


def model_names(models: Mapping[str, ModelInfo] | None) -> list[str]:
    """'name version' strings from provenance.models."""
    return [f"{m.name or key} {m.version}" if m.version else (m.name or key) for key, m in (models or {}).items()]
