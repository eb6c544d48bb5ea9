"""The import contracts in pyproject.toml ([tool.importlinter]) hold: `lint-imports` exits 0 from the repo root.

Today's contracts: the runtime packages `pipeline` and `models` never import research code (scripts/research),
any scripts/ module or a test-only library; the layers (CLI, batch, session, stages, model adapters, core)
import only downward; and a session run (`pipeline.cli`) never reaches the evaluation module
`pipeline.scoring`. A copy of the runtime with one deliberate forbidden or upward import must break them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports() -> str:
    exe = Path(sys.executable).with_name("lint-imports")
    found = str(exe) if exe.exists() else shutil.which("lint-imports")
    assert found, "lint-imports not found: install the test extra (pip install -e '.[test]')"
    return found


def _run(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_lint_imports(), "--no-cache", "--no-logo"], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_import_contracts_hold() -> None:
    done = _run(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_contract_forbids_every_script_module() -> None:
    """Scripts are imported by their bare names (scripts/ on sys.path), so the contract lists them one by
    one: a new script must be added to it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    runtime = next(c for c in contracts if set(c["source_modules"]) == {"pipeline", "models"})
    scripts = {p.stem for p in (ROOT / "scripts").glob("*.py")}
    missing = scripts - set(runtime["forbidden_modules"])
    assert not missing, f"add to the forbidden_modules of '{runtime['name']}': {sorted(missing)}"
    assert {"research", "scripts", "jiwer", "pytest", "hypothesis", "sklearn"} <= set(runtime["forbidden_modules"])


def _runtime_copy(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess[str]:
    """lint-imports on a copy of the runtime sources with `line` appended to `module` (a path)."""
    def py_only(folder: str, names: list[str]) -> list[str]:  # the sources only: no models, data, caches
        return [n for n in names if n in ("__pycache__", "store") or
                (not n.endswith(".py") and not (Path(folder) / n).is_dir())]

    for package in ("pipeline", "models"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=py_only)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # deliberate\n", encoding="utf-8")
    return _run(tmp_path)


def test_a_forbidden_import_breaks_the_contract(tmp_path: Path) -> None:
    done = _runtime_copy(tmp_path, "pipeline/records.py", "import research.tagger_train")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "pipeline.records -> research" in done.stdout and "1 broken" in done.stdout, done.stdout


def test_an_upward_import_breaks_the_layers(tmp_path: Path) -> None:
    """A model adapter importing a stage (as models.tagger once imported pipeline.tagging)."""
    done = _runtime_copy(tmp_path, "models/store.py", "import pipeline.tagging")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "models.store -> pipeline.tagging" in done.stdout and "1 broken" in done.stdout, done.stdout
