"""The package's structure: imports run one way (pyproject's import-linter contracts) and no module grows past
the size where it usually does two jobs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("emopy", "emopy_tfds", "pipeline", "models", "serving", "studio")
# Installed import name -> the repository folder that pyproject's package-dir maps to it.
MAPPED = {"models": "models", "pipeline": "pipeline", "serving": "serving", "studio": "studio"}
MAX_MODULE_LINES = 450


def installed_view(where: Path) -> Path:
    """The packages as a wheel lays them out (emopy/models, emopy/pipeline, ...), as links into the checkout.

    import-linter finds a package's modules by walking its one folder, and emopy's parts live in folders beside
    emopy/, joined to it only by setuptools' package-dir mapping; the linter follows links, so it reads this view.
    """
    (where / "emopy").mkdir()
    for module in (ROOT / "emopy").glob("*.py"):
        (where / "emopy" / module.name).symlink_to(module)
    for name, folder in MAPPED.items():
        (where / "emopy" / name).symlink_to(ROOT / folder, target_is_directory=True)
    (where / "emopy_tfds").symlink_to(ROOT / "emopy_tfds", target_is_directory=True)
    return where


def test_imports_run_one_way_from_the_commands_down_to_the_face_core(tmp_path):
    lint_imports = shutil.which("lint-imports")
    if lint_imports is None:
        pytest.fail("lint-imports is not installed: pip install -e '.[test]'")
    view = installed_view(tmp_path)
    result = subprocess.run([lint_imports, "--no-cache", "--config", str(ROOT / "pyproject.toml")], cwd=view,
                            env={**os.environ, "PYTHONPATH": str(view)}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_module_is_over_450_lines():
    sizes = {str(path.relative_to(ROOT)): len(path.read_text().splitlines())
             for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    assert len(sizes) > 40
    assert {path: lines for path, lines in sizes.items() if lines > MAX_MODULE_LINES} == {}
