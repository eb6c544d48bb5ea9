"""Process-wide settings, made once per process by whoever starts it; nothing else changes them.

    init_process(log_level=...)        the CLI, when it starts; a pool process or a Ray actor, when it starts
    init_process(cfg=..., threads=...) the session worker, when it is built (in the CLI's process, a pool
                                       process or a Ray actor alike), before it loads the models
A script that builds model adapters or a `SessionProcessor` itself is its own entry point: it calls
`set_threads(cfg)` (the tests' `model_store` fixture does too). Model adapters take their settings as
arguments (`asr.cpu_threads` is a CTranslate2 model argument) and never change the process.

What is set:
- umask 0o077: everything rupture creates is owner-only (writers also pass explicit modes);
- the offline and no-telemetry variables (pipeline.offline);
- logging: one format per kind of process, the libraries' chatter off, warnings off;
- threads: torch has one intra-op thread count per process, shared by every stage that uses torch
  (diarization and the tagger's encoder); `torch_threads` decides it. `runner.threads_per_worker` (or its
  default, cores // workers, when workers > 1) overrides every thread setting of a worker and also sets
  OMP_NUM_THREADS and friends and one inter-op thread.
"""

from __future__ import annotations

import logging
import os
import sys

from pipeline.config import Config
from pipeline.offline import apply_offline_env

CLI_LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
POOL_LOG_FORMAT = "%(asctime)s %(levelname)s [worker %(process)d] %(message)s"
RAY_LOG_FORMAT = "%(levelname)s %(message)s"
NOISY_LOGGERS = ("faster_whisper", "pytorch_lightning", "lightning", "pyannote", "speechbrain", "numba",
                 "urllib3", "filelock", "httpx")
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS")


def init_process(*, log_level: int | None = None, log_format: str = CLI_LOG_FORMAT, cfg: Config | None = None,
                 threads: int = 0) -> None:
    """Umask and offline variables always; logging when `log_level` is given; threads when `cfg` is given
    (`threads`: the worker's `runner.threads_per_worker`, already folded into `cfg`; 0: none)."""
    os.umask(0o077)
    apply_offline_env()
    if log_level is not None:
        _set_logging(log_level, log_format)
    if cfg is not None:
        set_threads(cfg, threads)


def _set_logging(level: int, fmt: str) -> None:
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore")


def torch_threads(cfg: Config) -> int:
    """torch's intra-op thread count for a process that runs `cfg`: `tagging.threads` when the tagger runs and
    it is set, else `diarization.torch_threads` (1 by default: see its comment in pipeline.config)."""
    if cfg.tagging.enabled and cfg.tagging.threads > 0:
        return cfg.tagging.threads
    return max(1, cfg.diarization.torch_threads)


def thread_env(threads: int) -> dict[str, str]:
    """OMP_NUM_THREADS and friends for a worker of `threads` threads (none when 0)."""
    return {k: str(threads) for k in THREAD_ENV} if threads > 0 else {}


def set_threads(cfg: Config, threads: int = 0) -> None:
    """torch's thread counts for this process (see the module docstring)."""
    import torch

    os.environ.update(thread_env(threads))
    torch.set_num_threads(torch_threads(cfg))
    if threads > 0:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set in this process
            pass
