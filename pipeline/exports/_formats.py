"""Researcher export formats, rendered to strings from a SessionRecord. Pure functions, no I/O.

    eaf_text          ELAN .eaf (EAF 3.0): one turn tier per speaker; tiers for rupture, repair and
                      interruption codes with controlled vocabularies and a notes child tier; linked media
    rttm_text         RTTM of the overlapping diarization track (pyannote.core)
    vtt_text          WebVTT, one cue per turn with a `<v Speaker>` voice (webvtt-py)
    textgrid_text     Praat TextGrid, one interval tier per speaker (praatio)
    turns_csv_text    turns.csv
    events_csv_text   events.csv
    transcript_text   timestamped plain transcript: "[hh:mm:ss] Speaker: text", one paragraph per turn,
                      a blank line between paragraphs (the layout NVivo and MAXQDA import as a transcript
                      with time stamps and speaker auto-coding)

Times are written in seconds with millisecond precision (ELAN: integer milliseconds), so the output of a
given record is byte-for-byte deterministic (golden-file tests rely on this).
"""

from __future__ import annotations

import csv
import math
import io
import json
import re
from typing import Any, Mapping

from pipeline.records import Event, SessionRecord
from pipeline.serialize import PROSODY_KEYS, details_to_dict, prosody_to_dict
from pipeline.exports._labels import (
    CODED_VOCABULARIES,
    hms,
    speaker_names,
    speaker_roles,
    subtype_label,
    type_label,
)
from pipeline.exports._summary import is_human_coded

EAF_CODE_TYPES: tuple[str, ...] = ("rupture", "repair", "interruption")
EAF_LANG = "eng"
_EPOCH = "1970-01-01T00:00:00+00:00"
_ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")

_MIME = {
    "wav": "audio/x-wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "mpg": "video/mpeg",
}


def media_mime(name: str) -> str:
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _MIME.get(ext, "audio/*")


def _ms(t: float) -> int:
    return int(round(float(t) * 1000.0))


def _created(record: SessionRecord) -> str:
    created = record.provenance.created
    if isinstance(created, str) and _ISO_RE.match(created):
        return created
    return _EPOCH


def event_note(e: Event, names: Mapping[str, str]) -> str:
    """One-line note for a coded event: who, confidence, resolution, evidence."""
    parts: list[str] = []
    if e.speaker:
        who = names.get(e.speaker, e.speaker)
        if e.target_speaker:
            who += " → " + names.get(e.target_speaker, e.target_speaker)
        parts.append(who)
    parts.append(f"confidence {e.confidence:.2f}")
    if e.type == "rupture":
        parts.append("resolved" if e.resolved else "unresolved")
    if is_human_coded(e):
        parts.append("human-coded")
    if e.evidence:
        parts.append("evidence: " + " ".join(e.evidence.split()))
    return "; ".join(parts)


def _lane_events(events: list[Event]) -> list[list[Event]]:
    """Split events of one type into lanes of non-overlapping annotations (ELAN tiers must not overlap)."""
    lanes: list[list[Event]] = []
    for e in sorted(events, key=lambda e: (e.start, e.end)):
        s = _ms(e.start)
        for lane in lanes:
            last = lane[-1]
            if max(_ms(last.end), _ms(last.start) + 1) < s:
                lane.append(e)
                break
        else:
            lanes.append([e])
    return lanes


