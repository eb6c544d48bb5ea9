import shutil

import pytest

from models import store
from pipeline.errors import ModelError, ModelIntegrityError


def test_all_manifest_models_are_provisioned_and_verify(model_store):
    for name in store.load_manifest():
        r = store.resolve(name)
        assert r.path.is_dir() and len(r.info.sha256) == 64


def test_tampered_weight_file_is_refused_before_loading(model_store, tmp_path):
    """Copy one model into a private store, flip one byte: resolve() must raise before anything loads it."""
    spec = store.load_manifest()["campplus"]
    src = store.resolve("campplus").path
    dst = tmp_path / "campplus"
    shutil.copytree(src, dst)
    store.resolve("campplus", str(tmp_path))  # intact copy verifies
    f = dst / spec.files[0].name
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="integrity"):
        store.resolve("campplus", str(tmp_path))


def test_missing_model_names_the_fetch_command(tmp_path):
    with pytest.raises(ModelError, match="rupture models fetch"):
        store.resolve("whisper-tiny-en", str(tmp_path))


def test_user_directory_is_accepted_and_hashed(tmp_path):
    d = tmp_path / "mymodel"
    d.mkdir()
    (d / "a.bin").write_bytes(b"123")
    r = store.resolve(str(d))
    assert r.info.version == "local" and len(r.info.sha256) == 64
    with pytest.raises(ModelError, match="unknown model"):
        store.resolve(str(tmp_path / "nope"))


def test_asr_adapter_refuses_tampered_store(model_store, tmp_path):
    from models.asr import Transcriber
    from pipeline.config import Config, replace

    shutil.copytree(store.resolve("whisper-tiny-en").path, tmp_path / "whisper-tiny-en")
    (tmp_path / "whisper-tiny-en" / "config.json").write_text("{}")
    cfg = replace(Config(), models={"store": str(tmp_path), "asr": "whisper-tiny-en"})
    with pytest.raises(ModelIntegrityError):
        Transcriber(cfg.asr, cfg.models)
