"""Shared fixtures: paths to the real clips, a session-scoped config, and loaded model adapters (loaded once
per test run, as the pipeline does)."""

from __future__ import annotations

import pipeline.offline  # noqa: F401

import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def _pyannote_sample_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("pyannote.audio")
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0]) / "sample"


@pytest.fixture(scope="session")
def pyannote_sample() -> dict[str, Path]:
    d = _pyannote_sample_dir()
    return {"wav": d / "sample.wav", "rttm": d / "sample.rttm", "stm": d / "sample.stm"}


@pytest.fixture(scope="session")
def stereo_clip() -> Path:
    p = SHARED / "audio" / "stereo_diarization.wav"
    if not p.exists():
        pytest.skip(f"shared stereo clip not found at {p}")
    return p


@pytest.fixture(scope="session")
def flite_synth() -> ModuleType:
    """scripts/synth.py (scripted dialogue rendered with Debian flite). Skips where flite is missing, except
    in CI (CI=true): the CI script installs flite, so a missing flite is a failure there, not a skip."""
    scripts = str(ROOT / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    import synth

    if not synth.flite_available() and not os.environ.get("CI"):
        pytest.skip("Debian flite is not installed (scripts/install_sysdeps.sh)")
    return synth


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    return ROOT / "pipeline" / "demo"


@pytest.fixture(scope="session")
def default_config():
    from pipeline.config import load_config

    return load_config(ROOT / "configs" / "default.yaml")


@pytest.fixture(scope="session")
def transcriber(default_config):
    from models.asr import Transcriber

    return Transcriber(default_config.asr, default_config.models)
