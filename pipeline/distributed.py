"""Backends that run the per-session unit (`pipeline.runner.run_one`): in this process, in a local process pool,
or in a Ray actor pool. They differ only in where `SessionWorker` lives:

    SessionWorker(spec)       loads the models once (__init__) and opens its own O_APPEND audit descriptor
    worker(job, sha)          -> SessionOutcome: one session, outputs written, audit lines appended (__call__)

Backend choice (`RunnerConfig`): backend "local" with workers == 1 runs in-process; "local" with workers > 1
runs a `spawn` process pool; "ray" runs `workers` Ray actors (`ray_num_cpus`/`ray_num_gpus` each) on the
cluster at `ray_address` (None: a private cluster bound to 127.0.0.1, started and stopped here).

Threads: each worker gives torch, CTranslate2 and onnxruntime (through OMP_NUM_THREADS) `threads_per_worker`
threads (0: CPU cores // workers), so that N workers on an N-core box do not oversubscribe the CPUs.

Stopping: `should_stop()` turning true (SIGINT/SIGTERM in the runner) stops handing out sessions; sessions
already running finish; the return value says whether any session was left undone. Local pool workers die
with the parent (PR_SET_PDEATHSIG) and ignore SIGINT (the parent decides); a worker process that dies
mid-session (OOM killer, crash) fails only its own session and is replaced.
"""

from __future__ import annotations

import pipeline.offline  # noqa: F401

import dataclasses
import logging
import math
import os
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pipeline.config import Config
from pipeline.errors import ModelError, RuptureError, UsageError
from pipeline.inputs import SessionJob
from pipeline.offline import OFFLINE_ENV

log = logging.getLogger("rupture")

Pending = list[tuple[SessionJob, "str | None"]]
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS")


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs (picklable: it travels to pool processes and Ray actors)."""

    cfg: Config
    out_dir: Path
    digest: str
    attestation: str | None = None
    processor_factory: Callable[[Config], Any] | None = None
    force: bool = False
    threads: int = 0  # 0: keep the thread settings of cfg
    log_level: int = logging.INFO


def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover (not Linux)
        return max(1, os.cpu_count() or 1)


def threads_per_worker(cfg: Config, cores: int | None = None) -> int:
    """Threads each worker may use (0: leave the asr/diarization/tagging settings as they are)."""
    rc = cfg.runner
    if rc.threads_per_worker > 0:
        return rc.threads_per_worker
    if rc.backend == "ray":
        return max(1, int(rc.ray_num_cpus))
    if rc.workers > 1:
        return max(1, (cores or cpu_count()) // rc.workers)
    return 0


def with_threads(cfg: Config, threads: int) -> Config:
    """`cfg` with every model's thread count set to `threads` (unchanged when threads == 0)."""
    if threads <= 0:
        return cfg
    return dataclasses.replace(
        cfg, asr=dataclasses.replace(cfg.asr, cpu_threads=threads),
        diarization=dataclasses.replace(cfg.diarization, torch_threads=threads),
        tagging=dataclasses.replace(cfg.tagging, threads=threads))


def thread_env(threads: int) -> dict[str, str]:
    return {k: str(threads) for k in THREAD_ENV} if threads > 0 else {}


class SessionWorker:
    """Models loaded once in __init__; one session per __call__. Serves the in-process loop, a pool process
    and a Ray actor alike."""

    def __init__(self, spec: WorkerSpec) -> None:
        from pipeline.runner import AuditLog, audit_log_path
        from pipeline.session import SessionProcessor, model_provenance

        os.environ.update(OFFLINE_ENV)
        os.environ.update(thread_env(spec.threads))
        self.spec = spec
        cfg = with_threads(spec.cfg, spec.threads)
        if spec.threads > 0:
            import torch

            torch.set_num_threads(spec.threads)
            try:
                torch.set_num_interop_threads(1)
            except RuntimeError:  # already set in this process
                pass
        try:
            self.proc = (spec.processor_factory or SessionProcessor)(cfg)
        except RuptureError:
            raise
        except Exception as e:  # a library failing to load a model: a clear start-up error, never a traceback
            raise ModelError(f"the models could not be loaded ({type(e).__name__}); run `rupture models verify` "
                             "and check the models section of the config") from e
        self.cfg = cfg
        self.model_hashes = model_provenance(self.proc.model_infos)
        self.audit = AuditLog(audit_log_path(spec.out_dir, spec.cfg.runner.audit_log))

    def ready(self) -> int:
        return os.getpid()

    def __call__(self, job: SessionJob, sha: str | None) -> Any:
        from pipeline.runner import run_one

        s = self.spec
        # provenance records the run's own config (the digest ignores thread counts anyway)
        return run_one(self.proc, job, sha, s.out_dir, s.cfg, s.digest, self.audit, self.model_hashes,
                       s.attestation, force=s.force)


