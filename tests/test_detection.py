"""The detector choice: BlazeFace, HOG, dlib's CNN detector, and `auto`, on real faces (the astronaut) that each
finds or misses, and on photos without a face."""

from __future__ import annotations

import json
import subprocess

import cv2
import numpy as np
import pytest

from emopy_tfds import detection, faces, tracking

# Landmarks fitted on a mapped CNN box may differ from those fitted on HOG's box of the same face by this much, in
# units of the face box's side, on average over the 68 points (measured: 0.004 on the frame below).
LANDMARK_TOLERANCE = 0.02
# The same face's fer2013-framed 48x48 crops, by either detector: mean absolute difference in grey levels
# (measured: 3.6).
CROP_TOLERANCE = 5.0


def head_in_frame(astronaut: np.ndarray) -> np.ndarray:
    """The astronaut's head and shoulders, 1.5x, on a grey 640x480 frame: a face box of about 150 px."""
    head = cv2.resize(astronaut[0:250, 100:300], None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)
    frame = np.full((480, 640, 3), 128, np.uint8)
    frame[60:435, 170:470] = head
    return frame


def covered_mouth(astronaut: np.ndarray) -> np.ndarray:
    """The same frame with a hand-sized grey patch over the nose and mouth: HOG no longer finds the face."""
    frame = head_in_frame(astronaut)
    (box,) = faces.detect_faces(frame, detector="hog")
    frame[box.y + box.h * 55 // 100:box.y + box.h + 10, box.x + 5:box.x + box.w - 5] = 90
    return frame


@pytest.fixture(scope="module")
def covered(astronaut) -> np.ndarray:
    return covered_mouth(astronaut)


def small_head(astronaut: np.ndarray, scale: float, covered: bool = False) -> np.ndarray:
    """The head (covered or not) shrunk by `scale` in the top left corner of a grey 640x480 frame."""
    frame = covered_mouth(astronaut) if covered else head_in_frame(astronaut)
    small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    photo = np.full((480, 640, 3), 128, np.uint8)
    photo[:small.shape[0], :small.shape[1]] = small
    return photo


def test_a_face_hog_misses_is_found_by_blazeface_auto_and_cnn(covered, astronaut):
    assert faces.detect_faces(covered, detector="hog") == []
    (auto,) = faces.detect_faces(covered, detector="auto")
    (blaze,) = faces.detect_faces(covered, detector="blazeface")
    (cnn,) = faces.detect_faces(covered, detector="cnn")
    assert auto == blaze
    # Where the face is: about where HOG finds it before it is covered.
    (uncovered,) = faces.detect_faces(head_in_frame(astronaut), detector="hog")
    assert faces.box_overlap(auto, uncovered) > 0.6 and faces.box_overlap(cnn, uncovered) > 0.6
    assert faces.detect_faces(covered) == [auto]  # auto is the default


def _counting(monkeypatch, *names: str) -> dict[str, list]:
    calls = {name: [] for name in names}
    for name in names:
        real = getattr(detection, f"{name}_boxes")
        def counted(gray, *args, real=real, name=name, **kwargs):
            calls[name].append(gray.shape)
            return real(gray, *args, **kwargs)

        monkeypatch.setattr(detection, f"{name}_boxes", counted)
    return calls


def test_auto_runs_each_detector_only_where_the_ones_before_found_nothing(astronaut, monkeypatch):
    calls = _counting(monkeypatch, "blazeface", "hog", "cnn")
    # BlazeFace finds the face: nothing else runs.
    frame = faces.gray_image(head_in_frame(astronaut))
    assert detection.detect(frame, "auto") == detection.blazeface_boxes(frame) != []
    assert [len(calls[name]) for name in calls] == [2, 0, 0]
    # A 55 px face: too small for BlazeFace in a 640x480 photo, and for HOG at the photo's size; HOG finds it in
    # the photo doubled, and the CNN detector does not run.
    small = faces.gray_image(small_head(astronaut, 0.4))
    assert detection.blazeface_boxes(small) == [] and detection.hog_boxes(small) == []
    for found in calls.values():
        found.clear()
    (box,) = detection.detect(small, "auto")
    assert [box] == detection.hog_boxes(small, 1) and 40 <= box.w <= 70
    assert [len(calls[name]) for name in calls] == [1, 2, 0]
    # Small and covered: only the CNN detector finds it.
    covered_small = faces.gray_image(small_head(astronaut, 0.5, covered=True))
    assert detection.blazeface_boxes(covered_small) == [] and detection.hog_boxes(covered_small, 1) == []
    assert detection.detect(covered_small, "auto") == detection.cnn_boxes(covered_small) != []


@pytest.mark.parametrize("detector", faces.DETECTORS)
def test_photos_without_a_face_have_no_face_under_every_detector(detector):
    from skimage import data

    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for name, photo in [("coffee", data.coffee()), ("rocket", data.rocket()), ("cat", data.chelsea()),
                        ("blank", np.full((480, 640, 3), 128, np.uint8)), ("noise", noise)]:
        if detector in ("cnn", "auto") and min(photo.shape[:2]) >= 400:
            # The CNN detector runs on every one of them: at half size (still over 200 px, so no second look
            # scaled up) it costs a quarter. BlazeFace's own false face, the coffee cup, is the blazeface case's.
            photo = cv2.resize(photo, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        assert faces.detect_faces(photo, detector=detector) == [], name
    assert faces.find_faces(np.zeros((240, 320), np.uint8), detector=detector) == []


def test_a_face_in_a_small_image_is_found_by_looking_again_scaled_up(astronaut):
    """A tight 64 px crop of the astronaut's face, as photos of faces alone often are: too small for dlib's
    detectors at its own size, found in the copy scaled up, its box given in the small image's pixels."""
    frame = head_in_frame(astronaut)
    (box,) = faces.detect_faces(frame, detector="hog")
    margin = box.w // 8
    crop = frame[box.y - margin:box.y + box.h + margin, box.x - margin:box.x + box.w + margin]
    small = cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA)
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    assert detection.hog_boxes(gray) == [] and detection.cnn_boxes(gray) == []
    for detector in faces.DETECTORS:
        (found,) = faces.find_faces(small, detector=detector)
        assert 40 <= found.box.w <= 64 and abs(found.box.x + found.box.w / 2 - 32) <= 8, (detector, found.box)
        # The landmarks are fitted in the small image: eyes above the mouth, inside it.
        assert (found.landmarks >= -2).all() and (found.landmarks <= 66).all()
        assert found.landmarks[36:48, 1].mean() < found.landmarks[48:68, 1].mean()
    # A video frame where a tracked face was not lost (fallback=False) does not pay for the second look.
    assert detection.detect(gray, "hog", fallback=False) == []


@pytest.mark.parametrize("detector", ["blazeface", "cnn"])
def test_landmarks_and_crop_do_not_depend_on_the_detector(astronaut, detector):
    frame = head_in_frame(astronaut)
    (hog_box,) = faces.detect_faces(frame, detector="hog")
    (other_box,) = faces.detect_faces(frame, detector=detector)
    assert faces.box_overlap(hog_box, other_box) > 0.6
    hog_points = faces.fit_landmarks(frame, hog_box)
    other_points = faces.fit_landmarks(frame, other_box)
    error = np.linalg.norm(hog_points - other_points, axis=1).mean() / hog_box.w
    assert error < LANDMARK_TOLERANCE
    spec = faces.FER2013_FRAMING
    hog_crop = faces.align_face(frame, hog_points, spec).image.astype(np.float64)
    other_crop = faces.align_face(frame, other_points, spec).image.astype(np.float64)
    assert np.abs(hog_crop - other_crop).mean() < CROP_TOLERANCE


def test_an_unknown_detector_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown face detector 'haar'.*auto, blazeface, hog, cnn"):
        faces.detect_faces(np.zeros((64, 64), np.uint8), detector="haar")
    with pytest.raises(ValueError, match="unknown face detector"):
        faces.FaceSpec(detector="haar")


def test_the_face_spec_records_the_detector_and_older_specs_read_as_auto():
    spec = faces.FaceSpec(detector="hog")
    assert faces.FaceSpec.from_json(spec.to_json()).detector == "hog"
    assert faces.FaceSpec.from_json('{"crop_size": 48}').detector == "auto"


def test_a_sequence_without_a_face_costs_one_cnn_pass(monkeypatch):
    calls = []
    real = detection.cnn_boxes
    monkeypatch.setattr(detection, "cnn_boxes", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    blank = [np.full((240, 320), 128, np.uint8)] * 4
    track = tracking.track_face(blank, detector="auto")
    assert track.faces == [None] * 4 and track.detections == 4
    assert len(calls) == 1


def test_tracking_finds_a_covered_face_under_auto_only(covered):
    assert tracking.track_face([covered, covered], detector="hog").faces == [None, None]
    found = tracking.track_face([covered, covered], detector="auto").faces
    assert all(face is not None for face in found)


def _emopy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["emopy", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.scale  # four `emopy` commands, about 35 s: CI runs it with the scale checks
def test_the_cli_flag_chooses_the_detector_for_landmarks_and_predict(covered, tmp_path):
    path = tmp_path / "covered.png"
    cv2.imwrite(str(path), cv2.cvtColor(covered, cv2.COLOR_RGB2BGR))
    counts = {}
    for detector in ("hog", "blazeface", "auto"):
        result = _emopy("landmarks", str(path), "--json", "--detector", detector)
        assert result.returncode == 0, result.stderr
        counts[detector] = len(json.loads(result.stdout)["faces"])
    assert counts == {"hog": 0, "blazeface": 1, "auto": 1}
    output = tmp_path / "rows.csv"
    result = _emopy("predict", str(path), "--output", str(output))  # the default model's spec: auto
    assert result.returncode == 0, result.stderr
    import pandas as pd

    assert len(pd.read_csv(output)) == 1
    result = _emopy("predict", str(path), "--detector", "hog", "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(output)) == 0
    assert _emopy("predict", str(path), "--detector", "haar").returncode == 2


@pytest.mark.parametrize("argv", [["predict", "photo.jpg"], ["predict", "--beam", "", "photo.jpg", "--output", "out"],
                                  ["landmarks", "photo.jpg"], ["evaluate", "--photos", "photos", "--labels", "l.csv"],
                                  ["build", "ck_plus", "--manual-dir", "ck"]], ids=lambda argv: " ".join(argv[:2]))
def test_every_command_that_finds_faces_takes_each_detector(argv):
    from emopy.pipeline import cli

    for detector in faces.DETECTORS:
        assert cli._parser().parse_args([*argv, "--detector", detector]).detector == detector


class FrameList:
    """A capture (read/get/release, as cv2.VideoCapture) over frames held in memory."""

    def __init__(self, frames):
        self._frames = list(frames)

    def read(self):
        return (True, self._frames.pop(0)) if self._frames else (False, None)

    def get(self, prop):
        return 0.0

    def release(self):
        pass


def test_on_video_auto_runs_its_fallbacks_only_where_blazeface_loses_a_tracked_face(astronaut, monkeypatch):
    from emopy.serving import predict

    frame = head_in_frame(astronaut)
    (box,) = faces.detect_faces(frame, detector="hog")
    # BlazeFace is made to miss the face on frames marked by a white 4x4 dot on the forehead (in every window around
    # the face too; the frame has 7 white pixels of its own): real misses of a face it had been following are rare,
    # and no dot hides a face from it.
    marked = frame.copy()
    marked[box.y + box.h // 5:box.y + box.h // 5 + 4, box.x + box.w // 2:box.x + box.w // 2 + 4] = 255
    real_blazeface = detection.blazeface_boxes
    monkeypatch.setattr(detection, "blazeface_boxes",
                        lambda gray, *a, **k: [] if (gray == 255).sum() >= 16 else real_blazeface(gray, *a, **k))
    calls = _counting(monkeypatch, "hog", "cnn")
    bgr = [cv2.cvtColor(image, cv2.COLOR_RGB2BGR) for image in (frame, marked)]
    blank = np.full_like(bgr[0], 128)
    # Seen, seen, lost by BlazeFace (HOG doubled finds it: twice), gone (HOG doubled and the CNN detector look),
    # still gone (nothing is followed any more: no fallback).
    frames = [bgr[0], bgr[0], bgr[1], bgr[1], blank, blank]
    with predict.Recognizer.default() as recognizer:
        assert recognizer.detector == "auto"
        tables = list(recognizer.stream(FrameList(frames)))
    assert [len(table) for table in tables] == [1, 1, 1, 1, 0, 0]
    assert {int(table["face_id"].iloc[0]) for table in tables[:4]} == {0}  # one face, tracked throughout
    # Near the lost face first (a window), then, where it is gone, over the whole frame.
    assert [shape == (480, 640) for shape in calls["hog"]] == [False, False, False, True]
    assert [shape == (480, 640) for shape in calls["cnn"]] == [False, True]
    with predict.Recognizer.default(detector="blazeface") as recognizer:
        assert [len(table) for table in recognizer.stream(FrameList(frames))] == [1, 1, 0, 0, 0, 0]


def test_detect_near_finds_a_followed_face_in_its_window_and_gives_up_where_it_is_not(astronaut):
    frame = head_in_frame(astronaut)
    gray = faces.gray_image(frame)
    (seen,) = detection.hog_boxes(gray)
    moved = faces.gray_image(np.roll(frame, 25, axis=1))  # the face 25 px to the right in the next frame
    (moved_full,) = detection.hog_boxes(moved)
    (moved_near,) = detection.detect_near(moved, [seen])
    # HOG may take the face at the next scale of its image pyramid in a window (a box of 125 px, not 150): it
    # does so on the whole frame too as a face moves. What matters is that the fit and the crop agree.
    assert faces.box_overlap(moved_near, moved_full) > 0.6
    (by_near,), (by_full,) = faces.find_faces(moved, near=[seen]), faces.find_faces(moved)
    assert np.abs(by_near.landmarks - by_full.landmarks).mean() / by_full.box.w < LANDMARK_TOLERANCE
    crops = [faces.align_face(moved, face.landmarks, faces.FER2013_FRAMING).image.astype(float)
             for face in (by_near, by_full)]
    assert np.abs(crops[0] - crops[1]).mean() < CROP_TOLERANCE
    # Not where the face was (a corner of the frame), not in a blank frame, not outside the frame: search it all.
    assert detection.detect_near(gray, [faces.Box(500, 360, 100, 100)]) is None
    assert detection.detect_near(np.full_like(gray, 128), [seen]) is None
    assert detection.detect_near(gray, [faces.Box(700, 100, 100, 100)]) is None
    assert detection.window_around(faces.Box(600, 10, 100, 100), gray.shape) == faces.Box(550, 0, 90, 160)
    # Two followed boxes that lead to one face give it once.
    assert len(detection.detect_near(gray, [seen, faces.Box(seen.x + 10, seen.y, seen.w, seen.h)])) == 1
    # The CNN detector looks in the window too, and finds there the face it finds in the whole frame (at the
    # neighbouring scale of its pyramid, as HOG may).
    (cnn_near,) = detection.detect_near(gray, [seen], "cnn")
    (cnn_full,) = detection.cnn_boxes(gray)
    assert faces.box_overlap(cnn_near, cnn_full) > 0.6
    fits = [faces.fit_landmarks(gray, box) for box in (cnn_near, cnn_full)]
    assert np.abs(fits[0] - fits[1]).mean() / cnn_full.w < LANDMARK_TOLERANCE
    # Not found near the box given: the whole frame is searched.
    whole = detection.detect(gray)
    assert [face.box for face in faces.find_faces(gray, near=[faces.Box(500, 360, 100, 100)])] == whole
    assert faces.box_overlap(whole[0], seen) > 0.6


def two_heads(astronaut: np.ndarray, second: bool) -> np.ndarray:
    """The astronaut's head on the left of a grey 640x480 frame and, if `second`, its mirror image on the right."""
    head = astronaut[0:220, 120:300]
    frame = np.full((480, 640, 3), 128, np.uint8)
    frame[130:350, 40:220] = head
    if second:
        frame[130:350, 420:600] = head[:, ::-1]
    return frame


def test_video_follows_faces_near_their_boxes_and_finds_a_new_face_within_a_full_scan(astronaut, monkeypatch):
    from emopy.serving import predict, video

    shapes = _counting(monkeypatch, "blazeface")["blazeface"]
    appears = 10
    frames = [cv2.cvtColor(two_heads(astronaut, index >= appears), cv2.COLOR_RGB2BGR) for index in range(36)]
    with predict.Recognizer.default() as recognizer:
        counts = [len(table) for table in recognizer.stream(FrameList(frames))]
    scan_every = round(video.FULL_SCAN_SECONDS * video.FALLBACK_FPS)  # FrameList has no frame rate
    # The new face waits at most for the next full scan, plus the frames already started when it came.
    found_at = counts.index(2)
    assert counts[:appears] == [1] * appears and appears <= found_at <= appears + scan_every + video.FRAMES_IN_FLIGHT
    assert counts[found_at:] == [2] * (len(frames) - found_at)
    full_scans = sum(shape == (480, 640) for shape in shapes)
    assert full_scans <= len(frames) // scan_every + video.FRAMES_IN_FLIGHT + 1
    # The other frames: windows only, one around each followed face, each a fraction of the frame. A frame starts
    # once the frame FRAMES_IN_FLIGHT before it is tabled, so it follows that frame's faces; a full scan looks in
    # no window (measured: 52 windows for 55 faces followed, 4 full scans).
    windows = [shape for shape in shapes if shape != (480, 640)]
    followed = sum(counts[:len(frames) - video.FRAMES_IN_FLIGHT])
    assert followed - 2 * full_scans <= len(windows) <= followed, (len(windows), followed, full_scans)
    assert all(2 * height <= 480 and 2 * width <= 640 for height, width in windows), windows
