"""`emopy predict` and serving.predict.Recognizer on a real export: photos, videos, capture streams, a server.

The export is of an untrained multi_input model (image + landmarks) written by serving/export.py itself, so
every step (detection, the export's FaceSpec, the landmark input, the pixels signature) is the real one,
without building datasets or training first.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from emopy_tfds import faces, labels
from emopy.pipeline import cli
from emopy.serving import predict, tables

CLASSES = list(labels.FER2013)
COLUMNS = [*predict.LEADING_COLUMNS, *CLASSES, *predict.TRAILING_COLUMNS]
VIDEO_FRAMES, VIDEO_FPS = 20, 10.0


@pytest.fixture(scope="module")
def export_base(tmp_path_factory) -> Path:
    """BASE/1: `emopy export` of an untrained multi_input model for fer2013's classes (the session's, shared with
    the serving tests)."""
    from serving_fixtures import write_test_model

    base = tmp_path_factory.mktemp("exports") / "emotion"
    write_test_model(base, 1, landmarks=True)
    return base


@pytest.fixture(scope="module")
def recognizer(export_base) -> predict.Recognizer:
    return predict.Recognizer.from_export(export_base)  # BASE: its highest version


@pytest.fixture(scope="module")
def video(tmp_path_factory, astronaut) -> Path:
    """20 frames (10 fps) of a 320x320 window sliding 3 px a frame across the astronaut's face."""
    path = tmp_path_factory.mktemp("videos") / "sliding.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS, (320, 320))
    bgr = cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR)
    for index in range(VIDEO_FRAMES):
        writer.write(np.ascontiguousarray(bgr[0:320, 60 + 3 * index:380 + 3 * index]))
    writer.release()
    return path


@pytest.fixture(scope="module")
def photo_table(recognizer, photo_files) -> pd.DataFrame:
    return recognizer.predict(photo_files["astronaut.png"])


def _probabilities(table: pd.DataFrame) -> np.ndarray:
    return table[CLASSES].to_numpy(dtype=np.float64)


# --- Recognizer -----------------------------------------------------------------------------------------


def test_a_photo_gives_one_row_per_face_with_the_documented_columns(recognizer, photo_table, photo_files,
                                                                     astronaut_face):
    assert recognizer.classes == tuple(CLASSES) and recognizer.label_set == "fer2013"
    assert recognizer.face_spec == faces.FaceSpec(crop_size=48) and recognizer.inputs.uses_landmarks
    assert list(photo_table.columns) == COLUMNS
    (row,) = photo_table.to_dict("records")
    assert row["file"] == photo_files["astronaut.png"] and row["frame"] == 0 and row["time"] == 0.0
    assert row["face_id"] == 0
    x, y, w, h = row["box"]
    assert row["box"] == tuple(astronaut_face.box) and 0 <= x and 0 <= y and x + w <= 512 and y + h <= 512
    np.testing.assert_array_equal(row["landmarks"], astronaut_face.landmarks)
    probabilities = _probabilities(photo_table)[0]
    assert np.all(probabilities >= 0) and probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert row["top_emotion"] == CLASSES[int(np.argmax(probabilities))]
    expected = labels.expected_affect(probabilities, "fer2013")
    assert (row["valence"], row["arousal"], row["positive_valence"], row["negative_valence"]) == pytest.approx(
        tuple(expected))
    assert 0 <= row["positive_valence"] <= 1 and 0 <= row["negative_valence"] <= 1
    assert row["valence"] == row["positive_valence"] - row["negative_valence"]
    assert row["coarse_label"] == labels.SCHEMES["pos_neg_neu"].class_of(row["top_emotion"])


def test_a_photo_without_faces_gives_an_empty_table_with_the_same_columns(recognizer, photo_files):
    table = recognizer.predict(photo_files["blank.png"])
    assert table.empty and list(table.columns) == COLUMNS