def run_pending(pending: Pending, spec: WorkerSpec, should_stop: Callable[[], bool],
                collect: Callable[[Any], None]) -> bool:
    """Run `pending` on the configured backend; `collect(outcome)` per session. True if stopped early."""
    rc = spec.cfg.runner
    spec = dataclasses.replace(spec, threads=threads_per_worker(spec.cfg), log_level=log.getEffectiveLevel())
    workers = max(1, min(rc.workers, len(pending)))
    if rc.backend == "ray":
        return _run_ray(pending, spec, workers, should_stop, collect)
    if workers > 1:
        return _run_pool(pending, spec, workers, should_stop, collect)
    return _run_serial(pending, spec, should_stop, collect)


# ---------------------------------------------------------------------------------------------- in-process

def _run_serial(pending: Pending, spec: WorkerSpec, should_stop: Callable[[], bool],
                collect: Callable[[Any], None]) -> bool:
    import time

    t0 = time.perf_counter()
    worker = SessionWorker(spec)
    log.info("models loaded in %.1f s", time.perf_counter() - t0)
    try:
        for i, (job, sha) in enumerate(pending):
            if should_stop():
                return True
            collect(worker(job, sha))
        return False
    finally:
        worker.audit.close()


# ---------------------------------------------------------------------------------------------- process pool

_WORKER: SessionWorker | None = None
_INIT_ERROR: str | None = None


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # pragma: no cover (not Linux)
        pass


def _pool_init(spec: WorkerSpec) -> None:
    global _WORKER, _INIT_ERROR
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    logging.basicConfig(level=spec.log_level, format="%(asctime)s %(levelname)s [worker %(process)d] %(message)s")
    for noisy in ("faster_whisper", "pytorch_lightning", "lightning", "pyannote", "speechbrain", "numba"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore")
    try:
        _WORKER = SessionWorker(spec)
    except ModelError as e:
        _INIT_ERROR = str(e)
    except Exception as e:  # noqa: BLE001
        _INIT_ERROR = f"{type(e).__name__} while loading the models"


def _pool_call(job: SessionJob, sha: str | None) -> Any:
    if _WORKER is None:
        raise ModelError(_INIT_ERROR or "the worker could not load its models")
    return _WORKER(job, sha)


def _worker_died(job: SessionJob, sha: str | None, spec: WorkerSpec, why: str) -> Any:
    import time

    from pipeline.runner import AuditLog, _fail, audit_log_path

    audit = AuditLog(audit_log_path(spec.out_dir, spec.cfg.runner.audit_log))
    try:
        return _fail(job, sha, spec.out_dir / job.session_id, "worker", why, audit,
                     {"source": job.consent_source, "date": job.consent_date}, time.perf_counter())
    finally:
        audit.close()


def _run_pool(pending: Pending, spec: WorkerSpec, workers: int, should_stop: Callable[[], bool],
              collect: Callable[[Any], None]) -> bool:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    todo = list(pending)
    log.info("local process pool: %d workers, %d threads each", workers, spec.threads)
    while todo:
        broken = False
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_pool_init,
                                 initargs=(spec,)) as pool:
            running: dict[Future, tuple[SessionJob, str | None]] = {}
            while todo or running:
                while todo and len(running) < workers and not should_stop() and not broken:
                    job, sha = todo.pop(0)
                    running[pool.submit(_pool_call, job, sha)] = (job, sha)
                if not running:
                    break
                done, _ = wait(list(running), timeout=1.0, return_when=FIRST_COMPLETED)
                for fut in done:
                    job, sha = running.pop(fut)
                    try:
                        collect(fut.result())
                    except BrokenProcessPool:
                        broken = True
                        collect(_worker_died(job, sha, spec, "the worker process died while processing this "
                                             "session (out of memory or a crash); rerun to retry"))
                    except ModelError:
                        pool.shutdown(wait=False, cancel_futures=True)
                        raise
            if should_stop():
                return bool(todo)
        if broken:
            log.warning("a worker process died; starting a fresh pool for the remaining %d sessions", len(todo))
    return False


