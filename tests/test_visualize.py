"""`emopy visualize` on tiny trained runs: activation maps, Grad-CAM, training curves, confusion matrix, errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tf_keras as keras
from PIL import Image

from emopy import models
from emopy.pipeline import cli, run_dir, train, visualize

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _train(training_data, out: Path, model: str, epochs: int) -> Path:
    train.run(train.TrainConfig(dataset="fer2013", model=model, out=str(out), data_dir=str(training_data),
                                epochs=epochs, batch_size=16, seed=1))
    keras.backend.clear_session()
    return out


@pytest.fixture(scope="module")
def runs(training_data, tmp_path_factory) -> dict[str, Path]:
    """Finished runs on the learnable fer2013 sample: an image CNN, an image + landmarks model, a landmarks-only
    model (which has nothing convolutional to show)."""
    folder = tmp_path_factory.mktemp("visualize_runs")
    return {"cnn": _train(training_data, folder / "cnn", "cnn", epochs=2),
            "multi_input": _train(training_data, folder / "multi_input", "multi_input", epochs=1),
            "landmarks": _train(training_data, folder / "landmarks", "landmarks", epochs=1)}


def assert_png(path: Path, size: tuple[int, int]) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.size == size


def test_gradcam_heatmap_of_a_hand_built_model_is_the_rectified_image():
    # One 1x1 conv of weight 1, averaged, into one logit: every map position has the same gradient, so Grad-CAM
    # is the conv's output itself, rectified and scaled to a peak of 1.
    image = keras.Input((4, 4, 1), name="image")
    maps = keras.layers.Conv2D(1, 1, kernel_initializer="ones", bias_initializer="zeros", name="conv")(image)
    logits = keras.layers.Dense(1, kernel_initializer="ones", name="logits")(
        keras.layers.GlobalAveragePooling2D()(maps))
    model = keras.Model({"image": image}, keras.layers.Activation("sigmoid", name="probabilities")(logits))
    pixels = np.array([[0, 1, 2, 3], [-1, 0, 4, 0], [0, 0, 8, 0], [2, 0, 0, -5]], np.float32)
    heatmap = visualize.gradcam_heatmap(model, {"image": pixels[None, :, :, None]}, 0, "conv")
    np.testing.assert_allclose(heatmap, np.maximum(pixels, 0) / 8, atol=1e-6)


def test_gradcam_of_a_real_face_is_a_heatmap_in_unit_range(runs, photo_files):
    face = visualize.face_inputs(runs["cnn"], photo_files["astronaut.png"])
    assert face.crop.shape == (48, 48, 1) and not face.whole_image
    model = run_dir.RunDir.open(runs["cnn"]).load_model()
    last = visualize.conv_layers(model)[-1]
    # A barely trained model may have no region speaking for a given class (an all-zero map, which is the
    # documented answer), and which classes those are depends on the CPU's float rounding. Every class gets a
    # map in [0, 1]; at least one class has evidence somewhere, and its peak is exactly 1.
    heatmaps = [visualize.gradcam_heatmap(model, face.inputs, k, last) for k in range(model.output_shape[-1])]
    for heatmap in heatmaps:
        assert heatmap.shape == (48, 48) and heatmap.dtype == np.float32
        assert heatmap.min() >= 0 and (heatmap.max() == 0 or heatmap.max() == pytest.approx(1.0))
    assert any(np.ptp(heatmap) > 0 and heatmap.max() == pytest.approx(1.0) for heatmap in heatmaps)

    maps = visualize.activation_maps(model, face.inputs, visualize.conv_layers(model))
    assert [m.shape for m in maps.values()] == [(48, 48, 32), (24, 24, 64), (12, 12, 128)]
    strongest = visualize.strongest_channels(maps[last])
    means = maps[last].mean(axis=(0, 1))
    assert len(strongest) == 16 and means[strongest[0]] == means.max()


def test_activations_one_figure_with_a_row_per_conv_layer(runs, photo_files):
    path = visualize.run(runs["cnn"], "activations", image=photo_files["astronaut.png"])
    assert path == runs["cnn"] / "visualize-activations-astronaut.png"
    assert_png(path, visualize.activations_size(3))
    assert visualize.activations_size(3) == (1700, 440)

    model = run_dir.RunDir.open(runs["cnn"]).load_model()
    one = visualize.run(runs["cnn"], "activations", image=photo_files["astronaut.png"],
                        layer=visualize.conv_layers(model)[1], output=runs["cnn"] / "one.png")
    assert_png(one, (1700, 240))


@pytest.mark.parametrize("model", ["cnn", "multi_input"])
def test_gradcam_figure_for_image_and_image_landmark_models(runs, photo_files, model, capsys):
    status = cli.main(["visualize", "--run", str(runs[model]), "--kind", "gradcam", "--image",
                       photo_files["astronaut.png"], "--class", "happy"])
    assert status == 0
    path = runs[model] / "visualize-gradcam-astronaut.png"
    assert capsys.readouterr().out.strip() == str(path)
    assert_png(path, visualize.GRADCAM_SIZE)


def test_a_small_face_crop_is_found_and_a_small_image_without_one_is_taken_whole(runs, astronaut, astronaut_face,
                                                                                  tmp_path):
    x, y, w, h = astronaut_face.box
    crop = tmp_path / "crop48.png"
    cv2.imwrite(str(crop), cv2.resize(cv2.cvtColor(astronaut[y:y + h, x:x + w], cv2.COLOR_RGB2GRAY), (48, 48)))
    face = visualize.face_inputs(runs["cnn"], crop)  # detection's second look, scaled up, finds it
    assert not face.whole_image and face.inputs["image"].shape == (1, 48, 48, 1)
    texture = tmp_path / "texture48.png"  # a small image where no detector finds a face: taken as the crop
    cv2.imwrite(str(texture), np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8))
    face = visualize.face_inputs(runs["cnn"], texture)
    assert face.whole_image and face.inputs["image"].shape == (1, 48, 48, 1)


def test_curves_from_the_cli(runs, capsys):
    assert cli.main(["visualize", "--run", str(runs["cnn"]), "--kind", "curves"]) == 0
    path = runs["cnn"] / "visualize-curves.png"
    assert capsys.readouterr().out.strip() == str(path)
    assert_png(path, visualize.CURVES_SIZE)


def test_confusion_evaluates_the_run_when_no_evaluation_exists(runs, tmp_path):
    assert not (runs["cnn"] / "evaluation-test.json").exists()
    path = visualize.run(runs["cnn"], "confusion", output=tmp_path / "confusion.png")
    assert (runs["cnn"] / "evaluation-test.json").exists()
    assert_png(path, visualize.confusion_size(7))
    assert visualize.confusion_size(7) == (792, 684)


def test_a_photo_without_a_face_is_a_one_line_error(runs, photo_files, capsys):
    blank = photo_files["blank.png"]
    assert cli.main(["visualize", "--run", str(runs["cnn"]), "--kind", "gradcam", "--image", blank]) == 2
    error = capsys.readouterr().err
    assert blank in error and "no face found" in error and len(error.strip().splitlines()) == 1


def test_models_without_convolutions_over_one_face_are_refused(runs, photo_files, capsys):
    assert cli.main(["visualize", "--run", str(runs["landmarks"]), "--kind", "gradcam", "--image",
                     photo_files["astronaut.png"]]) == 2
    assert "no convolutional layers over a single face" in capsys.readouterr().err
    sequence = models.build("image_lstm", models.InputSpec("image_sequence", sequence_length=2), 7)
    with pytest.raises(ValueError, match="no convolutional layers over a single face"):
        visualize.conv_layers(sequence)


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "gradcam"}, "needs --image"),
    ({"kind": "curves", "layer": "conv2d"}, "does not take --layer"),
    ({"kind": "gradcam", "image": "PHOTO", "class_name": "joy"}, "unknown class 'joy'"),
    ({"kind": "gradcam", "image": "PHOTO", "layer": "logits"}, "not feature maps"),
    ({"kind": "activations", "image": "PHOTO", "layer": "nope"}, "has no layer 'nope'"),
])
def test_wrong_options_are_clear_errors(runs, photo_files, kwargs, message):
    if kwargs.get("image") == "PHOTO":
        kwargs = {**kwargs, "image": photo_files["astronaut.png"]}
    with pytest.raises(ValueError, match=message):
        visualize.run(runs["cnn"], **kwargs)


def test_curves_of_a_history_without_validation_and_with_learning_rate_drops(tmp_path):
    history = {"epoch": [0, 1, 2, 3], "loss": [2.0, 1.5, 1.2, 1.1], "accuracy": [0.2, 0.4, 0.5, 0.55],
               "lr": [1e-3, 1e-3, 5e-4, 5e-4]}
    path = tmp_path / "curves.png"
    visualize.plot_curves(history, path, "no validation split")
    assert_png(path, visualize.CURVES_SIZE)
