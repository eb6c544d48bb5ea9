"""Reading existing transcripts for `rupture tag` (text-only mode): CSV, WebVTT with <v Speaker> voices, or a
session.json. Each becomes a `ParsedTranscript` of turns (consecutive rows of one speaker are merged into one
turn, as in audio mode) and the roles given in the file, if any."""

from __future__ import annotations

import csv
import dataclasses
import math
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
# Longest session a transcript may describe. A time beyond it is a typo or a hostile value (`end=1e9` made
# the talk-time windows allocate until the kernel killed the process); 48 h is far beyond any session.
MAX_TIME_S = 48 * 3600.0
# Errors name the file, the line, the column and the kind of problem, never a cell's content: the message
# lands in audit.jsonl, failure.json, index.html and stderr, and a cell can hold what a client said.
NOT_SHOWN = "the cell's content is not shown"


def parse_time(value: str | None, where: str) -> float:
    """Seconds from `value` (float seconds or hh:mm:ss(.fff)); finite, >= 0 and at most MAX_TIME_S."""
    v = (value or "").strip()
    try:
        t = float(v)
    except ValueError:
        m = _TIME.match(v)
        if not m:
            raise UsageError(f"{where}: cannot read the time (write seconds, or hh:mm:ss(.fff)); {NOT_SHOWN}") from None
        h, mnt, sec = m.groups()
        t = int(h or 0) * 3600 + int(mnt) * 60 + float(sec.replace(",", "."))
    if not math.isfinite(t) or t < 0 or t > MAX_TIME_S:
        raise UsageError(f"{where}: the time is not a number of seconds between 0 and {MAX_TIME_S:.0f} "
                         f"(48 hours); fix the time ({NOT_SHOWN})")
    return t


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


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise UsageError(f"{path.name}: not UTF-8 text (bad byte at offset {e.start}); save the file as UTF-8 "
                         "and retry") from None


def read_csv_transcript(path: Path) -> ParsedTranscript:
    reader = csv.DictReader(_read_text(path).splitlines())
    try:
        cols = set(reader.fieldnames or [])
        missing = {"start", "end", "speaker", "text"} - cols
        if missing:
            raise UsageError(f"{path.name}: transcript CSV lacks column(s) {', '.join(sorted(missing))}; "
                             "needs start,end,speaker,text (optional role)")
        raw: list[tuple[int, dict]] = []
        for r in reader:
            raw.append((reader.line_num, r))  # the line a row ends on (quoted cells can span lines)
    except csv.Error as e:
        raise UsageError(f"{path.name} line {reader.line_num}: not well-formed CSV ({e}); {NOT_SHOWN}") from None
    rows: list[tuple[float, float, str, str, str | None]] = []
    for i, (line, r) in enumerate(raw):
        where = f"{path.name} line {line}"
        if r.get(None):  # DictReader's restkey: more cells than the header has columns
            raise UsageError(f"{where}: more cells than the header has columns (an unquoted comma in the text?); "
                             f"put the text in double quotes ({NOT_SHOWN})")
        short = [c for c in ("start", "end", "speaker", "text") if r.get(c) is None]
        if short:
            raise UsageError(f"{where}: fewer cells than the header has columns (no {', '.join(short)})")
        start = parse_time(r["start"], f"{where}, column start")
        if (r.get("end") or "").strip():
            end = parse_time(r["end"], f"{where}, column end")
        elif i + 1 < len(raw):
            end = parse_time(raw[i + 1][1]["start"], f"{path.name} line {raw[i + 1][0]}, column start")
        else:
            end = start + max(1.0, 0.4 * len((r["text"] or "").split()))
        role = (r.get("role") or "").strip().lower() or None
        if role is not None and role not in ROLES:
            raise UsageError(f"{where}, column role: not a role; use one of {', '.join(ROLES)} or leave it empty "
                             f"({NOT_SHOWN})")
        spk = (r["speaker"] or "").strip()
        if not spk:
            raise UsageError(f"{where}, column speaker: empty speaker")
        text = " ".join((r["text"] or "").split())
        if text:
            rows.append((start, end, spk, text, role))
    turns, roles = _merge_rows(rows)
    return ParsedTranscript(path.stem, turns, roles, max((t.end for t in turns), default=0.0))


_VTT_CUE = re.compile(r"^\s*([\d:.,]+)\s+-->\s+([\d:.,]+)")
_VOICE = re.compile(r"<v(?:\.[^ >]*)?\s+([^>]+)>(.*?)(?:</v>|$)", re.S)
_TAG = re.compile(r"<[^>]+>")


def read_vtt_transcript(path: Path) -> ParsedTranscript:
    lines = _read_text(path).splitlines()
    if not lines or not lines[0].startswith("WEBVTT"):
        raise UsageError(f"{path.name}: not a WebVTT file (first line must be WEBVTT)")
    rows: list[tuple[float, float, str, str, str | None]] = []
    i = 0
    while i < len(lines):
        m = _VTT_CUE.match(lines[i])
        if not m:
            i += 1
            continue
        where = f"{path.name} line {i + 1}"
        start, end = parse_time(m.group(1), f"{where}, cue start"), parse_time(m.group(2), f"{where}, cue end")
        i += 1
        payload = []
        while i < len(lines) and lines[i].strip():
            payload.append(lines[i])
            i += 1
        body = "\n".join(payload)
        voices = _VOICE.findall(body)
        if not voices:
            raise UsageError(f"{where}: the cue has no <v Speaker> voice; text-only tagging needs speakers")
        for spk, text in voices:
            clean = " ".join(_TAG.sub("", text).split())
            if clean:
                rows.append((start, end, spk.strip(), clean, None))
    turns, roles = _merge_rows(rows)
    return ParsedTranscript(path.stem, turns, roles, max((t.end for t in turns), default=0.0))


def _read_session_json(path: Path) -> ParsedTranscript:
    """A session.json as a transcript, checked as strictly as a CSV (types, roles, finite bounded times)."""
    bad = f"{path.name}: not a session.json of schema 1"
    try:
        rec = read_session_json(path)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise UsageError(f"{bad} ({type(e).__name__})") from None
    for n, t in enumerate(rec.turns):
        if not (isinstance(t.text, str) and isinstance(t.speaker, str) and t.speaker and t.role in ROLES):
            raise UsageError(f"{bad}: turn {n} has a text, speaker or role of the wrong kind ({NOT_SHOWN})")
        for name, value in (("start", t.start), ("end", t.end)):
            if not (math.isfinite(value) and 0 <= value <= MAX_TIME_S):
                raise UsageError(f"{bad}: turn {n} {name} is not a time between 0 and {MAX_TIME_S:.0f} s")
    if not all(isinstance(s.id, str) and s.role in ROLES for s in rec.speakers):
        raise UsageError(f"{bad}: a speaker's id or role is of the wrong kind ({NOT_SHOWN})")
    turns = tuple(dataclasses.replace(t, index=n) for n, t in enumerate(rec.turns))
    roles = {s.id: s.role for s in rec.speakers if s.role != "unknown"}
    duration = rec.duration_s if math.isfinite(rec.duration_s) and 0 <= rec.duration_s <= MAX_TIME_S else \
        max((t.end for t in turns), default=0.0)
    return ParsedTranscript(rec.session_id, turns, roles, duration)


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
        parsed = _read_session_json(path)
    else:
        raise UsageError(f"{path.name}: unsupported transcript type {suffix!r} (use .csv, .vtt or session.json)")
    if not parsed.turns:
        raise UsageError(f"{path.name}: the transcript holds no turns")
    return parsed
