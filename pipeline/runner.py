"""Batch runner: sessions in, outputs and an audit trail out. One failing session never stops the batch.

Per session, in `OUT/<session_id>/` (created owner-only, 0700):
  session.json            written LAST and atomically: its presence means the session's outputs are complete
  report.html, *.eaf, ... the exports (pipeline.exports), each written atomically
  failure.json            when the session failed: stage and reason (never transcript text)
In `OUT/`: audit.jsonl (append-only; one JSON object per line), index.html (one row per session).

A rerun skips a session whose session.json records the same input sha256 and the same config digest and
whose listed outputs all exist; `force=True` redoes it. Models are loaded only if some session needs work.

Fault tolerance (a kill at any moment, SIGKILL included, then a rerun):
- one batch per output folder at a time (`OUT/.batch.lock`, an flock the kernel drops when the process dies);
- one worker per session at a time (`OUT/<id>/.lock`); after taking it the worker checks again whether the
  session is complete, so a session is never done twice, even with a stray worker of a killed run;
- temp files (`.*.tmp`) of killed writers are removed before a session is redone; they are never outputs;
- audit lines: `started` (attempt id) before the work, `processed` (same attempt id) after session.json; a
  torn last line left by a kill is cut off (and an `audit_repaired` line says so); a session found complete
  whose attempt has no `processed` line (killed between the two) gets one with `recovered: true`.
"Done exactly once": for each session (input sha256 + config digest, no --force), exactly one `processed`
line in the audit log across all runs, and its attempt id is the one in the final session.json.

Executors (pipeline.distributed, generic): local in-process (workers=1), a local process pool, or a Ray actor
pool. Each builds a `SessionWorker` where it runs (models loaded once) and calls it per session; the worker
calls the per-session unit, `run_one`, with its processor (a `pipeline.session.Processor`: SessionProcessor
for `rupture run`, TranscriptProcessor for `rupture tag`; `processor_factory` picks it).

    rupture run -> cli.cmd_run -> run_batch -> (lock, skip what is done) -> distributed.run_items
                -> SessionWorker(job, sha) -> run_one -> (session lock) -> SessionProcessor -> session.json
"""

from __future__ import annotations

import pipeline.offline  # noqa: F401

import contextlib
import errno
import functools
import fcntl
import getpass
import glob
import hashlib
import json
import logging
import os
import signal
import stat
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

from models.store import sha256_file
from pipeline import distributed
from pipeline.config import Config, to_dict
from pipeline.errors import ModelError, RuptureError, SessionError, UsageError
from pipeline.inputs import Refusal, SessionJob
from pipeline.process import init_process
from pipeline.records import Consent, SessionRecord
from pipeline.serialize import atomic_write_text, read_provenance, read_session_json, to_json, write_session_json

if TYPE_CHECKING:  # pipeline.session (and the stages under it) loads when a worker is built
    from pipeline.session import Processor

log = logging.getLogger("rupture")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# Settings that change how fast, not what comes out: left out of the digest, so that switching backend,
# workers or thread counts does not redo finished sessions.
_NOT_IN_DIGEST = {("runner",), ("asr", "cpu_threads"), ("diarization", "torch_threads"),
                  ("diarization", "parallel_chunks"), ("tagging", "threads"), ("tagging", "parallel_batches")}


