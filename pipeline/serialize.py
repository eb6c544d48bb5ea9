"""SessionRecord <-> session.json (CONTRACT.md, schema_version "1"). Pure functions, no I/O except the
two thin read/write helpers at the bottom (atomic write: temp file + fsync + rename)."""

from __future__ import annotations

import collections.abc
import dataclasses
import json
import os
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from pipeline.records import (SCHEMA_VERSION, Event, EventDetails, HumanCoding, ImbalanceDetails, Metrics,
                              OverlapDetails, PauseDetails, ProsodyDetails, Provenance, Quality, QualityWarning,
                              Segment, SessionRecord, Speaker, SpeakerQuality, TaggerDetails, Turn, TurnProsody, Word)

_EVENT_KEYS = ("type", "subtype", "start", "end", "speaker", "target_speaker", "turn_index", "confidence",
               "evidence")


def _r(x: float) -> float:
    return round(float(x), 3)


# ------------------------------------------------------------------------------- typed records <-> JSON
# One serializer for the typed records inside session.json (provenance, metrics, event details and what they
# hold): a record is a JSON object of its fields in declaration order (a field declared `absent_if_none` is
# left out when None), a Mapping an object, a tuple a list, anything else as it is. Reading checks every
# value against the field's type and converts nothing (an int stays an int), so that writing a record read
# gives back the same bytes. The three open records (Provenance, Metrics, EventDetails) keep what they cannot
# read in `other`, and the key order of a file from elsewhere in `key_order`.


class RecordFormatError(ValueError):
    """A value of session.json does not have the type its record field declares."""


Open = TypeVar("Open", Provenance, Metrics)  # the open records: known fields, then `other`


_HINTS: dict[Any, dict[str, Any]] = {}


def _hints(cls: Any) -> dict[str, Any]:
    """A record class's field types, resolved once (the same for every process; no state beyond that)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def to_json(x: Any) -> Any:
    """A typed record (or a Mapping/tuple of them) as JSON-able values."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        if isinstance(x, EventDetails):
            return details_to_dict(x)
        if isinstance(x, (Provenance, Metrics)):
            return _open_to_dict(x)
        return {f.name: to_json(getattr(x, f.name)) for f in dataclasses.fields(x)
                if not (getattr(x, f.name) is None and f.metadata.get("absent_if_none"))}
    if isinstance(x, Mapping):
        return {k: to_json(v) for k, v in x.items()}
    if isinstance(x, tuple):
        return [to_json(v) for v in x]
    return x