def test_local_and_served_predictions_agree(export_base, photo_files, photo_table):
    from emopy.serving.local_server import ModelServer

    with ModelServer(export_base, "emotion", port=0) as server:
        with predict.Recognizer.from_server(f"127.0.0.1:{server.ports.grpc}", "emotion") as served:
            # Class names from a Classify call and the FaceSpec from the signature's shapes: as exported.
            assert served.classes == tuple(CLASSES) and served.face_spec == faces.FaceSpec(crop_size=48)
            # The server's pixel limit is not learnt: the photo reader's applies, unless one is given.
            assert served.max_pixels == faces.MAX_IMAGE_PIXELS
            table = served.predict(photo_files["astronaut.png"])
        with predict.Recognizer.from_server(f"127.0.0.1:{server.ports.grpc}", "emotion", max_pixels=100) as small:
            with pytest.raises(ValueError, match="pixels"):
                small.predict(photo_files["astronaut.png"])
    assert list(table.columns) == COLUMNS and table["box"].tolist() == photo_table["box"].tolist()
    np.testing.assert_allclose(_probabilities(table), _probabilities(photo_table), atol=1e-4)
    # The server answers probabilities only; the rows' affect columns are computed here, as for a local export.
    affect = ["valence", "arousal", "positive_valence", "negative_valence"]
    np.testing.assert_allclose(table[affect].to_numpy(np.float64), photo_table[affect].to_numpy(np.float64),
                               atol=1e-4)


def test_a_video_gives_rows_for_every_kth_frame_with_one_stable_face_id(recognizer, video):
    table = recognizer.predict(video, every=2)
    assert list(table.columns) == COLUMNS
    assert table["frame"].tolist() == list(range(0, VIDEO_FRAMES, 2))  # one face in each sampled frame
    assert set(table["face_id"]) == {0} and set(table["file"]) == {str(video)}
    np.testing.assert_allclose(table["time"], table["frame"] / VIDEO_FPS)
    np.testing.assert_allclose(_probabilities(table).sum(axis=1), 1.0, atol=1e-5)
    # The window slides right, so the face's box moves left by about 3 px a frame.
    assert table["box"].iloc[-1][0] < table["box"].iloc[0][0] - 30


def test_frames_classified_ahead_give_the_rows_of_one_frame_at_a_time(recognizer, video):
    # Frames are classified on worker threads a few ahead: the rows must still be each frame's own, in order.
    capture, frames = cv2.VideoCapture(str(video)), []
    while (read := capture.read())[0]:
        frames.append(read[1])
    capture.release()
    table = recognizer.predict_video(video, every=3)
    sampled = [cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) for frame in frames[::3]]
    one_by_one = [recognizer.predict_frame(rgb)["landmarks"].iloc[0] for rgb in sampled]
    assert table["frame"].tolist() == list(range(0, len(frames), 3))
    for index, row in table.iterrows():
        points = np.asarray(row["landmarks"])
        # The frame's own face: its landmarks are those a search of that frame alone gives (the video looks for a
        # followed face only near its last box, so they may differ by a fraction of a pixel), not a neighbour's
        # (the face slides 9 px between sampled frames).
        distances = [np.abs(points - np.asarray(other)).mean() for other in one_by_one]
        assert int(np.argmin(distances)) == index and distances[index] < 0.02 * row["box"][2]
        # And its probabilities are those of the crop those landmarks cut from that frame.
        aligned = faces.align_face(sampled[index], points, recognizer.crop_spec)
        np.testing.assert_allclose(recognizer.classify_crops([aligned.image], aligned.landmarks[np.newaxis])[0],
                                   row[CLASSES].to_numpy(dtype=float), atol=1e-6)


def test_a_capture_source_streams_one_table_per_sampled_frame_as_it_comes(recognizer, video):
    capture = cv2.VideoCapture(str(video))  # what cv2.VideoCapture(0) would be for a webcam
    stream = recognizer.stream(capture, every=5, name="webcam:0")
    first = next(stream)  # rows of the first frame before the capture ends
    assert first["frame"].tolist() == [0] and first["file"].tolist() == ["webcam:0"]
    rest = list(stream)
    assert [table["frame"].tolist() for table in rest] == [[5], [10], [15]]
    assert not capture.isOpened()  # released when the stream ends