def config_digest(cfg: Config) -> str:
    d = to_dict(cfg)
    for path in _NOT_IN_DIGEST:
        node = d
        for k in path[:-1]:
            node = node.get(k, {})
        node.pop(path[-1], None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


# Files rupture writes atomically at the top of --out (their killed writers leave `.<name>.*.tmp`).
BATCH_OUTPUTS = ("index.html", "sessions.parquet", "turns.parquet", "events.parquet")


def make_private_dir(path: Path) -> None:
    """Create `path` (and missing parents) owner-only (0700). A folder that already exists is left as it is:
    `--out /tmp` must never chmod /tmp. A symbolic link is refused (OutputTreeError), never followed."""
    if path.is_symlink():
        raise OutputTreeError(path)
    try:
        path.mkdir(parents=True, mode=0o700)
    except FileExistsError:
        if path.is_symlink():
            raise OutputTreeError(path) from None
        return
    os.chmod(path, 0o700)  # what we created is ours: owner-only whatever the umask


class OutputTreeError(OSError):
    """A symbolic link where rupture writes (a session folder, the audit log, a lock): outputs and audit
    lines would go wherever it points, so it is refused, never followed."""

    def __init__(self, path: Path) -> None:
        super().__init__(errno.ELOOP, f"{path} is a symbolic link; rupture never follows links inside its output "
                                      "folder: remove the link (or point --out elsewhere)")
        self.path = path


def _open_nofollow(path: Path, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_NOFOLLOW, 0o600)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise OutputTreeError(path) from None
        raise


class AuditLog:
    """Append-only JSONL. Each record is one write() of one line on an O_APPEND descriptor, fsynced, so
    concurrent writers and a kill at any moment leave only whole lines."""

    def __init__(self, path: Path, repair: bool = False) -> None:
        self.path = path
        if not path.parent.exists():
            make_private_dir(path.parent)
        self._fd = _open_nofollow(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        os.fchmod(self._fd, 0o600)
        if repair:  # only the batch's owner (it holds the batch lock), never a worker
            dropped = self._cut_torn_tail()
            if dropped:
                self.write("audit_repaired", dropped_bytes=dropped,
                           reason="the last line was incomplete (the previous run was killed while writing it)")

    def _cut_torn_tail(self) -> int:
        size = os.fstat(self._fd).st_size
        if size == 0:
            return 0
        if os.pread(self._fd, 1, size - 1) == b"\n":
            return 0
        pos = size
        while pos > 0:  # find the last newline, reading backwards
            start = max(0, pos - 65536)
            block = os.pread(self._fd, pos - start, start)
            i = block.rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            pos = start
        else:
            keep = 0
        os.ftruncate(self._fd, keep)
        os.fsync(self._fd)
        return size - keep

    def write(self, event: str, **fields: Any) -> None:
        rec = {"time": now_iso(), "event": event, "operator": _operator(), **fields}
        line = (json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
        os.write(self._fd, line)
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def read_audit(path: Path) -> list[dict[str, Any]]:
    """Every whole line of an audit log (a torn last line is ignored; `AuditLog(repair=True)` cuts it)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    lines = raw.split(b"\n")
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            if i == len(lines) - 1:  # torn tail
                continue
            raise
    return out


@contextlib.contextmanager
def _flock(path: Path, blocking: bool = True) -> Iterator[bool]:
    """An exclusive flock on `path` (created 0600, never through a symlink); the kernel releases it when the
    holder dies."""
    fd = _open_nofollow(path, os.O_RDWR | os.O_CREAT)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def clean_temp_files(folder: Path, names: Iterable[str] | None = None) -> int:
    """Remove `.*.tmp` files that killed atomic writers left in `folder` (not recursive). `names`: only the
    temp files of these outputs (`.<name>.*.tmp`): in `--out`, which may be a shared folder such as /tmp,
    other programs' hidden temp files are not ours to delete."""
    n = 0
    patterns = [f".{glob.escape(name)}.*.tmp" for name in names] if names is not None else [".*.tmp"]
    for p in (q for pattern in patterns for q in folder.glob(pattern)):
        try:
            p.unlink()
            n += 1
        except OSError:
            pass
    return n


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


def input_sha256(path: Path) -> str | None:
    """sha256 of an input file; None when it cannot be read or is not a regular file (a FIFO blocks on
    open and /dev/zero never ends: hashing one hung the batch with its lock held). The session then fails
    alone in its first stage, which says what is wrong with the file."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        return sha256_file(path)
    except OSError as e:
        log.debug("cannot hash %s: %s", path, e)
        return None


def job_input_sha256(job: SessionJob) -> str | None:
    """The digest a session's outputs are tied to: its file's sha256, or for a session given as one file per
    participant, a digest of every file's sha256 and the manifest's offsets (pipeline.tracks)."""
    if job.tracks is not None:
        from pipeline.tracks import tracks_sha256

        return tracks_sha256(job.tracks)
    return input_sha256(job.audio_path)


def recorded_input_sha256(session_dir: Path) -> str | None:
    """The input sha256 that the session.json already in `session_dir` records (None: none there)."""
    sj = session_dir / "session.json"
    if session_dir.is_symlink() or not sj.is_file():
        return None
    try:
        return read_provenance(sj).input_sha256
    except (OSError, ValueError):
        return None


def is_complete(session_dir: Path, input_sha: str, cfg_digest: str) -> bool:
    sj = session_dir / "session.json"
    if session_dir.is_symlink() or not sj.is_file():  # a planted link never counts as done work
        return False
    try:
        prov = read_provenance(sj)
        if prov.input_sha256 != input_sha or prov.config_digest != cfg_digest:
            return False
        return all((session_dir / name).is_file() for name in prov.outputs or ())
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class RunInfo:
    """The runner's provenance fields of one session (None: not written)."""

    config_digest: str | None = None
    stage_seconds: Mapping[str, float] | None = None
    consent: Consent | None = None
    attempt: str | None = None


def write_outputs(record: SessionRecord, session_dir: Path, audio_path: Path | None, cfg: Config,
                  run: RunInfo | None = None) -> None:
    """Exports first, session.json last (atomic): session.json existing means everything is there. `run`:
    the runner's provenance fields; outputs are added."""
    from pipeline.exports import write_exports

    paths = write_exports(record, session_dir, audio_path, tuple(f for f in cfg.exports.formats))
    run = run or RunInfo()
    prov = replace(record.provenance, config_digest=run.config_digest, stage_seconds=run.stage_seconds,
                   consent=run.consent, attempt=run.attempt,
                   outputs=tuple(sorted(os.path.relpath(p, session_dir) for p in paths)))
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
              force: bool = False, processor_factory: Callable[[Config], Processor] | None = None,
              attestation: str | None = None) -> BatchResult:
    """Process `jobs` with the backend `cfg.runner` names (local in-process, local process pool, Ray)."""
    audit_path = audit_log_path(out_dir, cfg.runner.audit_log)
    try:
        # An existing --out is left as it is (it may be /tmp, or a link the operator made); what is created
        # here is owner-only.
        if not out_dir.exists():
            make_private_dir(out_dir)
        os.close(_open_nofollow(out_dir / ".batch.lock", os.O_RDWR | os.O_CREAT))
    except OutputTreeError as e:
        raise UsageError(e.strerror) from None
    except OSError as e:
        raise UsageError(f"cannot use the output folder {out_dir}: {e.strerror or type(e).__name__}") from None
    try:
        with _flock(out_dir / ".batch.lock", blocking=False) as mine:
            if not mine:
                raise UsageError(f"another rupture run is using the output folder {out_dir}; wait for it to finish")
            clean_temp_files(out_dir, BATCH_OUTPUTS)
            return _run_batch_locked(jobs, refusals, out_dir, cfg, force, processor_factory, attestation,
                                     audit_path)
    except OutputTreeError as e:  # the audit log or a lock planted as a link
        raise UsageError(e.strerror) from None


def audit_log_path(out_dir: Path, configured: str) -> Path:
    """`runner.audit_log`: a relative path stays inside the output folder (no `..`); an absolute path is the
    operator's explicit choice of another place."""
    p = Path(configured)
    if p.is_absolute():
        return p
    if not configured or ".." in p.parts:
        raise UsageError(f"runner.audit_log: a relative path must stay inside the output folder (no '..'); give "
                         "an absolute path to keep the audit log elsewhere")
    return out_dir / p


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a session worker needs (picklable: it travels to pool processes and Ray actors)."""

    cfg: Config
    out_dir: Path
    digest: str
    attestation: str | None = None
    processor_factory: Callable[[Config], Processor] | None = None
    force: bool = False
    threads: int = 0  # 0: keep the thread settings of cfg


class SessionWorker:
    """Models loaded once in __init__; one session per __call__ (`run_one`). The executors build it where it
    runs: in this process, a pool process or a Ray actor alike. Threads are set here, once per process."""

    def __init__(self, spec: WorkerSpec) -> None:
        from pipeline.session import SessionProcessor

        self.spec = spec
        cfg = distributed.with_threads(spec.cfg, spec.threads)
        init_process(cfg=cfg, threads=spec.threads)
        try:
            self.proc: Processor = (spec.processor_factory or SessionProcessor)(cfg)
        except RuptureError:
            raise
        except Exception as e:  # a library failing to load a model: a clear start-up error, never a traceback
            raise ModelError(f"the models could not be loaded ({type(e).__name__}); run `rupture models verify` "
                             "and check the models section of the config") from e
        self.cfg = cfg
        self.model_hashes: dict[str, Any] = to_json(dict(self.proc.model_infos))
        self.audit = AuditLog(audit_log_path(spec.out_dir, spec.cfg.runner.audit_log))

    def __call__(self, job: SessionJob, sha: str | None) -> "SessionOutcome":
        s = self.spec
        # provenance records the run's own config (the digest ignores thread counts anyway)
        return run_one(self.proc, job, sha, s.out_dir, s.cfg, s.digest, self.audit, self.model_hashes,
                       s.attestation, force=s.force)

    def close(self) -> None:
        self.audit.close()


def _run_batch_locked(jobs: list[SessionJob], refusals: list[Refusal], out_dir: Path, cfg: Config, force: bool,
                      processor_factory: Callable[[Config], Processor] | None, attestation: str | None,
                      audit_path: Path) -> BatchResult:
    audit = AuditLog(audit_path, repair=True)
    result = BatchResult()
    digest = config_digest(cfg)
    try:
        for r in refusals:
            audit.write("refused", session_id=r.session_id, source=r.source, reason=r.reason)
            log.error("session %s refused: %s", r.session_id, r.reason)
            result.outcomes.append(SessionOutcome(r.session_id, "refused", error=r.reason))

        # Which sessions need work? (hashing the inputs is cheap next to loading models)
        done_attempts = {(a.get("session_id"), a.get("attempt")) for a in read_audit(audit.path)
                         if a.get("event") == "processed"}
        pending: list[tuple[SessionJob, str | None]] = []
        for job in jobs:
            sha = job_input_sha256(job)
            earlier = recorded_input_sha256(out_dir / job.session_id)
            if sha and earlier and earlier != sha and not force:
                reason = ("the output folder already holds this session id for a different input (sha256 "
                          "differs); give this input another session_id, or pass --force to replace that session")
                audit.write("refused", session_id=job.session_id, source=str(job.audio_path), reason=reason,
                            input_sha256=sha, recorded_input_sha256=earlier)
                log.error("session %s refused: %s", job.session_id, reason)
                result.outcomes.append(SessionOutcome(job.session_id, "refused", error=reason))
                continue
            if sha and not force and is_complete(out_dir / job.session_id, sha, digest):
                _recover_processed_line(out_dir / job.session_id, job.session_id, sha, audit, done_attempts)
                log.info("session %s: already complete for this input and config, skipped", job.session_id)
                audit.write("skipped", session_id=job.session_id, input_sha256=sha)
                result.outcomes.append(SessionOutcome(job.session_id, "skipped"))
                continue
            pending.append((job, sha))

        if pending:
            threads = distributed.threads_per_worker(cfg)
            spec = WorkerSpec(cfg=cfg, out_dir=out_dir, digest=digest, attestation=attestation,
                              processor_factory=processor_factory, force=force, threads=threads)
            executor = distributed.Executor(cfg.runner, threads, log.getEffectiveLevel())
            tick = _progress(len(pending))

            def collect(outcome: SessionOutcome) -> None:
                result.outcomes.append(outcome)
                tick()

            def lost(item: tuple[Any, ...], why: str) -> SessionOutcome:  # its worker died mid-session
                job, sha = item
                return _fail(job, sha, out_dir / job.session_id, "worker", why, audit,
                             Consent(source=job.consent_source, date=job.consent_date), time.perf_counter())

            with _StopFlag() as flag:
                result.interrupted = distributed.run_items(pending, functools.partial(SessionWorker, spec), executor,
                                                           lambda: flag.stop, collect, lost)
        _write_index(out_dir, result, cfg.exports.corpus_tables)
    finally:
        audit.close()
    log.info("batch finished: %s", result.summary())
    return result


def _recover_processed_line(session_dir: Path, session_id: str, sha: str, audit: AuditLog,
                            done_attempts: set[tuple[Any, Any]]) -> None:
    """A run killed after session.json but before its `processed` line: write that line now."""
    try:
        prov = read_provenance(session_dir / "session.json")
    except (OSError, ValueError):
        return
    attempt = prov.attempt
    if attempt and (session_id, attempt) not in done_attempts:
        audit.write("processed", session_id=session_id, input_sha256=sha, attempt=attempt, recovered=True,
                    models=to_json(prov.models), consent=to_json(prov.consent))
        done_attempts.add((session_id, attempt))


def run_one(proc: Processor, job: SessionJob, sha: str | None, out_dir: Path, cfg: Config, digest: str,
            audit: AuditLog, model_hashes: dict[str, Any], attestation: str | None,
            force: bool = False) -> SessionOutcome:
    """The per-session unit every backend calls: lock the session folder, check again that it still needs
    work, process, write the outputs (session.json last), and append the audit lines."""
    session_dir = out_dir / job.session_id
    t0 = time.perf_counter()
    consent = Consent(source=job.consent_source, date=job.consent_date,
                      attestation=attestation if attestation and job.consent_source == "operator_attestation"
                      else None)
    try:
        make_private_dir(session_dir)
        with _flock(session_dir / ".lock"):
            if sha and not force and is_complete(session_dir, sha, digest):  # a stray worker finished it
                audit.write("skipped", session_id=job.session_id, input_sha256=sha)
                return SessionOutcome(job.session_id, "skipped")
            clean_temp_files(session_dir)
            return _process_locked(proc, job, sha, session_dir, cfg, digest, audit, model_hashes, consent, t0)
    except OSError as e:  # disk full, read-only output folder, permissions
        return _fail(job, sha, session_dir, "output", f"cannot write outputs: {e.strerror or type(e).__name__}",
                     audit, consent, t0)


def _process_locked(proc: Processor, job: SessionJob, sha: str | None, session_dir: Path, cfg: Config, digest: str,
                    audit: AuditLog, model_hashes: dict[str, Any], consent: Consent,
                    t0: float) -> SessionOutcome:
    from pipeline.session import SessionRequest, StageTimer

    attempt = uuid.uuid4().hex
    audit.write("started", session_id=job.session_id, input_sha256=sha, attempt=attempt, pid=os.getpid())
    timer = StageTimer(inner=_log_hook(job.session_id))
    timer.start()
    try:
        req = SessionRequest(job.session_id, job.audio_path, job.num_speakers, job.therapist, dict(job.metadata),
                             input_sha256=sha)
        if job.tracks is not None:  # one file per participant (pipeline.tracks)
            req = replace(req, tracks=job.tracks)
        record = proc(req, hook=timer, created=now_iso())
        audio_path = job.audio_path if proc.has_audio else None
        write_outputs(record, session_dir, audio_path, cfg,
                      RunInfo(config_digest=digest, stage_seconds={k: round(v, 3) for k, v in timer.times.items()},
                              consent=consent, attempt=attempt))
        stale = session_dir / "failure.json"
        if stale.exists():
            stale.unlink()
        secs = time.perf_counter() - t0
        audit.write("processed", session_id=job.session_id, input_sha256=record.provenance.input_sha256,
                    attempt=attempt, models=model_hashes, consent=to_json(consent), seconds=round(secs, 2))
        log.info("session %s: done in %.1f s (%.1fx real time)", job.session_id, secs,
                 record.duration_s / max(secs, 1e-9))
        return SessionOutcome(job.session_id, "ok", seconds=secs)
    except SessionError as e:
        return _fail(job, sha, session_dir, e.stage, str(e), audit, consent, t0)
    except OSError as e:  # disk full, read-only output folder, permissions
        return _fail(job, sha, session_dir, "output", f"cannot write outputs: {e.strerror or type(e).__name__}",
                     audit, consent, t0)
    except Exception as e:  # a bug must not stop the batch; the type only (messages can quote data)
        log.debug("session %s: unexpected error", job.session_id, exc_info=True)
        return _fail(job, sha, session_dir, "output", f"internal error ({type(e).__name__}) while writing outputs",
                     audit, consent, t0)


def _fail(job: SessionJob, sha: str | None, session_dir: Path, stage: str, message: str, audit: AuditLog,
          consent: Consent, t0: float) -> SessionOutcome:
    log.error("session %s failed in stage %s: %s", job.session_id, stage, message)
    try:
        if session_dir.is_symlink():  # never write through a link planted in the output folder
            raise OutputTreeError(session_dir)
        atomic_write_text(session_dir / "failure.json", json.dumps(
            {"session_id": job.session_id, "stage": stage, "error": message, "input_sha256": sha,
             "time": now_iso()}, indent=1))
    except OSError:
        pass
    try:
        audit.write("failed", session_id=job.session_id, input_sha256=sha, stage=stage, error=message,
                    consent=to_json(consent))
    except OSError as e:
        log.error("session %s: cannot append to the audit log: %s", job.session_id, e.strerror or type(e).__name__)
    return SessionOutcome(job.session_id, "failed", stage=stage, error=message, seconds=time.perf_counter() - t0)


def _log_hook(session_id: str) -> Callable[..., None]:
    def hook(step: str, artifact: Any = None, *, completed: float | None = None, total: float | None = None) -> None:
        if completed is None:
            log.info("session %s: %s done", session_id, step)

    return hook


def _write_index(out_dir: Path, result: BatchResult, corpus_tables: bool = True) -> None:
    """index.html over every session in the output folder (earlier batches too), plus corpus tables
    (unless `exports.corpus_tables` is off)."""
    from pipeline.exports import SessionSummary, summary_from_record, write_corpus_tables, write_index

    this_batch = {o.session_id: o for o in result.outcomes}
    rows: dict[str, SessionSummary] = {}
    for d in sorted(p for p in out_dir.iterdir() if p.is_dir() and not p.is_symlink()):
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
        if corpus_tables:
            write_corpus_tables(out_dir)
    except OSError as e:
        log.error("could not write the batch index/corpus tables: %s", e.strerror or type(e).__name__)
