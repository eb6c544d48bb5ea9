"""Shared fixtures (paths to the real clips, a session-scoped config, model adapters loaded once per run, as
the pipeline does) and the three kinds of test.

Every test is one of three kinds, told apart by marks (registered in pyproject.toml):
  - unit (no mark): pure code on small hand-built inputs; no model store, no real weights, seconds.
    `make test-fast` runs only these, with the model store pointed at a folder that does not exist.
  - integration: needs the model store (real models on short clips). A test that needs it asks for the
    `model_store` fixture, directly or through another fixture (`transcriber`, a module's model fixture),
    and is marked `integration` automatically below; a module whose models come another way says
    `pytestmark = pytest.mark.integration` itself.
  - system: the program from outside: the CLI end to end on real clips, processes killed mid-run, a Ray
    cluster, a headless browser, the OS-level no-network trace. Marked explicitly (`pytest.mark.system`);
    one that also needs the models asks for `model_store` and so carries both marks.
`slow` (longer audio) is orthogonal to these. A unit test sees RUPTURE_MODEL_DIR pointed at a missing
folder (`_unit_tests_have_no_model_store`), so one that reaches for a model fails instead of passing here
and breaking on a machine without the store.
"""

from __future__ import annotations

import pipeline.offline  # noqa: F401

import os
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


NO_STORE = ROOT / ".no-model-store"  # never created: where unit tests look for models


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by these marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        if "model_store" in item.fixturenames:  # the whole closure: fixtures that need the store count
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _unit_tests_have_no_model_store(request, monkeypatch):
    if request.node.get_closest_marker("integration") is None and request.node.get_closest_marker("system") is None:
        monkeypatch.setenv("RUPTURE_MODEL_DIR", str(NO_STORE))


@pytest.fixture(scope="session")
def model_store() -> Path:
    """The provisioned model store (every manifest model present); asking for it makes a test `integration`.
    A missing model fails the test with the command that provisions it: `make test` fetches them first."""
    from models.store import FETCH_HINT, load_manifest, store_dir

    root = store_dir()
    missing = [name for name in load_manifest() if not (root / name).is_dir()]
    if missing:
        pytest.fail(f"models {missing} not in the store {root}: {FETCH_HINT}")
    from pipeline.config import load_config
    from pipeline.process import set_threads

    set_threads(load_config())  # as a worker does before it loads models (adapters leave threads alone)
    return root


@pytest.fixture(scope="session")
def transcriber(model_store, default_config):
    from models.asr import Transcriber

    return Transcriber(default_config.asr, default_config.models)
