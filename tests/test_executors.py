"""pipeline.distributed: the generic executors run any items with any worker factory (no sessions, no
models), in-process and in a local process pool, and turn a worker that dies into an outcome via `lost`."""

from __future__ import annotations

import operator
import os
from functools import partial

from pipeline.config import RunnerConfig
from pipeline.distributed import Executor, run_items

MULTIPLY = partial(partial, operator.mul)  # make_worker() -> worker(a, b) = a * b; picklable for the pool
DIE = partial(partial, os._exit)  # a worker that kills its process


def _run(items, make_worker, workers, stop=lambda: False):
    out: list = []
    interrupted = run_items(items, make_worker, Executor(RunnerConfig(workers=workers)), stop, out.append,
                            lambda item, why: ("lost", item, "died" in why))
    return out, interrupted


def test_in_process_runs_every_item_in_order():
    assert _run([(2, 3), (4, 5), (6, 7)], MULTIPLY, workers=1) == ([6, 20, 42], False)


def test_stop_flag_leaves_the_rest_undone():
    calls = iter([False, True, True])
    out, interrupted = _run([(2, 3), (4, 5), (6, 7)], MULTIPLY, workers=1, stop=lambda: next(calls))
    assert out == [6] and interrupted is True


def test_process_pool_runs_every_item():
    out, interrupted = _run([(2, 3), (4, 5), (6, 7), (8, 9)], MULTIPLY, workers=2)
    assert sorted(out) == [6, 20, 42, 72] and interrupted is False


def test_a_dead_worker_fails_only_its_items_through_lost():
    out, interrupted = _run([(3,), (4,)], DIE, workers=2)
    assert sorted(out) == [("lost", (3,), True), ("lost", (4,), True)] and interrupted is False


def test_worker_thread_settings_leave_the_config_digest_alone():
    """A pool worker's config (with_threads: thread counts, diarization chunks one at a time) must not make a
    finished session look as if it had been run with another config; a setting that changes results must."""
    import dataclasses

    from pipeline.config import Config
    from pipeline.distributed import with_threads
    from pipeline.runner import config_digest

    cfg = Config()
    worker = with_threads(cfg, 3)
    assert worker.diarization.parallel_chunks == 1 and worker.tagging.parallel_batches == 1  # the worker's differ
    assert worker.asr.cpu_threads == 3
    assert config_digest(worker) == config_digest(cfg)
    faster = dataclasses.replace(cfg, diarization=dataclasses.replace(cfg.diarization, parallel_chunks=4),
                                 tagging=dataclasses.replace(cfg.tagging, parallel_batches=4))
    assert config_digest(faster) == config_digest(cfg)
    other = dataclasses.replace(cfg, diarization=dataclasses.replace(cfg.diarization, refine_max_segment_s=0.0))
    assert config_digest(other) != config_digest(cfg)
