"""The local TF Serving stand-in and EmotionClient: real gRPC/REST over loopback against real exports.

Every server listens on port 0 (a free port). Models are what `emopy export` writes, of small untrained models
(tests/serving_fixtures.py); results are compared with calling the SavedModel directly.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from emopy_tfds import faces
from emopy.serving.client import EmotionClient, ServingRequestError
from emopy.serving.local_server import ModelServer
from serving_fixtures import LABELS, face_crop, face_landmarks, face_png, write_test_model

MODEL = "emotion"
MAX_MESSAGE_BYTES = 1 << 20
MAX_BATCH = 32
AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
END = get_model_status_pb2.ModelVersionStatus.END


# --- Fixtures and helpers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def landmark_base(tmp_path_factory) -> Path:
    """A base path with version 1 of a landmark model and the clutter TF Serving ignores."""
    base = tmp_path_factory.mktemp("landmark_model")
    write_test_model(base, 1, landmarks=True)
    (base / "models.config").write_text("model_config_list {}\n")
    (base / "batching_parameters.txt").write_text("max_batch_size { value: 32 }\n")
    (base / "not-a-version").mkdir()
    return base


@pytest.fixture(scope="module")
def plain_base(tmp_path_factory) -> Path:
    """A base path with version 1 of a model without landmarks."""
    base = tmp_path_factory.mktemp("plain_model")
    write_test_model(base, 1)
    return base


@pytest.fixture(scope="module")
def landmark_server(landmark_base):
    with ModelServer(landmark_base, MODEL, port=0, rest_port=0, max_receive_message_bytes=MAX_MESSAGE_BYTES,
                     max_batch_size=MAX_BATCH) as server:
        yield server


@pytest.fixture(scope="module")
def plain_server(plain_base):
    with ModelServer(plain_base, MODEL, port=0, rest_port=0) as server:
        yield server


@pytest.fixture(scope="module")
def channel(landmark_server):
    with grpc.insecure_channel(f"127.0.0.1:{landmark_server.ports.grpc}") as channel:
        yield channel


@pytest.fixture(scope="module")
def prediction(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def models(channel):
    return model_service_pb2_grpc.ModelServiceStub(channel)


@pytest.fixture(scope="module")
def landmark_model(landmark_base):
    return tf.saved_model.load(str(landmark_base / "1"))


@pytest.fixture(scope="module")
def plain_model(plain_base):
    return tf.saved_model.load(str(plain_base / "1"))


def crops_and_landmarks(batch: int) -> tuple[list[bytes], np.ndarray]:
    return [face_png(shift=3 * i) for i in range(batch)], np.stack([face_landmarks(i) for i in range(batch)])


def predict_request(inputs: dict, *, signature: str = "serving_default", name: str = MODEL,
                    version: int | None = None, output_filter=()) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(output_filter=list(output_filter))
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(value if isinstance(value, type(request.inputs[key])) else
                                     tf.make_tensor_proto(value))
    return request


def good_request(batch: int = 2) -> predict_pb2.PredictRequest:
    crops, landmarks = crops_and_landmarks(batch)
    return predict_request({"image_bytes": tf.make_tensor_proto(crops, dtype=tf.string), "landmarks": landmarks})


def direct(model, signature: str, **inputs) -> dict[str, np.ndarray]:
    return {key: value.numpy() for key, value in model.signatures[signature](**inputs).items()}


def outputs_of(response) -> dict[str, np.ndarray]:
    return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}


def landmark_example(crop: bytes, landmarks: np.ndarray | None) -> example_pb2.Example:
    example = example_pb2.Example()
    example.features.feature["image_bytes"].bytes_list.value.append(crop)
    if landmarks is not None:
        example.features.feature["landmarks"].float_list.value.extend(landmarks.reshape(-1).tolist())
    return example


def rest_call(port: int, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                     method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# --- Predict, Classify, metadata, status -----------------------------------------------------------------


def test_predict_matches_the_saved_model(prediction, landmark_model):
    crops, landmarks = crops_and_landmarks(3)
    response = prediction.Predict(good_request(3), timeout=10)

    expected = direct(landmark_model, "serving_default", image_bytes=tf.constant(crops),
                      landmarks=tf.constant(landmarks))
    got = outputs_of(response)
    assert set(got) == {"probabilities", "classes", "class_ids"}
    np.testing.assert_allclose(got["probabilities"], expected["probabilities"], rtol=1e-5)
    np.testing.assert_array_equal(got["class_ids"], expected["class_ids"])
    assert got["classes"].tolist() == expected["classes"].tolist()
    assert got["probabilities"].shape == (3, len(LABELS))
    # TF Serving answers with the servable that ran: name, version and signature.
    assert (response.model_spec.name, response.model_spec.version.value,
            response.model_spec.signature_name) == (MODEL, 1, "serving_default")


def test_predict_pixels_signature_with_output_filter(prediction, landmark_model):
    pixels = np.stack([face_crop(shift=i)[..., :1] for i in range(2)])
    landmarks = np.stack([face_landmarks(i) for i in range(2)])
    request = predict_request({"image": pixels, "landmarks": landmarks}, signature="pixels",
                              output_filter=["probabilities"])
    response = prediction.Predict(request, timeout=10)
    assert list(response.outputs) == ["probabilities"]
    assert response.model_spec.signature_name == "pixels"
    expected = direct(landmark_model, "pixels", image=tf.constant(pixels), landmarks=tf.constant(landmarks))
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["probabilities"]), expected["probabilities"], rtol=1e-5)


def test_an_empty_signature_name_means_serving_default(prediction):
    request = good_request(1)
    request.model_spec.signature_name = ""
    assert prediction.Predict(request, timeout=10).model_spec.signature_name == "serving_default"


def test_classify_matches_the_saved_model(prediction, landmark_model):
    crops, landmarks = crops_and_landmarks(2)
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name, request.model_spec.signature_name = MODEL, "classify"
    request.input.example_list.examples.extend(landmark_example(c, p) for c, p in zip(crops, landmarks))
    response = prediction.Classify(request, timeout=10)

    serialized = [landmark_example(c, p).SerializeToString() for c, p in zip(crops, landmarks)]
    expected = direct(landmark_model, "classify", inputs=tf.constant(serialized))
    assert response.model_spec.version.value == 1
    assert len(response.result.classifications) == 2
    for row, classifications in enumerate(response.result.classifications):
        assert [entry.label for entry in classifications.classes] == list(LABELS)
        np.testing.assert_allclose([entry.score for entry in classifications.classes], expected["scores"][row],
                                   rtol=1e-5)

    # The same examples with the landmarks of the first in a shared context: context merged into each example.
    with_context = classification_pb2.ClassificationRequest()
    with_context.model_spec.CopyFrom(request.model_spec)
    with_context.input.example_list_with_context.context.CopyFrom(landmark_example(b"", landmarks[0]))
    with_context.input.example_list_with_context.context.features.feature.pop("image_bytes")
    with_context.input.example_list_with_context.examples.extend(landmark_example(c, None) for c in crops)
    shared = prediction.Classify(with_context, timeout=10).result.classifications
    np.testing.assert_allclose([entry.score for entry in shared[0].classes], expected["scores"][0], rtol=1e-5)


def test_classify_needs_a_classification_signature(prediction):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = MODEL  # serving_default is a predict signature
    request.input.example_list.examples.append(landmark_example(face_png(), face_landmarks()))
    with pytest.raises(grpc.RpcError) as caught:
        prediction.Classify(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Expected classification signature method_name" in caught.value.details()


def test_model_metadata_is_the_saved_signature_def_map(prediction, landmark_base):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL
    response = prediction.GetModelMetadata(request, timeout=10)
    assert (response.model_spec.name, response.model_spec.version.value) == (MODEL, 1)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)

    saved = saved_model_pb2.SavedModel.FromString((landmark_base / "1" / "saved_model.pb").read_bytes())
    assert dict(signature_map.signature_def) == dict(saved.meta_graphs[0].signature_def)
    serving_default = signature_map.signature_def["serving_default"]
    assert serving_default.method_name == "tensorflow/serving/predict"
    assert serving_default.inputs["image_bytes"].dtype == tf.string.as_datatype_enum
    assert [d.size for d in serving_default.inputs["landmarks"].tensor_shape.dim] == [-1, 68, 2]
    assert signature_map.signature_def["classify"].method_name == "tensorflow/serving/classify"

    request.metadata_field[:] = ["graph_def"]
    with pytest.raises(grpc.RpcError) as caught:
        prediction.GetModelMetadata(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_model_status(models):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    (status,) = models.GetModelStatus(request, timeout=10).model_version_status
    assert (status.version, status.state, status.status.error_code) == (1, AVAILABLE, 0)

    request.model_spec.name = "no_such_model"
    with pytest.raises(grpc.RpcError) as caught:
        models.GetModelStatus(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_unimplemented_apis_say_so(prediction):
    with pytest.raises(grpc.RpcError) as caught:
        prediction.Regress(regression_pb2.RegressionRequest(), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


# --- Malformed requests ----------------------------------------------------------------------------------


def _malformed_requests() -> dict[str, tuple]:
    crops, landmarks = crops_and_landmarks(2)
    image_bytes = tf.make_tensor_proto(crops, dtype=tf.string)
    with_landmarks = {"image_bytes": image_bytes, "landmarks": landmarks}
    png = face_png()
    return {
        # name: (request, expected code, words the message must contain)
        "unknown model": (predict_request(with_landmarks, name="no_such_model"), grpc.StatusCode.NOT_FOUND,
                          ["no_such_model"]),
        "unknown version": (predict_request(with_landmarks, version=7), grpc.StatusCode.NOT_FOUND, ["7"]),
        "unknown signature": (predict_request(with_landmarks, signature="nope"), grpc.StatusCode.NOT_FOUND, ["nope"]),
        "missing input": (predict_request({"image_bytes": image_bytes}), grpc.StatusCode.INVALID_ARGUMENT,
                          ["landmarks", "missing"]),
        "extra input": (predict_request({**with_landmarks, "age": np.array([30, 40])}),
                        grpc.StatusCode.INVALID_ARGUMENT, ["age"]),
        "wrong dtype": (predict_request({"image_bytes": image_bytes, "landmarks": landmarks.astype(np.float64)}),
                        grpc.StatusCode.INVALID_ARGUMENT, ["landmarks", "float64", "float32"]),
        "wrong fixed dimension": (predict_request({"image_bytes": image_bytes, "landmarks": landmarks[:, :60]}),
                                  grpc.StatusCode.INVALID_ARGUMENT, ["landmarks", "[2, 60, 2]", "[-1, 68, 2]"]),
        "wrong rank": (predict_request({"image_bytes": tf.make_tensor_proto([crops], dtype=tf.string),
                                        "landmarks": landmarks}),
                       grpc.StatusCode.INVALID_ARGUMENT, ["image_bytes", "[1, 2]"]),
        "batch sizes differ": (predict_request({"image_bytes": image_bytes, "landmarks": landmarks[:1]}),
                               grpc.StatusCode.INVALID_ARGUMENT, ["batch"]),
        "not an image": (predict_request({"image_bytes": tf.make_tensor_proto([b"hello", png], dtype=tf.string),
                                          "landmarks": landmarks}),
                         grpc.StatusCode.INVALID_ARGUMENT, ["image_bytes", "image file format"]),
        "truncated png": (predict_request({"image_bytes": tf.make_tensor_proto([png[: len(png) // 3]] * 2,
                                                                               dtype=tf.string),
                                           "landmarks": landmarks}),
                          grpc.StatusCode.INVALID_ARGUMENT, ["PNG"]),
        "unknown output filter": (predict_request(with_landmarks, output_filter=["age"]),
                                  grpc.StatusCode.INVALID_ARGUMENT, ["age"]),
        "message too large": (predict_request({"image_bytes": tf.make_tensor_proto([b"x" * MAX_MESSAGE_BYTES] * 2,
                                                                                   dtype=tf.string),
                                               "landmarks": landmarks}),
                              grpc.StatusCode.RESOURCE_EXHAUSTED, []),
        "batch too large": (predict_request({"image_bytes": tf.make_tensor_proto([png] * (MAX_BATCH + 1),
                                                                                 dtype=tf.string),
                                             "landmarks": np.repeat(landmarks[:1], MAX_BATCH + 1, axis=0)}),
                            grpc.StatusCode.RESOURCE_EXHAUSTED, [str(MAX_BATCH)]),
    }


MALFORMED = _malformed_requests()


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_request_gets_its_status_code_and_the_server_keeps_serving(case, prediction):
    request, code, words = MALFORMED[case]
    with pytest.raises(grpc.RpcError) as caught:
        prediction.Predict(request, timeout=10)
    assert caught.value.code() == code, caught.value.details()
    for word in words:
        assert word in caught.value.details(), caught.value.details()
    assert outputs_of(prediction.Predict(good_request(), timeout=10))["probabilities"].shape == (2, len(LABELS))


def test_concurrent_clients(landmark_server, prediction):
    """8 clients, each on its own channel, 200 requests each: no errors, every answer right."""
    request = good_request(1)
    expected = outputs_of(prediction.Predict(request, timeout=10))["probabilities"]
    errors, answers = [], []

    def client() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{landmark_server.ports.grpc}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for _ in range(200):
                try:
                    answers.append(tf.make_ndarray(stub.Predict(request, timeout=30).outputs["probabilities"]))
                except grpc.RpcError as error:
                    errors.append(error)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    assert len(answers) == 1600
    np.testing.assert_allclose(np.concatenate(answers), np.repeat(expected, 1600, axis=0), rtol=1e-5)


# --- Versions --------------------------------------------------------------------------------------------


@pytest.mark.scale  # an export and a server of its own, about 17 s: CI runs it with the scale checks
def test_a_new_version_is_served_without_restart(tmp_path):
    base = tmp_path / "models"
    write_test_model(base, 1)
    with ModelServer(base, MODEL, port=0, poll_seconds=0.1) as server, \
            grpc.insecure_channel(f"127.0.0.1:{server.ports.grpc}") as channel:
        prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        models = model_service_pb2_grpc.ModelServiceStub(channel)
        request = predict_request({"image_bytes": tf.make_tensor_proto([face_png()], dtype=tf.string)})
        before = prediction.Predict(request, timeout=10)
        assert before.model_spec.version.value == 1

        # Clutter the poller must ignore or survive: a half-written version (no saved_model.pb yet) and an
        # export's temporary folder.
        (base / "9" / "variables").mkdir(parents=True)
        (base / ".tmp-export").mkdir()
        write_test_model(base, 2, bias=3.0)

        status_request = get_model_status_pb2.GetModelStatusRequest()
        status_request.model_spec.name = MODEL
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            states = {s.version: s.state for s in models.GetModelStatus(status_request, timeout=10).model_version_status}
            if states.get(2) == AVAILABLE:
                break
            time.sleep(0.05)
        assert states == {2: AVAILABLE, 1: END}

        after = prediction.Predict(request, timeout=10)
        assert after.model_spec.version.value == 2
        expected = direct(tf.saved_model.load(str(base / "2")), "serving_default",
                          image_bytes=tf.constant([face_png()]))
        np.testing.assert_allclose(outputs_of(after)["probabilities"], expected["probabilities"], rtol=1e-5)
        assert not np.allclose(outputs_of(after)["probabilities"], outputs_of(before)["probabilities"])

        # Only the latest version is served, as with TF Serving's default version policy.
        with pytest.raises(grpc.RpcError) as caught:
            prediction.Predict(predict_request({"image_bytes": request.inputs["image_bytes"]}, version=1), timeout=10)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND

        # A broken export is reported by GetModelStatus and does not replace the version being served.
        (base / "3").mkdir()
        (base / "3" / "saved_model.pb").write_bytes(b"not a SavedModel")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            statuses = {s.version: s for s in models.GetModelStatus(status_request, timeout=10).model_version_status}
            if 3 in statuses and statuses[3].state == END:
                break
            time.sleep(0.05)
        assert statuses[3].state == END and statuses[3].status.error_code != 0 and statuses[3].status.error_message
        assert statuses[2].state == AVAILABLE
        assert prediction.Predict(request, timeout=10).model_spec.version.value == 2


# --- EmotionClient ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(plain_server):
    with EmotionClient(f"127.0.0.1:{plain_server.ports.grpc}", MODEL) as client:
        yield client


def test_client_predict_on_bytes_and_arrays_single_and_batch(client, plain_model):
    expected = direct(plain_model, "serving_default",
                      image_bytes=tf.constant([face_png(), face_png(shift=4)]))["probabilities"]

    single = client.predict(face_png())
    assert single["probabilities"].shape == (1, len(LABELS))  # one crop in: still a batch of one
    assert single["classes"] == [LABELS[single["class_ids"][0]]]
    assert single["model_version"] == 1
    np.testing.assert_allclose(single["probabilities"][0], expected[0], rtol=1e-5)

    # An RGB array is sent as PNG, so it gives what its PNG gives.
    np.testing.assert_allclose(client.predict(face_crop())["probabilities"][0], expected[0], rtol=1e-5)

    batch = client.predict([face_crop(), face_png(shift=4)])
    np.testing.assert_allclose(batch["probabilities"], expected, rtol=1e-5)
    assert len(batch["classes"]) == 2 and batch["class_ids"].shape == (2,)

    stacked = client.predict(np.stack([face_crop(), face_crop(shift=4)]))
    np.testing.assert_allclose(stacked["probabilities"], expected, rtol=1e-5)

    gray = face_crop()[..., 0]
    assert client.predict(gray)["probabilities"].shape == (1, len(LABELS))


def test_client_predict_pixels_and_classify_agree_with_predict(client):
    crops = [face_crop(), face_crop(shift=4)]
    by_bytes = client.predict(crops)["probabilities"]
    classified = client.classify(crops)
    assert [list(scores) for scores in classified] == [list(LABELS)] * 2
    np.testing.assert_allclose([list(scores.values()) for scores in classified], by_bytes, rtol=1e-5)

    # The pixels signature on the pixels the bytes signature decodes (the PNG's RGB, to grey as the export does: a
    # 48 px crop needs no resizing) gives the same answer.
    pixels = np.stack([tf.image.rgb_to_grayscale(face_crop(shift=shift)).numpy() for shift in (0, 4)])
    by_pixels = client.predict_pixels(pixels)["probabilities"]
    np.testing.assert_allclose(by_pixels, by_bytes, rtol=1e-5)


def test_client_metadata_and_status(client):
    signatures = client.metadata()
    assert set(signatures) == {"serving_default", "pixels", "classify", "face_spec"}
    assert signatures["serving_default"]["inputs"] == {"image_bytes": {"dtype": "string", "shape": [None]}}
    assert signatures["serving_default"]["outputs"]["probabilities"] == {"dtype": "float32",
                                                                         "shape": [None, len(LABELS)]}
    assert signatures["pixels"]["inputs"]["image"] == {"dtype": "uint8", "shape": [None, 48, 48, 1]}
    assert client.status() == {1: "AVAILABLE"}


def test_client_raises_errors_with_their_code_without_retrying(plain_server):
    with EmotionClient(f"127.0.0.1:{plain_server.ports.grpc}", "no_such_model", retries=5,
                       backoff_seconds=1.0) as client:
        started = time.monotonic()
        with pytest.raises(ServingRequestError) as caught:
            client.predict(face_png())
        assert time.monotonic() - started < 1.0  # NOT_FOUND is not retried
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert isinstance(caught.value, grpc.RpcError)
    assert "no_such_model" in str(caught.value)


def test_client_deadline_exceeded_raises(plain_server):
    with EmotionClient(f"127.0.0.1:{plain_server.ports.grpc}", timeout=0.001, backoff_seconds=1.0) as client:
        started = time.monotonic()
        with pytest.raises(ServingRequestError) as caught:
            client.predict([face_png(shift=i % 8) for i in range(32)])
        assert time.monotonic() - started < 1.0
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_client_retries_while_the_server_restarts(plain_base):
    first = ModelServer(plain_base, MODEL, port=0)
    port = first.start().grpc
    with EmotionClient(f"127.0.0.1:{port}", retries=5, backoff_seconds=0.2) as client:
        assert client.predict(face_png())["model_version"] == 1
        first.stop(grace=0)

        with EmotionClient(f"127.0.0.1:{port}", retries=0) as impatient:
            with pytest.raises(ServingRequestError) as caught:
                impatient.predict(face_png())
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE

        second = ModelServer(plain_base, MODEL, port=port)
        restart = threading.Timer(0.5, second.start)
        restart.start()
        try:
            assert client.predict(face_png())["model_version"] == 1  # UNAVAILABLE until the restart, then served
        finally:
            restart.join()
            second.stop(grace=0)


def test_rest_predict_classify_metadata_and_status_agree_with_grpc(plain_server, client):
    with EmotionClient(f"127.0.0.1:{plain_server.ports.rest}", MODEL, rest=True) as rest_client:
        crops = [face_png(), face_crop(shift=4)]
        by_grpc = client.predict(crops)
        by_rest = rest_client.predict(crops)
        np.testing.assert_array_equal(by_rest["probabilities"], by_grpc["probabilities"])
        assert by_rest["classes"] == by_grpc["classes"]
        np.testing.assert_array_equal(by_rest["class_ids"], by_grpc["class_ids"])
        np.testing.assert_allclose([list(s.values()) for s in rest_client.classify(crops)], by_grpc["probabilities"],
                                   rtol=1e-5)
        assert rest_client.metadata() == client.metadata()
        # The export's face spec and class names, from its `face_spec` signature, either way.
        assert rest_client.model_assets() == client.model_assets() == (faces.FaceSpec(crop_size=48), list(LABELS))
        assert rest_client.status() == {1: "AVAILABLE"}
        with pytest.raises(ServingRequestError) as caught:
            rest_client.predict(b"not an image")
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_an_export_made_before_the_face_spec_signature_still_serves_a_recognizer(tmp_path):
    """Without the `face_spec` signature, model_assets is NOT_FOUND either way, and a Recognizer of the server takes
    the class names from one Classify call and the default FaceSpec for the crop size."""
    from emopy.serving.predict import Recognizer

    write_test_model(tmp_path, 1, face_spec_signature=False)
    with ModelServer(tmp_path, MODEL, port=0, rest_port=0) as server, \
            EmotionClient(f"127.0.0.1:{server.ports.grpc}", MODEL) as client, \
            EmotionClient(f"127.0.0.1:{server.ports.rest}", MODEL, rest=True) as rest_client:
        assert set(client.metadata()) == {"serving_default", "pixels", "classify"}
        for either in (client, rest_client):
            with pytest.raises(ServingRequestError) as caught:
                either.model_assets()
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND and "face_spec" in caught.value.details()
        with Recognizer.from_server(f"127.0.0.1:{server.ports.grpc}", MODEL) as recognizer:
            assert recognizer.classes == LABELS and recognizer.face_spec == faces.FaceSpec(crop_size=48)
            grey = tf.image.rgb_to_grayscale(face_crop()).numpy()
            np.testing.assert_allclose(recognizer.classify_crops([grey]), client.predict(face_crop())["probabilities"],
                                       rtol=1e-5)


def test_rest_api_formats(plain_server, landmark_server):
    port = plain_server.ports.rest
    b64 = {"b64": base64.b64encode(face_png()).decode()}

    # Row format with a single input: instances are its values.
    status, body = rest_call(port, f"/v1/models/{MODEL}:predict", {"instances": [b64, b64]})
    assert status == 200 and len(body["predictions"]) == 2
    assert set(body["predictions"][0]) == {"probabilities", "classes", "class_ids"}
    assert body["predictions"][0]["classes"] in LABELS

    # Row format with named inputs, and a specific version in the path.
    points = face_landmarks().tolist()
    status, body = rest_call(landmark_server.ports.rest, f"/v1/models/{MODEL}/versions/1:predict",
                             {"instances": [{"image_bytes": b64, "landmarks": points}]})
    assert status == 200 and len(body["predictions"]) == 1

    status, body = rest_call(port, f"/v1/models/{MODEL}")
    assert body == {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                              "status": {"error_code": "OK", "error_message": ""}}]}
    status, body = rest_call(port, f"/v1/models/{MODEL}/metadata")
    assert status == 200 and body["model_spec"]["version"] == "1"
    assert "serving_default" in body["metadata"]["signature_def"]["signature_def"]

    for path, request, expected_status in [
        ("/v1/models/nope:predict", {"instances": [b64]}, 404),
        (f"/v1/models/{MODEL}/versions/5:predict", {"instances": [b64]}, 404),
        (f"/v1/models/{MODEL}:predict", {"signature_name": "nope", "instances": [b64]}, 404),
        (f"/v1/models/{MODEL}:predict", {"instances": [{"b64": "aGVsbG8="}]}, 400),
        (f"/v1/models/{MODEL}:predict", {"instances": [{"image_bytes": b64, "age": 3}]}, 400),
        (f"/v1/models/{MODEL}:predict", {"inputs": {"image_bytes": [[b64]]}}, 400),
        (f"/v1/models/{MODEL}:predict", {"instances": [b64], "inputs": [b64]}, 400),
    ]:
        status, body = rest_call(port, path, request)
        assert status == expected_status and body["error"], (path, request, status, body)


# --- serve(): what `emopy serve` runs --------------------------------------------------------------------


def test_serve_prints_where_it_listens_and_stops_on_sigterm(plain_base):
    script = f"from emopy.serving.local_server import serve; serve({str(plain_base)!r}, 'emotion', port=0, rest_port=0)"
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=environment)
    try:
        line = process.stdout.readline()
        where = re.search(r"gRPC on 127\.0\.0\.1:(\d+), REST on http://127\.0\.0\.1:(\d+)/v1/models/emotion", line)
        assert where and "version 1" in line, line
        with EmotionClient(f"127.0.0.1:{where[1]}") as grpc_client:
            assert grpc_client.status() == {1: "AVAILABLE"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_missing_base_path_is_an_error_and_an_empty_one_waits_for_a_version(tmp_path):
    with pytest.raises(FileNotFoundError):
        ModelServer(tmp_path / "typo", port=0).start()
    with ModelServer(tmp_path, MODEL, port=0, poll_seconds=0.1) as server, \
            EmotionClient(f"127.0.0.1:{server.ports.grpc}", retries=0) as client:
        with pytest.raises(ServingRequestError) as caught:
            client.predict(face_png())
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        write_test_model(tmp_path, 4)
        assert server.wait_for_version(4, timeout=10)
        assert client.predict(face_png())["model_version"] == 4
