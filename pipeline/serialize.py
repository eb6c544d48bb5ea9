"""SessionRecord <-> session.json (CONTRACT.md, schema_version "1"). Pure functions, no I/O except the
two thin read/write helpers at the bottom (atomic write: temp file + fsync + rename)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from pipeline.records import (PROVENANCE_FIELDS, SCHEMA_VERSION, Event, Provenance, Quality, QualityWarning, Segment,
                              SessionRecord, Speaker, SpeakerQuality, Turn, TurnProsody, Word)

_EVENT_KEYS = ("type", "subtype", "start", "end", "speaker", "target_speaker", "turn_index", "confidence",
               "evidence")


def _r(x: float) -> float:
    return round(float(x), 3)


# turns[].prosody keys (session.json), in this order; all TurnProsody fields but turn_index and speaker
PROSODY_KEYS: tuple[str, ...] = ("own_speech_s", "voiced_s", "f0_hz", "f0_st", "f0_range_st", "intensity_db",
                                 "speech_rate_wps", "articulation_rate_wps", "pause_proportion", "f0_z",
                                 "intensity_z", "speech_rate_z", "articulation_rate_z", "pause_z", "arousal",
                                 "speech_rate_change", "note")


def prosody_to_dict(p: TurnProsody) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for k in PROSODY_KEYS:
        v = getattr(p, k)
        d[k] = v if v is None or isinstance(v, str) else round(float(v), 3)
    return d


def prosody_from_dict(turn: Turn, d: Mapping[str, Any]) -> TurnProsody:
    vals = {k: (None if d.get(k) is None else float(d[k])) for k in PROSODY_KEYS if k != "note"}
    vals["own_speech_s"] = vals["own_speech_s"] or 0.0
    vals["voiced_s"] = vals["voiced_s"] or 0.0
    return TurnProsody(turn_index=turn.index, speaker=turn.speaker, note=str(d.get("note") or ""), **vals)


def _opt(x: Any, nd: int = 2) -> Any:
    return None if x is None else round(float(x), nd)


def quality_to_dict(q: Quality) -> dict[str, Any]:
    """The `quality` block: trustworthy, warnings [{code, speaker, message}], noise_floor_dbfs, speakers."""
    return {
        "trustworthy": q.trustworthy,
        "warnings": [{"code": w.code, "speaker": w.speaker, "message": w.message} for w in q.warnings],
        "noise_floor_dbfs": _opt(q.noise_floor_dbfs),
        "speakers": [{"id": s.speaker, "role": s.role, "speech_s": _opt(s.speech_s, 3), "level_dbfs": _opt(s.level_dbfs),
                      "level_re_loudest_db": _opt(s.level_re_loudest_db), "snr_db": _opt(s.snr_db),
                      "asr_gain_db": _opt(s.asr_gain_db), "word_coverage": _opt(s.word_coverage, 3),
                      "word_confidence": _opt(s.word_confidence, 3)}
                     for s in q.speakers],
    }


def quality_from_dict(d: Mapping[str, Any]) -> Quality:
    def f(v: Any) -> float | None:
        return None if v is None else float(v)

    return Quality(
        noise_floor_dbfs=f(d.get("noise_floor_dbfs")),
        speakers=tuple(SpeakerQuality(str(s["id"]), str(s.get("role", "unknown")), float(s.get("speech_s") or 0.0),
                                      f(s.get("level_dbfs")), f(s.get("level_re_loudest_db")), f(s.get("snr_db")),
                                      float(s.get("asr_gain_db") or 0.0), f(s.get("word_coverage")),
                                      f(s.get("word_confidence")))
                       for s in d.get("speakers", ())),
        warnings=tuple(QualityWarning(str(w["code"]), str(w.get("message", "")), w.get("speaker"))
                       for w in d.get("warnings", ())),
    )


def event_to_dict(e: Event) -> dict[str, Any]:
    d: dict[str, Any] = {
        "type": e.type, "subtype": e.subtype, "start": _r(e.start), "end": _r(e.end), "speaker": e.speaker,
        "target_speaker": e.target_speaker, "turn_index": e.turn_index, "confidence": round(e.confidence, 4),
        "evidence": e.evidence,
    }
    if e.type == "rupture":
        d["resolved"] = bool(e.resolved)
        d["repair_turn_index"] = e.repair_turn_index
    for k, v in e.details:
        d[k] = v
    return d


def event_from_dict(d: Mapping[str, Any]) -> Event:
    details = tuple((k, v) for k, v in d.items() if k not in _EVENT_KEYS + ("resolved", "repair_turn_index"))
    return Event(
        type=d["type"], subtype=d.get("subtype"), start=float(d["start"]), end=float(d["end"]),
        speaker=d.get("speaker"), target_speaker=d.get("target_speaker"), turn_index=d.get("turn_index"),
        confidence=float(d.get("confidence", 1.0)), evidence=str(d.get("evidence", "")),
        resolved=d.get("resolved"), repair_turn_index=d.get("repair_turn_index"), details=details,
    )


def record_to_dict(rec: SessionRecord) -> dict[str, Any]:
    prosody = {p.turn_index: p for p in rec.prosody}
    d: dict[str, Any] = {
        "schema_version": rec.schema_version,
        "session_id": rec.session_id,
        "duration_s": _r(rec.duration_s),
        "speakers": [
            {"id": s.id, "role": s.role, "talk_time_s": _r(s.talk_time_s), "role_confidence": round(s.role_confidence, 3),
             "role_source": s.role_source}
            for s in rec.speakers
        ],
        "turns": [
            {"index": t.index, "speaker": t.speaker, "role": t.role, "start": _r(t.start), "end": _r(t.end),
             "text": t.text, "word_count": t.word_count,
             **({"prosody": prosody_to_dict(prosody[t.index])} if t.index in prosody else {})}
            for t in rec.turns
        ],
    }
    if rec.words is not None:
        d["words"] = [
            {"start": _r(w.start), "end": _r(w.end), "text": w.text, "speaker": w.speaker,
             "probability": round(w.probability, 3)}
            for w in rec.words
        ]
    d["events"] = [event_to_dict(e) for e in rec.events]
    d["metrics"] = dict(rec.metrics)
    if rec.quality is not None:
        d["quality"] = quality_to_dict(rec.quality)
    d["segments"] = [{"start": _r(s.start), "end": _r(s.end), "speaker": s.speaker} for s in rec.segments]
    d["metadata"] = dict(rec.metadata)
    d["provenance"] = provenance_to_dict(rec.provenance)
    return d


def provenance_to_dict(p: Provenance) -> dict[str, Any]:
    """The known fields that are set, in PROVENANCE_FIELDS order, then the keys this version does not know."""
    d: dict[str, Any] = {}
    for name in PROVENANCE_FIELDS:
        v = getattr(p, name)
        if v is not None:
            d[name] = list(v) if isinstance(v, tuple) else v
    d.update(p.other)
    return d


def provenance_from_dict(d: Any) -> Provenance:
    """A Provenance from session.json's "provenance" (anything not a mapping reads as empty)."""
    if not isinstance(d, Mapping):
        return Provenance()
    known = {name: d[name] for name in PROVENANCE_FIELDS if name in d}
    if isinstance(known.get("outputs"), list):
        known["outputs"] = tuple(known["outputs"])
    return Provenance(**known, other={k: v for k, v in d.items() if k not in PROVENANCE_FIELDS})


