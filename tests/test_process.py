"""Process-wide settings (pipeline.process): made once per process by the CLI and the session worker."""

from __future__ import annotations

import os

from pipeline.config import load_config
from pipeline.distributed import with_threads
from pipeline.process import init_process, thread_env, torch_threads


def test_torch_threads_one_count_per_process_from_the_config() -> None:
    cfg = load_config()
    assert torch_threads(cfg) == 1  # diarization.torch_threads: 1 on a shared 2-core machine
    assert torch_threads(load_config(overrides={"tagging": {"threads": 3}})) == 3  # the tagger's, when set
    assert torch_threads(load_config(overrides={"tagging": {"threads": 3, "enabled": False}})) == 1
    assert torch_threads(load_config(overrides={"diarization": {"torch_threads": 0}})) == 1
    assert torch_threads(with_threads(cfg, 4)) == 4  # runner.threads_per_worker replaces them all
    assert thread_env(0) == {} and set(thread_env(2).values()) == {"2"}


def test_init_process_sets_an_owner_only_umask(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        init_process()
        (tmp_path / "f").write_text("x")
        (tmp_path / "d").mkdir()
        assert (tmp_path / "f").stat().st_mode & 0o077 == 0 and (tmp_path / "d").stat().st_mode & 0o077 == 0
        assert os.environ["HF_HUB_OFFLINE"] == "1"
    finally:
        os.umask(old)
