"""Decompression bombs: exported signatures refuse an image whose header declares more pixels than the export's limit,
before decoding it (in Python, over gRPC and over REST), and the photo reader converts 16-bit images without a
float copy."""

from __future__ import annotations

import base64
import io
import json
import struct
import tracemalloc
import zlib
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import classification_pb2, input_pb2, model_pb2, predict_pb2, prediction_service_pb2_grpc

from emopy_tfds import faces
from emopy.pipeline import cli
from emopy.serving import layout, pixel_limit, shipped
from emopy.serving.local_server import ModelServer
from emopy.serving.recognizer import Recognizer

LIMIT = 64 * 64  # the re-export's limit: a 64x64 crop passes, a 65x64 one does not
MODEL = "emotion"


def _encoded(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A PNG of nothing but its signature and an IHDR declaring width x height 8-bit gray pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(header)) + b"IHDR" + header
            + struct.pack(">I", zlib.crc32(b"IHDR" + header)))


def gif_bomb(width: int, height: int) -> bytes:
    """A GIF whose header's screen is 10x10 but whose one (empty) frame declares width x height at (0, 0)."""
    return (b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0, 0, 0) + b"," + struct.pack("<HHHHB", 0, 0, width, height, 0)
            + b"\x08\x00;")


@pytest.fixture(scope="module")
def crops(astronaut) -> dict[str, bytes]:
    """The astronaut's face as PNG crops: 48 px (the model's size), 64 px (at the limit), 65x64 (over it)."""
    face = astronaut[30:210, 160:340]
    sizes = {"48": (48, 48), "64": (64, 64), "65x64": (65, 64)}
    return {name: faces.encode_png(cv2.resize(face, size, interpolation=cv2.INTER_AREA))
            for name, size in sizes.items()}


@pytest.fixture(scope="module")
def limited(tmp_path_factory) -> Path:
    """The shipped default model, re-exported with today's signatures and a limit of 64x64 pixels."""
    base = tmp_path_factory.mktemp("limited")
    assert cli.main(["export", "--from-export", shipped.DEFAULT, "--model-base-path", str(base),
                     "--max-image-pixels", str(LIMIT)]) == 0
    return base / "1"


@pytest.fixture(scope="module")
def server(limited):
    with ModelServer(limited.parent, MODEL, port=0, rest_port=0) as server:
        yield server


def test_sizes_are_read_from_headers_as_tensorflow_decodes_them(tmp_path):
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (37, 53, 3), np.uint8))
    still = {
        "png": _encoded(image, "PNG"),
        "png 16-bit": _encoded(Image.fromarray(rng.integers(0, 65535, (37, 53), np.uint16)), "PNG"),
        "jpeg": _encoded(image, "JPEG"),
        "progressive gray jpeg": _encoded(image.convert("L"), "JPEG", progressive=True),
        "bmp": _encoded(image, "BMP"),
        "gif": _encoded(image, "GIF"),
        "webp": _encoded(image, "WEBP"),
        "lossless webp": _encoded(image, "WEBP", lossless=True),
        "extended webp": _encoded(image, "WEBP", exif=b"Exif\0\0MM\0*\0\0\0\x08\0\0"),
    }
    # A GIF's decoder allocates the frames' extent, which its header's screen size need not cover.
    small_screen = bytearray(still["gif"])
    small_screen[6:10] = struct.pack("<HH", 10, 10)
    still["gif, screen smaller than its frame"] = bytes(small_screen)
    declared = tf.function(pixel_limit.declared_size)
    for name, encoded in still.items():
        height, width = tf.io.decode_image(encoded, channels=3, expand_animations=False).shape[:2]
        assert declared(tf.constant(encoded)).numpy().tolist() == [width, height, 1], name
    frames = [Image.new("RGB", (30, 20), (80 * i, 0, 0)) for i in range(3)]
    animated = _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10)
    assert declared(tf.constant(animated)).numpy().tolist() == [30, 20, 3]  # every frame is decoded
    for not_an_image in (b"", b"\x89PN", b"hello", b"RIFF\0\0\0\0WEBPVP9 " + bytes(20)):
        assert declared(tf.constant(not_an_image)).numpy().tolist() == [-1, -1, 0], not_an_image


