"""`emopy predict-signals` and the export of a physiological run: a generated WESAD pickle and CSVs made from it
(the wesad_source and wesad_data fixtures), one short physio_mlp run shared by the module, its export loaded by
TensorFlow and served over real gRPC on loopback."""

from __future__ import annotations

import json
import pickle

import grpc
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
import tf_keras as keras
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from emopy.pipeline import cli, run_dir
from emopy.serving import layout, predict_signals
from emopy.serving.client import EmotionClient, ServingRequestError
from emopy.serving.local_server import ModelServer
from emopy_tfds.wesad import wesad_files

CHEST_CSV_CHANNELS = ("chest_ecg", "chest_eda", "chest_emg", "chest_resp", "chest_temp")


@pytest.fixture(scope="module")
def mlp_run(wesad_data, tmp_path_factory):
    """physio_mlp trained for an epoch on wesad/chest."""
    out = tmp_path_factory.mktemp("signal_runs") / "mlp"
    keras.backend.clear_session()
    assert cli.main(["train", "--dataset", "wesad/chest", "--data-dir", str(wesad_data), "--model", "physio_mlp",
                     "--epochs", "1", "--batch-size", "4", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def mlp_export(mlp_run, tmp_path_factory):
    """BASE/1 of mlp_run, as `emopy export` writes it."""
    base = tmp_path_factory.mktemp("signal_exports") / "mlp"
    assert cli.main(["export", "--run", str(mlp_run), "--model-base-path", str(base)]) == 0
    return base / "1"


def _chest_csv(source, path, seconds: float | None = None, time_column: bool = False) -> None:
    """S2's chest channels (those physio_mlp's features need) at 700 Hz as a CSV, the first `seconds` of them."""
    recording = wesad_files.read_recording(source / "S2" / "S2.pkl", ["chest"])
    count = len(recording.labels) if seconds is None else round(seconds * wesad_files.CHEST_RATE)
    table = pd.DataFrame({name: recording.channels[name].values[:count] for name in CHEST_CSV_CHANNELS})
    if time_column:
        table.insert(0, "time", np.arange(count) / wesad_files.CHEST_RATE)
    table.to_csv(path, index=False)


def _dataset_features(wesad_data, subject: str) -> dict[float, dict[str, float]]:
    rows = tfds.as_numpy(tfds.load("wesad/chest", split="train", data_dir=str(wesad_data)))
    return {round(float(row["start_seconds"]), 3): row["features"] for row in rows if row["subject"].decode() == subject}


def test_predict_signals_on_a_pickle_and_a_csv_gives_the_datasets_features(mlp_run, wesad_source, wesad_data,
                                                                           tmp_path, capsys):
    run = run_dir.RunDir.open(mlp_run)
    spec = json.loads((mlp_run / run_dir.SIGNAL_SPEC_FILE).read_text())
    out = tmp_path / "s2.csv"
    assert cli.main(["predict-signals", str(wesad_source / "S2" / "S2.pkl"), "--model", str(mlp_run),
                     "--output", str(out)]) == 0
    assert "S2.pkl: 13 windows" in capsys.readouterr().err
    rows = pd.read_csv(out)
    assert list(rows.columns) == ["file", "start_seconds", "state", "true_label", *run.class_names, "predicted",
                                  *spec["feature_names"]]
    assert len(rows) == 13 and (rows["file"] == "S2.pkl").all()
    np.testing.assert_allclose(rows[run.class_names].sum(axis=1), 1.0, atol=1e-5)
    assert (rows["predicted"] == rows[run.class_names].idxmax(axis=1)).all()
    # Each state lasts 60 s: the windows starting on the minute hold one; meditation is no class of the 3-class run.
    assert list(rows["state"][::4]) == ["baseline", "stress", "amusement", "meditation"]
    assert list(rows["true_label"][::4].fillna("")) == ["baseline", "stress", "amusement", ""]
    # The features are the built dataset's for the same windows (every window of S2 has a state here).
    built = _dataset_features(wesad_data, "S2")
    assert sorted(built) == list(rows["start_seconds"])
    for _, row in rows.iterrows():
        expected = built[row["start_seconds"]]
        for name in spec["feature_names"]:
            np.testing.assert_allclose(np.float32(row[name]), expected[name], rtol=1e-5, equal_nan=True,
                                       err_msg=name)

    # The same channels as a CSV at a stated rate (JSON lines out): the same windows, features and probabilities.
    csv, lines = tmp_path / "s2_signals.csv", tmp_path / "s2.jsonl"
    _chest_csv(wesad_source, csv)
    assert cli.main(["predict-signals", str(csv), "--model", str(mlp_run), "--rate", "700",
                     "--output", str(lines)]) == 0
    from_csv = pd.DataFrame([json.loads(line) for line in lines.read_text().splitlines()])
    assert from_csv["state"].isna().all() and from_csv["true_label"].isna().all()
    np.testing.assert_allclose(from_csv["start_seconds"], rows["start_seconds"])
    for name in [*run.class_names, *spec["feature_names"]]:
        np.testing.assert_allclose(from_csv[name].astype(float), rows[name], rtol=1e-6, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("problem,flags,message", [
    ("missing", ["--rate", "700"], "signals.csv: channel chest_eda: missing"),
    ("nan", ["--rate", "700"], "signals.csv: channel chest_ecg: 700 sample(s) are NaN or infinite, the first at "
                               "sample 7000"),
    ("time", ["--rate", "500"], "signals.csv: channel time: its steps are 700 Hz, but the rate stated is 500 Hz"),
    ("time", [], None),  # the time column gives the rate
    ("plain", [], "signals.csv: no 'time' column and no rate stated"),
    ("pickle", [], "S2/S2.pkl: channel chest/EDA: 1000 samples, but 21000 labels"),
], ids=["missing-channel", "nan-stretch", "wrong-rate", "rate-from-time", "no-rate", "pickle-wrong-length"])
def test_bad_recordings_are_refused_naming_the_file_and_channel(problem, flags, message, mlp_run, wesad_source,
                                                                tmp_path, capsys):
    path = tmp_path / "signals.csv"
    _chest_csv(wesad_source, path, seconds=30, time_column=problem == "time")
    if problem in ("missing", "nan"):
        table = pd.read_csv(path)
        if problem == "missing":
            table = table.drop(columns="chest_eda")
        else:
            table.loc[7000:7699, "chest_ecg"] = np.nan
        table.to_csv(path, index=False)
    if problem == "pickle":
        data = pickle.loads((wesad_source / "S2" / "S2.pkl").read_bytes(), encoding="latin1")
        data["label"] = data["label"][:21000]
        for name, values in data["signal"]["chest"].items():
            data["signal"]["chest"][name] = values[:1000 if name == "EDA" else 21000]
        path = tmp_path / "S2" / "S2.pkl"
        path.parent.mkdir()
        path.write_bytes(pickle.dumps(data, protocol=2))
    code = cli.main(["predict-signals", str(path), "--model", str(mlp_run), *flags])
    err = capsys.readouterr().err
    if message is None:  # 30 s is too short for a 60 s window: zero rows, and it says so
        assert code == 0 and "signals.csv: 30.0 s of signal is shorter than one 60 s window: no rows" in err
    else:
        assert code == 2 and err.startswith("emopy: error: ") and message in err, err


def test_a_recording_too_short_for_a_window_gives_zero_rows_and_no_model_is_a_clear_error(mlp_run, wesad_source,
                                                                                         tmp_path, capsys):
    csv, out = tmp_path / "short.csv", tmp_path / "short_rows.csv"
    _chest_csv(wesad_source, csv, seconds=45)
    assert cli.main(["predict-signals", str(csv), "--model", str(mlp_run), "--rate", "700", "--output", str(out)]) == 0
    assert "45.0 s of signal is shorter than one 60 s window: no rows" in capsys.readouterr().err
    rows = pd.read_csv(out)
    assert rows.empty and list(rows.columns[:4]) == ["file", "start_seconds", "state", "true_label"]
    assert cli.main(["predict-signals", str(csv), "--rate", "700"]) == 2
    assert "needs --model RUN_DIR|EXPORT_DIR" in capsys.readouterr().err


def test_the_export_serves_the_keras_models_probabilities_and_predicts_as_the_run(mlp_run, mlp_export, wesad_source,
                                                                                  wesad_data, tmp_path):
    run = run_dir.RunDir.open(mlp_run)
    assets = mlp_export / layout.ASSETS
    assert sorted(path.name for path in assets.iterdir()) == ["export.json", "input_spec.json", "labels.txt",
                                                              "signal_spec.json"]
    assert json.loads((assets / "signal_spec.json").read_text()) == json.loads(
        (mlp_run / run_dir.SIGNAL_SPEC_FILE).read_text())
    assert (mlp_export / layout.WARMUP_FILE).exists() and not (mlp_export / layout.TFLITE_FILE).exists()
    assert (mlp_export.parent / layout.MODEL_CONFIG_FILE).exists()

    loaded = tf.saved_model.load(str(mlp_export))
    assert set(loaded.signatures) == {"serving_default", layout.SIGNAL_SPEC_SIGNATURE}
    names = json.loads((assets / "signal_spec.json").read_text())["feature_names"]
    rows = tfds.as_numpy(tfds.load("wesad/chest", split="train", data_dir=str(wesad_data)).take(16))
    features = np.array([[row["features"][name] for name in names] for row in rows], np.float32)
    features[0, :3] = np.nan  # an undefined feature: the model's own normalisation takes it
    served = loaded.signatures["serving_default"](features=tf.constant(features))
    expected = run.load_model()({"features": features}, training=False).numpy()
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-6)
    assert [name.decode() for name in served["classes"].numpy()] == [run.class_names[k] for k in expected.argmax(1)]

    # predict-signals with the export gives the run's probabilities.
    csv = tmp_path / "s2_90s.csv"
    _chest_csv(wesad_source, csv, seconds=90)
    by_run, _ = predict_signals.open_model(str(mlp_run))
    by_export, _ = predict_signals.open_model(str(mlp_export.parent))
    recording = predict_signals.read(csv, by_run, 700.0, 15.0)
    rows_run, rows_export = (predict_signals.predict_recording(recording, model) for model in (by_run, by_export))
    assert len(rows_run) == 3
    np.testing.assert_allclose(rows_export[run.class_names], rows_run[run.class_names], atol=1e-6)
    # The face commands point a physiological export to predict-signals instead of looking for its face spec.
    with pytest.raises(ValueError, match="physiological model, which reads signals, not faces: use `emopy "
                                         "predict-signals FILE --model"):
        layout.read_assets(mlp_export)


def test_the_local_server_serves_the_export_over_grpc_and_refuses_malformed_requests(mlp_run, mlp_export,
                                                                                     wesad_source, tmp_path, capsys):
    run = run_dir.RunDir.open(mlp_run)
    num_features = run.input_spec.num_features
    features = np.linspace(0, 1, 2 * num_features, dtype=np.float32).reshape(2, num_features)
    expected = run.load_model()({"features": features}, training=False).numpy()
    with ModelServer(mlp_export.parent, "wesad", port=0) as server:
        target = f"127.0.0.1:{server.ports.grpc}"
        with EmotionClient(target, "wesad", retries=0) as client:
            np.testing.assert_allclose(client.predict_signals(features)["probabilities"], expected, atol=1e-6)
            assets = client.signal_assets()
            assert assets.class_names == run.class_names and assets.input_spec == run.input_spec
            with pytest.raises(ServingRequestError) as refused:
                client.predict_signals(features[:, :-1])  # a feature short
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            # float64 features, which the client would convert: sent as they are.
            stub = prediction_service_pb2_grpc.PredictionServiceStub(client._channel)
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "wesad"
            request.inputs["features"].CopyFrom(tf.make_tensor_proto(features.astype(np.float64)))
            with pytest.raises(grpc.RpcError) as refused:
                stub.Predict(request, timeout=10)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            np.testing.assert_allclose(client.predict_signals(features)["probabilities"], expected, atol=1e-6)

        # The command, with the spec from the server's signal_spec signature (no --model).
        csv, out = tmp_path / "s2_75s.csv", tmp_path / "served.csv"
        _chest_csv(wesad_source, csv, seconds=75)
        assert cli.main(["predict-signals", str(csv), "--server", target, "--model-name", "wesad", "--rate", "700",
                         "--output", str(out)]) == 0
    served = pd.read_csv(out)
    model, _ = predict_signals.open_model(str(mlp_run))
    local = predict_signals.predict_recording(predict_signals.read(csv, model, 700.0, 15.0), model)
    assert len(served) == 2
    np.testing.assert_allclose(served[run.class_names], local[run.class_names], atol=1e-6)


def test_a_signal_cnn_export_takes_the_windows_resampled_signals(wesad_source, wesad_data, tmp_path):
    out, base = tmp_path / "cnn", tmp_path / "cnn_export"
    keras.backend.clear_session()
    assert cli.main(["train", "--dataset", "wesad/wrist", "--data-dir", str(wesad_data), "--model", "signal_cnn",
                     "--epochs", "1", "--batch-size", "4", "--out", str(out)]) == 0
    assert cli.main(["export", "--run", str(out), "--model-base-path", str(base)]) == 0
    loaded = tf.saved_model.load(str(base / "1"))
    assert loaded.signatures["serving_default"].structured_input_signature[1]["signals"].shape.as_list() == [
        None, 60 * 32, 6]

    # The signals predict-signals cuts from S3's pickle are the dataset's, and the export serves the run's output.
    model, _ = predict_signals.open_model(str(base))
    recording = predict_signals.read(wesad_source / "S3" / "S3.pkl", model, None, 15.0)
    inputs = predict_signals.model_inputs(recording, model, [{}] * len(recording.starts))
    rows = tfds.as_numpy(tfds.load("wesad/wrist", split="train", data_dir=str(wesad_data)))
    built = {float(row["start_seconds"]): row["signals"] for row in rows if row["subject"].decode() == "S3"}
    assert sorted(built) == recording.starts
    np.testing.assert_allclose(inputs, np.stack([built[start] for start in recording.starts]), atol=1e-6)
    served = loaded.signatures["serving_default"](signals=tf.constant(inputs))["probabilities"].numpy()
    expected = run_dir.RunDir.open(out).load_model()({"signals": inputs}, training=False).numpy()
    np.testing.assert_allclose(served, expected, atol=1e-5)
    assert cli.main(["export", "--run", str(out), "--model-base-path", str(base), "--int8-tflite"]) == 2
