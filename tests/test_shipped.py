"""The models emopy ships, by name: inside the package, loaded offline, used by predict, serve and Recognizer."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from emopy import serving
from emopy_tfds import faces, labels
from emopy_tfds.data import sample_photo
from emopy.pipeline import cli
from emopy.serving import layout, predict, shipped

# The shipped models this checkout holds: a name in SHIPPED whose export is not committed yet has no tests to run.
PRESENT = [name for name in shipped.SHIPPED if layout.versions(shipped.ROOT / name)]
# What each shipped model is, pinned: a re-export, a retrained model or a swapped file shows here first. Every model
# shipped in serving/shipped/<name>/ needs an entry (ferplus: labels.FER2013_CONTEMPT, its own members and sums;
# `sha256sum serving/shipped/<name>/<version>/variables/variables.data-*`).
PINS = {
    "fer2013": {
        "classes": labels.FER2013,  # in its output order
        "face_spec": {"framing": "fer2013", "crop_size": 48, "margin": 0.0, "align": False, "grayscale": True,
                      "landmarks": "crop"},
        "input_spec": {"kind": "image", "image_size": 48, "channels": 1},
        "members": ["vgg_small", "vgg_small"],  # the ensemble's runs' architectures (assets/export.json)
        "test_time_flip": False,
        "int8_tflite": False,  # exported before the flag: no entry, a float32 copy
        # Re-exported (emopy export --from-export, f099e70) for the signatures' pixel limit: the same variable values
        # as c607b35a..., but the checkpoint's object graph, saved in the same file, has one node more.
        "variables_sha256": {
            "variables.data-00000-of-00001": "f6f04b67da848a63554adca0dc8181f876dc8efe5b64b3001f7d2f40352b427d"},
        # The least P(happy) on the package's photo and on scikit-image's astronaut (the same smiling face, 512 px):
        # measured 0.998 and 0.999; an untrained or broken export answers near 1/7.
        "happy_at_least": {"sample_photo": 0.9, "astronaut": 0.9},
    },
    "ferplus": {
        "classes": labels.FER2013_CONTEMPT,
        "face_spec": {"framing": "fer2013", "crop_size": 48, "margin": 0.0, "align": False, "grayscale": True,
                      "landmarks": "crop"},
        "input_spec": {"kind": "image", "image_size": 48, "channels": 1},
        "members": ["vgg_small", "vgg_small", "vgg_small"],
        "test_time_flip": False,
        "int8_tflite": True,  # what lets three members fit 20 MB and 3 ms a face
        # Runs B (standard augmentation), D and E (--augmentation tight).
        "variables_sha256": {
            "variables.data-00000-of-00001": "b448a4604d19e6cc5e9263a2482d08c270daed79086e3eeb44409ff481f4aea0"},
        # Measured 0.9993 and 0.9993; an untrained export answers near 1/8.
        "happy_at_least": {"sample_photo": 0.9, "astronaut": 0.9},
    },
}


@pytest.fixture(scope="module", params=PRESENT)
def name(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def version_dir(name) -> Path:
    return predict.resolve_export(shipped.base_path(name))


@pytest.fixture(scope="module")
def pins(name) -> dict:
    if name not in PINS:
        pytest.fail(f"serving/shipped/{name} is shipped but tests/test_shipped.py's PINS has no entry for it: add its "
                    f"classes, face spec, input spec, members and variables' sha256, as fer2013's")
    return PINS[name]


def test_the_default_is_shipped_and_present():
    assert set(PINS) <= set(shipped.SHIPPED)
    assert shipped.DEFAULT in PRESENT and shipped.DEFAULT in PINS


def test_it_is_the_model_pinned(version_dir, pins):
    class_names, face_spec, input_spec = layout.read_assets(version_dir)
    assert tuple(class_names) == tuple(pins["classes"])
    assert {key: getattr(face_spec, key) for key in pins["face_spec"]} == pins["face_spec"]
    assert {key: getattr(input_spec, key) for key in pins["input_spec"]} == pins["input_spec"]
    record = json.loads((version_dir / layout.ASSETS / layout.EXPORT_ASSET).read_text())
    assert [member["model"] for member in record["members"]] == pins["members"]
    assert record["test_time_flip"] is pins["test_time_flip"]
    assert record.get(layout.INT8_TFLITE_KEY, False) is pins["int8_tflite"]
    sums = {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted((version_dir / "variables").glob("variables.data-*"))}
    assert sums == pins["variables_sha256"]


def test_every_shipped_model_is_an_export_inside_the_package(name, version_dir):
    assert version_dir.parent == Path(serving.__file__).resolve().parent / "shipped" / name
    for file in ("saved_model.pb", "variables/variables.index", "assets/labels.txt", "assets/face_spec.json",
                 "assets/input_spec.json", str(layout.WARMUP_FILE), str(layout.TFLITE_FILE)):
        assert (version_dir / file).is_file(), file
    size = sum(path.stat().st_size for path in version_dir.rglob("*") if path.is_file())
    assert size <= 20_000_000


def test_shipped_files_carry_no_path_of_the_machine_that_made_them(version_dir):
    import re

    for file in (path for path in version_dir.rglob("*") if path.is_file()):
        assert not re.search(rb"(/work|/home|/root|/tmp|/Users)/", file.read_bytes()), file
    record = json.loads((version_dir / layout.ASSETS / layout.EXPORT_ASSET).read_text())
    assert record["format"] == 2 and record["members"]
    for member in record["members"]:
        assert "/" not in member["run"] and member["command"].startswith("emopy train ")
        assert all(dataset["name"] and dataset["config"] for dataset in member["datasets"])


def test_every_shipped_model_refuses_an_image_over_its_pixel_limit_before_decoding(version_dir):
    import tensorflow as tf
    from test_pixel_limit import png_bomb

    assert layout.max_image_pixels(version_dir) == faces.MAX_IMAGE_PIXELS
    serving_default = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image_bytes\[0\]: the image declares 20000x20000 "):
        serving_default(image_bytes=tf.constant([png_bomb(20_000, 20_000)]))  # 33 bytes, 400 million pixels


def test_names_the_default_and_paths_resolve(tmp_path, monkeypatch):
    for name in PRESENT:
        assert shipped.resolve_model(name) == shipped.base_path(name) == shipped.ROOT / name
    assert shipped.resolve_model(None) == shipped.base_path() == shipped.ROOT / shipped.DEFAULT
    (tmp_path / "1").mkdir()
    for path in (tmp_path, tmp_path / "1", str(tmp_path / "1")):
        assert shipped.resolve_model(path) == Path(path)
    # ./NAME is a folder of that name, not the shipped model.
    monkeypatch.chdir(tmp_path)
    (tmp_path / shipped.DEFAULT).mkdir()
    assert shipped.resolve_model(f"./{shipped.DEFAULT}") == Path(shipped.DEFAULT)
    assert shipped.resolve_model(shipped.DEFAULT) == shipped.ROOT / shipped.DEFAULT


def test_an_unknown_name_is_an_error_naming_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match="nosuch: neither a model emopy ships \\(known: fer2013, ferplus\\)"):
        shipped.resolve_model("nosuch")
    with pytest.raises(ValueError, match="'nosuch' is not a model emopy ships \\(known: fer2013, ferplus\\)"):
        predict.Recognizer.default("nosuch")


@pytest.mark.parametrize("missing", shipped.SHIPPED)
def test_a_shipped_model_missing_from_the_package_is_a_clear_error(missing, monkeypatch, tmp_path):
    # As `ferplus` is until its export is committed.
    monkeypatch.setattr(shipped, "ROOT", tmp_path / "shipped")
    with pytest.raises(FileNotFoundError, match=f"shipped model '{missing}' is missing from the installed package"):
        shipped.resolve_model(missing)
    if missing == shipped.DEFAULT:
        with pytest.raises(FileNotFoundError, match="is missing from the installed package"):
            predict.Recognizer.default()


def test_its_assets_agree_with_what_prediction_uses(name, version_dir, pins):
    class_names, face_spec, input_spec = layout.read_assets(version_dir)
    assert class_names == list(pins["classes"])
    assert face_spec == faces.FER2013_FRAMING  # trained on fer2013's faces: photos are framed as its crops
    with predict.Recognizer.default(name) as recognizer:
        assert recognizer.classes == tuple(class_names) and recognizer.face_spec == face_spec
        assert recognizer.inputs.size == input_spec.image_size == face_spec.crop_size
        assert recognizer.inputs.channels == input_spec.channels
        assert recognizer.inputs.uses_landmarks == input_spec.uses_landmarks


def test_it_reads_the_packages_photo_and_the_astronaut_as_happy(name, pins, astronaut):
    with predict.Recognizer.default(name) as recognizer:
        tables = {"sample_photo": recognizer.predict_image(sample_photo()),
                  "astronaut": recognizer.predict_frame(astronaut)}
    for photo, table in tables.items():
        assert len(table) == 1 and table["top_emotion"][0] == "happy", (photo, table.to_dict("records"))
        assert table["happy"][0] >= pins["happy_at_least"][photo], (photo, table["happy"][0])


def test_the_recognizer_runs_the_shipped_tflite_copy_with_the_saved_models_probabilities(name, version_dir, pins,
                                                                                      astronaut, astronaut_face):
    import tensorflow as tf

    from emopy.serving import tflite

    crop = faces.align_face(astronaut, astronaut_face.landmarks, faces.FER2013_FRAMING).image
    crops = np.stack([crop, crop[:, ::-1], np.zeros_like(crop)])
    saved = tf.saved_model.load(str(version_dir)).signatures["pixels"](image=tf.constant(crops))
    with predict.Recognizer.default(name) as recognizer:
        assert isinstance(recognizer._classify, tflite.PixelsClassifier)
        classified = recognizer.classify_crops(list(crops))
    # int8 weights move probabilities by up to about 0.02 (serving/tflite.py); float32 ones agree.
    np.testing.assert_allclose(classified, saved["probabilities"].numpy(), atol=0.02 if pins["int8_tflite"] else 1e-5)
    assert (classified.argmax(axis=1) == saved["probabilities"].numpy().argmax(axis=1)).all()


@pytest.mark.parametrize("model", [[], ["--model", "fer2013"]], ids=["default", "named"])
def test_emopy_predict_takes_a_shipped_model_or_the_default(model, tmp_path):
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(Path(sample_photo()).read_bytes())
    output = tmp_path / "rows.json"
    assert cli.main(["predict", str(photo), *model, "--output", str(output)]) == 0
    rows = json.loads(output.read_text())
    assert len(rows) == 1 and rows[0]["face_id"] == 0
    assert sum(rows[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert rows[0]["top_emotion"] == "happy"


@pytest.mark.parametrize("command", [["predict", "photo.jpg"], ["evaluate", "--dataset", "fer2013"], ["serve"]])
def test_every_command_that_takes_a_model_names_the_shipped_ones_for_an_unknown_name(command, capsys):
    assert cli.main([*command, "--model", "nosuch"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("emopy: error: nosuch: neither a model emopy ships (known: fer2013, ferplus)"), error


def test_emopy_serve_and_evaluate_take_a_shipped_name(tmp_path, capsys):
    assert cli._parser().parse_args(["serve", "--model", "fer2013"]).model_base_path == "fer2013"
    assert cli._parser().parse_args(["serve", "--model-base-path", "fer2013"]).model_base_path == "fer2013"
    # The name resolves and its export loads: what stops evaluate is the dataset, not built in an empty folder.
    assert cli.main(["evaluate", "--model", "fer2013", "--dataset", "fer2013", "--data-dir", str(tmp_path),
                     "--output", str(tmp_path / "evaluation.json")]) == 2
    assert "fer2013/original is not built in" in capsys.readouterr().err


def test_cropped_faces_skip_detection_and_keep_every_column(astronaut, astronaut_face, tmp_path):
    """A fer2013-sized crop is found by detection's second look, scaled up; with cropped=True no detector runs and
    the whole image is the one face, as the fer2013 builder takes it."""
    import cv2

    crop = faces.align_face(astronaut, astronaut_face.landmarks, faces.FER2013_FRAMING).image
    crop_file = tmp_path / "crop.png"
    cv2.imwrite(str(crop_file), crop)
    with predict.Recognizer.default(cropped=True) as recognizer:
        table = recognizer.predict_image(crop_file)
    (detected,) = predict.Recognizer.default().predict_image(crop_file)["box"]
    assert detected != (0, 0, 48, 48) and 24 <= detected[2] <= 48
    assert len(table) == 1 and table["box"][0] == (0, 0, 48, 48)
    assert list(table.columns) == list(predict.empty_table(recognizer.classes).columns)
    # The landmarks are fitted as the fer2013 builder fits them: the whole crop as the face box.
    as_built = faces.find_faces(crop, already_cropped=True)[0].landmarks
    np.testing.assert_allclose(np.asarray(table["landmarks"][0]), as_built, atol=1e-4)
    assert table[list(recognizer.classes)].to_numpy().sum() == pytest.approx(1.0, abs=1e-5)


def test_emopy_predict_cropped_flag(tmp_path, astronaut, astronaut_face):
    import cv2

    crop = faces.align_face(astronaut, astronaut_face.landmarks, faces.FER2013_FRAMING).image
    cv2.imwrite(str(tmp_path / "a.png"), crop)
    cv2.imwrite(str(tmp_path / "b.png"), cv2.resize(crop, (100, 100), interpolation=cv2.INTER_CUBIC))
    output = tmp_path / "rows.json"
    assert cli.main(["predict", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--cropped",
                     "--output", str(output)]) == 0
    rows = json.loads(output.read_text())
    assert [row["box"] for row in rows] == [[0, 0, 48, 48], [0, 0, 100, 100]]


def test_emopy_serve_without_a_base_path_answers_grpc_predict(astronaut, astronaut_face):
    from emopy.serving.client import EmotionClient

    default_classes = tuple(PINS[shipped.DEFAULT]["classes"])  # the default model's, in output order
    crop = faces.align_face(astronaut, astronaut_face.landmarks, faces.FER2013_FRAMING).image
    server = subprocess.Popen(["emopy", "serve", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        line = server.stdout.readline()
        assert "Serving model 'emotion'" in line, server.stderr.read()[-2000:]
        port = int(line.rsplit(":", 1)[1])
        with EmotionClient(f"127.0.0.1:{port}") as client:
            result = client.predict(crop)
            # What the shipped export's assets hold reaches a client of the server, which cannot read them.
            assert client.model_assets() == (faces.FER2013_FRAMING, list(default_classes))
        assert result["probabilities"].shape == (1, len(default_classes))
        assert result["probabilities"].sum() == pytest.approx(1.0, abs=1e-5)
        # So a Recognizer of the server (`emopy predict --server` without --model) frames faces as fer2013's were.
        with predict.Recognizer.from_server(f"127.0.0.1:{port}") as recognizer:
            assert recognizer.face_spec == faces.FER2013_FRAMING and recognizer.classes == default_classes
            table = recognizer.predict_image(sample_photo())
        with predict.Recognizer.default() as local:
            expected = local.predict_image(sample_photo())
        # The server runs the SavedModel, the local Recognizer the export's TFLite copy: with int8 weights,
        # probabilities move by up to about 0.02 (serving/tflite.py); the faces and their boxes are the same.
        assert table["box"].tolist() == expected["box"].tolist()
        np.testing.assert_allclose(table[list(default_classes)].to_numpy(dtype=float),
                                   expected[list(default_classes)].to_numpy(dtype=float),
                                   atol=0.02 if PINS[shipped.DEFAULT]["int8_tflite"] else 1e-5)
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