def test_a_header_only_bomb_is_refused_without_decoding():
    decode = tf.function(lambda encoded: pixel_limit.decode_image(encoded, faces.MAX_IMAGE_PIXELS,
                                                                  lambda: tf.constant("image_bytes[0]")))
    for bomb, size in ((png_bomb(100_000, 100_000), "100000x100000"), (gif_bomb(30_000, 30_000), "30000x30000")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"image_bytes\\[0\\]: the image declares {size} "
                           f"pixels, over the limit of {faces.MAX_IMAGE_PIXELS} this model was exported with"):
            decode(tf.constant(bomb))
    with pytest.raises(tf.errors.InvalidArgumentError, match="not a JPEG, PNG, GIF, BMP or WebP image"):
        decode(tf.constant(b"\xff\x0aJPEG XL, which TensorFlow would decode"))


def test_a_run_exported_with_the_default_limit_refuses_a_bomb_in_every_signature_that_decodes(exported, crops):
    bomb = png_bomb(20_000, 20_000)  # 400 million pixels declared, in 33 bytes
    for model, path in exported.items():
        assert layout.max_image_pixels(path) == faces.MAX_IMAGE_PIXELS
        loaded = tf.saved_model.load(str(path))
        if model == "landmark_lstm":  # clips [batch, T]: the refused image is named by both
            calls = {"serving_default": lambda: loaded.signatures["serving_default"](
                image_bytes=tf.constant([[crops["48"], bomb]]), landmarks=tf.zeros([1, 2, 68, 2]))}
            where = "image_bytes\\[0, 1\\]"
        else:
            example = tf.train.Example(features=tf.train.Features(feature={
                "image_bytes": tf.train.Feature(bytes_list=tf.train.BytesList(value=[bomb])),
                "landmarks": tf.train.Feature(float_list=tf.train.FloatList(value=[24.0] * 136))}))
            landmarks = {"landmarks": tf.zeros([2, 68, 2])} if model == "multi_input" else {}
            serialized = tf.constant([example.SerializeToString()])
            calls = {"serving_default": lambda: loaded.signatures["serving_default"](
                         image_bytes=tf.constant([crops["48"], bomb]), **landmarks),
                     "classify": lambda: loaded.signatures["classify"](inputs=serialized)}
            where = "image_bytes\\[1\\]"
        for signature, call in calls.items():
            with pytest.raises(tf.errors.InvalidArgumentError, match=f"{where if signature != 'classify' else ''}.*"
                               f"declares 20000x20000 pixels, over the limit of {faces.MAX_IMAGE_PIXELS}"):
                call()


def test_the_saved_model_refuses_an_image_over_its_limit(limited, crops):
    loaded = tf.saved_model.load(str(limited))
    served = loaded.signatures["serving_default"]
    good = served(image_bytes=tf.constant([crops["48"], crops["64"]]))["probabilities"].numpy()
    expected = tf.saved_model.load(str(layout.resolve_export(shipped.base_path()))).signatures["serving_default"](
        image_bytes=tf.constant([crops["48"], crops["64"]]))["probabilities"].numpy()
    np.testing.assert_allclose(good, expected, atol=1e-6)  # the same model, refusing more
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=f"image_bytes\\[1\\]: the image declares 65x64 pixels, over the limit of {LIMIT} this "
                             f"model was exported with, .*emopy export --max-image-pixels N"):
        served(image_bytes=tf.constant([crops["48"], crops["65x64"]]))
    example = tf.train.Example(features=tf.train.Features(feature={
        "image_bytes": tf.train.Feature(bytes_list=tf.train.BytesList(value=[crops["65x64"]]))}))
    with pytest.raises(tf.errors.InvalidArgumentError, match="declares 65x64 pixels"):
        loaded.signatures["classify"](inputs=tf.constant([example.SerializeToString()]))


