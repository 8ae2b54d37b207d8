"""Pixel scaling and landmark features have one home, models/preprocessing.py: nothing else may do either.

Structural, so it fails as soon as someone scales pixels or computes landmark features anywhere else, however
the rest of the suite fares: every model would then see numbers that training, export and prediction no
longer compute the same way.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("emopy_tfds", "pipeline", "models", "serving", "benchmarks")
HOME = ROOT / "models" / "preprocessing.py"
# Files that reproduce another project's preprocessing, to measure that project's model, not emopy's.
OTHER_PROJECTS = {ROOT / "benchmarks" / "default_model.py": "the fer package's own input scaling"}

# Scaling uint8 pixels to floats: dividing by 255 (or multiplying by its inverse), Keras' Rescaling layer, or
# TensorFlow's dtype conversion, which scales when it turns integers into floats.
PIXEL_SCALING = re.compile(r"/\s*255\b|1\.?0*\s*/\s*255|Rescaling\(|convert_image_dtype\(")
# The landmark features: their function and layer, and the feature names only they produce.
LANDMARK_FEATURES = re.compile(r"\blandmark_features\(|LandmarkFeatures\(|landmark_distances|landmark_angles"
                               r"|landmark_points")


def _modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
                  if path != HOME and path not in OTHER_PROJECTS)


def _offending_lines(pattern: re.Pattern) -> list[str]:
    found = []
    for path in _modules():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if pattern.search(code):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def test_the_scan_covers_the_package():
    names = {str(path.relative_to(ROOT)) for path in _modules()}
    assert {"pipeline/data.py", "serving/export.py", "serving/predict.py"} <= names


@pytest.mark.parametrize("pattern", [PIXEL_SCALING, LANDMARK_FEATURES], ids=["pixel scaling", "landmark features"])
def test_only_the_models_preprocessing_module_does_it(pattern):
    assert _offending_lines(pattern) == []
    assert pattern.search(HOME.read_text()), "the patterns no longer match the home itself: update them"
