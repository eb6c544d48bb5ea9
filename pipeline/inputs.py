"""Turning command-line INPUTs (audio files, folders, manifest CSVs) into session jobs, with the consent gate.

A manifest row is one session. It names one recording (`audio`), or, for a telehealth call recorded as one file
per participant, the participants' files (`tracks`, `;`-separated, first = channel ch0) with optional start
times (`track_offsets_s`) and, in `audio`, the platform's mixed recording if there is one (used only to align
the tracks): see pipeline.tracks. A repeated `session_id` is never read as tracks of one session (two
recordings given one id by mistake would be merged): it stays a refused duplicate.

A manifest row is processed only when `consent_recording` and `consent_analysis` are both true; plain audio
paths only when the operator passes `--consent-on-file` (an attestation recorded in the audit log). Anything
else becomes a `Refusal`, never a job.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from pipeline.errors import UsageError
from pipeline.tracks import MAX_TRACKS, TrackSet

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus", ".aac", ".wma", ".mp4",
                              ".webm", ".aiff", ".aif", ".caf", ".mka"})
MANIFEST_REQUIRED = ("audio", "consent_recording", "consent_analysis")
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0", ""}
_KNOWN_COLUMNS = frozenset({"audio", "session_id", "consent_recording", "consent_analysis", "consent_date",
                            "num_speakers", "therapist", "tracks", "track_offsets_s"})
# A track offset beyond this is a typo (recordings are at most pipeline.audio.MAX_DURATION_S long).
MAX_TRACK_OFFSET_S = 8 * 3600.0
_SAFE_ID = re.compile(r"[^\w.\-]+", re.UNICODE)


@dataclass(frozen=True)
class SessionJob:
    session_id: str
    audio_path: Path
    consent_source: str  # "manifest" | "operator_attestation"
    consent_date: str | None = None
    num_speakers: int | None = None
    therapist: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    # One file per participant (manifest `tracks`); then `audio_path` is the mix when given, else the first
    # track (what the report plays), and the session reads `tracks.files`.
    tracks: TrackSet | None = None

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file this session reads."""
        return self.tracks.files if self.tracks is not None else (self.audio_path,)


@dataclass(frozen=True)
class Refusal:
    session_id: str
    source: str
    reason: str
    audio_path: Path | None = None  # the recording a manifest row refused (None: not from a manifest row)
    other_files: tuple[Path, ...] = ()  # the row's other files (telehealth tracks, mix)


# A session id is a folder name: file systems allow 255 bytes; a longer id crashed the batch with
# "File name too long". Longer ids are cut and keep a hash of the full id, so distinct ids stay distinct.
MAX_ID_BYTES = 100
# Names of the batch outputs in OUT/: a session folder with one of these names would collide with them.
RESERVED_IDS = frozenset({"index.html", "sessions.parquet", "turns.parquet", "events.parquet", "audit.jsonl"})


def safe_session_id(raw: str) -> str:
    """A session id usable as a folder name: path separators and odd characters become '_'; at most
    MAX_ID_BYTES bytes of UTF-8 (a longer id is cut and ends in a hash of the whole)."""
    sid = _SAFE_ID.sub("_", raw.strip()).strip("._") or "session"
    if len(sid.encode("utf-8")) > MAX_ID_BYTES:
        digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:12]
        head = sid.encode("utf-8")[:MAX_ID_BYTES - len(digest) - 1].decode("utf-8", "ignore").rstrip("._-")
        sid = f"{head}-{digest}"
    return sid


def _bool(value: str, column: str, where: str) -> bool:
    v = (value or "").strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise UsageError(f"{where}, column {column}: must be true or false (yes/no, 1/0); the cell's content is not "
                     "shown")


def _refuse_ambiguous_columns(cols: list[str], path: Path) -> None:
    """Two columns whose names differ only in case or spaces (say two `consent_analysis`): csv would keep the
    last one's value, so `true,false,true` would pass the consent gate. The whole manifest is refused."""
    first: dict[str, int] = {}
    for i, c in enumerate(cols, start=1):
        key = c.casefold()
        if key in first:
            name = f"the {c.lower()} column" if c.lower() in _KNOWN_COLUMNS else "the same name"
            raise UsageError(f"manifest {path}: columns {first[key]} and {i} both hold {name}; a manifest must "
                             "name each column once (consent is never guessed); remove the duplicate and retry")
        first[key] = i
    for c in cols:
        if c.casefold() in _KNOWN_COLUMNS and c not in _KNOWN_COLUMNS:
            raise UsageError(f"manifest {path}: write the column {c.casefold()} in lower case (consent and the "
                             "other known columns are matched exactly)")


