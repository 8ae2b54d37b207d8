"""Export for TF Serving: signatures, agreement with Keras, assets, warmup records, versions."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from emopy_tfds import faces, labels
from emopy.pipeline import cli, data, train
from emopy.pipeline.run_dir import RunDir
from emopy.serving import export, layout


# `runs` and `exported` (a cnn, a multi_input and a landmark_lstm run, and their exports) are tests/conftest.py's.


@pytest.fixture(scope="module")
def face(astronaut, astronaut_face) -> faces.AlignedFace:
    return faces.align_face(astronaut, astronaut_face.landmarks, faces.FaceSpec(crop_size=48))


def test_layout_assets_and_server_config_files(exported, runs):
    path = exported["multi_input"]
    assert path.name == "1"
    for name in ("saved_model.pb", "variables", "assets/labels.txt", "assets/face_spec.json",
                 "assets/input_spec.json", str(layout.WARMUP_FILE)):
        assert (path / name).exists(), name
    names, face_spec, spec = layout.read_assets(path)
    assert names == list(labels.FER2013)
    assert face_spec == faces.FER2013_FRAMING and spec.kind == "image_landmarks"
    config = (path.parent / layout.MODEL_CONFIG_FILE).read_text()
    assert 'name: "emotion"' in config and f'base_path: "{path.parent.resolve()}"' in config
    assert "max_batch_size { value: 32 }" in (path.parent / export.BATCHING_FILE).read_text()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no staging left behind
    # The Recognizer's TFLite copy of `pixels`: for models of single faces, not for clips.
    assert (path / layout.TFLITE_FILE).is_file() and not (exported["landmark_lstm"] / layout.TFLITE_FILE).exists()


def _saved_model_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["saved_model_cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


@pytest.mark.scale  # saved_model_cli in processes of its own, about 21 s: CI runs it with the scale checks
def test_saved_model_cli_shows_and_runs_the_signatures(exported, face, tmp_path):
    path = str(exported["cnn"])
    shown = _saved_model_cli("show", "--dir", path, "--all")
    assert shown.returncode == 0, shown.stderr[-2000:]
    for signature in ("serving_default", "pixels", "classify"):
        assert f"signature_def['{signature}']" in shown.stdout
    assert "inputs['image_bytes'] tensor_info:" in shown.stdout and "dtype: DT_STRING" in shown.stdout
    assert "Method name is: tensorflow/serving/classify" in shown.stdout
    assert "outputs['probabilities']" in shown.stdout and "outputs['class_ids']" in shown.stdout

    crops = tmp_path / "crops.npy"
    np.save(crops, np.array([faces.encode_png(face.image)] * 3, dtype=object), allow_pickle=True)
    ran = _saved_model_cli("run", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default",
                           "--inputs", f"image_bytes={crops}")
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "Result for output key probabilities" in ran.stdout and "Result for output key classes" in ran.stdout


@pytest.mark.parametrize("model", ["cnn", "multi_input"])
def test_the_saved_model_gives_the_keras_models_probabilities(exported, runs, face, model):
    loaded = tf.saved_model.load(str(exported[model]))
    keras_model = RunDir.open(runs[model]).load_model()
    names, _, spec = layout.read_assets(exported[model])
    batch = {"image": np.stack([face.image, face.image[:, ::-1]]),
             "landmarks": np.stack([face.landmarks, face.landmarks])}
    expected = keras_model(data.model_inputs(batch, spec)).numpy()

    by_bytes = {"image_bytes": tf.constant([faces.encode_png(image) for image in batch["image"]])}
    by_pixels = {"image": tf.constant(batch["image"])}
    if spec.uses_landmarks:
        by_bytes["landmarks"] = by_pixels["landmarks"] = tf.constant(batch["landmarks"])
    for signature, arguments in (("serving_default", by_bytes), ("pixels", by_pixels)):
        outputs = loaded.signatures[signature](**arguments)
        np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-4)
        assert outputs["class_ids"].numpy().tolist() == expected.argmax(axis=1).tolist()
        assert [c.decode() for c in outputs["classes"].numpy()] == [names[i] for i in expected.argmax(axis=1)]


def test_crops_of_any_size_are_resized_and_their_landmarks_scaled(exported, astronaut, astronaut_face):
    """A 96 px crop with landmarks in its own pixels gives what the 48 px crop of the same face gives."""
    loaded = tf.saved_model.load(str(exported["multi_input"]))
    results = []
    for size in (48, 96):
        crop = faces.align_face(astronaut, astronaut_face.landmarks, faces.FaceSpec(crop_size=size))
        outputs = loaded.signatures["serving_default"](
            image_bytes=tf.constant([faces.encode_png(crop.image)]), landmarks=tf.constant(crop.landmarks[None]))
        results.append(outputs["probabilities"].numpy()[0])
    np.testing.assert_allclose(results[0], results[1], atol=0.05)


def test_the_face_spec_signature_hands_out_what_the_assets_hold(exported):
    for model, path in exported.items():
        class_names, face_spec, _ = layout.read_assets(path)
        outputs = tf.saved_model.load(str(path)).signatures[layout.FACE_SPEC_SIGNATURE](
            request=tf.constant([b"", b"anything"]))
        # One row per request entry, so that TF Serving's batching can split it.
        assert [faces.FaceSpec.from_json(text.decode()) for text in outputs["face_spec"].numpy()] == [face_spec] * 2
        assert [[name.decode() for name in row] for row in outputs["class_names"].numpy()] == [class_names] * 2


def test_warmup_records_parse_and_replay(exported):
    from tensorflow_serving.apis import prediction_log_pb2

    for model, path in exported.items():
        loaded = tf.saved_model.load(str(path))
        logs = [prediction_log_pb2.PredictionLog.FromString(record.numpy())
                for record in tf.data.TFRecordDataset(str(path / layout.WARMUP_FILE))]
        kinds = [log.WhichOneof("log_type") for log in logs]
        sequence = model == "landmark_lstm"
        assert kinds == ["predict_log"] * 3 + ([] if sequence else ["classify_log"])
        for log in logs:
            if log.HasField("predict_log"):
                request = log.predict_log.request
                arguments = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
                outputs = loaded.signatures[request.model_spec.signature_name](**arguments)
                if request.model_spec.signature_name == layout.FACE_SPEC_SIGNATURE:
                    assert outputs["face_spec"].shape == (1,)
                    continue
            else:
                request = log.classify_log.request
                serialized = [example.SerializeToString() for example in request.input.example_list.examples]
                outputs = loaded.signatures["classify"](inputs=tf.constant(serialized))
                outputs = {"probabilities": outputs["scores"]}
            probabilities = outputs["probabilities"].numpy()
            assert probabilities.shape[0] == 1 and np.isfinite(probabilities).all()


def test_sequence_models_take_clips(exported, face):
    loaded = tf.saved_model.load(str(exported["landmark_lstm"]))
    signature = loaded.signatures["serving_default"]
    assert signature.structured_input_signature[1]["landmarks"].shape.as_list() == [None, None, 68, 2]
    clip = {"image_bytes": tf.constant([[faces.encode_png(face.image)] * 4]),
            "landmarks": tf.constant(np.stack([face.landmarks] * 4)[None])}
    probabilities = signature(**clip)["probabilities"].numpy()
    assert probabilities.shape == (1, len(labels.CK_PLUS))
    np.testing.assert_allclose(probabilities.sum(), 1.0, atol=1e-4)
    assert "classify" not in loaded.signatures


@pytest.mark.scale  # three exports, about 27 s: CI runs it with the scale checks
def test_versions_count_up_and_an_existing_version_is_refused(runs, tmp_path, capsys):
    base = tmp_path / "base"
    assert cli.main(["export", "--run", str(runs["cnn"]), "--model-base-path", str(base)]) == 0
    assert cli.main(["export", "--run", str(runs["cnn"]), "--model-base-path", str(base)]) == 0
    assert cli.main(["export", "--run", str(runs["cnn"]), "--model-base-path", str(base), "--version", "7"]) == 0
    assert sorted(p.name for p in base.iterdir() if p.is_dir()) == ["1", "2", "7"]
    assert f"exported {runs['cnn']} to {base / '7'}" in capsys.readouterr().out
    assert cli.main(["export", "--run", str(runs["cnn"]), "--model-base-path", str(base), "--version", "2"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert layout.next_version(base) == 8


def test_grpc_end_to_end_on_a_real_export(exported, runs, face):
    """The real export, served by the local server over loopback gRPC, through EmotionClient: Predict,
    Classify, metadata and status; the server replays the export's warmup requests before serving it."""
    from emopy.serving.client import EmotionClient
    from emopy.serving.local_server import ModelServer

    base = exported["multi_input"].parent
    loaded = tf.saved_model.load(str(exported["multi_input"]))
    expected = loaded.signatures["serving_default"](
        image_bytes=tf.constant([faces.encode_png(face.image)] * 2),
        landmarks=tf.constant(np.stack([face.landmarks] * 2)))["probabilities"].numpy()
    with ModelServer(base, port=0, rest_port=0) as server:
        assert server.served_version == 1
        port = server.ports.grpc
        with EmotionClient(f"127.0.0.1:{port}") as client:
            result = client.predict([face.image, faces.encode_png(face.image)], np.stack([face.landmarks] * 2))
            np.testing.assert_allclose(result["probabilities"], expected, atol=1e-5)
            assert result["classes"] == [labels.FER2013[i] for i in expected.argmax(axis=1)]
            assert result["model_version"] == 1
            classified = client.classify([face.image], face.landmarks[None])
            assert set(classified[0]) == set(labels.FER2013)
            assert classified[0][labels.FER2013[expected[0].argmax()]] == pytest.approx(expected[0].max(), abs=1e-5)
            metadata = client.metadata()
            assert set(metadata) == {"serving_default", "pixels", "classify", "face_spec"}
            assert client.model_assets() == (faces.FER2013_FRAMING, list(labels.FER2013))  # its assets, over gRPC
            with EmotionClient(f"127.0.0.1:{server.ports.rest}", rest=True) as rest_client:
                assert rest_client.model_assets() == client.model_assets()  # and over REST
            assert set(metadata["serving_default"]["inputs"]) == {"image_bytes", "landmarks"}
            assert client.status() == {1: "AVAILABLE"}


