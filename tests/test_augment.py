"""Augmentation moves images and landmarks together; landmark features are invariant and continuous."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from emopy_tfds import faces
from emopy.pipeline import augment
from emopy.models.preprocessing import landmark_features

SIZE = 48


@pytest.fixture(scope="module")
def aligned(astronaut, astronaut_face) -> faces.AlignedFace:
    return faces.align_face(astronaut, astronaut_face.landmarks, faces.FaceSpec(crop_size=SIZE))


def test_flip_twice_is_identity(aligned):
    image = tf.constant(aligned.image[None])
    points = tf.constant(aligned.landmarks[None])
    once = augment.flip(image, points)
    twice = augment.flip(*once)
    np.testing.assert_array_equal(twice[0].numpy(), image.numpy())
    np.testing.assert_allclose(twice[1].numpy(), points.numpy(), atol=1e-5)
    assert not np.allclose(once[1].numpy(), points.numpy())


def test_flip_swaps_left_and_right_eyes_exactly(aligned):
    points = aligned.landmarks
    flipped = augment.flip_landmarks(points, SIZE).numpy()
    mirror_x = SIZE - 1 - points[:, 0]
    # The subject's right eye in the flipped face is the left eye mirrored, point for point (outer corner
    # to outer corner), and the other way round.
    right_eye_after = flipped[faces.RIGHT_EYE]
    left_eye_before = np.stack([mirror_x, points[:, 1]], axis=1)[faces.LEFT_EYE]
    np.testing.assert_allclose(right_eye_after[[0, 3]], left_eye_before[[3, 0]], atol=1e-5)
    np.testing.assert_allclose(np.sort(right_eye_after, axis=0), np.sort(left_eye_before, axis=0), atol=1e-5)
    # The right eye stays on the image's left: what a real flipped photo's landmarks would say.
    assert flipped[faces.RIGHT_EYE, 0].mean() < flipped[faces.LEFT_EYE, 0].mean()
    assert points[faces.RIGHT_EYE, 0].mean() < points[faces.LEFT_EYE, 0].mean()
    # Midline points (nose bridge, chin) only move across the vertical axis.
    for index in (8, 27, 30, 33, 51, 57):
        np.testing.assert_allclose(flipped[index], [mirror_x[index], points[index, 1]], atol=1e-5)


def test_flip_matches_landmarks_fitted_on_the_flipped_photo(astronaut, astronaut_face):
    """The mirrored image's own dlib landmarks agree with the flipped ones (a real check of the index map)."""
    mirrored_photo = astronaut[:, ::-1].copy()
    (mirrored_face,) = faces.find_faces(mirrored_photo)
    flipped = augment.flip_landmarks(astronaut_face.landmarks, astronaut.shape[1]).numpy()
    error = np.linalg.norm(flipped - mirrored_face.landmarks, axis=1)
    assert np.median(error) < 3.0, error  # pixels, on a face about 90 px wide


def _peak(image: np.ndarray) -> np.ndarray:
    y, x = np.unravel_index(np.argmax(image), image.shape)
    return np.array([x, y], np.float32)


def test_geometric_augmentation_moves_pixels_and_points_together():
    """A bright dot drawn at each landmark position ends up where the augmented landmark says."""
    rng = np.random.default_rng(0)
    points = np.round(rng.uniform(14, 34, size=(16, 68, 2))).astype(np.float32)
    images = np.zeros((16, SIZE, SIZE, 1), np.uint8)
    for image, landmarks in zip(images, points):
        x, y = landmarks[30].astype(int)
        image[y - 1:y + 2, x - 1:x + 2, 0] = 255
    only_geometry = augment.Augmentation(rotation_degrees=15, shift=0.1, zoom=0.1, brightness=0, contrast=0)
    tf.random.set_seed(3)
    out_images, out_points = augment.augment(tf.constant(images), tf.constant(points), SIZE, only_geometry)
    for image, landmarks in zip(out_images.numpy(), out_points.numpy()):
        assert np.linalg.norm(_peak(image[:, :, 0]) - landmarks[30]) <= 1.5


def test_sequences_share_one_draw_and_lighting_stays_uint8():
    frames = tf.random.uniform([4, 5, SIZE, SIZE, 1], 0, 256, tf.int32)
    frames = tf.cast(frames, tf.uint8)
    points = tf.tile(tf.random.uniform([4, 1, 68, 2], 10, 38), [1, 5, 1, 1])
    out_frames, out_points = augment.augment(frames, points, SIZE)
    assert out_frames.shape == frames.shape and out_points.shape == points.shape
    # The same points in every frame of a clip are moved the same way.
    np.testing.assert_allclose(out_points.numpy(), np.repeat(out_points.numpy()[:, :1], 5, axis=1), atol=1e-4)
    assert out_frames.dtype == tf.uint8


def _sharpness(images: np.ndarray) -> np.ndarray:
    """Mean absolute difference between neighbouring pixels, per image: what blur takes away."""
    images = images.astype(np.float32)
    return np.abs(np.diff(images, axis=2)).mean(axis=(1, 2, 3))


