"""The package's structure: imports run one way (pyproject's import-linter contracts) and no module grows past
the size where it usually does two jobs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("emopy_tfds", "pipeline", "models", "serving")
MAX_MODULE_LINES = 450


def test_imports_run_one_way_from_the_commands_down_to_the_face_core():
    lint_imports = shutil.which("lint-imports")
    if lint_imports is None:
        pytest.fail("lint-imports is not installed: pip install -e '.[test]'")
    result = subprocess.run([lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_module_is_over_450_lines():
    sizes = {str(path.relative_to(ROOT)): len(path.read_text().splitlines())
             for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    assert len(sizes) > 40
    assert {path: lines for path, lines in sizes.items() if lines > MAX_MODULE_LINES} == {}
