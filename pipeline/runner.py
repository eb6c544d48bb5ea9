"""Batch runner: sessions in, outputs and an audit trail out. One failing session never stops the batch.

Per session, in `OUT/<session_id>/` (created owner-only, 0700):
  session.json            written LAST and atomically: its presence means the session's outputs are complete
  report.html, *.eaf, ... the exports (pipeline.exports), each written atomically
  failure.json            when the session failed: stage and reason (never transcript text)
In `OUT/`: audit.jsonl (append-only; one JSON object per line), index.html (one row per session).

A rerun skips a session whose session.json records the same input sha256 and the same config digest and
whose listed outputs all exist; `force=True` redoes it. Models are loaded only if some session needs work.
"""

from __future__ import annotations

import pipeline.offline  # noqa: F401

import getpass
import hashlib
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from pipeline.audio import file_sha256
from pipeline.config import Config, to_dict
from pipeline.errors import SessionError
from pipeline.inputs import Refusal, SessionJob
from pipeline.serialize import atomic_write_text, read_session_json, write_session_json

log = logging.getLogger("rupture")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def config_digest(cfg: Config) -> str:
    return hashlib.sha256(json.dumps(to_dict(cfg), sort_keys=True).encode()).hexdigest()


def make_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)


class AuditLog:
    """Append-only JSONL. Each record is one write() of one line on an O_APPEND descriptor, fsynced, so
    concurrent writers and a kill at any moment leave only whole lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        make_private_dir(path.parent)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.chmod(path, 0o600)

    def write(self, event: str, **fields: Any) -> None:
        rec = {"time": now_iso(), "event": event, "operator": _operator(), **fields}
        line = (json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
        os.write(self._fd, line)
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def _operator() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return f"uid:{os.getuid()}"


@dataclass(frozen=True)
class SessionOutcome:
    session_id: str
    status: str  # ok | skipped | failed | refused
    stage: str | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class BatchResult:
    outcomes: list[SessionOutcome] = field(default_factory=list)
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        return 1 if self.interrupted or any(o.status in ("failed", "refused") for o in self.outcomes) else 0

    def summary(self) -> str:
        by: dict[str, int] = {}
        for o in self.outcomes:
            by[o.status] = by.get(o.status, 0) + 1
        parts = [f"{by.get(k, 0)} {k}" for k in ("ok", "skipped", "failed", "refused")]
        return ", ".join(parts) + (" (interrupted)" if self.interrupted else "")


def is_complete(session_dir: Path, input_sha: str, cfg_digest: str) -> bool:
    sj = session_dir / "session.json"
    if not sj.is_file():
        return False
    try:
        rec = json.loads(sj.read_text(encoding="utf-8"))
        prov = rec["provenance"]
        if prov.get("input", {}).get("sha256") != input_sha or prov.get("config_digest") != cfg_digest:
            return False
        return all((session_dir / name).is_file() for name in prov.get("outputs", []))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def write_outputs(record: Any, session_dir: Path, audio_path: Path | None, cfg: Config,
                  extra_provenance: dict[str, Any]) -> None:
    """Exports first, session.json last (atomic): session.json existing means everything is there."""
    from dataclasses import replace

    from pipeline.exports import write_exports

    paths = write_exports(record, session_dir, audio_path, tuple(f for f in cfg.exports.formats))
    prov = dict(record.provenance)
    prov.update(extra_provenance)
    prov["outputs"] = sorted(os.path.relpath(p, session_dir) for p in paths)
    write_session_json(replace(record, provenance=prov), session_dir / "session.json")


class _StopFlag:
    """SIGINT/SIGTERM: finish the current session, then stop with a summary. A second SIGINT aborts."""

    def __init__(self) -> None:
        self.stop = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stop and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.stop = True
        log.warning("stop requested: finishing the current session, then stopping (Ctrl-C again to abort)")

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _progress(total: int) -> Callable[[], None]:
    if sys.stderr.isatty() and total > 1:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="session", file=sys.stderr)
        return lambda: bar.update(1)
    return lambda: None


def run_batch(jobs: list[SessionJob], refusals: list[Refusal], out_dir: Path, cfg: Config, *,
              force: bool = False, processor_factory: Callable[[Config], Any] | None = None,
              attestation: str | None = None) -> BatchResult:
    """Process `jobs` one after another in this process (the local backend)."""
    from pipeline.session import SessionProcessor, SessionRequest, StageTimer

    os.umask(0o077)
    make_private_dir(out_dir)
    audit = AuditLog(out_dir / cfg.runner.audit_log)
    result = BatchResult()
    digest = config_digest(cfg)
    try:
        for r in refusals:
            audit.write("refused", session_id=r.session_id, source=r.source, reason=r.reason)
            log.error("session %s refused: %s", r.session_id, r.reason)
            result.outcomes.append(SessionOutcome(r.session_id, "refused", error=r.reason))

        # Which sessions need work? (hashing the inputs is cheap next to loading models)
        pending: list[tuple[SessionJob, str | None]] = []
        for job in jobs:
            try:
                sha = file_sha256(job.audio_path)
            except OSError as e:
                sha = None
                log.debug("cannot hash %s: %s", job.audio_path, e)
            if sha and not force and is_complete(out_dir / job.session_id, sha, digest):
                log.info("session %s: already complete for this input and config, skipped", job.session_id)
                audit.write("skipped", session_id=job.session_id, input_sha256=sha)
                result.outcomes.append(SessionOutcome(job.session_id, "skipped"))
                continue
            pending.append((job, sha))

        if pending:
            t0 = time.perf_counter()
            proc = (processor_factory or SessionProcessor)(cfg)
            log.info("models loaded in %.1f s", time.perf_counter() - t0)
            model_hashes = {k: {"name": m.name, "version": m.version, "sha256": m.sha256}
                            for k, m in proc.model_infos.items()}
            tick = _progress(len(pending))
            with _StopFlag() as flag:
                for job, sha in pending:
                    if flag.stop:
                        result.interrupted = True
                        break
                    outcome = run_one(proc, job, sha, out_dir, cfg, digest, audit, model_hashes, attestation)
                    result.outcomes.append(outcome)
                    tick()
        _write_index(out_dir, result)
    finally:
        audit.close()
    log.info("batch finished: %s", result.summary())
    return result


def run_one(proc: Any, job: SessionJob, sha: str | None, out_dir: Path, cfg: Config, digest: str,
            audit: AuditLog, model_hashes: dict[str, Any], attestation: str | None) -> SessionOutcome:
    from pipeline.session import SessionRequest, StageTimer

    session_dir = out_dir / job.session_id
    t0 = time.perf_counter()
    timer = StageTimer(inner=_log_hook(job.session_id))
    timer.start()
    consent = {"source": job.consent_source, "date": job.consent_date}
    if attestation and job.consent_source == "operator_attestation":
        consent["attestation"] = attestation
    try:
        make_private_dir(session_dir)
        req = SessionRequest(job.session_id, job.audio_path, job.num_speakers, job.therapist, dict(job.metadata))
        record = proc(req, hook=timer, created=now_iso())
        audio_path = job.audio_path if getattr(proc, "has_audio", True) else None
        write_outputs(record, session_dir, audio_path, cfg,
                      {"config_digest": digest, "stage_seconds": {k: round(v, 3) for k, v in timer.times.items()},
                       "consent": consent})
        stale = session_dir / "failure.json"
        if stale.exists():
            stale.unlink()
        secs = time.perf_counter() - t0
        audit.write("processed", session_id=job.session_id, input_sha256=record.provenance["input"]["sha256"],
                    models=model_hashes, consent=consent, seconds=round(secs, 2))
        log.info("session %s: done in %.1f s (%.1fx real time)", job.session_id, secs,
                 record.duration_s / max(secs, 1e-9))
        return SessionOutcome(job.session_id, "ok", seconds=secs)
    except SessionError as e:
        return _fail(job, sha, session_dir, e.stage, str(e), audit, consent, t0)
    except OSError as e:  # disk full, read-only output folder, permissions
        return _fail(job, sha, session_dir, "output", f"cannot write outputs: {e.strerror or type(e).__name__}",
                     audit, consent, t0)


def _fail(job: SessionJob, sha: str | None, session_dir: Path, stage: str, message: str, audit: AuditLog,
          consent: dict[str, Any], t0: float) -> SessionOutcome:
    log.error("session %s failed in stage %s: %s", job.session_id, stage, message)
    try:
        atomic_write_text(session_dir / "failure.json", json.dumps(
            {"session_id": job.session_id, "stage": stage, "error": message, "input_sha256": sha,
             "time": now_iso()}, indent=1))
    except OSError:
        pass
    audit.write("failed", session_id=job.session_id, input_sha256=sha, stage=stage, error=message, consent=consent)
    return SessionOutcome(job.session_id, "failed", stage=stage, error=message, seconds=time.perf_counter() - t0)


def _log_hook(session_id: str) -> Callable[..., None]:
    def hook(step: str, artifact: Any = None, *, completed: float | None = None, total: float | None = None) -> None:
        if completed is None:
            log.info("session %s: %s done", session_id, step)

    return hook


def _write_index(out_dir: Path, result: BatchResult) -> None:
    """index.html over every session in the output folder (earlier batches too), plus corpus tables."""
    from pipeline.exports import SessionSummary, summary_from_record, write_corpus_tables, write_index

    this_batch = {o.session_id: o for o in result.outcomes}
    rows: dict[str, SessionSummary] = {}
    for d in sorted(p for p in out_dir.iterdir() if p.is_dir()):
        sj, fj = d / "session.json", d / "failure.json"
        status = this_batch[d.name].status if d.name in this_batch else "ok"
        try:
            if sj.is_file() and status in ("ok", "skipped"):
                rows[d.name] = summary_from_record(read_session_json(sj), status=status)
            elif fj.is_file():
                f = json.loads(fj.read_text(encoding="utf-8"))
                rows[d.name] = SessionSummary(d.name, "failed", error=f.get("error"), stage=f.get("stage"))
        except (OSError, ValueError, KeyError) as e:
            log.warning("index: cannot read outputs of %s (%s)", d.name, type(e).__name__)
    for o in result.outcomes:
        if o.status == "refused":
            rows[o.session_id] = SessionSummary(o.session_id, "refused", error=o.error)
        elif o.status == "failed":
            rows[o.session_id] = SessionSummary(o.session_id, "failed", error=o.error, stage=o.stage)
    try:
        write_index(out_dir, [rows[k] for k in sorted(rows)])
        write_corpus_tables(out_dir)
    except OSError as e:
        log.error("could not write the batch index/corpus tables: %s", e.strerror or type(e).__name__)
