"""`import emopy`: installed names that a user's own models.py, serving/ or pipeline/ cannot shadow, and a public
API that loads nothing heavy until it is used."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import emopy
from emopy.serving import shipped
from emopy.serving.tables import LEADING_COLUMNS, probability_columns
from emopy_tfds.data import sample_photo

HEAVY = ("tensorflow", "tf_keras", "cv2", "dlib", "tensorflow_datasets", "pandas", "emopy_tfds")


@pytest.fixture(scope="module")
def users_project(tmp_path_factory) -> Path:
    """A folder like many ML projects: its own models.py, serving/ and pipeline/, each failing loudly if imported."""
    folder = tmp_path_factory.mktemp("users_project")
    trap = "raise ImportError('the user\\'s own {} was imported instead of emopy\\'s')\n"
    (folder / "models.py").write_text(trap.format("models.py"))
    for package in ("serving", "pipeline", "models_unused"):
        (folder / package).mkdir()
        (folder / package / "__init__.py").write_text(trap.format(package))
    return folder


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    # `python -c` puts the working directory first on sys.path: the user's modules shadow any same-named ones.
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_emopy_predicts_from_a_folder_with_its_own_models_serving_and_pipeline(users_project):
    result = run_python(f"""
        import json, emopy
        from emopy.serving.recognizer import Recognizer
        table = emopy.predict({str(sample_photo())!r})
        recognizer = Recognizer.default()
        print(json.dumps({{"emotion": table.top_emotion.tolist(), "classes": list(recognizer.classes)}}))
        """, users_project)
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["emotion"] == ["happy"]
    assert "contempt" in answer["classes"]


def test_the_emopy_command_runs_from_that_folder_too(users_project):
    result = subprocess.run(["emopy", "predict", str(sample_photo())], cwd=users_project, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "happy" in result.stdout


def test_import_emopy_is_fast_and_loads_nothing_heavy(users_project):
    result = run_python(f"""
        import sys, time
        start = time.perf_counter()
        import emopy
        seconds = time.perf_counter() - start
        print(seconds, [name for name in {HEAVY!r} if name in sys.modules], emopy.__version__)
        """, users_project)
    assert result.returncode == 0, result.stderr[-3000:]
    seconds, loaded, version = result.stdout.split(maxsplit=2)
    assert float(seconds) < 1.0
    assert loaded == "[]"
    assert version.strip() not in ("", "0+unknown")


def test_predict_takes_arrays_and_bytes_and_returns_the_commands_columns():
    photo = sample_photo()
    from_path = emopy.predict(photo)
    from_bytes = emopy.predict(photo.read_bytes())
    from emopy_tfds import faces

    from_array = emopy.predict(faces.load_image(photo), model="ferplus")
    assert list(from_path.columns[:len(LEADING_COLUMNS)]) == list(LEADING_COLUMNS)
    assert list(from_bytes.columns) == list(from_path.columns) == list(from_array.columns)
    columns = probability_columns(from_path) + ["top_emotion"]
    assert len(columns) == 9  # the default model's eight classes
    pd.testing.assert_frame_equal(from_bytes[columns], from_path[columns])
    pd.testing.assert_frame_equal(from_array[columns], from_path[columns])
    with pytest.raises(TypeError, match="video files only"):
        emopy.predict(photo.read_bytes(), every=2)


def test_predict_takes_the_face_detector():
    from skimage import data

    astronaut = data.astronaut()
    for detector in ("blazeface", "hog"):
        rows = emopy.predict(astronaut, detector=detector)
        assert len(rows) == 1, detector
    # A blank photo has no face for any of them.
    assert len(emopy.predict(np.full((240, 320, 3), 128, np.uint8), detector="blazeface")) == 0
    with pytest.raises(ValueError, match="unknown face detector 'haar'"):
        emopy.predict(astronaut, detector="haar")


def test_predict_returns_the_rows_the_emopy_predict_command_writes(tmp_path):
    from emopy.pipeline import cli

    written = tmp_path / "rows.parquet"
    assert cli.main(["predict", str(sample_photo()), "--output", str(written)]) == 0
    from_command = pd.read_parquet(written)
    from_api = emopy.predict(sample_photo())
    assert list(from_api.columns) == list(from_command.columns)
    columns = probability_columns(from_api)
    np.testing.assert_allclose(from_api[columns].to_numpy(), from_command[columns].to_numpy(), atol=1e-6)
    assert from_api["top_emotion"].tolist() == from_command["top_emotion"].tolist()
    assert [tuple(box) for box in from_api["box"]] == [tuple(box) for box in from_command["box"]]


def test_the_public_names():
    assert emopy.Recognizer.__name__ == "Recognizer"
    assert tuple(sorted(emopy.SHIPPED_MODELS)) == tuple(sorted(shipped.SHIPPED))
    assert emopy.labels.FER2013[3] == "happy" and "contempt" in emopy.labels.FER2013_CONTEMPT
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        emopy.nothing  # noqa: B018