def test_the_limit_is_recorded_with_the_provenance_and_the_recognizer_applies_it(limited, crops, tmp_path):
    record = json.loads((limited / layout.ASSETS / layout.EXPORT_ASSET).read_text())
    base_record = json.loads((layout.resolve_export(shipped.base_path()) / layout.ASSETS / layout.EXPORT_ASSET)
                             .read_text())
    assert record[layout.MAX_PIXELS_KEY] == LIMIT == layout.max_image_pixels(limited)
    assert {key: record[key] for key in base_record if key != layout.MAX_PIXELS_KEY} == {
        key: value for key, value in base_record.items() if key != layout.MAX_PIXELS_KEY}
    assert set(record["reexported_by"]) == {"emopy_version", "git_commit"}
    photo = tmp_path / "photo.png"
    photo.write_bytes(crops["65x64"])
    with Recognizer.from_export(limited) as recognizer:
        assert recognizer.max_pixels == LIMIT
        with pytest.raises(faces.ImageError, match=f"65x64 pixels is too large to decode safely \\(limit {LIMIT}"):
            recognizer.predict_image(photo)


def test_grpc_answers_invalid_argument_and_serves_the_next_request(server, limited, crops):
    def predict(*images: bytes) -> predict_pb2.PredictResponse:
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=MODEL))
        request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(list(images), dtype=tf.string))
        return stub.Predict(request, timeout=60)

    with grpc.insecure_channel(f"127.0.0.1:{server.ports.grpc}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for images in ((crops["65x64"],), (crops["48"], png_bomb(12_000, 12_000))):
            with pytest.raises(grpc.RpcError) as refused:
                predict(*images)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert f"pixels, over the limit of {LIMIT}" in refused.value.details()
        assert "image_bytes[1]: the image declares 12000x12000 pixels" in refused.value.details()
        probabilities = tf.make_ndarray(predict(crops["48"], crops["64"]).outputs["probabilities"])
        classes = layout.read_assets(limited).class_names
        assert probabilities.shape == (2, len(classes)) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
        example = tf.train.Example(features=tf.train.Features(feature={
            "image_bytes": tf.train.Feature(bytes_list=tf.train.BytesList(value=[crops["65x64"]]))}))
        request = classification_pb2.ClassificationRequest(
            model_spec=model_pb2.ModelSpec(name=MODEL, signature_name="classify"),
            input=input_pb2.Input(example_list=input_pb2.ExampleList(examples=[example])))
        with pytest.raises(grpc.RpcError) as refused:
            stub.Classify(request, timeout=60)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "65x64" in refused.value.details()


def test_rest_answers_400(server, crops):
    import urllib.error
    import urllib.request

    def post(*images: bytes) -> tuple[int, dict]:
        body = json.dumps({"instances": [{"b64": base64.b64encode(image).decode()} for image in images]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{server.ports.rest}/v1/models/{MODEL}:predict", body)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    status, answer = post(crops["48"], crops["65x64"])
    assert status == 400 and "image_bytes[1]: the image declares 65x64 pixels" in answer["error"]
    status, answer = post(crops["64"])
    assert status == 200 and len(answer["predictions"]) == 1


def test_16_bit_images_are_converted_without_a_float_copy():
    every_value = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    expected = np.round(every_value / 257.0).astype(np.uint8)
    assert np.array_equal(faces.to_rgb8(every_value)[:, :, 0], expected)
    gradient = (np.linspace(0, 65535, 1000 * 1200).reshape(1000, 1200, 1) * [1.0, 0.5, 0.25]).astype(np.uint16)
    encoded = cv2.imencode(".png", gradient)[1].tobytes()
    tracemalloc.start()
    try:
        rgb = faces.load_image(encoded)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rgb.shape == (1000, 1200, 3) and rgb.dtype == np.uint8
    # What must be held: the 16-bit decoding (6 bytes a pixel) and two uint8 copies (3 each), 2.07 times the 16-bit
    # image as measured; a float64 copy alone would be 4 times it (through float64, the peak was 9 times).
    assert peak < 3 * gradient.nbytes, peak / gradient.nbytes