def _kind(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def from_json(tp: Any, v: Any, where: str) -> Any:
    """`v` read as type `tp` (a record class, `X | None`, Mapping[str, X], tuple[X, ...], str, int, float,
    bool, Any). Raises RecordFormatError naming `where` (a key path, never a value)."""
    if tp is Any:
        return v
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for a in options[:-1]:
            try:
                return from_json(a, v, where)
            except RecordFormatError:
                pass
        return from_json(options[-1], v, where)
    if tp is bool:
        if isinstance(v, bool):
            return v
    elif tp is int:
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    elif tp is float:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return v
    elif tp is str:
        if isinstance(v, str):
            return v
    elif origin in (collections.abc.Mapping, dict):
        if isinstance(v, Mapping) and all(isinstance(k, str) for k in v):
            return {k: from_json(args[1], x, f"{where}.{k}") for k, x in v.items()}
    elif origin is tuple:
        if isinstance(v, (list, tuple)):
            return tuple(from_json(args[0], x, f"{where}[{i}]") for i, x in enumerate(v))
    elif dataclasses.is_dataclass(tp):
        if isinstance(v, Mapping):
            return _record_from_json(tp, v, where)
    else:
        raise TypeError(f"{where}: no reader for {tp!r}")
    raise RecordFormatError(f"{where}: expected {getattr(tp, '__name__', tp)}, found {_kind(v)}")


def _record_from_json(cls: Any, v: Mapping[str, Any], where: str) -> Any:
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in v if k not in fields]
    if unknown:
        raise RecordFormatError(f"{where}: unexpected key {str(unknown[0])[:40]!r}")
    missing = [n for n, f in fields.items() if n not in v and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise RecordFormatError(f"{where}: missing {missing[0]!r}")
    return cls(**{k: from_json(hints[k], x, f"{where}.{k}") for k, x in v.items()})


def _same(a: Any, b: Any) -> bool:
    """The same JSON text, key order and number types included."""
    try:
        return json.dumps(a, ensure_ascii=False) == json.dumps(b, ensure_ascii=False)
    except (TypeError, ValueError):
        return False


def _read_exactly(tp: Any, v: Any, where: str) -> Any:
    """`v` as `tp` when writing that gives back `v` exactly; else None (the caller keeps `v` as read)."""
    try:
        x = from_json(tp, v, where)
    except (RecordFormatError, RecursionError):
        return None
    return x if x is not None and _same(to_json(x), v) else None


def _in_order(d: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    if not order:
        return d
    return {**{k: d[k] for k in order if k in d}, **{k: v for k, v in d.items() if k not in order}}


_OPEN_SKIP = ("other", "key_order")


def _open_to_dict(rec: Provenance | Metrics) -> dict[str, Any]:
    """The fields that are set, in declaration order, then `other`; in `key_order` when it has one."""
    d: dict[str, Any] = {}
    for f in dataclasses.fields(rec):
        v = getattr(rec, f.name)
        if f.name not in _OPEN_SKIP and v is not None:
            d[f.name] = to_json(v)
    d.update(rec.other)
    return _in_order(d, rec.key_order)


def _open_from_dict(cls: type[Open], d: Any, where: str) -> Open:
    """An open record from a JSON object (anything not an object reads as empty): each known key whose value
    reads as its field's type and writes back unchanged; the rest in `other`."""
    if not isinstance(d, Mapping):
        return cls()
    hints = _hints(cls)
    known: dict[str, Any] = {}
    other: dict[str, Any] = {}
    for k, v in d.items():
        x = _read_exactly(hints[k], v, f"{where}.{k}") if k in hints and k not in _OPEN_SKIP else None
        if x is not None:
            known[k] = x
        else:
            other[k] = v
    rec = cls(**known, other=other)
    order = tuple(str(k) for k in d)
    return dataclasses.replace(rec, key_order=order) if tuple(_open_to_dict(rec)) != order else rec


# Which measure record an event's details hold, by event type.
_MEASURE_DETAILS: dict[str, type] = {"interruption": OverlapDetails, "backchannel": OverlapDetails,
                                     "overlap": OverlapDetails, "long_pause": PauseDetails,
                                     "talk_time_imbalance": ImbalanceDetails, "rupture": TaggerDetails,
                                     "repair": TaggerDetails}


def details_to_dict(x: EventDetails) -> dict[str, Any]:
    """The extra keys of an event: the measure's fields, prosody, prosody_evidence, `other`, the coding."""
    d: dict[str, Any] = dict(to_json(x.measure)) if x.measure is not None else {}
    if x.prosody is not None:
        d["prosody"] = to_json(x.prosody)
    if x.prosody_evidence is not None:
        d["prosody_evidence"] = x.prosody_evidence
    d.update(x.other)
    if x.coding is not None:
        d.update(to_json(x.coding))
    return _in_order(d, x.key_order)


def details_from_dict(event_type: str, d: Mapping[str, Any]) -> EventDetails:
    """EventDetails from an event object's extra keys (`d` holds only those)."""
    rest = dict(d)

    def group(cls: type, where: str) -> Any:
        names = [f.name for f in dataclasses.fields(cls)]
        sub = {k: rest[k] for k in names if k in rest}
        x = _read_exactly(cls, sub, where) if sub else None
        if x is not None:
            for k in sub:
                del rest[k]
        return x

    measure_cls = _MEASURE_DETAILS.get(event_type)
    measure = group(measure_cls, "event details") if measure_cls is not None else None
    coding = group(HumanCoding, "event coding")
    prosody = _read_exactly(ProsodyDetails, rest["prosody"], "event prosody") if "prosody" in rest else None
    if prosody is not None:
        del rest["prosody"]
    evidence = rest.pop("prosody_evidence") if isinstance(rest.get("prosody_evidence"), str) else None
    out = EventDetails(measure=measure, prosody=prosody, prosody_evidence=evidence, other=tuple(rest.items()),
                       coding=coding)
    order = tuple(d)
    return dataclasses.replace(out, key_order=order) if tuple(details_to_dict(out)) != order else out


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
    d.update(details_to_dict(e.details))
    return d


def event_from_dict(d: Mapping[str, Any]) -> Event:
    details = details_from_dict(str(d["type"]), {k: v for k, v in d.items()
                                                 if k not in _EVENT_KEYS + ("resolved", "repair_turn_index")})
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
    d["metrics"] = metrics_to_dict(rec.metrics)
    if rec.quality is not None:
        d["quality"] = quality_to_dict(rec.quality)
    d["segments"] = [{"start": _r(s.start), "end": _r(s.end), "speaker": s.speaker} for s in rec.segments]
    d["metadata"] = dict(rec.metadata)
    d["provenance"] = provenance_to_dict(rec.provenance)
    return d


def provenance_to_dict(p: Provenance) -> dict[str, Any]:
    """The fields that are set, in declaration order, then the keys this version does not know."""
    return _open_to_dict(p)


def provenance_from_dict(d: Any) -> Provenance:
    """A Provenance from session.json's "provenance" (anything not a mapping reads as empty; a value that does
    not read as its field's type is kept, as read, in `other`)."""
    return _open_from_dict(Provenance, d, "provenance")


def metrics_to_dict(m: Metrics) -> dict[str, Any]:
    return _open_to_dict(m)


def metrics_from_dict(d: Any) -> Metrics:
    """Metrics from session.json's "metrics" (as `provenance_from_dict`: an older layout, such as the counts
    at the top level, stays in `other` as read)."""
    return _open_from_dict(Metrics, d, "metrics")


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
        metrics=metrics_from_dict(d.get("metrics")),
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


def read_provenance(path: Path) -> Provenance:
    """Only the provenance of a session.json (the runner's skip check, purge); raises OSError or ValueError."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return provenance_from_dict(data.get("provenance") if isinstance(data, Mapping) else None)


def read_session_json(path: Path) -> SessionRecord:
    return record_from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
