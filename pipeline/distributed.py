"""Executors: run a list of work items in this process, in a local process pool or in a Ray actor pool,
knowing nothing about the work. The caller (pipeline.runner) hands them three callables:

    make_worker()      builds the worker where it will run (a pool process, a Ray actor, or here): it loads
                       the models once; must be picklable (a module-level class or functools.partial)
    worker(*item)      -> outcome: one item (a session), run where the worker lives
    lost(item, why)    -> outcome, in this process, for an item whose worker died (OOM killer, crash)

and `collect(outcome)` receives each outcome in this process as it arrives.

Backend choice (`RunnerConfig`): backend "local" with workers == 1 runs in-process; "local" with workers > 1
runs a `spawn` process pool; "ray" runs `workers` Ray actors (`ray_num_cpus`/`ray_num_gpus` each) on the
cluster at `ray_address` (None: a private cluster bound to 127.0.0.1, started and stopped here).

Threads: `threads_per_worker` sizes each worker (0: CPU cores // workers) so that N workers on an N-core box
do not oversubscribe the CPUs; `with_threads` folds it into a Config and `thread_env` (pipeline.process)
carries it to Ray actors (OMP_NUM_THREADS and friends). Each worker process sets its umask and logging when it
starts (`pipeline.process.init_process`), and the worker it builds sets the threads.

Stopping: `should_stop()` turning true (SIGINT/SIGTERM in the runner) stops handing out items; items already
running finish; the return value says whether any item was left undone. Local pool workers die with the
parent (PR_SET_PDEATHSIG) and ignore SIGINT (the parent decides); a worker process that dies mid-item fails
only its own item (through `lost`) and is replaced.
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
from typing import Any, Callable, Sequence

from pipeline.config import Config, RunnerConfig
from pipeline.errors import ModelError, UsageError
from pipeline.offline import OFFLINE_ENV
from pipeline.process import POOL_LOG_FORMAT, RAY_LOG_FORMAT, init_process, thread_env

log = logging.getLogger("rupture")

Item = tuple[Any, ...]
Worker = Callable[..., Any]


@dataclass(frozen=True)
class Executor:
    """Where the items run (picklable: the pool and Ray workers get it)."""

    runner: RunnerConfig
    threads: int = 0  # per worker; 0: leave the workers' thread settings alone
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
    """`cfg` with every model's thread count set to `threads` (unchanged when threads == 0); diarization's
    chunks and the tagger's encoder batches then run one at a time (`diarization.parallel_chunks`,
    `tagging.parallel_batches` 1), each on the worker's `threads`."""
    if threads <= 0:
        return cfg
    return dataclasses.replace(
        cfg, asr=dataclasses.replace(cfg.asr, cpu_threads=threads),
        diarization=dataclasses.replace(cfg.diarization, torch_threads=threads, parallel_chunks=1),
        tagging=dataclasses.replace(cfg.tagging, threads=threads, parallel_batches=1))


def run_items(items: Sequence[Item], make_worker: Callable[[], Worker], ex: Executor,
              should_stop: Callable[[], bool], collect: Callable[[Any], None],
              lost: Callable[[Item, str], Any]) -> bool:
    """Run every item on the backend `ex.runner` names; `collect(outcome)` per item. True if stopped early."""
    workers = max(1, min(ex.runner.workers, len(items)))
    if ex.runner.backend == "ray":
        return _run_ray(list(items), make_worker, ex, workers, should_stop, collect, lost)
    if workers > 1:
        return _run_pool(list(items), make_worker, ex, workers, should_stop, collect, lost)
    return _run_serial(list(items), make_worker, should_stop, collect)


# ---------------------------------------------------------------------------------------------- in-process

def _run_serial(items: list[Item], make_worker: Callable[[], Worker], should_stop: Callable[[], bool],
                collect: Callable[[Any], None]) -> bool:
    import time

    t0 = time.perf_counter()
    worker = make_worker()
    log.info("models loaded in %.1f s", time.perf_counter() - t0)
    try:
        for item in items:
            if should_stop():
                return True
            collect(worker(*item))
        return False
    finally:
        close = getattr(worker, "close", None)
        if close is not None:
            close()


# ---------------------------------------------------------------------------------------------- process pool

_WORKER: Worker | None = None
_INIT_ERROR: str | None = None


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # pragma: no cover (not Linux)
        pass


def _pool_init(make_worker: Callable[[], Worker], log_level: int) -> None:
    global _WORKER, _INIT_ERROR
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    init_process(log_level=log_level, log_format=POOL_LOG_FORMAT)
    try:
        _WORKER = make_worker()
    except ModelError as e:
        _INIT_ERROR = str(e)
    except Exception as e:  # noqa: BLE001
        _INIT_ERROR = f"{type(e).__name__} while loading the models"