def read_manifest(path: Path) -> tuple[list[SessionJob], list[Refusal]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise UsageError(f"cannot read manifest {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise UsageError(f"manifest {path} is not UTF-8 text (bad byte at offset {e.start}); save it as UTF-8 "
                         "(CSV UTF-8 in a spreadsheet) and retry") from None
    reader = csv.DictReader(text.splitlines())
    try:
        cols = [c.strip() for c in (reader.fieldnames or [])]
        raw_rows = [(reader.line_num, r) for r in reader]
    except csv.Error as e:
        raise UsageError(f"manifest {path} line {reader.line_num}: not well-formed CSV ({e})") from None
    _refuse_ambiguous_columns(cols, path)
    missing = [c for c in MANIFEST_REQUIRED if c not in cols]
    if missing:
        raise UsageError(f"manifest {path} lacks required column(s) {', '.join(missing)}; "
                         f"required: {', '.join(MANIFEST_REQUIRED)} (see CONTRACT.md)")
    known = _KNOWN_COLUMNS
    jobs: list[SessionJob] = []
    refusals: list[Refusal] = []
    for n, raw_row in raw_rows:
        where = f"{path.name} line {n}"
        if raw_row.get(None):  # DictReader's restkey: more cells than columns
            raise UsageError(f"{where}: more cells than the header has columns (an unquoted comma?); put the "
                             "cell in double quotes (the cell's content is not shown)")
        row = {(k or "").strip(): (v or "").strip() for k, v in raw_row.items() if k is not None}
        track_paths = _track_paths(row, path, where)
        if not row.get("audio") and not track_paths:
            raise UsageError(f"{where}: empty 'audio' path")
        mix = _manifest_path(row["audio"], path) if row.get("audio") else None
        audio = mix if mix is not None else track_paths[0]
        sid = safe_session_id(row.get("session_id") or (track_paths[0] if track_paths else audio).stem)
        rec = _bool(row.get("consent_recording", ""), "consent_recording", where)
        ana = _bool(row.get("consent_analysis", ""), "consent_analysis", where)
        others = tuple(p for p in track_paths if p != audio)
        if not (rec and ana):
            lacking = [c for c, ok in (("consent_recording", rec), ("consent_analysis", ana)) if not ok]
            what = f"the {len(track_paths)} tracks were" if track_paths else "the session was"
            refusals.append(Refusal(sid, str(path), f"no recorded consent ({' and '.join(lacking)} not true in the "
                                                   f"manifest); {what} not processed", audio, others))
            continue
        tracks: TrackSet | None = None
        if track_paths:
            if len(track_paths) > MAX_TRACKS:
                refusals.append(Refusal(sid, str(path), f"{len(track_paths)} tracks: the per-speaker path takes "
                                                       f"{MAX_TRACKS} (one file per participant, therapist and client); "
                                                       "the session was not processed", audio, others))
                continue
            tracks = TrackSet(tuple(track_paths), _track_offsets(row, len(track_paths), where), mix)
        elif row.get("track_offsets_s"):
            raise UsageError(f"{where}: track_offsets_s needs a tracks cell (the files they belong to)")
        ns = row.get("num_speakers") or ""
        try:
            num_speakers = int(ns) if ns else None
        except ValueError as e:
            raise UsageError(f"{where}, column num_speakers: must be an integer (the cell's content is not "
                             "shown)") from None
        if num_speakers is not None and num_speakers < 1:
            raise UsageError(f"{where}: num_speakers must be at least 1")
        jobs.append(SessionJob(
            session_id=sid, audio_path=audio, consent_source="manifest",
            consent_date=row.get("consent_date") or None, num_speakers=num_speakers,
            therapist=row.get("therapist") or None,
            metadata={k: v for k, v in row.items() if k not in known}, tracks=tracks,
        ))
    return jobs, refusals


def _manifest_path(cell: str, manifest: Path) -> Path:
    """A path in a manifest cell: relative to the manifest's folder unless absolute."""
    return Path(cell) if Path(cell).is_absolute() else (manifest.parent / cell).resolve()


def _track_paths(row: Mapping[str, str], manifest: Path, where: str) -> list[Path]:
    """The row's `tracks` cell: `;`-separated paths, one per participant (empty: not a multi-track row)."""
    cell = row.get("tracks", "")
    if not cell:
        return []
    parts = [p.strip() for p in cell.split(";")]
    if any(not p for p in parts):
        raise UsageError(f"{where}, column tracks: an empty path (separate the files with ';', none empty)")
    if len(parts) == 1:
        raise UsageError(f"{where}, column tracks: one file only; a single recording goes in the audio column")
    paths = [_manifest_path(p, manifest) for p in parts]
    if len(set(paths)) < len(paths):
        raise UsageError(f"{where}, column tracks: the same file twice (one file per participant)")
    if row.get("audio") and _manifest_path(row["audio"], manifest) in paths:
        raise UsageError(f"{where}: the audio column (the mixed recording) names one of the tracks")
    return paths


def _track_offsets(row: Mapping[str, str], n: int, where: str) -> tuple[float, ...] | None:
    """The row's `track_offsets_s`: each track's start on the session timeline, `;`-separated seconds."""
    cell = row.get("track_offsets_s", "")
    if not cell:
        return None
    try:
        offsets = tuple(float(p) for p in cell.split(";"))
    except ValueError:
        raise UsageError(f"{where}, column track_offsets_s: numbers of seconds separated by ';' (one per "
                         "track)") from None
    if len(offsets) != n:
        raise UsageError(f"{where}, column track_offsets_s: {len(offsets)} offsets for {n} tracks (one per track, "
                         "in the order of the tracks column)")
    if not all(math.isfinite(o) and abs(o) <= MAX_TRACK_OFFSET_S for o in offsets):
        raise UsageError(f"{where}, column track_offsets_s: offsets must be finite and within "
                         f"{MAX_TRACK_OFFSET_S / 3600:.0f} hours")
    return offsets


def collect_jobs(inputs: list[str], consent_on_file: bool) -> tuple[list[SessionJob], list[Refusal]]:
    """Expand INPUTs. Raises UsageError for paths that do not exist or hold nothing to process."""
    jobs: list[SessionJob] = []
    refusals: list[Refusal] = []
    for raw in inputs:
        p = Path(raw)
        if not p.exists():
            raise UsageError(f"input not found: {raw}")
        if p.is_file() and p.suffix.lower() == ".csv":
            j, r = read_manifest(p)
            jobs += j
            refusals += r
            continue
        decided: dict[Path, SessionJob | Refusal] = {}
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
            if not files:
                raise UsageError(f"folder {raw} holds no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))})")
            decided = _folder_manifest_decisions(p)
        else:
            files = [p]
        taken: set[int] = set()  # a manifest's decision covers every file of its row (tracks): taken once
        for f in files:
            known = decided.get(f.resolve())
            if known is not None:
                if id(known) not in taken:
                    taken.add(id(known))
                    (refusals if isinstance(known, Refusal) else jobs).append(known)  # type: ignore[arg-type]
                continue
            sid = safe_session_id(f.stem)
            if not consent_on_file:
                refusals.append(Refusal(sid, str(f), "no recorded consent: plain audio paths need --consent-on-file "
                                                     "(the operator attests that consent is on file), or use a "
                                                     "manifest with consent columns"))
                continue
            jobs.append(SessionJob(session_id=sid, audio_path=f, consent_source="operator_attestation"))
    return dedupe(jobs, refusals)


def _is_manifest(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
            header = next(csv.reader([f.readline()]), [])
    except OSError:
        return False
    cols = {c.strip().casefold() for c in header}
    return "audio" in cols and bool(cols & {"consent_recording", "consent_analysis"})


def _folder_manifest_decisions(folder: Path) -> dict[Path, SessionJob | Refusal]:
    """Manifests inside a folder INPUT decide consent for the recordings they list: `--consent-on-file`
    never overrides a manifest that refuses it (it did: the folder's audio was processed on the operator's
    attestation). Returns the resolved audio path -> the manifest's job or refusal."""
    decided: dict[Path, SessionJob | Refusal] = {}
    for m in sorted(q for q in folder.rglob("*") if q.is_file() and q.suffix.lower() == ".csv" and _is_manifest(q)):
        m_jobs, m_refusals = read_manifest(m)
        for r in m_refusals:  # a refusal wins over any other row for the same recording
            for f in ((r.audio_path,) if r.audio_path is not None else ()) + r.other_files:
                decided[f.resolve()] = r
        for j in m_jobs:
            for f in j.files:
                decided.setdefault(f.resolve(), j)
    return decided


def dedupe(jobs: list[SessionJob], refusals: list[Refusal]) -> tuple[list[SessionJob], list[Refusal]]:
    """Two jobs with one session id would overwrite each other's outputs: the later ones are refused."""
    seen: dict[str, Path] = {}
    out = []
    for j in jobs:
        if j.session_id.casefold() in RESERVED_IDS:
            refusals.append(Refusal(j.session_id, str(j.audio_path),
                                    "the session id is the name of a batch output in the output folder "
                                    f"({', '.join(sorted(RESERVED_IDS))}); give it another session_id in a manifest "
                                    "(or rename the file)"))
            continue
        if j.session_id in seen:
            refusals.append(Refusal(j.session_id, str(j.audio_path),
                                    f"duplicate session id (already used for {seen[j.session_id].name}); give it a "
                                    "unique session_id in a manifest"))
            continue
        seen[j.session_id] = j.audio_path
        out.append(j)
    return out, refusals
