"""BlazeFace as emopy runs it: anchors, decoding and weighted merging against hand-made outputs, and the shipped model
on real faces (the astronaut) and on hard inputs."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from emopy_tfds import blazeface, detection, faces

MODEL = blazeface.SHORT_RANGE


def test_the_model_ships_with_its_licence_and_where_it_came_from():
    assert MODEL.path.is_file() and MODEL.path.stat().st_size == 229_714
    assert "Apache License" in (blazeface.MODEL_DIR / "LICENSE").read_text()
    assert "mediapipe 0.10.14" in (blazeface.MODEL_DIR / "README.md").read_text().replace("`", "")


def test_anchors_follow_the_model_output_order():
    anchors = blazeface.anchor_centres(MODEL)
    assert anchors.shape == (896, 2)
    # 16x16 cells of stride 8, two anchors each, row by row; then 8x8 cells of stride 16, six anchors each.
    np.testing.assert_allclose(anchors[0], anchors[1])
    np.testing.assert_allclose(anchors[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(anchors[2], [1.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(anchors[32], [0.5 / 16, 1.5 / 16])
    np.testing.assert_allclose(anchors[512:518], [[0.5 / 8, 0.5 / 8]] * 6)
    np.testing.assert_allclose(anchors[-1], [7.5 / 8, 7.5 / 8])


def test_decoding_puts_a_box_and_its_keypoints_where_the_regressors_say():
    anchors = blazeface.anchor_centres(MODEL)
    regressors = np.zeros((896, 16), np.float32)
    logits = np.full(896, -10.0, np.float32)
    index = 600  # an anchor of the 8x8 map
    regressors[index, :4] = [6.4, -3.2, 32.0, 38.4]  # centre offset and size, in input pixels
    regressors[index, 4:] = np.arange(12) - 6.0
    logits[index] = 2.0
    boxes, keypoints, scores = blazeface.decode(regressors, logits, MODEL, anchors, 0.5)
    centre = anchors[index] + [0.05, -0.025]
    np.testing.assert_allclose(boxes, [[centre[0] - 0.125, centre[1] - 0.15, centre[0] + 0.125, centre[1] + 0.15]],
                               atol=1e-6)
    np.testing.assert_allclose(keypoints[0], anchors[index] + (np.arange(12) - 6.0).reshape(6, 2) / 128, atol=1e-6)
    np.testing.assert_allclose(scores, [1 / (1 + np.exp(-2.0))])
    # Scores beyond float32's exp are clipped, not overflowed.
    logits[index] = -1e6
    assert blazeface.decode(regressors, logits, MODEL, anchors, 0.5)[2].size == 0


def test_overlapping_detections_merge_weighted_by_score_and_apart_ones_stay():
    boxes = np.array([[0.1, 0.1, 0.3, 0.3], [0.12, 0.1, 0.32, 0.3], [0.6, 0.6, 0.8, 0.8]])
    keypoints = np.stack([np.full((6, 2), value) for value in (0.2, 0.23, 0.7)])
    scores = np.array([0.9, 0.6, 0.7])
    merged = blazeface.weighted_merge(boxes, keypoints, scores)
    assert [score for _, _, score in merged] == [0.9, 0.7]
    np.testing.assert_allclose(merged[0][0], (0.9 * boxes[0] + 0.6 * boxes[1]) / 1.5)
    np.testing.assert_allclose(merged[0][1], np.full((6, 2), (0.9 * 0.2 + 0.6 * 0.23) / 1.5))
    np.testing.assert_allclose(merged[1][0], boxes[2])
    assert blazeface.weighted_merge(np.zeros((0, 4)), np.zeros((0, 6, 2)), np.zeros(0)) == []


def test_the_letterbox_keeps_the_aspect_and_maps_back_to_image_pixels():
    image = np.zeros((480, 640), np.uint8)
    image[:, 320:] = 255
    tensor, placed = blazeface.letterbox(image, 128)
    assert tensor.shape == (1, 128, 128, 3) and tensor.dtype == np.float32
    assert placed == blazeface.Letterbox(0.2, 0, 16)
    assert tensor[0, 0, 0, 0] == 0 and tensor[0, 64, 10, 0] == -1 and tensor[0, 64, 100, 0] == 1
    np.testing.assert_allclose(placed.to_image(np.array([[0.5, 0.5], [0.0, 0.125]]), 128), [[320, 240], [0, 0]])


def test_a_detection_scoring_low_must_have_a_face_s_proportions():
    eyes_and_mouth = np.array([[40, 40], [60, 40], [50, 50], [50, 85], [30, 45], [70, 45]], np.float32)
    face = blazeface.Detection(0, 0, 100, 100, 0.55, eyes_and_mouth)
    squat = face._replace(keypoints=eyes_and_mouth * [1, 0.5] + [0, 20])  # the mouth 0.22 box widths from the eyes
    assert blazeface.face_like(face) and not blazeface.face_like(squat)
    assert blazeface.face_like(squat._replace(score=blazeface.CONFIDENT_SCORE))


def test_the_astronaut_is_one_face_with_its_keypoints_in_place(astronaut):
    for image in (astronaut, faces.gray_image(astronaut)):
        (found,) = blazeface.BlazeFace()(image)
        assert found.score > 0.8
        right_eye, left_eye, nose, mouth = found.keypoints[:4]
        assert right_eye[0] < nose[0] < left_eye[0] and max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]
        inside = (found.keypoints[:4] >= [found.x, found.y]) & (found.keypoints[:4] <= [found.x + found.w,
                                                                                      found.y + found.h])
        assert inside.all()
    (hog,) = detection.hog_boxes(faces.gray_image(astronaut))
    (mapped,) = detection.blazeface_boxes(faces.gray_image(astronaut))
    assert faces.box_overlap(hog, mapped) > 0.7


def test_a_face_on_its_side_or_upside_down_is_left_to_the_other_detectors(astronaut, monkeypatch):
    gray = faces.gray_image(astronaut)
    (upright,) = blazeface.BlazeFace()(gray)
    assert abs(detection.roll_degrees(upright)) < 10
    # Tilted 35 degrees, as the hard photos of benchmarks/faces.py: still BlazeFace's.
    tilt = cv2.getRotationMatrix2D((upright.x + upright.w / 2, upright.y + upright.h / 2), 35, 1.0)
    tilted = cv2.warpAffine(gray, tilt, gray.shape[::-1], borderMode=cv2.BORDER_REPLICATE)
    (found,) = detection.blazeface_boxes(tilted)
    assert faces.box_overlap(found, detection.blazeface_to_hog(upright)) > 0.5
    # The same detection with its keypoints turned a quarter and a half turn about the box centre.
    centre = np.array([upright.x + upright.w / 2, upright.y + upright.h / 2], np.float32)
    for turn, kept in ((90, False), (180, False), (-50, True)):
        angle = np.radians(turn)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
        turned = upright._replace(keypoints=(upright.keypoints - centre) @ rotation.T + centre)
        assert abs(abs(detection.roll_degrees(turned)) - abs(turn)) < 10
        monkeypatch.setattr(detection, "_blazeface", lambda turned=turned: lambda image: [turned])
        assert bool(detection.blazeface_boxes(gray)) == kept, turn


@pytest.mark.parametrize("form", ["grey", "rgba", "16-bit", "tiny"])
def test_grey_rgba_16_bit_and_one_pixel_images_get_an_answer(astronaut, form, tmp_path):
    if form == "grey":
        image = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    elif form == "rgba":
        image = cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGRA)
    elif form == "16-bit":
        image = cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257
    else:
        image = np.full((1, 1, 3), 200, np.uint8)
    path = tmp_path / f"{form}.png"
    cv2.imwrite(str(path), image)
    found = faces.find_faces(str(path), detector="blazeface")
    assert len(found) == (0 if form == "tiny" else 1)


def test_a_photo_of_50_faces_costs_about_what_50_photos_of_one_do(astronaut):
    head = cv2.resize(astronaut[20:230, 120:290], (120, 150), interpolation=cv2.INTER_AREA)
    crowd = np.full((5 * 160, 10 * 130, 3), 128, np.uint8)
    for row in range(5):
        for column in range(10):
            crowd[row * 160:row * 160 + 150, column * 130:column * 130 + 120] = head
    one = np.full((480, 640, 3), 128, np.uint8)
    one[160:310, 260:380] = head
    faces.find_faces(one)  # models loaded outside the timing

    started = time.perf_counter()
    assert len(faces.find_faces(one)) == 1
    single = time.perf_counter() - started
    started = time.perf_counter()
    found = faces.find_faces(crowd)
    per_face = (time.perf_counter() - started) / 50
    # BlazeFace sees each head at 12 px and passes; HOG on the photo doubled finds every one.
    assert len(found) == 50
    assert per_face < 3 * single + 0.01, (per_face, single)
