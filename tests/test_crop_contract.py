"""A face in a photo reaches the network as its training crop did: the same pixels and landmarks, up to
interpolation, once the crop has gone through the real fer2013 builder and the photo through prediction."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emopy import models
from builds import build_here
from emopy_tfds import faces, labels
from emopy_tfds.fer2013 import dummy_data_generation
from emopy.pipeline import data
from emopy.serving import predict

SPEC = models.InputSpec(kind="image_landmarks")


@pytest.fixture(scope="module")
def training_crop(astronaut, astronaut_face, tmp_path_factory) -> tuple[dict, data.DataConfig]:
    """The astronaut's face framed as fer2013's crops are, built into fer2013 and read back as training reads
    it: (the network's inputs for it, the run's data config)."""
    crop = faces.align_face(astronaut, astronaut_face.landmarks, faces.FER2013_FRAMING).image[:, :, 0]
    source = tmp_path_factory.mktemp("fer2013_source")
    dummy_data_generation.write_source(source, np.stack([crop, crop]), [3, 3], ["Training", "Training"])
    data_dir = tmp_path_factory.mktemp("fer2013_data")
    build_here("fer2013", source, data_dir, "original")
    config = data.DataConfig("fer2013", data_dir=str(data_dir))
    inputs, _ = next(iter(data.batches(config, "train", SPEC, batch_size=1)))
    return {name: value.numpy()[0] for name, value in inputs.items()}, config


def _network_inputs(photo: np.ndarray, face_spec: faces.FaceSpec, near: tuple[float, float]) -> dict:
    """What prediction hands the network for the face of `photo` whose box centre is nearest `near`."""
    seen = {}

    def classify(pixels: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        seen.update(images=pixels, landmarks=landmarks)
        return np.full((len(pixels), len(labels.FER2013)), 1.0 / len(labels.FER2013))

    recognizer = predict.Recognizer(classify, labels.FER2013, face_spec, predict.ModelInput(48, 1, True))
    table = recognizer.predict_frame(photo)
    centres = np.array([(x + w / 2, y + h / 2) for x, y, w, h in table["box"]])
    row = int(np.argmin(np.linalg.norm(centres - np.asarray(near), axis=1)))
    assert np.linalg.norm(centres[row] - near) < 20, "the astronaut's face was not found"
    return {"image": seen["images"][row], "landmarks": seen["landmarks"][row]}


def _photo(astronaut: np.ndarray, scale: float, offset: tuple[int, int]) -> np.ndarray:
    """The astronaut scaled and placed in a larger, noisy grey canvas."""
    resized = cv2.resize(astronaut, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    canvas = np.random.default_rng(0).normal(128, 20, (1000, 1100, 3)).clip(0, 255).astype(np.uint8)
    x, y = offset
    canvas[y:y + resized.shape[0], x:x + resized.shape[1]] = resized
    return canvas


@pytest.mark.parametrize("scale, offset", [(1.0, (301, 157)), (1.5, (37, 93))])
def test_a_face_found_in_a_photo_reaches_the_network_as_its_training_crop(astronaut, astronaut_face, training_crop,
                                                                          scale, offset):
    trained, config = training_crop
    x, y, w, h = astronaut_face.box
    near = (offset[0] + scale * (x + w / 2), offset[1] + scale * (y + h / 2))
    face_spec = data.face_spec(config, SPEC)
    assert face_spec == faces.FER2013_FRAMING  # what the builder recorded, and what an export would carry
    seen = _network_inputs(_photo(astronaut, scale, offset), face_spec, near)
    assert seen["image"].dtype == trained["image"].dtype == np.uint8
    assert seen["image"].shape == trained["image"].shape == (48, 48, 1)
    pixel_error = np.abs(seen["image"].astype(float) - trained["image"].astype(float))
    point_error = np.linalg.norm(seen["landmarks"] - trained["landmarks"], axis=1)
    # Interpolation error: the photo's face is resampled from another grid, and its detector box lands a little
    # differently, which moves the crop by a fraction of a pixel.
    assert pixel_error.mean() < 6.0, pixel_error.mean()
    assert point_error.mean() < 1.0 and point_error.max() < 3.0, (point_error.mean(), point_error.max())

    # emopy's own framing of the same photo is far from the training crop: the check above has teeth.
    other = _network_inputs(_photo(astronaut, scale, offset), faces.FaceSpec(crop_size=48), near)
    assert np.abs(other["image"].astype(float) - trained["image"].astype(float)).mean() > 3 * pixel_error.mean()


def test_image_only_models_get_the_same_crop_without_the_landmark_refit(astronaut):
    """The refit on the crop only feeds landmark models; an image-only model gets the very same pixels."""
    seen = {}

    def classify(pixels: np.ndarray, landmarks: np.ndarray | None) -> np.ndarray:
        seen[landmarks is None] = pixels
        return np.full((len(pixels), len(labels.FER2013)), 1.0 / len(labels.FER2013))

    for uses_landmarks in (True, False):
        recognizer = predict.Recognizer(classify, labels.FER2013, faces.FER2013_FRAMING,
                                        predict.ModelInput(48, 1, uses_landmarks))
        assert recognizer.face_spec == faces.FER2013_FRAMING
        assert recognizer.crop_spec.landmarks == ("crop" if uses_landmarks else "photo")
        recognizer.predict_frame(astronaut)
    np.testing.assert_array_equal(seen[True], seen[False])