def record_from_dict(d: Mapping[str, Any]) -> SessionRecord:
    if str(d.get("schema_version")) != SCHEMA_VERSION:
        raise ValueError(f"unsupported session.json schema_version {d.get('schema_version')!r}")
    words = d.get("words")
    turns = tuple(
        Turn(t["index"], t["speaker"], t["role"], float(t["start"]), float(t["end"]), t["text"],
             int(t.get("word_count", len(t["text"].split()))))
        for t in d["turns"]
    )
    prosody = tuple(prosody_from_dict(turn, t["prosody"]) for turn, t in zip(turns, d["turns"])
                    if isinstance(t.get("prosody"), Mapping))
    return SessionRecord(
        session_id=d["session_id"],
        duration_s=float(d["duration_s"]),
        speakers=tuple(
            Speaker(s["id"], s["role"], float(s["talk_time_s"]), float(s.get("role_confidence", 1.0)),
                    s.get("role_source", "transcript"))
            for s in d["speakers"]
        ),
        turns=turns,
        words=None if words is None else tuple(
            Word(float(w["start"]), float(w["end"]), w["text"], float(w.get("probability", 1.0)), w.get("speaker"))
            for w in words
        ),
        events=tuple(event_from_dict(e) for e in d.get("events", ())),
        metrics=d.get("metrics", {}),
        provenance=provenance_from_dict(d.get("provenance")),
        metadata=d.get("metadata", {}),
        segments=tuple(Segment(float(s["start"]), float(s["end"]), s["speaker"]) for s in d.get("segments", ())),
        prosody=prosody,
        quality=quality_from_dict(d["quality"]) if isinstance(d.get("quality"), Mapping) else None,
    )


def atomic_write(path: Path, write: Callable[[Path], None], mode: int = 0o600) -> None:
    """Have `write(tmp_path)` fill a temp file beside `path`, then rename it into place, so that no partial
    file ever exists under that name (a kill leaves at most a hidden `.name.*.tmp`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: Path, text: str, mode: int = 0o600) -> None:
    """Write `text` to `path` atomically (see `atomic_write`), fsynced before the rename."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write, mode)


def write_session_json(rec: SessionRecord, path: Path) -> None:
    atomic_write_text(path, json.dumps(record_to_dict(rec), ensure_ascii=False, indent=1))


def read_session_json(path: Path) -> SessionRecord:
    return record_from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
