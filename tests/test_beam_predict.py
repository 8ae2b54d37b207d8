"""`emopy predict --beam`: the Beam pipeline on the real DirectRunner with the shipped default model, against
`emopy predict` on the same real photos (scikit-image's astronaut, the package's photo), a short video, a photo
without a face and a corrupt file."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emopy_tfds.data import sample_photo
from emopy.pipeline import cli
from emopy.pipeline.build import IN_MEMORY, beam_flags
from emopy.serving import beam_predict, predict

# One in-process worker: the same pipeline, without starting worker processes (one multi-process test below).
IN_PROCESS = beam_flags(1, IN_MEMORY)
KEY = ["file", "frame", "face_id"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, astronaut) -> Path:
    """A folder of what a batch meets: two real photos of a face, a 4-frame video of one, a photo without a
    face, a corrupt JPEG, and a text file that a glob of media leaves out."""
    folder = tmp_path_factory.mktemp("beam_inputs")
    bgr = cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(folder / "astronaut.png"), bgr)
    shutil.copy(sample_photo(), folder / "package.jpg")
    cv2.imwrite(str(folder / "blank.png"), np.full((240, 320, 3), 200, np.uint8))
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG" * 10)
    (folder / "notes.txt").write_text("not a photo\n")
    writer = cv2.VideoWriter(str(folder / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (320, 320))
    for index in range(4):
        writer.write(np.ascontiguousarray(bgr[0:320, 60 + 3 * index:380 + 3 * index]))
    writer.release()
    return folder


@pytest.fixture(scope="module")
def expected(inputs, tmp_path_factory) -> tuple[int, pd.DataFrame, Path]:
    """`emopy predict GLOB --output rows.parquet`: its exit status, rows and file."""
    output = tmp_path_factory.mktemp("predict") / "rows.parquet"
    status = predict.run([str(inputs / "*")], output=str(output), stdout=io.StringIO(), stderr=io.StringIO())
    return status, pd.read_parquet(output), output


@pytest.fixture(scope="module")
def beam_run(inputs, tmp_path_factory) -> tuple[int, str, str, Path]:
    """`emopy predict --beam` on the same glob: exit status, stdout, stderr and the output folder."""
    output = tmp_path_factory.mktemp("beam") / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    status = beam_predict.run([str(inputs / "*")], str(output), IN_PROCESS, stdout=stdout, stderr=stderr)
    return status, stdout.getvalue(), stderr.getvalue(), output


def _sorted(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.sort_values(KEY, ignore_index=True)


def test_rows_equal_emopy_predicts_in_the_same_columns(beam_run, expected):
    _, _, _, output = beam_run
    _, reference, reference_file = expected
    rows, _, _ = beam_predict.read_outputs(str(output))
    rows, reference = _sorted(rows), _sorted(reference)
    assert list(rows.columns) == list(reference.columns)
    assert set(rows["file"]) == set(reference["file"]) and len(rows) == len(reference) == 2 + 4
    classes = predict.probability_columns(reference)
    np.testing.assert_allclose(rows[classes].to_numpy(), reference[classes].to_numpy(), rtol=0, atol=1e-5)
    affect = ["valence", "arousal", "positive_valence", "negative_valence"]
    np.testing.assert_allclose(rows[["time", *affect]].to_numpy(), reference[["time", *affect]].to_numpy(),
                               rtol=0, atol=1e-5)
    for column in ("file", "frame", "face_id", "top_emotion", "coarse_label"):
        assert rows[column].tolist() == reference[column].tolist(), column
    assert [list(box) for box in rows["box"]] == [list(box) for box in reference["box"]]
    for ours, theirs in zip(rows["landmarks"], reference["landmarks"]):
        np.testing.assert_array_equal(np.stack(ours), np.stack(theirs))
    # The Parquet files themselves: the same Arrow schema as emopy predict's file (pandas' metadata aside).
    (shard,) = output.glob("predictions-*.parquet")
    assert pq.read_schema(shard).equals(pq.read_schema(reference_file), check_metadata=False)
    # The unipolar valences are float columns holding numbers in [0, 1], valence their difference.
    schema = pq.read_schema(shard)
    for column in ("positive_valence", "negative_valence"):
        assert schema.field(column).type == pa.float64(), column
        assert rows[column].between(0.0, 1.0).all(), column
    np.testing.assert_allclose(rows["valence"], rows["positive_valence"] - rows["negative_valence"], atol=1e-12)


def test_every_file_lands_in_exactly_one_output_and_nothing_is_dropped(beam_run, expected, inputs):
    status, stdout, stderr, output = beam_run
    reference_status, reference, _ = expected
    rows, no_face, errors = beam_predict.read_outputs(str(output))
    media = sorted(str(path) for path in inputs.iterdir() if path.suffix != ".txt")
    with_faces = sorted(set(rows["file"]))
    assert sorted(with_faces + [r["file"] for r in no_face] + [r["file"] for r in errors]) == media
    # As emopy predict: the photo without a face has no row (it is listed in no_face-*.jsonl), the corrupt file
    # makes the exit status 1 and is named with its reason.
    assert no_face == [{"file": str(inputs / "blank.png")}]
    assert str(inputs / "blank.png") not in set(reference["file"])
    assert errors == [{"file": str(inputs / "corrupt.jpg"),
                       "reason": "not a readable image (corrupt or unsupported format)"}]
    assert status == reference_status == 1
    assert f"emopy: error: {inputs / 'corrupt.jpg'}: not a readable image" in stderr
    assert stdout.startswith("5 file(s): 3 with faces (6 rows)") and "1 without a face" in stdout
    assert "1 unreadable" in stdout
    assert sorted(path.name for path in output.iterdir()) == [
        "errors-00000-of-00001.jsonl", "no_face-00000-of-00001.jsonl", "predictions-00000-of-00001.parquet"]
    assert json.loads((output / "errors-00000-of-00001.jsonl").read_text())["file"] == str(inputs / "corrupt.jpg")


def test_an_earlier_run_is_never_mixed_in_or_replaced_without_overwrite(beam_run, inputs, tmp_path):
    _, _, _, output = beam_run
    stderr = io.StringIO()
    status = beam_predict.run([str(inputs / "*")], str(output), IN_PROCESS, stderr=stderr)
    assert status == 2 and "holds an earlier run's outputs" in stderr.getvalue()
    assert "--overwrite" in stderr.getvalue() and len(stderr.getvalue().strip().splitlines()) == 1
    # --overwrite removes the earlier shards first, so a run on fewer files leaves none of the old rows.
    copy = tmp_path / "out"
    shutil.copytree(output, copy)
    status = beam_predict.run([str(inputs / "package.jpg")], str(copy), IN_PROCESS, overwrite=True,
                              stdout=io.StringIO(), stderr=io.StringIO())
    rows, no_face, errors = beam_predict.read_outputs(str(copy))
    assert status == 0 and set(rows["file"]) == {str(inputs / "package.jpg")} and not no_face and not errors


@pytest.mark.parametrize("argv, message", [
    (["MISSING/*.jpg"], "MISSING/*.jpg: no images or videos match"),
    (["MISSING.jpg"], "MISSING.jpg: no such file"),
    (["INPUTS/*", "--webcam", "0"], "--webcam does not go with --beam"),
    (["INPUTS/*", "--server", "localhost:8500"], "--server does not go with --beam"),
    (["INPUTS/*", "--annotate", "out.png"], "--annotate does not go with --beam"),
    (["INPUTS/*"], "--beam writes Parquet shards: give --output DIR"),
    (["INPUTS/*", "--model", "no-such-model"], "no-such-model: neither a model emopy ships"),
])
def test_cli_refusals_are_one_line_before_any_worker_starts(inputs, tmp_path, capsys, argv, message):
    def real(text: str) -> str:
        return text.replace("INPUTS", str(inputs)).replace("MISSING", str(tmp_path / "missing"))

    argv, message = [real(arg) for arg in argv], real(message)
    output = [] if "give --output" in message else ["--output", str(tmp_path / "out")]
    status = cli.main(["predict", "--beam", "runner=DirectRunner", *argv, *output])
    error = capsys.readouterr().err.strip()
    assert status == 2 and error.startswith("emopy: error: ") and message in error, error
    assert len(error.splitlines()) == 1 and not (tmp_path / "out").exists()


@pytest.mark.scale  # 2 Beam worker processes, about 35 s: CI runs it with the scale checks
def test_two_local_worker_processes_through_the_command_line(inputs, beam_run, tmp_path):
    """The real `emopy` command, multi_processing DirectRunner with two workers: the same rows and outputs."""
    _, _, _, in_process = beam_run
    output = tmp_path / "out"
    emopy = Path(sys.executable).parent / "emopy"
    result = subprocess.run([str(emopy), "predict", "--beam", "runner=DirectRunner,direct_num_workers=2",
                             str(inputs), "--output", str(output)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stdout.startswith("5 file(s): 3 with faces (6 rows)")
    assert f"emopy: error: {inputs / 'corrupt.jpg'}: not a readable image" in result.stderr
    rows, no_face, errors = beam_predict.read_outputs(str(output))
    expected_rows, expected_no_face, expected_errors = beam_predict.read_outputs(str(in_process))
    pd.testing.assert_frame_equal(_sorted(rows), _sorted(expected_rows), check_exact=False, atol=1e-5, rtol=0)
    assert (no_face, errors) == (expected_no_face, expected_errors)