# `emopy serve` in a process of its own, about 12 s; test_serving_server starts it too: CI runs it with the scale
# checks.
@pytest.mark.scale
def test_emopy_serve_command_serves_until_terminated(exported, face):
    import signal

    from emopy.serving.client import EmotionClient

    base = exported["cnn"].parent
    server = subprocess.Popen(["emopy", "serve", "--model-base-path", str(base), "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert "Serving model 'emotion'" in line and "(version 1)" in line, server.stderr.read()[-2000:]
        port = int(line.rsplit(":", 1)[1])
        with EmotionClient(f"127.0.0.1:{port}") as client:
            assert client.predict(face.image)["probabilities"].shape == (1, len(labels.FER2013))
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0


def test_signatures_recognizer_and_evaluate_give_the_same_probabilities_for_the_same_crops(exported, runs,
                                                                                           training_data):
    """One model, four paths (emopy evaluate's predictions CSV, both signatures, the in-process Recognizer)."""
    import pandas as pd
    import tensorflow_datasets as tfds

    from emopy.pipeline import evaluate
    from emopy.serving import predict

    report = evaluate.run(runs["multi_input"], "validation")
    table = pd.read_csv(report["predictions_csv"])
    split = tfds.builder("fer2013/original", data_dir=str(training_data)).as_dataset(split="validation")
    by_index = {int(example["index"]): example for example in tfds.as_numpy(split)}
    crops = np.stack([by_index[index]["image"] for index in table["index"]])
    points = np.stack([by_index[index]["landmarks"] for index in table["index"]])
    expected = table[list(labels.FER2013)].to_numpy()

    loaded = tf.saved_model.load(str(exported["multi_input"]))
    by_pixels = loaded.signatures["pixels"](image=tf.constant(crops), landmarks=tf.constant(points))
    by_bytes = loaded.signatures["serving_default"](
        image_bytes=tf.constant([faces.encode_png(crop) for crop in crops]), landmarks=tf.constant(points))
    in_process = predict.Recognizer.from_export(exported["multi_input"]).classify_crops(list(crops), points)
    assert len(table) == len(by_index) and expected.shape == (len(by_index), len(labels.FER2013))
    for probabilities in (by_pixels["probabilities"].numpy(), by_bytes["probabilities"].numpy(), in_process):
        np.testing.assert_allclose(probabilities, expected, atol=1e-5)


@pytest.mark.scale  # an export of its own, about 12 s: CI runs it with the scale checks
def test_test_time_flip_serves_the_mean_over_each_face_and_its_mirror(runs, face, tmp_path):
    import json

    path = export.export(runs["cnn"], tmp_path / "flipped", test_time_flip=True)
    keras_model = RunDir.open(runs["cnn"]).load_model()
    crops = np.stack([face.image, face.image[:, ::-1]])
    expected = (keras_model({"image": crops}).numpy() + keras_model({"image": crops[:, :, ::-1]}).numpy()) / 2
    served = tf.saved_model.load(str(path)).signatures["pixels"](image=tf.constant(crops))["probabilities"].numpy()
    np.testing.assert_allclose(served, expected, atol=1e-5)
    np.testing.assert_allclose(served[0], served[1], atol=1e-5)  # a face and its mirror now get one answer
    assert json.loads((path / "assets" / "export.json").read_text())["test_time_flip"] is True
    with pytest.raises(ValueError, match="image alone"):
        export.export(runs["multi_input"], tmp_path / "refused", test_time_flip=True)


@pytest.mark.scale  # an ensemble exported, about 19 s: CI runs it with the scale checks
def test_an_ensemble_of_runs_serves_the_mean_of_their_probabilities(runs, training_data, face, tmp_path):
    import json

    from emopy.serving import predict

    second = tmp_path / "cnn_again"
    train.run(train.TrainConfig(dataset="fer2013", model="cnn", out=str(second), data_dir=str(training_data),
                                epochs=1, batch_size=4, sequence_length=4))  # as the `runs` fixture's
    base = tmp_path / "ensemble"
    assert cli.main(["export", "--run", str(runs["cnn"]), str(second), "--model-base-path", str(base),
                     "--test-time-flip"]) == 0
    path = base / "1"
    members = [RunDir.open(run).load_model() for run in (runs["cnn"], second)]
    crops = np.stack([face.image, face.image[:, ::-1], np.full_like(face.image, 128)])
    each = [(member({"image": crops}).numpy() + member({"image": crops[:, :, ::-1]}).numpy()) / 2
            for member in members]
    assert np.abs(each[0] - each[1]).max() > 1e-3  # two runs apart, so their mean is neither
    expected = (each[0] + each[1]) / 2
    served = tf.saved_model.load(str(path)).signatures["pixels"](image=tf.constant(crops))["probabilities"].numpy()
    np.testing.assert_allclose(served, expected, atol=1e-5)
    np.testing.assert_allclose(predict.Recognizer.from_export(path).classify_crops(list(crops)), expected, atol=1e-5)
    provenance = json.loads((path / "assets" / "export.json").read_text())
    assert [member["run"] for member in provenance["members"]] == ["cnn", "cnn_again"]
    assert provenance["test_time_flip"] is True
    with pytest.raises(ValueError, match="cannot join .* input_spec differ"):
        export.export([runs["cnn"], runs["multi_input"]], tmp_path / "refused")
    assert not (tmp_path / "refused").exists()


def test_the_recognizer_runs_the_tflite_copy_and_falls_back_to_the_saved_model_without_it(exported, face, tmp_path):
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    from emopy.serving import predict, tflite

    crops = np.stack([face.image, face.image[:, ::-1], np.zeros_like(face.image)])
    points = np.stack([face.landmarks] * 3).astype(np.float32)
    expected = tf.saved_model.load(str(exported["multi_input"])).signatures["pixels"](
        image=tf.constant(crops), landmarks=tf.constant(points))["probabilities"].numpy()
    fast = predict.Recognizer.from_export(exported["multi_input"])
    assert isinstance(fast._classify, tflite.PixelsClassifier)
    assert fast.inputs == predict.ModelInput(size=48, channels=1, uses_landmarks=True)
    # One interpreter per thread: the video path classifies frames on worker threads at once.
    with ThreadPoolExecutor(max_workers=3) as workers:
        answers = list(workers.map(lambda _: fast.classify_crops(list(crops), points), range(6)))
    for probabilities in answers:
        np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert fast._classify(crops[:0], points[:0]).shape == (0, len(labels.FER2013))

    without = tmp_path / "1"
    shutil.copytree(exported["multi_input"], without)
    (without / layout.TFLITE_FILE).unlink()  # as exports made before emopy wrote one
    slow = predict.Recognizer.from_export(without)
    assert not isinstance(slow._classify, tflite.PixelsClassifier) and slow.inputs == fast.inputs
    np.testing.assert_allclose(slow.classify_crops(list(crops), points), expected, atol=1e-5)


@pytest.mark.scale  # a TFLite conversion, about 14 s: CI runs it with the scale checks
def test_int8_tflite_quantises_the_copys_weights_and_keeps_its_answers(exported, runs, face, tmp_path):
    import json

    from emopy.serving import predict

    base = tmp_path / "int8"
    assert cli.main(["export", "--run", str(runs["cnn"]), "--model-base-path", str(base), "--int8-tflite"]) == 0
    path = base / "1"
    float_copy, int8_copy = (export_dir / layout.TFLITE_FILE for export_dir in (exported["cnn"], path))
    assert int8_copy.stat().st_size < 0.5 * float_copy.stat().st_size
    interpreter = tf.lite.Interpreter(model_path=str(int8_copy))
    assert any(tensor["dtype"] == np.int8 for tensor in interpreter.get_tensor_details())
    assert json.loads((path / "assets" / "export.json").read_text())[layout.INT8_TFLITE_KEY] is True
    assert json.loads((exported["cnn"] / "assets" / "export.json").read_text())[layout.INT8_TFLITE_KEY] is False

    crops = np.stack([face.image, face.image[:, ::-1], np.full_like(face.image, 128)])
    # The SavedModel, which TF Serving runs, is the float model; only the Recognizer's copy moves a little.
    expected = tf.saved_model.load(str(exported["cnn"])).signatures["pixels"](image=tf.constant(crops))
    served = tf.saved_model.load(str(path)).signatures["pixels"](image=tf.constant(crops))["probabilities"].numpy()
    np.testing.assert_allclose(served, expected["probabilities"].numpy(), atol=1e-5)
    quantised = predict.Recognizer.from_export(path).classify_crops(list(crops))
    np.testing.assert_allclose(quantised, served, atol=0.05)
    assert np.abs(quantised - served).max() > 1e-6  # the int8 copy is what ran
    assert cli.main(["export", "--from-export", str(path), "--model-base-path", str(base), "--int8-tflite"]) == 2


def test_a_model_the_tflite_converter_refuses_is_exported_without_the_copy(runs, tmp_path, monkeypatch, caplog):
    from emopy.serving import predict, tflite

    def refuse(version_dir, int8_weights):
        raise RuntimeError("an op TFLite has no kernel for\nmore detail")

    monkeypatch.setattr(tflite, "convert", refuse)
    path = export.export(runs["cnn"], tmp_path / "emotion")
    assert (path / "saved_model.pb").is_file() and not (path / layout.TFLITE_FILE).exists()
    assert "no TFLite copy" in caplog.text and "an op TFLite has no kernel for" in caplog.text
    assert not isinstance(predict.Recognizer.from_export(path)._classify, tflite.PixelsClassifier)


def test_export_json_says_where_the_export_came_from_without_a_path_of_the_machine(exported, runs, training_data,
                                                                                   tmp_path_factory):
    import json
    import re
    from importlib import metadata

    import tensorflow_datasets as tfds

    from emopy.serving import provenance

    machine = [str(tmp_path_factory.getbasetemp()), str(tmp_path_factory.getbasetemp().resolve())]
    for model, path in exported.items():
        for file in (each for each in path.rglob("*") if each.is_file()):  # SavedModel, assets, warmup, TFLite
            content = file.read_bytes()
            assert not [place for place in machine + [str(runs[model])] if place.encode() in content], file
        # BASE/models.config names BASE (TF Serving needs it), never the run.
        assert str(runs[model]) not in (path.parent / layout.MODEL_CONFIG_FILE).read_text()
    record = json.loads((exported["cnn"] / layout.ASSETS / layout.EXPORT_ASSET).read_text())
    assert record["format"] == 2 and record["emopy_version"] == metadata.version("emopy")
    assert record["git_commit"] is None or re.fullmatch("[0-9a-f]{40}", record["git_commit"])
    assert record["test_time_flip"] is False
    (member,) = record["members"]
    built = tfds.builder("fer2013/original", data_dir=str(training_data)).info
    assert member == {
        "run": "cnn", "model": "cnn",
        "command": "emopy train --dataset fer2013 --model cnn --epochs 1 --batch-size 4 --sequence-length 4 --out cnn",
        "datasets": [{"name": "fer2013", "config": "original", "version": str(built.version),
                      "fingerprint": provenance.splits_fingerprint(
                          {split: (info.shard_lengths, info.num_bytes) for split, info in built.splits.items()})}]}
    assert re.fullmatch("sha256:[0-9a-f]{64}", member["datasets"][0]["fingerprint"])
    clips = json.loads((exported["landmark_lstm"] / layout.ASSETS / layout.EXPORT_ASSET).read_text())
    assert [(each["name"], each["config"]) for each in clips["members"][0]["datasets"]] == [("ck_plus", "sequences")]


def test_provenance_of_what_this_machine_cannot_read(tmp_path):
    from emopy.serving import provenance

    # A dataset not built here keeps its name and config from the run's settings; a folder outside git, no commit.
    assert provenance.dataset_record("fer2013/ferplus", str(tmp_path)) == {
        "name": "fer2013", "config": "ferplus", "version": None, "fingerprint": None}
    assert provenance.git_commit(tmp_path) is None
    # The fingerprint follows the data's splits, not their order.
    one = provenance.splits_fingerprint({"train": ([3, 4], 700), "test": ([2], 200)})
    assert one == provenance.splits_fingerprint({"test": ([2], 200), "train": ([3, 4], 700)})
    assert one != provenance.splits_fingerprint({"train": ([3, 4], 701), "test": ([2], 200)})


def test_the_training_command_names_no_machine_path():
    from emopy.serving import provenance

    settings = {"dataset": "fer2013/ferplus", "model": "vgg_small", "out": "/work/runs/ferplus/votes a",
                "data_dir": "/work/tfds", "labels": "fer2013_contempt", "targets": "votes", "task": "emotion",
                "strategy": "auto", "epochs": 40, "batch_size": 64, "learning_rate": None, "image_size": 48,
                "sequence_length": 10, "augment": False, "class_weights": True, "patience": 10, "seed": None,
                "folds": 10, "test_fold": 0}
    assert provenance.train_command(settings, Path(settings["out"])) == (
        "emopy train --dataset fer2013/ferplus --model vgg_small --labels fer2013_contempt --targets votes "
        "--epochs 40 --no-augment --out 'votes a'")
    # A fold of cross-validation is trained by --cv into the folder above it.
    fold = {**settings, "dataset": "ck_plus", "out": "/work/runs/cv/fold-3", "folds": 5, "test_fold": 3}
    assert provenance.train_command(fold, Path(fold["out"])).endswith("--no-augment --out cv --cv 5")


def test_models_config_merges_this_models_entry_into_what_is_there(tmp_path):
    from emopy.serving.export import model_config

    existing = """model_config_list {
      config { name: "other" base_path: "/srv/other" model_platform: "tensorflow" }
      config { name: "emotion" base_path: "/models/emotion" model_platform: "tensorflow"
               model_version_policy { specific { versions: 1 } } }
    }"""
    updated = {each.name: each for each in model_config(existing, tmp_path, "emotion").model_config_list.config}
    assert list(updated) == ["other", "emotion"] and updated["other"].base_path == "/srv/other"
    assert updated["emotion"].base_path == str(tmp_path.resolve())
    assert list(updated["emotion"].model_version_policy.specific.versions) == [1]  # the user's policy stays
    added = model_config(existing, tmp_path, "second").model_config_list.config
    assert [each.name for each in added] == ["other", "emotion", "second"]
    assert [each.name for each in model_config(None, tmp_path, "emotion").model_config_list.config] == ["emotion"]
    for broken in ('model_config_list { config { name: "x" ', "model_config_list { confg {} }",
                   'custom_model_config { type_url: "x" }'):
        with pytest.raises(ValueError):
            model_config(broken, tmp_path, "emotion")


def test_export_keeps_other_models_and_batching_parameters_and_refuses_a_broken_models_config(runs, tmp_path,
                                                                                            capsys):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    base = tmp_path / "emotion"
    base.mkdir()
    config_file, batching_file = base / layout.MODEL_CONFIG_FILE, base / export.BATCHING_FILE
    config_file.write_text('model_config_list { config { name: "other" base_path: "/srv/other" } }\n')
    batching_file.write_text("max_batch_size { value: 8 }  # tuned by hand\n")
    assert cli.main(["export", "--run", str(runs["cnn"]), "--model-base-path", str(base)]) == 0
    out = capsys.readouterr().out
    assert f"{batching_file}: kept as it was" in out and "1 other model" in out
    assert batching_file.read_text() == "max_batch_size { value: 8 }  # tuned by hand\n"
    config = text_format.Parse(config_file.read_text(), model_server_config_pb2.ModelServerConfig())
    assert [(each.name, each.base_path) for each in config.model_config_list.config] == [
        ("other", "/srv/other"), ("emotion", str(base.resolve()))]

    broken = 'model_config_list { config { name: "other" base_path: \n'
    config_file.write_text(broken)
    before = sorted(str(each) for each in base.rglob("*"))
    assert cli.main(["export", "--run", str(runs["cnn"]), "--model-base-path", str(base)]) == 2
    err = capsys.readouterr().err
    assert str(config_file) in err and "nothing was exported" in err
    assert sorted(str(each) for each in base.rglob("*")) == before and config_file.read_text() == broken