def eaf_text(record: SessionRecord, media_url: str | None = None, relative_media_url: str | None = None,
             author: str = "rupture") -> str:
    """ELAN EAF 3.0 document (validates against EAFv3.0.xsd).

    media_url: MEDIA_URL of the linked recording (ELAN wants a URL; a relative one also works);
    relative_media_url: RELATIVE_MEDIA_URL, relative to the .eaf file's folder.
    """
    from pympi import Elan

    eaf = Elan.Eaf(author=author)
    eaf.adocument.update({
        "DATE": _created(record),
        "VERSION": "3.0",
        "FORMAT": "3.0",
        "xsi:noNamespaceSchemaLocation": "http://www.mpi.nl/tools/elan/EAFv3.0.xsd",
    })
    eaf.remove_tier("default")
    eaf.header.update({"MEDIA_FILE": "", "TIME_UNITS": "milliseconds"})
    if media_url or relative_media_url:
        url = media_url or relative_media_url or ""
        eaf.add_linked_file(url, relpath=relative_media_url, mimetype=media_mime(url))
    eaf.properties = [("URN", f"urn:rupture:session:{record.session_id}"), ("lastUsedAnnotation", 0)]
    eaf.add_language(EAF_LANG, "http://cdb.iso.org/lg/CDB-00130975-001", "English (eng)")

    names = speaker_names(record)
    roles = speaker_roles(record)
    reserved = set(EAF_CODE_TYPES)

    # Turn tiers, one per speaker.
    eaf.add_linguistic_type("turn", timealignable=True)
    speaker_ids = [s.id for s in record.speakers] + sorted({t.speaker for t in record.turns}
                                                            - {s.id for s in record.speakers})
    tier_of: dict[str, str] = {}
    for sid in speaker_ids:
        tier = names.get(sid, sid)
        if tier in reserved or tier in tier_of.values():
            tier = f"{tier} ({sid})"
        tier_of[sid] = tier
        eaf.add_tier(tier, ling="turn", part=sid, ann=roles.get(sid) or None)
    last_end: dict[str, int] = {}
    for t in record.turns:
        tier = tier_of[t.speaker]
        s = max(_ms(t.start), last_end.get(tier, 0))
        e = max(_ms(t.end), s + 1)
        eaf.add_annotation(tier, s, e, " ".join(t.text.split()))
        last_end[tier] = e

    # Coded event tiers with controlled vocabularies and a notes child tier.
    eaf.add_linguistic_type("notes", constraints="Symbolic_Association", timealignable=False)
    for etype in EAF_CODE_TYPES:
        cv = f"{etype}-codes"
        eaf.add_controlled_vocabulary(cv)
        eaf.add_cv_description(cv, EAF_LANG, f"{type_label(etype)} subtypes (rupture pipeline, 3RS)")
        for code in CODED_VOCABULARIES[etype]:
            eaf.add_cv_entry(cv, f"cve_{etype}_{code}", [(code, EAF_LANG, subtype_label(code))])
        lt = f"{etype}-code"
        eaf.add_linguistic_type(lt, timealignable=True, param_dict={
            "LINGUISTIC_TYPE_ID": lt, "TIME_ALIGNABLE": "true", "GRAPHIC_REFERENCES": "false",
            "CONTROLLED_VOCABULARY_REF": cv})
        events = [e for e in record.events if e.type == etype]
        lanes = _lane_events(events) or [[]]
        for n, lane in enumerate(lanes, start=1):
            tier = etype if n == 1 else f"{etype} {n}"
            notes = f"{tier} notes"
            eaf.add_tier(tier, ling=lt)
            eaf.add_tier(notes, ling="notes", parent=tier)
            for e in lane:
                s = _ms(e.start)
                en = max(_ms(e.end), s + 1)
                eaf.add_annotation(tier, s, en, e.subtype or "")
                eaf.add_ref_annotation(notes, tier, (s + en) // 2, event_note(e, names))
    xml = Elan.to_string(eaf, pretty=True)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + xml + "\n"


def rttm_text(record: SessionRecord) -> str:
    """RTTM (SPEAKER lines) of the overlapping diarization track; falls back to the turns when the record
    has no segments (text mode)."""
    from pyannote.core import Annotation, Segment

    uri = re.sub(r"\s+", "_", record.session_id) or "session"
    ann = Annotation(uri=uri)
    spans = [(s.start, s.end, s.speaker) for s in record.segments] or \
            [(t.start, t.end, t.speaker) for t in record.turns]
    for i, (s, e, spk) in enumerate(spans):
        if e > s:
            ann[Segment(round(s, 3), round(e, 3)), i] = re.sub(r"\s+", "_", spk)
    return ann.to_rttm()


def _vtt_escape(text: str) -> str:
    return " ".join(text.split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _vtt_time(t: float) -> str:
    ms = _ms(t)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def vtt_text(record: SessionRecord) -> str:
    """WebVTT with one cue per turn; the voice is the speaker's display name (Therapist, Client, ...)."""
    import webvtt

    names = speaker_names(record)
    doc = webvtt.WebVTT()
    for t in record.turns:
        voice = re.sub(r"[<>&\n]", "", names.get(t.speaker, t.speaker)).strip() or "Speaker"
        end = t.end if t.end > t.start else t.start + 0.001
        doc.captions.append(webvtt.Caption(
            start=_vtt_time(t.start), end=_vtt_time(end), text=f"<v {voice}>{_vtt_escape(t.text)}",
            identifier=f"turn-{t.index}"))
    text = doc.content
    return text if text.endswith("\n") else text + "\n"


def textgrid_text(record: SessionRecord) -> str:
    """Praat TextGrid (long format), one interval tier per speaker named by its display name."""
    from praatio import textgrid
    from praatio.data_classes.interval_tier import IntervalTier
    from praatio.data_classes.textgrid import _tgToDictionary
    from praatio.utilities import textgrid_io

    names = speaker_names(record)
    max_t = max([record.duration_s] + [t.end for t in record.turns] + [0.001])
    tg = textgrid.Textgrid(minTimestamp=0.0, maxTimestamp=max_t)
    speaker_ids = [s.id for s in record.speakers] + sorted({t.speaker for t in record.turns}
                                                            - {s.id for s in record.speakers})
    used: set[str] = set()
    for sid in speaker_ids:
        entries = []
        last = 0.0
        for t in record.turns:
            if t.speaker != sid:
                continue
            s = max(round(t.start, 3), last)
            e = round(t.end, 3)
            if e - s < 0.001:
                continue
            entries.append((s, e, " ".join(t.text.split())))
            last = e
        name = names.get(sid, sid)
        if name in used:
            name = f"{name} ({sid})"
        used.add(name)
        tg.addTier(IntervalTier(name, entries, 0.0, max_t))
    tg_dict = _tgToDictionary(tg)  # the same path Textgrid.save() takes, but to a string
    return textgrid_io.getTextgridAsStr(tg_dict, "long_textgrid", True, None, None, 1e-8)


# Prosody columns (pipeline.prosody; empty in text mode, for unmeasured values, and in records made before it)
TURN_PROSODY_COLUMNS: tuple[str, ...] = tuple("prosody_note" if k == "note" else k for k in PROSODY_KEYS)
TURN_COLUMNS: tuple[str, ...] = ("session_id", "index", "speaker", "speaker_name", "role", "start", "end",
                                 "duration", "word_count", "text") + TURN_PROSODY_COLUMNS
EVENT_COLUMNS: tuple[str, ...] = ("session_id", "event_id", "type", "subtype", "subtype_label", "start", "end",
                                  "speaker", "speaker_role", "target_speaker", "target_role", "turn_index",
                                  "confidence", "resolved", "repair_turn_index", "coder", "evidence",
                                  "details")


# Spreadsheets run a cell that starts with one of these as a formula (CSV injection): `=HYPERLINK(...)` in
# a transcript would become a live link in Excel or LibreOffice. Such text cells get a leading apostrophe
# (OWASP's advice: the spreadsheet shows the text, a program sees one extra character); numbers are kept.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _safe_cell(v: Any) -> Any:
    if isinstance(v, str) and v.startswith(_FORMULA_START):
        try:
            float(v)
            return v
        except ValueError:
            return "'" + v
    return v


def _csv(rows: list[list[Any]], header: tuple[str, ...]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows([_safe_cell(v) for v in row] for row in rows)
    return buf.getvalue()


def _num(x: float) -> str:
    return f"{float(x):.3f}"


def turn_prosody_values(record: SessionRecord) -> dict[int, dict[str, Any]]:
    """turn index -> {TURN_PROSODY_COLUMNS column: value or None} (shared by turns.csv and the corpus table)."""
    out: dict[int, dict[str, Any]] = {}
    for p in record.prosody:
        d = prosody_to_dict(p)
        out[p.turn_index] = {("prosody_note" if k == "note" else k): d[k] for k in PROSODY_KEYS}
    return out


def turns_csv_text(record: SessionRecord) -> str:
    names = speaker_names(record)
    prosody = turn_prosody_values(record)

    def cell(v: Any) -> Any:
        return "" if v is None else (f"{v:.3f}" if isinstance(v, float) else v)

    rows = [[record.session_id, t.index, t.speaker, names.get(t.speaker, t.speaker), t.role, _num(t.start),
             _num(t.end), _num(t.end - t.start), t.word_count, " ".join(t.text.split())]
            + [cell(prosody.get(t.index, {}).get(c)) for c in TURN_PROSODY_COLUMNS]
            for t in record.turns]
    return _csv(rows, TURN_COLUMNS)


def event_row(record_id: str, i: int, e: Event, roles: Mapping[str, str]) -> dict[str, Any]:
    """One events-table row as a dict (shared by events.csv and the corpus Parquet table)."""
    details = {k: v for k, v in details_to_dict(e.details).items() if k != "coder"}
    return {
        "session_id": record_id,
        "event_id": i,
        "type": e.type,
        "subtype": e.subtype,
        "subtype_label": subtype_label(e.subtype),
        "start": round(float(e.start), 3),
        "end": round(float(e.end), 3),
        "speaker": e.speaker,
        "speaker_role": roles.get(e.speaker) if e.speaker else None,
        "target_speaker": e.target_speaker,
        "target_role": roles.get(e.target_speaker) if e.target_speaker else None,
        "turn_index": e.turn_index,
        "confidence": round(float(e.confidence), 4),
        "resolved": e.resolved if e.type == "rupture" else None,
        "repair_turn_index": e.repair_turn_index if e.type == "rupture" else None,
        "coder": "human" if is_human_coded(e) else "model",
        "evidence": " ".join(e.evidence.split()),
        "details": json.dumps(details, sort_keys=True, ensure_ascii=False, default=str) if details else "",
    }


def events_csv_text(record: SessionRecord) -> str:
    roles = speaker_roles(record)
    rows = []
    for i, e in enumerate(record.events):
        d = event_row(record.session_id, i, e, roles)
        row = []
        for c in EVENT_COLUMNS:
            v = d[c]
            if v is None:
                v = ""
            elif isinstance(v, bool):
                v = "true" if v else "false"
            elif c in ("start", "end"):
                v = _num(v)
            elif c == "confidence":
                v = f"{v:.4f}"
            row.append(v)
        rows.append(row)
    return _csv(rows, EVENT_COLUMNS)


def transcript_text(record: SessionRecord) -> str:
    """Timestamped plain transcript, one paragraph per turn: "[00:03:40] Therapist: text".

    Whole seconds (rounded down) in square brackets, the time-stamp form MAXQDA's "transcript with
    timestamps" import and NVivo's transcript-row import both recognise; "Speaker:" at the start of a
    paragraph is what their speaker (focus-group) auto-coding keys on."""
    names = speaker_names(record)
    paras = [f"[{hms(math.floor(t.start), 0)}] {names.get(t.speaker, t.speaker)}: {' '.join(t.text.split())}"
             for t in record.turns]
    return "\n\n".join(paras) + ("\n" if paras else "")
