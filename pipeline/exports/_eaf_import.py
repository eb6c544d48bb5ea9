"""ELAN round trip: read an .eaf a human coder corrected back into a session's events.

The rupture, repair and interruption events of the record are replaced by the annotations on the EAF's
code tiers (tiers of linguistic type "<type>-code", as written by `eaf_text`, or tiers named "<type>",
"<type> 2", ...). Every imported event is marked human-coded in `details`:

    coder         "human"
    human_action  "confirmed"  same type, subtype and times (±20 ms) as a model event: that event is kept
                  "relabelled" same type and times, another subtype (details.model_subtype keeps the old one)
                  "added"      no matching model event: confidence 1.0, speaker and turn from the turns
    eaf_tier      the tier it came from

Model events of those types without an annotation in the EAF are dropped (the coder deleted them). Other
event types (backchannel, overlap, long_pause, talk_time_imbalance) and everything else in the record are
kept. Rupture resolution is recomputed from the coded events: a rupture is resolved when a repair starts
at or after it, before the next rupture and within `repair_window_s`; `repair_turn_index` is that repair's
turn. `metrics` are left as they were (they describe the model's run); corpus tables count the events.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError
from pipeline.records import Event, EventDetails, HumanCoding, SessionRecord, Turn
from pipeline.serialize import details_to_dict
from pipeline.exports._formats import EAF_CODE_TYPES
from pipeline.exports._labels import CODED_VOCABULARIES, hms

_MATCH_TOL_MS = 20
_URN_PREFIX = "urn:rupture:session:"


def _code_tiers(eaf: Any, etype: str) -> list[str]:
    out = []
    for tier in eaf.get_tier_names():
        params = eaf.get_parameters_for_tier(tier)
        lt = params.get("LINGUISTIC_TYPE_REF", "")
        if params.get("PARENT_REF"):
            continue
        if lt == f"{etype}-code" or re.fullmatch(rf"{re.escape(etype)}( \d+)?", tier):
            out.append(tier)
    return sorted(out)


def _notes_for(eaf: Any, tier: str) -> dict[tuple[int, int], str]:
    """Notes (child ref annotations) keyed by their parent's (start_ms, end_ms). Orphans (a parent the
    coder deleted in a tool that left the child behind) are ignored."""
    notes: dict[tuple[int, int], str] = {}
    aligned = eaf.tiers[tier][0]
    for child in eaf.get_child_tiers_for(tier):
        for ref, value, _prev, _svg in eaf.tiers[child][1].values():
            if ref not in aligned:
                continue
            start_ts, end_ts = aligned[ref][0], aligned[ref][1]
            start, end = eaf.timeslots.get(start_ts), eaf.timeslots.get(end_ts)
            if start is not None and end is not None:
                notes[(int(start), int(end))] = value or ""
    return notes


def _evidence_from_note(note: str) -> str | None:
    m = re.search(r"evidence:\s*(.*)$", note)
    return m.group(1).strip() if m else None


def _turn_for(turns: tuple[Turn, ...], etype: str, s: float, e: float) -> Turn | None:
    if not turns:
        return None
    overlapping = [t for t in turns if min(t.end, e) - max(t.start, s) > 0]
    if etype == "interruption" and overlapping:
        return min(overlapping, key=lambda t: (abs(t.start - s), t.index))
    if overlapping:
        return max(overlapping, key=lambda t: (min(t.end, e) - max(t.start, s), -t.index))
    return min(turns, key=lambda t: (abs(t.start - s), t.index))


def _counterpart(record: SessionRecord, speaker: str | None, etype: str, turn: Turn | None) -> str | None:
    if speaker is None:
        return None
    if etype == "interruption" and turn is not None:
        before = [t for t in record.turns if t.speaker != speaker and t.start <= turn.start]
        if before:
            return max(before, key=lambda t: (t.start, t.index)).speaker
    roles = {s.id: s.role for s in record.speakers}
    want = {"client": "therapist", "therapist": "client"}.get(roles.get(speaker, ""))
    if want:
        for s in record.speakers:
            if s.role == want:
                return s.id
    others = [s.id for s in record.speakers if s.id != speaker]
    return others[0] if len(others) == 1 else None


def _ms(t: float) -> int:
    return int(round(t * 1000.0))


def _coded(e: Event, action: str, tier: str) -> EventDetails:
    """`e`'s details marked as coded by a human: `action` (confirmed, relabelled) on `tier`; a relabelled
    event keeps the model's subtype. The coding keys come last, after what the event had (a model subtype
    that an earlier import recorded stays where it was), as session.json has always had them."""
    new = ["coder", "human_action", "eaf_tier"] + (["model_subtype"] if action == "relabelled" else [])
    earlier = e.details.coding.model_subtype if e.details.coding is not None else None
    coding = HumanCoding(coder="human", human_action=action, eaf_tier=tier,
                         model_subtype=e.subtype if action == "relabelled" else earlier)
    details = dataclasses.replace(e.details, coding=coding, other=tuple((k, v) for k, v in e.details.other
                                                                        if k not in new), key_order=())
    order = tuple([k for k in details_to_dict(e.details) if k not in new] + new)
    return details if tuple(details_to_dict(details)) == order else dataclasses.replace(details, key_order=order)


def import_eaf(eaf_path: Path, record: SessionRecord, repair_window_s: float = 120.0) -> SessionRecord:
    """A new record whose rupture/repair/interruption events come from the coded tiers of `eaf_path`."""
    from pympi import Elan

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            eaf = Elan.Eaf(str(eaf_path))
    except FileNotFoundError as e:
        raise UsageError(f"EAF file not found: {eaf_path}") from e
    except Exception as e:  # pympi raises bare Exception / ParseError for malformed files
        raise UsageError(f"cannot read {eaf_path} as an ELAN .eaf file ({type(e).__name__}); "
                         "open and re-save it in ELAN, then retry") from e

    urn = dict(eaf.properties).get("URN", "") if eaf.properties else ""
    if isinstance(urn, str) and urn.startswith(_URN_PREFIX) and urn[len(_URN_PREFIX):] != record.session_id:
        claimed = urn[len(_URN_PREFIX):]
        claimed = repr(claimed) if re.fullmatch(r"[\w.\-]{1,100}", claimed) else "another session"
        raise UsageError(f"{eaf_path} belongs to session {claimed}, not {record.session_id!r}; "
                         "pass the matching session.json")

    tiers = {etype: _code_tiers(eaf, etype) for etype in EAF_CODE_TYPES}
    if not any(tiers.values()):
        raise UsageError(f"{eaf_path} has no rupture, repair or interruption tier; export the session with "
                         "rupture (format 'eaf'), code it in ELAN, then import that file")
    if not (isinstance(urn, str) and urn.startswith(_URN_PREFIX)):
        # An EAF that does not say which session it codes could be imported into any session.
        raise UsageError(f"{eaf_path} does not say which session it codes (no {_URN_PREFIX}<id> URN in its "
                         "header); import the session.eaf that rupture exported for this session, coded in ELAN")

    originals = [e for e in record.events if e.type in EAF_CODE_TYPES]
    used: set[int] = set()
    coded: list[Event] = []
    for etype in EAF_CODE_TYPES:
        vocab = set(CODED_VOCABULARIES[etype])
        for tier in tiers[etype]:
            notes = _notes_for(eaf, tier)
            for start_ms, end_ms, value in sorted(eaf.get_annotation_data_for_tier(tier)):
                code = (value or "").strip()
                if code not in vocab:
                    raise UsageError(
                        f"{eaf_path}: the annotation at {hms(start_ms / 1000.0)} on a {etype} tier has a code "
                        f"that is not in the {etype} vocabulary (the annotation's content is not shown); pick a "
                        f"value from the tier's controlled vocabulary in ELAN")
                s, e = start_ms / 1000.0, end_ms / 1000.0
                note = notes.get((int(start_ms), int(end_ms)), "")
                match = None
                for k, o in enumerate(originals):
                    if k in used or o.type != etype:
                        continue
                    if abs(_ms(o.start) - start_ms) <= _MATCH_TOL_MS and \
                            abs(max(_ms(o.end), _ms(o.start) + 1) - end_ms) <= _MATCH_TOL_MS:
                        if match is None or o.subtype == code:
                            match = k
                        if o.subtype == code:
                            break
                evidence = _evidence_from_note(note)
                if match is not None:
                    used.add(match)
                    o = originals[match]
                    action = "confirmed" if o.subtype == code else "relabelled"
                    coded.append(dataclasses.replace(
                        o, subtype=code, start=s, end=max(s, e), evidence=evidence or o.evidence,
                        confidence=o.confidence if action == "confirmed" else 1.0, details=_coded(o, action, tier)))
                else:
                    turn = _turn_for(record.turns, etype, s, e)
                    speaker = turn.speaker if turn is not None else None
                    coded.append(Event(
                        type=etype, subtype=code, start=s, end=max(s, e), speaker=speaker,
                        target_speaker=_counterpart(record, speaker, etype, turn),
                        turn_index=turn.index if turn is not None else None, confidence=1.0,
                        evidence=evidence or "coded by a human in ELAN",
                        details=EventDetails(coding=HumanCoding(coder="human", human_action="added",
                                                                eaf_tier=tier))))

    # Recompute rupture resolution from the coded ruptures and repairs.
    ruptures = sorted((e for e in coded if e.type == "rupture"), key=lambda e: (e.start, e.end))
    repairs = sorted((e for e in coded if e.type == "repair"), key=lambda e: (e.start, e.end))
    resolved: dict[int, Event] = {}
    for n, r in enumerate(ruptures):
        limit = min(r.start + repair_window_s, ruptures[n + 1].start if n + 1 < len(ruptures) else float("inf"))
        rep = next((p for p in repairs if r.start <= p.start < limit), None)
        resolved[id(r)] = dataclasses.replace(
            r, resolved=rep is not None, repair_turn_index=rep.turn_index if rep is not None else None)
    coded = [resolved.get(id(e), e) for e in coded]

    kept = [e for e in record.events if e.type not in EAF_CODE_TYPES]
    events = tuple(sorted(kept + coded, key=lambda e: (e.start, e.type, e.end)))
    return dataclasses.replace(record, events=events)
