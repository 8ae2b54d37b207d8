"""The `emopy` console script as users run it: landmarks on photos, and the quick start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest


def emopy(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["emopy", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_landmarks_json_for_one_photo(photo_files, astronaut_face):
    result = emopy("landmarks", photo_files["astronaut.png"], "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["image"] == photo_files["astronaut.png"]
    (face,) = record["faces"]
    assert face["box"] == list(astronaut_face.box)
    assert len(face["landmarks"]) == 68 and all(len(point) == 2 for point in face["landmarks"])
    assert face["landmarks"][30] == astronaut_face.landmarks[30].tolist()


def test_landmarks_on_a_photo_without_a_face_is_an_empty_list(photo_files):
    result = emopy("landmarks", photo_files["blank.png"], "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"image": photo_files["blank.png"], "faces": []}


def test_unreadable_files_are_reported_in_one_line_after_the_others(photo_files, tmp_path):
    annotated = tmp_path / "out.png"
    images = [photo_files["corrupt.jpg"], photo_files["astronaut.png"], photo_files["blank.png"]]
    result = emopy("landmarks", *images, "--json", "--annotate", str(annotated))
    assert result.returncode == 1
    records = json.loads(result.stdout)
    assert [r["image"] for r in records] == images[1:]
    assert [len(r["faces"]) for r in records] == [1, 0]
    error_lines = result.stderr.strip().splitlines()
    assert len(error_lines) == 1 and "Traceback" not in result.stderr
    assert photo_files["corrupt.jpg"] in error_lines[0]
    # With several photos, each gets OUT-<photo>.png.
    assert (tmp_path / "out-astronaut.png").is_file() and (tmp_path / "out-blank.png").is_file()


def test_annotate_draws_boxes_and_points_on_a_copy(photo_files, tmp_path, astronaut, astronaut_face):
    annotated = tmp_path / "annotated.png"
    result = emopy("landmarks", photo_files["astronaut.png"], "--annotate", str(annotated))
    assert result.returncode == 0, result.stderr
    assert "1 face" in result.stdout
    picture = cv2.cvtColor(cv2.imread(str(annotated)), cv2.COLOR_BGR2RGB)
    assert picture.shape == astronaut.shape
    x, y, w, h = astronaut_face.box
    changed = (picture != astronaut).any(axis=2)
    assert changed[y, x : x + w].mean() > 0.9  # the box's top edge
    assert changed.mean() < 0.05  # and little else


def test_missing_landmark_model_is_one_clear_line(photo_files, tmp_path):
    result = emopy("landmarks", photo_files["astronaut.png"], "--landmark-model", str(tmp_path / "none.dat"))
    assert result.returncode == 2
    assert "none.dat" in result.stderr and "Traceback" not in result.stderr


def test_a_small_quickstart_runs_the_whole_pipeline(tmp_path):
    """build -> train -> evaluate -> export -> serve -> predict over gRPC, on 10 synthetic faces per class."""
    workdir = tmp_path / "qs"
    script = f"import sys; from pipeline import quickstart; sys.exit(quickstart.run({str(workdir)!r}, per_class=10, epochs=2))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for step in range(1, 8):
        assert f"{step}/7 " in result.stdout
    assert "SYNTHETIC" in (workdir / "synthetic_fer2013" / "README.txt").read_text()
    assert (workdir / "run" / "model.keras").exists() and (workdir / "export" / "1" / "saved_model.pb").exists()
    assert (workdir / "run" / "confusion-test.png").read_bytes()[:4] == b"\x89PNG"
    predictions = json.loads((workdir / "astronaut_emotions.json").read_text())
    assert len(predictions) == 1 and sum(predictions[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert cv2.imread(str(workdir / "astronaut_emotions.png")).shape == (320, 320, 3)
    assert "over gRPC" in result.stdout and "test accuracy" in result.stdout


@pytest.mark.parametrize("argv", [["--help"], ["landmarks", "--help"], ["quickstart", "--help"]])
def test_help(argv):
    result = emopy(*argv)
    assert result.returncode == 0 and "usage: emopy" in result.stdout
