"""Reading existing transcripts for `rupture tag` (text-only mode): CSV, WebVTT with <v Speaker> voices, or a
session.json. Each becomes a `ParsedTranscript` of turns (consecutive rows of one speaker are merged into one
turn, as in audio mode) and the roles given in the file, if any."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from pipeline.errors import UsageError
from pipeline.records import ROLES, Turn
from pipeline.serialize import read_session_json


@dataclass(frozen=True)
class ParsedTranscript:
    session_id: str
    turns: tuple[Turn, ...]
    roles: Mapping[str, str]  # only the roles the file states
    duration_s: float


_TIME = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:[.,]\d+)?)$")


def parse_time(value: str, where: str) -> float:
    v = value.strip()
    try:
        return float(v)
    except ValueError:
        pass
    m = _TIME.match(v)
    if not m:
        raise UsageError(f"{where}: cannot read time {value!r} (seconds, or hh:mm:ss(.fff))")
    h, mnt, s = m.groups()
    return int(h or 0) * 3600 + int(mnt) * 60 + float(s.replace(",", "."))


def _merge_rows(rows: list[tuple[float, float, str, str, str | None]]) -> tuple[tuple[Turn, ...], dict[str, str]]:
    rows.sort(key=lambda r: r[0])
    roles: dict[str, str] = {}
    turns: list[Turn] = []
    for start, end, spk, text, role in rows:
        if role:
            roles[spk] = role
        if turns and turns[-1].speaker == spk:
            t = turns[-1]
            turns[-1] = Turn(t.index, spk, "unknown", t.start, max(t.end, end), f"{t.text} {text}".strip(),
                             t.word_count + len(text.split()))
        else:
            turns.append(Turn(len(turns), spk, "unknown", start, max(end, start), text, len(text.split())))
    return tuple(turns), roles


def read_csv_transcript(path: Path) -> ParsedTranscript:
    reader = csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines())
    cols = set(reader.fieldnames or [])
    missing = {"start", "end", "speaker", "text"} - cols
    if missing:
        raise UsageError(f"{path.name}: transcript CSV lacks column(s) {', '.join(sorted(missing))}; "
                         "needs start,end,speaker,text (optional role)")
    raw = list(reader)
    rows: list[tuple[float, float, str, str, str | None]] = []
    for i, r in enumerate(raw):
        where = f"{path.name} line {i + 2}"
        start = parse_time(r["start"], where)
        if (r.get("end") or "").strip():
            end = parse_time(r["end"], where)
        elif i + 1 < len(raw):
            end = parse_time(raw[i + 1]["start"], f"{path.name} line {i + 3}")
        else:
            end = start + max(1.0, 0.4 * len((r["text"] or "").split()))
        role = (r.get("role") or "").strip().lower() or None
        if role is not None and role not in ROLES:
            raise UsageError(f"{where}: role must be one of {', '.join(ROLES)}, got {role!r}")
        spk = (r["speaker"] or "").strip()
        if not spk:
            raise UsageError(f"{where}: empty speaker")
        text = " ".join((r["text"] or "").split())
        if text:
            rows.append((start, end, spk, text, role))
    turns, roles = _merge_rows(rows)
    return ParsedTranscript(path.stem, turns, roles, max((t.end for t in turns), default=0.0))


_VTT_CUE = re.compile(r"^\s*([\d:.,]+)\s+-->\s+([\d:.,]+)")
_VOICE = re.compile(r"<v(?:\.[^ >]*)?\s+([^>]+)>(.*?)(?:</v>|$)", re.S)
_TAG = re.compile(r"<[^>]+>")


def read_vtt_transcript(path: Path) -> ParsedTranscript:
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    if not lines or not lines[0].startswith("WEBVTT"):
        raise UsageError(f"{path.name}: not a WebVTT file (first line must be WEBVTT)")
    rows: list[tuple[float, float, str, str, str | None]] = []
    i = 0
    while i < len(lines):
        m = _VTT_CUE.match(lines[i])
        if not m:
            i += 1
            continue
        start, end = parse_time(m.group(1), f"{path.name}:{i + 1}"), parse_time(m.group(2), f"{path.name}:{i + 1}")
        i += 1
        payload = []
        while i < len(lines) and lines[i].strip():
            payload.append(lines[i])
            i += 1
        body = "\n".join(payload)
        voices = _VOICE.findall(body)
        if not voices:
            raise UsageError(f"{path.name}: cue at {m.group(1)} has no <v Speaker> voice; text-only tagging needs "
                             "speakers")
        for spk, text in voices:
            clean = " ".join(_TAG.sub("", text).split())
            if clean:
                rows.append((start, end, spk.strip(), clean, None))
    turns, roles = _merge_rows(rows)
    return ParsedTranscript(path.stem, turns, roles, max((t.end for t in turns), default=0.0))


def read_transcript(path: Path) -> ParsedTranscript:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"transcript not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        parsed = read_csv_transcript(path)
    elif suffix == ".vtt":
        parsed = read_vtt_transcript(path)
    elif suffix == ".json":
        try:
            rec = read_session_json(path)
        except (ValueError, KeyError) as e:
            raise UsageError(f"{path.name}: not a session.json of schema 1 ({type(e).__name__})") from e
        roles = {s.id: s.role for s in rec.speakers if s.role != "unknown"}
        parsed = ParsedTranscript(rec.session_id, rec.turns, roles, rec.duration_s)
    else:
        raise UsageError(f"{path.name}: unsupported transcript type {suffix!r} (use .csv, .vtt or session.json)")
    if not parsed.turns:
        raise UsageError(f"{path.name}: the transcript holds no turns")
    return parsed