# ---------------------------------------------------------------------------------------------- Ray

class _RayWorker(SessionWorker):
    def __init__(self, spec: WorkerSpec) -> None:
        logging.basicConfig(level=spec.log_level, format="%(levelname)s %(message)s")
        for noisy in ("faster_whisper", "pytorch_lightning", "lightning", "pyannote", "speechbrain", "numba"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        import warnings

        warnings.filterwarnings("ignore")
        super().__init__(spec)

    def run(self, job: SessionJob, sha: str | None) -> Any:
        return self(job, sha)


def ray_init_kwargs(spec: WorkerSpec, workers: int) -> dict[str, Any]:
    """Arguments for `ray.init`: offline/no-telemetry and thread variables reach every worker; a cluster
    started here is bound to loopback, has no dashboard and a small object store."""
    rc = spec.cfg.runner
    env = {**OFFLINE_ENV, **thread_env(spec.threads), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    kw: dict[str, Any] = {"runtime_env": {"env_vars": env}, "include_dashboard": False, "log_to_driver": True,
                          "ignore_reinit_error": True}
    if rc.ray_address:
        kw["address"] = rc.ray_address
    else:
        kw.update(num_cpus=max(cpu_count(), math.ceil(workers * rc.ray_num_cpus)),
                  _node_ip_address="127.0.0.1", object_store_memory=256 * 1024 * 1024)
    return kw


def _run_ray(pending: Pending, spec: WorkerSpec, workers: int, should_stop: Callable[[], bool],
             collect: Callable[[Any], None]) -> bool:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        import ray
        from ray.exceptions import RayActorError, RayError
    except ImportError as e:
        raise UsageError("runner.backend 'ray' needs Ray: pip install 'rupture[ray]' (or use --backend local)") from e

    rc = spec.cfg.runner
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(**ray_init_kwargs(spec, workers))
    Actor = ray.remote(num_cpus=rc.ray_num_cpus, num_gpus=rc.ray_num_gpus, max_restarts=0)(_RayWorker)
    actors: list[Any] = []
    try:
        actors = [Actor.remote(spec) for _ in range(workers)]
        try:
            pids = ray.get([a.ready.remote() for a in actors])
        except RayActorError as e:
            raise ModelError(f"a Ray worker could not load the models: {_ray_cause(e)}") from None
        log.info("Ray actor pool: %d actors (pids %s), %s CPU / %s GPU each", workers, pids, rc.ray_num_cpus,
                 rc.ray_num_gpus)
        todo = list(pending)
        idle = list(actors)
        running: dict[Any, tuple[Any, SessionJob, str | None]] = {}
        while todo or running:
            while todo and idle and not should_stop():
                job, sha = todo.pop(0)
                actor = idle.pop()
                running[actor.run.remote(job, sha)] = (actor, job, sha)
            if not running:
                break
            done, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for ref in done:
                actor, job, sha = running.pop(ref)
                try:
                    collect(ray.get(ref))
                    idle.append(actor)
                except RayActorError:
                    collect(_worker_died(job, sha, spec, "the Ray worker died while processing this session "
                                         "(out of memory or a crash); rerun to retry"))
                    actor = Actor.remote(spec)
                    actors.append(actor)
                    idle.append(actor)
                except RayError as e:
                    collect(_worker_died(job, sha, spec, f"the Ray task failed ({_ray_cause(e)}); rerun to retry"))
                    idle.append(actor)
        return bool(todo)
    finally:
        for a in actors:
            try:
                ray.kill(a)
            except Exception:  # noqa: BLE001
                pass
        if started_here:
            ray.shutdown()


def _ray_cause(e: BaseException) -> str:
    cause = getattr(e, "cause", None) or e.__cause__
    if isinstance(cause, ModelError):
        return str(cause)
    return type(cause or e).__name__