# Only the change under test: no flip, no affine map, no lighting.
NO_GEOMETRY = dict(flip=False, rotation_degrees=0, shift=0, zoom=0, brightness=0, contrast=0)


def _copies(aligned: faces.AlignedFace, count: int) -> tuple[np.ndarray, np.ndarray]:
    return np.repeat(aligned.image[None], count, axis=0), np.repeat(aligned.landmarks[None], count, axis=0)


def test_photo_recipe_blurs_some_faces_adds_noise_and_leaves_landmarks_to_geometry(aligned):
    faces_batch, points = _copies(aligned, 64)
    tf.random.set_seed(5)
    blurred, blurred_points = augment.augment(tf.constant(faces_batch), tf.constant(points), SIZE,
                                              augment.Augmentation(**NO_GEOMETRY, low_resolution=1.0))
    # Every face scaled down and up (to a third of the side at the least): none sharper, most softer; points stay.
    sharpness = _sharpness(blurred.numpy()) / _sharpness(faces_batch[:1])
    assert (sharpness <= 1.02).all() and np.median(sharpness) < 0.9
    np.testing.assert_allclose(blurred_points.numpy(), points, atol=1e-4)
    noisy, _ = augment.augment(tf.constant(faces_batch), tf.constant(points), SIZE,
                               augment.Augmentation(**NO_GEOMETRY, noise=0.05))
    difference = noisy.numpy().astype(np.float32) - faces_batch
    assert noisy.dtype == tf.uint8 and 1.0 < np.abs(difference).mean() < 0.05 * 255
    # The named recipes: "photo" loosens the face box beyond the standard one and turns both degradations on.
    standard, photo = augment.NAMED["standard"], augment.NAMED["photo"]
    assert photo.zoom > standard.zoom and photo.shift > standard.shift
    assert standard.low_resolution == standard.noise == 0 < photo.low_resolution and 0 < photo.noise


def test_tight_recipe_cuts_edges_and_mirrors_them_back_as_align_face_does(aligned):
    # The index map, against numpy's mirror padding of what is kept (align_face's cv2.BORDER_REFLECT_101).
    low, high = tf.constant([0, 5, 12]), tf.constant([47, 40, 43])
    rows = augment._mirrored_indices(SIZE, low, high).numpy()
    column = aligned.image[:, 20, 0]
    for k in range(3):
        kept = column[low[k]:high[k] + 1]
        expected = np.pad(kept, (int(low[k]), SIZE - 1 - int(high[k])), mode="reflect")
        np.testing.assert_array_equal(column[rows[k]], expected)

    faces_batch, points = _copies(aligned, 64)
    tf.random.set_seed(7)
    cut, cut_points = augment.augment(tf.constant(faces_batch), tf.constant(points), SIZE,
                                      augment.Augmentation(**NO_GEOMETRY, tight_crop=1.0))
    cut = cut.numpy()
    # The middle, which no cut reaches, stays; the edges change in most faces; the points stay on the face.
    top, bottom, left, right = (int(most * SIZE) for most in augment.TIGHT_CUTS)
    middle = np.s_[:, top:SIZE - bottom, left:SIZE - right]
    np.testing.assert_array_equal(cut[middle], faces_batch[middle])
    changed = (cut != faces_batch).reshape(64, -1).any(axis=1)
    assert changed.mean() > 0.9
    np.testing.assert_allclose(cut_points.numpy(), points, atol=1e-4)
    half, _ = augment.augment(tf.constant(faces_batch), tf.constant(points), SIZE,
                              augment.Augmentation(**NO_GEOMETRY, tight_crop=0.5))
    assert 0.2 < (half.numpy() != faces_batch).reshape(64, -1).any(axis=1).mean() < 0.8
    assert augment.NAMED["tight"] == augment.Augmentation(tight_crop=0.5)


def test_the_command_line_offers_every_named_recipe():
    from emopy.pipeline import train_config

    choices = train_config.TrainConfig.__dataclass_fields__["augmentation"].metadata["choices"]
    assert tuple(choices) == tuple(augment.NAMED)


def test_landmark_features_do_not_depend_on_position_or_size(aligned):
    points = aligned.landmarks
    moved = points * 2.5 + np.array([100.0, -40.0], np.float32)
    a, b = landmark_features(points), landmark_features(moved)
    for name in a:
        np.testing.assert_allclose(a[name].numpy(), b[name].numpy(), atol=1e-4)
    assert a["landmark_points"].shape == (68, 2) and a["landmark_distances"].shape == (68,)
    np.testing.assert_allclose(np.sqrt(np.mean(a["landmark_distances"].numpy() ** 2)), 1.0, atol=1e-4)


def test_landmark_angle_is_continuous_where_atan_wraps():
    """A point circling the centroid crosses the -pi/pi line; its angle features change smoothly."""
    base = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]] * 17, np.float32)
    previous = None
    for theta in np.linspace(math.pi - 0.05, math.pi + 0.05, 11):
        points = base.copy()
        points[0] = [2 * math.cos(theta), 2 * math.sin(theta)]
        angles = landmark_features(points)["landmark_angles"].numpy()[0]
        if previous is not None:
            assert np.linalg.norm(angles - previous) < 0.05
        previous = angles
