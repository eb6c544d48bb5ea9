"""Retention: `rupture purge INPUT... --out DIR --older-than DAYS [--transcripts] [--dry-run]`.

A session is due when its session.json was created (provenance `created`) more than DAYS days ago. For a due
session:
- its raw recording (found through INPUT: the same manifests, folders or files given to `rupture run`) is
  deleted, but only when the file's sha256 equals the input sha256 recorded in session.json: a file that
  changed since is never touched (a session given as one file per participant: every track and the mix,
  each checked against its sha256 in provenance.input.tracks / .mix, and none deleted if one changed);
- with `transcripts=True`, the text goes too: the text exports (EAF, VTT, TextGrid, transcript.txt) are
  deleted, session.json keeps timings, speakers, measures and events but loses every word, turn text and
  event evidence, and the review page and CSV tables are rewritten from that redacted record. The batch
  index and the corpus tables of the output folder are rebuilt.
Each due session gets one `purged` line in the audit log (what was deleted, never any content). A second
purge finds nothing left to do. Failed sessions (failure.json only) hold no transcript; their audio is
left alone (they may still need a rerun).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from models.store import sha256_file
from pipeline.errors import UsageError
from pipeline.inputs import SessionJob
from pipeline.records import InputInfo, Provenance, Purged
from pipeline.serialize import provenance_from_dict, provenance_to_dict

log = logging.getLogger("rupture")

TEXT_EXPORTS = ("session.eaf", "session.vtt", "session.TextGrid", "transcript.txt")
REWRITTEN_FORMATS = ("html", "rttm", "csv")


@dataclass(frozen=True)
class PurgeItem:
    session_id: str
    age_days: float
    deleted: tuple[str, ...]  # "audio", "transcripts"
    kept_audio_reason: str | None = None  # why a due session's audio was not deleted
    audio_delete_failed: bool = False  # the recording was due and verified but could not be deleted


def _created(prov: Provenance, sj: Path) -> datetime:
    try:
        if prov.created is None:
            raise ValueError("no created time")
        t = datetime.fromisoformat(str(prov.created))
        return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
    except ValueError:
        return datetime.fromtimestamp(sj.stat().st_mtime, timezone.utc)


def purge(out_dir: Path, jobs: Sequence[SessionJob], older_than_days: float, *, transcripts: bool = False,
          dry_run: bool = False, now: datetime | None = None, audit_log: str = "audit.jsonl") -> list[PurgeItem]:
    """Apply the retention policy to `out_dir` (see the module docstring). Returns one item per due session."""
    from pipeline.runner import OutputTreeError, audit_log_path

    if older_than_days < 0:
        raise UsageError(f"--older-than must be >= 0 days, got {older_than_days}")
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise UsageError(f"output folder not found: {out_dir}")
    now = now or datetime.now(timezone.utc)
    cutoff = now - timedelta(days=older_than_days)
    audio_of = {j.session_id: j for j in jobs}
    audit_path = audit_log_path(out_dir, audit_log)
    try:
        return _purge_locked(out_dir, audio_of, older_than_days, cutoff, now, transcripts, dry_run, audit_path)
    except OutputTreeError as e:  # a lock or the audit log planted as a symbolic link
        raise UsageError(e.strerror) from None


def _purge_locked(out_dir: Path, audio_of: dict[str, SessionJob], older_than_days: float, cutoff: datetime,
                  now: datetime, transcripts: bool, dry_run: bool, audit_path: Path) -> list[PurgeItem]:
    from pipeline.runner import AuditLog, BatchResult, _flock, _write_index

    items: list[PurgeItem] = []
    with _flock(out_dir / ".batch.lock", blocking=False) as mine:
        if not mine:
            raise UsageError(f"a rupture run is using the output folder {out_dir}; purge after it finishes")
        audit = None if dry_run else AuditLog(audit_path, repair=True)
        try:
            for sj in sorted(out_dir.glob("*/session.json")):
                sdir = sj.parent
                if sdir.is_symlink() or sj.is_symlink():  # never act through a link planted in the output folder
                    log.warning("purge: %s is a symbolic link; left alone", sdir.name)
                    continue
                try:
                    data = json.loads(sj.read_text(encoding="utf-8"))
                    prov = provenance_from_dict(data["provenance"])
                except (OSError, ValueError, KeyError, TypeError) as e:
                    log.warning("purge: cannot read %s (%s); left alone", sj, type(e).__name__)
                    continue
                created = _created(prov, sj)
                if created > cutoff:
                    continue
                age = (now - created).total_seconds() / 86400
                deleted: list[str] = []
                why_kept = None
                audio = audio_of.get(sdir.name)
                want_sha = prov.input_sha256
                if audio is None:
                    why_kept = "no INPUT names this session's recording"
                else:
                    why_kept = _delete_recordings(_recordings(audio, prov.input), dry_run)
                    if why_kept is None:
                        deleted.append("audio")
                already = bool(prov.purged and prov.purged.transcripts)
                if transcripts and not already:
                    if not dry_run:
                        _purge_transcripts(sdir, data, now)
                    deleted.append("transcripts")
                if deleted and not dry_run:
                    if "audio" in deleted:
                        _mark(sj, audio=True)
                    assert audit is not None
                    audit.write("purged", session_id=sdir.name, input_sha256=want_sha, deleted=deleted,
                                older_than_days=older_than_days, age_days=round(age, 2))
                    log.info("session %s: purged %s (%.0f days old)", sdir.name, " and ".join(deleted), age)
                if deleted or why_kept:
                    items.append(PurgeItem(sdir.name, age, tuple(deleted), None if "audio" in deleted else why_kept,
                                           audio_delete_failed=bool(why_kept and why_kept.startswith(_NOT_DELETED))))
        finally:
            if audit is not None:
                audit.close()
        if not dry_run and any("transcripts" in i.deleted for i in items):
            _write_index(out_dir, BatchResult())  # also rebuilds the corpus tables from the redacted records
    return items


_NOT_DELETED = "could not delete the recording"


def _recordings(job: SessionJob, recorded: InputInfo | None) -> list[tuple[Path, str | None]]:
    """(file, sha256 recorded in session.json) for every file of the session: its recording, or for a
    session given as one file per participant each track (provenance.input.tracks) and the mix."""
    if job.tracks is None:
        return [(job.audio_path, recorded.sha256 if recorded else None)]
    shas: list[str | None] = [t.sha256 for t in (recorded.tracks if recorded else None) or ()]
    if len(shas) != len(job.tracks.tracks):
        shas = [None] * len(job.tracks.tracks)
    out = list(zip(job.tracks.tracks, shas))
    if job.tracks.mix is not None:
        mix = recorded.mix if recorded else None
        out.append((job.tracks.mix, mix.sha256 if mix else None))
    return out


def _delete_recordings(files: Sequence[tuple[Path, str | None]], dry_run: bool) -> str | None:
    """Delete every file of a session (see `_delete_recording`) only when each one that is still there is
    the one that was processed: a session given as several files is never half deleted because one of them
    changed. None when deleted (or would be), else why they were kept."""
    if len(files) == 1:
        return _delete_recording(files[0][0], files[0][1], dry_run)
    checks = [_delete_recording(f, sha, True) for f, sha in files]
    blocking = [(f, why) for (f, _), why in zip(files, checks) if why is not None and why != "recording already gone"]
    if blocking:
        return f"{blocking[0][0].name}: {blocking[0][1]}"
    if all(why is not None for why in checks):
        return "recording already gone"
    for (f, sha), why in zip(files, checks):
        if why is None and not dry_run:
            failed = _delete_recording(f, sha, False)
            if failed is not None:
                return failed
    return None


def _delete_recording(audio: Path, want_sha: str | None, dry_run: bool) -> str | None:
    """Delete the recording at `audio` if it is the one that was processed; None when deleted (or, in a dry
    run, when it would be), else why it was kept. An input given through a symbolic link is the file the link
    points to: that file is hashed and deleted, then the link (deleting only the link left the recording on
    disk while the audit said it was purged)."""
    target = Path(os.path.realpath(audio))
    if not target.is_file():
        return "recording already gone"
    if sha256_file(target) != want_sha:
        return "the file at the input path is not the recording that was processed (sha256 differs)"
    if dry_run:
        return None
    try:
        target.unlink()
    except OSError as e:
        return f"{_NOT_DELETED} {target} ({e.strerror or type(e).__name__}); delete it by hand"
    if audio.is_symlink():
        try:
            audio.unlink()
        except OSError:
            pass  # the recording is gone; a dangling link holds nothing
    return None


def purge_jobs(inputs: Sequence[str]) -> list[SessionJob]:
    """INPUTs as `rupture run` or `rupture tag` took them: manifests (a .csv with an `audio` column), folders,
    audio files, transcripts. Consent plays no part here: this only maps session ids to input files."""
    from pipeline.inputs import collect_jobs, read_manifest, safe_session_id

    jobs: list[SessionJob] = []
    for raw in inputs:
        p = Path(raw)
        if not p.exists():
            raise UsageError(f"input not found: {raw}")
        if p.is_file() and p.suffix.lower() == ".csv":
            head = p.read_text(encoding="utf-8-sig", errors="replace").splitlines()[:1]
            if head and "audio" in [c.strip() for c in head[0].split(",")]:
                jobs += read_manifest(p)[0]
                continue
        if p.is_file() and p.suffix.lower() in (".csv", ".vtt", ".json"):  # `rupture tag` inputs
            sid = safe_session_id(p.parent.name if p.name == "session.json" else p.stem)
            jobs.append(SessionJob(sid, p, "transcript"))
            continue
        jobs += collect_jobs([raw], consent_on_file=True)[0]
    return jobs


def _mark(sj: Path, audio: bool) -> None:
    from pipeline.serialize import atomic_write_text

    data = json.loads(sj.read_text(encoding="utf-8"))
    prov = provenance_from_dict(data["provenance"])
    purged = dataclasses.replace(prov.purged or Purged(), audio=audio)
    data["provenance"] = provenance_to_dict(dataclasses.replace(prov, purged=purged))
    atomic_write_text(sj, json.dumps(data, ensure_ascii=False, indent=1))


def _exported_formats(prov: Provenance) -> tuple[str, ...]:
    """The export formats of the run's config (`exports.formats`), as that run wrote them."""
    exports = (prov.config or {}).get("exports")
    formats = exports.get("formats") if isinstance(exports, Mapping) else None
    return tuple(f for f in formats if isinstance(f, str)) if isinstance(formats, list) else ()


def _purge_transcripts(sdir: Path, data: dict[str, Any], now: datetime) -> None:
    """Delete the text exports; rewrite session.json and the text-free exports from a redacted record."""
    from pipeline.exports import write_exports
    from pipeline.serialize import record_from_dict, write_session_json

    rec = record_from_dict(data)
    redacted = dataclasses.replace(
        rec, words=None,
        turns=tuple(dataclasses.replace(t, text="") for t in rec.turns),
        events=tuple(dataclasses.replace(e, evidence="") for e in rec.events))
    for name in TEXT_EXPORTS:
        try:
            (sdir / name).unlink()
        except FileNotFoundError:
            pass
    prov = redacted.provenance
    formats = tuple(f for f in _exported_formats(prov) if f in REWRITTEN_FORMATS)
    paths = write_exports(redacted, sdir, None, formats) if formats else ()
    purged = dataclasses.replace(prov.purged or Purged(), transcripts=True, time=now.isoformat(timespec="seconds"))
    prov = dataclasses.replace(prov, purged=purged, outputs=tuple(sorted(os.path.relpath(p, sdir) for p in paths)))
    write_session_json(dataclasses.replace(redacted, provenance=prov), sdir / "session.json")