def _pool_call(item: Item) -> Any:
    if _WORKER is None:
        raise ModelError(_INIT_ERROR or "the worker could not load its models")
    return _WORKER(*item)


def _run_pool(items: list[Item], make_worker: Callable[[], Worker], ex: Executor, workers: int,
              should_stop: Callable[[], bool], collect: Callable[[Any], None],
              lost: Callable[[Item, str], Any]) -> bool:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    todo = list(items)
    log.info("local process pool: %d workers, %d threads each", workers, ex.threads)
    while todo:
        broken = False
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_pool_init,
                                 initargs=(make_worker, ex.log_level)) as pool:
            running: dict[Future, Item] = {}
            while todo or running:
                while todo and len(running) < workers and not should_stop() and not broken:
                    item = todo.pop(0)
                    running[pool.submit(_pool_call, item)] = item
                if not running:
                    break
                done, _ = wait(list(running), timeout=1.0, return_when=FIRST_COMPLETED)
                for fut in done:
                    item = running.pop(fut)
                    try:
                        collect(fut.result())
                    except BrokenProcessPool:
                        broken = True
                        collect(lost(item, "the worker process died while processing this session (out of "
                                     "memory or a crash); rerun to retry"))
                    except ModelError:
                        pool.shutdown(wait=False, cancel_futures=True)
                        raise
            if should_stop():
                return bool(todo)
        if broken:
            log.warning("a worker process died; starting a fresh pool for the remaining %d sessions", len(todo))
    return False


# ---------------------------------------------------------------------------------------------- Ray

class _RayActor:
    """A Ray actor holding one worker."""

    def __init__(self, make_worker: Callable[[], Worker], log_level: int) -> None:
        init_process(log_level=log_level, log_format=RAY_LOG_FORMAT)
        self.worker = make_worker()

    def ready(self) -> int:
        return os.getpid()

    def run(self, item: Item) -> Any:
        return self.worker(*item)


def ray_init_kwargs(runner: RunnerConfig, threads: int, workers: int) -> dict[str, Any]:
    """Arguments for `ray.init`: offline/no-telemetry and thread variables reach every worker; a cluster
    started here is bound to loopback, has no dashboard and a small object store."""
    env = {**OFFLINE_ENV, **thread_env(threads), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    kw: dict[str, Any] = {"runtime_env": {"env_vars": env}, "include_dashboard": False, "log_to_driver": True,
                          "ignore_reinit_error": True}
    if runner.ray_address:
        kw["address"] = runner.ray_address
    else:
        kw.update(num_cpus=max(cpu_count(), math.ceil(workers * runner.ray_num_cpus)),
                  _node_ip_address="127.0.0.1", object_store_memory=256 * 1024 * 1024)
    return kw


def _run_ray(items: list[Item], make_worker: Callable[[], Worker], ex: Executor, workers: int,
             should_stop: Callable[[], bool], collect: Callable[[Any], None],
             lost: Callable[[Item, str], Any]) -> bool:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        import ray
        from ray.exceptions import RayActorError, RayError
    except ImportError as e:
        raise UsageError("runner.backend 'ray' needs Ray: pip install 'rupture[ray]' (or use --backend local)") from e

    rc = ex.runner
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(**ray_init_kwargs(rc, ex.threads, workers))
    Actor = ray.remote(num_cpus=rc.ray_num_cpus, num_gpus=rc.ray_num_gpus, max_restarts=0)(_RayActor)
    actors: list[Any] = []
    try:
        actors = [Actor.remote(make_worker, ex.log_level) for _ in range(workers)]
        try:
            pids = ray.get([a.ready.remote() for a in actors])
        except RayActorError as e:
            raise ModelError(f"a Ray worker could not load the models: {_ray_cause(e)}") from None
        log.info("Ray actor pool: %d actors (pids %s), %s CPU / %s GPU each", workers, pids, rc.ray_num_cpus,
                 rc.ray_num_gpus)
        todo = list(items)
        idle = list(actors)
        running: dict[Any, tuple[Any, Item]] = {}
        while todo or running:
            while todo and idle and not should_stop():
                item = todo.pop(0)
                actor = idle.pop()
                running[actor.run.remote(item)] = (actor, item)
            if not running:
                break
            done, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for ref in done:
                actor, item = running.pop(ref)
                try:
                    collect(ray.get(ref))
                    idle.append(actor)
                except RayActorError:
                    collect(lost(item, "the Ray worker died while processing this session (out of memory or a "
                                 "crash); rerun to retry"))
                    actor = Actor.remote(make_worker, ex.log_level)
                    actors.append(actor)
                    idle.append(actor)
                except RayError as e:
                    collect(lost(item, f"the Ray task failed ({_ray_cause(e)}); rerun to retry"))
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