def test_unreadable_videos_raise_video_errors_naming_the_file(recognizer, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    with pytest.raises(predict.VideoError, match="broken.mp4"):
        recognizer.predict(broken)


# --- Pure parts -----------------------------------------------------------------------------------------


def test_tracker_keeps_ids_by_overlap_and_smooths_per_face():
    tracker = predict.FaceTracker(smoothing=0.5)
    left, right = faces.Box(0, 0, 100, 100), faces.Box(300, 0, 100, 100)
    ids, _ = tracker.update([left, right], np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert ids == [0, 1]
    # Largest-first order may change between frames; the ids follow the boxes.
    ids, smoothed = tracker.update([faces.Box(305, 5, 100, 100), faces.Box(5, 0, 100, 100)],
                                   np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert ids == [1, 0]
    np.testing.assert_allclose(smoothed, [[0.5, 0.5], [0.5, 0.5]])
    ids, _ = tracker.update([faces.Box(150, 200, 100, 100)], np.array([[1.0, 0.0]]))
    assert ids == [2]  # a face where none was is a new one
    with pytest.raises(ValueError, match="smoothing"):
        predict.FaceTracker(smoothing=1.0)


def test_coarse_and_unknown_label_sets_have_no_valence_or_arousal():
    dimensions = ("valence", "arousal", "positive_valence", "negative_valence")
    coarse = predict.affect(np.array([[0.2, 0.7, 0.1]]), ["neutral", "positive", "negative"])
    assert tuple(coarse) == predict.TRAILING_COLUMNS
    assert coarse["top_emotion"] == ["positive"] and coarse["coarse_label"] == ["positive"]
    assert all(np.isnan(coarse[name]).all() for name in dimensions)
    units = predict.affect(np.array([[0.9, 0.1]]), ["AU1", "AU2"])
    assert units["top_emotion"] == ["AU1"] and units["coarse_label"] == [None]
    assert all(np.isnan(units[name]).all() for name in dimensions)
    assert labels.label_set_of(labels.CK_PLUS) == "ck_plus" and labels.label_set_of(["x"]) is None


def test_rows_carry_positive_and_negative_valence_beside_valence_and_arousal():
    assert predict.TRAILING_COLUMNS == ("top_emotion", "valence", "arousal", "positive_valence", "negative_valence",
                                        "coarse_label")
    mixed = np.zeros((2, len(CLASSES)))
    mixed[0, [CLASSES.index("happy"), CLASSES.index("sad")]] = 0.5  # ambivalent
    mixed[1, CLASSES.index("happy")] = 1.0
    rows = predict.affect(mixed, CLASSES)
    happy, sad = labels.valence_arousal("happy")[0], labels.valence_arousal("sad")[0]
    np.testing.assert_allclose(rows["positive_valence"], [0.5 * happy, happy])
    np.testing.assert_allclose(rows["negative_valence"], [-0.5 * sad, 0.0])
    np.testing.assert_array_equal(rows["valence"], rows["positive_valence"] - rows["negative_valence"])
    assert rows["coarse_label"] == ["positive", "positive"]


def test_sequence_models_are_refused_clearly():
    with pytest.raises(ValueError, match="sequence model"):
        predict.model_input({"image": [None, 10, 48, 48, 1], "landmarks": [None, 10, 68, 2]})
    assert predict.model_input({"image": [None, 64, 64, 3]}) == predict.ModelInput(64, 3, False)


def test_parquet_round_trips_and_needs_pyarrow(photo_table, tmp_path, monkeypatch):
    path = tmp_path / "rows.parquet"
    predict.write_table(photo_table, path)
    read = pd.read_parquet(path)
    assert list(read.columns) == COLUMNS and list(read["box"][0]) == list(photo_table["box"][0])
    assert np.asarray(read["landmarks"][0].tolist()).shape == (68, 2)
    monkeypatch.setattr(tables.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="pyarrow"):
        predict.check_output_path(path)


# --- emopy predict --------------------------------------------------------------------------------------


def test_cli_reports_a_broken_file_and_still_predicts_the_others(export_base, photo_files, video, tmp_path, capsys):
    output, annotated = tmp_path / "rows.json", tmp_path / "out.png"
    inputs = [photo_files["astronaut.png"], photo_files["corrupt.jpg"], str(video)]
    status = cli.main(["predict", *inputs, "--model", str(export_base), "--every", "5",
                       "--output", str(output), "--annotate", str(annotated)])
    assert status == 1
    errors = capsys.readouterr().err
    assert f"emopy: error: {photo_files['corrupt.jpg']}: " in errors
    records = json.loads(output.read_text())
    assert [(r["file"], r["frame"]) for r in records] == [(inputs[0], 0)] + [(inputs[2], f) for f in (0, 5, 10, 15)]
    fields = [*predict.LEADING_COLUMNS, "probabilities", *predict.TRAILING_COLUMNS]
    for record in records:
        assert list(record) == fields and list(record["probabilities"]) == CLASSES
        assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert len(record["box"]) == 4 and np.asarray(record["landmarks"]).shape == (68, 2)
        assert record["coarse_label"] in ("positive", "negative", "neutral")
        assert 0 <= record["positive_valence"] <= 1 and 0 <= record["negative_valence"] <= 1
    # Several inputs: OUT-<stem>.png for the photo and OUT-<stem>.mp4, every frame, for the video.
    assert cv2.imread(str(tmp_path / "out-astronaut.png")).shape == (512, 512, 3)
    written = cv2.VideoCapture(str(tmp_path / "out-sliding.mp4"))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == VIDEO_FRAMES
    written.release()


def test_cli_annotations_of_same_named_inputs_never_overwrite_each_other(export_base, photo_files, tmp_path,
                                                                         capsys):
    import shutil

    inputs = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        inputs.append(shutil.copy(photo_files["astronaut.png"], tmp_path / folder / "x.png"))
    out = tmp_path / "annotated" / "faces.png"
    out.parent.mkdir()
    command = ["predict", *map(str, inputs), "--model", str(export_base), "--annotate", str(out)]
    assert cli.main(command) == 0
    assert sorted(path.name for path in out.parent.iterdir()) == ["faces-a-x.png", "faces-b-x.png"]
    capsys.readouterr()
    # Again: refused before any input is read, naming the files; --overwrite replaces them.
    assert cli.main(command) == 2
    refused = capsys.readouterr()
    assert str(out.parent / "faces-a-x.png") in refused.err and "--overwrite" in refused.err and not refused.out
    assert cli.main([*command, "--overwrite"]) == 0


def test_cli_annotates_a_photo_and_writes_csv(export_base, photo_files, photo_table, tmp_path, capsys):
    output, annotated = tmp_path / "rows.csv", tmp_path / "faces.png"
    assert cli.main(["predict", photo_files["astronaut.png"], "--model", str(export_base),
                     "--output", str(output), "--annotate", str(annotated)]) == 0
    assert cv2.imread(str(annotated)).shape == (512, 512, 3)
    table = pd.read_csv(output)
    assert list(table.columns) == COLUMNS and len(table) == 1
    assert json.loads(table["box"][0]) == list(photo_table["box"][0])
    assert np.asarray(json.loads(table["landmarks"][0])).shape == (68, 2)
    np.testing.assert_allclose(table[CLASSES].to_numpy(), _probabilities(photo_table), atol=1e-6)


def test_cli_prints_a_line_per_face_without_output(export_base, photo_files, photo_table, capsys):
    assert cli.main(["predict", photo_files["astronaut.png"], photo_files["blank.png"],
                     "--model", str(export_base)]) == 0
    lines = capsys.readouterr().out.splitlines()
    top = photo_table["top_emotion"][0]
    assert lines[0].split() == [photo_files["astronaut.png"], "frame", "0", "face", "0", top,
                                f"{photo_table[top][0]:.3f}"]
    assert lines[1].split() == [photo_files["blank.png"], "no", "face", "found"]


def test_progress_bars_go_to_stderr_for_videos_and_directories(export_base, photo_files, video, tmp_path):
    import io
    import shutil

    shutil.copy(photo_files["astronaut.png"], tmp_path)
    stdout, stderr = io.StringIO(), io.StringIO()
    status = predict.run([str(video), str(tmp_path)], model=str(export_base), every=10, progress=True,
                         stdout=stdout, stderr=stderr)
    assert status == 0
    assert f"{video.name}:" in stderr.getvalue() and "/20 [" in stderr.getvalue()  # frames of the video
    assert "2/2 [" in stderr.getvalue()  # files: the video and the directory's photo
    assert [line.split()[:3] for line in stdout.getvalue().splitlines()] == [
        [str(video), "frame", "0"], [str(video), "frame", "10"], [str(tmp_path / "astronaut.png"), "frame", "0"]]


def test_cli_refuses_unknown_output_formats_and_missing_models(export_base, photo_files, tmp_path, capsys):
    assert cli.main(["predict", photo_files["astronaut.png"], "--model", str(export_base),
                     "--output", str(tmp_path / "rows.xlsx")]) == 2
    assert ".json, .csv, .parquet" in capsys.readouterr().err
    assert cli.main(["predict", photo_files["astronaut.png"], "--model", str(tmp_path / "nothing")]) == 2
    assert "nothing: neither a model emopy ships (known: fer2013, ferplus) nor an existing path" in (
        capsys.readouterr().err)
    (tmp_path / "empty").mkdir()
    assert cli.main(["predict", photo_files["astronaut.png"], "--model", str(tmp_path / "empty")]) == 2
    assert "numeric version folders" in capsys.readouterr().err
