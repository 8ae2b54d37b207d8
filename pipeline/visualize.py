"""`emopy visualize`: pictures of a trained run: activation maps, Grad-CAM, training curves, confusion matrix.

    emopy visualize --run RUN_DIR --kind activations --image face.jpg [--layer NAME]
    emopy visualize --run RUN_DIR --kind gradcam --image face.jpg [--class NAME] [--layer NAME]
    emopy visualize --run RUN_DIR --kind curves
    emopy visualize --run RUN_DIR --kind confusion [--split test]

Each writes one PNG (default RUN_DIR/visualize-KIND.png, or RUN_DIR/visualize-KIND-IMAGESTEM.png for the two
kinds that take --image) and returns its path. Sizes in pixels, width x height, fixed so that documents and
scripts can rely on them:

    activations  1700 x (40 + 100 * (1 + L)), L the number of layers shown (cnn: 3 -> 1700 x 440): one figure,
                 one 100 px row per conv layer (or only --layer) under a row holding the face crop. A row has
                 the layer's name and output shape, then its 16 strongest feature maps for this face (highest
                 mean activation, most active first, each scaled to its own range because layers differ by
                 orders of magnitude). Maps are the Conv2D layers' outputs: for vgg, before batch norm and ReLU.
    gradcam      900 x 340: the face crop, the Grad-CAM heatmap, and the heatmap over the crop; the title names
                 the class and its probability.
    curves       1200 x 450: loss and accuracy per epoch, train and validation, with the best epoch (lowest
                 validation loss: the weights the run keeps) and the learning-rate reductions marked.
    confusion    `evaluate.plot_confusion`'s size: (1 + 0.8 n) x (0.8 + 0.7 n) inches at 120 dpi for n classes
                 (`confusion_size`), 792 x 684 for fer2013's 7.

Faces are preprocessed exactly as in training: detected, aligned and cropped with the run's face_spec.json, the
largest face when there are several. dlib's detector cannot find faces much smaller than 80 px, so an image
whose sides are both at most `SMALL_IMAGE` pixels in which no face is found is taken to be a face crop already
(as fer2013's 48x48 faces are): landmarks are fitted to the whole image, and the figure's title says so. A
larger image without a face is an error naming the file.

Activation maps and Grad-CAM need a convolutional model over one face: cnn, vgg, capsnet or multi_input. Grad-CAM
follows Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization" (ICCV, arXiv:1610.02391): the feature maps of a conv layer, weighted by the spatially averaged
gradient of the class score with respect to them, summed, and rectified.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple, Sequence

import cv2
import matplotlib
import numpy as np
import tensorflow as tf
import tf_keras as keras
from matplotlib.ticker import MaxNLocator
from tf_keras import layers

from emopy_tfds import faces
from emopy.pipeline import data, evaluate
from emopy.pipeline.run_dir import RunDir

matplotlib.use("Agg")  # files only, never a window: before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402

KINDS = ("activations", "gradcam", "curves", "confusion")
IMAGE_KINDS = ("activations", "gradcam")
# Images no larger than this on both sides, where dlib finds no face, are taken as face crops (see above).
SMALL_IMAGE = 128

DPI = 100
CELL = 100  # px: one feature map (and its label) in the activations figure
TITLE = 40  # px: the title band on top of the activations figure
MAPS_PER_LAYER = 16
GRADCAM_SIZE = (900, 340)
CURVES_SIZE = (1200, 450)


def activations_size(layers: int) -> tuple[int, int]:
    """(width, height) in pixels of the activations figure showing `layers` layers."""
    return CELL * (1 + MAPS_PER_LAYER), TITLE + CELL * (1 + layers)


def confusion_size(classes: int) -> tuple[int, int]:
    """(width, height) in pixels of `evaluate.plot_confusion`'s figure: its inches at 120 dpi, truncated to whole
    pixels as matplotlib does (current versions first round sizes within 1e-8 of a whole pixel: 683.99999 is 684).
    """
    return int((1.0 + 0.8 * classes) * 120 + 1e-8), int((0.8 + 0.7 * classes) * 120 + 1e-8)


def default_output(run_dir: str | os.PathLike, kind: str, image: str | os.PathLike | None = None) -> Path:
    """RUN_DIR/visualize-KIND.png, or RUN_DIR/visualize-KIND-IMAGESTEM.png for a picture of one face."""
    stem = f"visualize-{kind}" + (f"-{Path(image).stem}" if image is not None and kind in IMAGE_KINDS else "")
    return Path(run_dir).expanduser() / f"{stem}.png"


# --- Models --------------------------------------------------------------------------------------------


def conv_layers(model: keras.Model) -> list[str]:
    """Names of the model's Conv2D layers over a single face image, first to last.

    Only top-level layers count: image_lstm's convolutions sit inside a TimeDistributed frame encoder, and
    explain a sequence, not one face.
    """

    names = [layer.name for layer in model.layers if isinstance(layer, layers.Conv2D)]
    if "image" not in model.input_names or not names:
        raise ValueError(f"model {model.name!r} has no convolutional layers over a single face; activations and "
                         f"gradcam need an image model (cnn, vgg, capsnet or multi_input)")
    return names


def _spatial_layer(model: keras.Model, name: str) -> keras.layers.Layer:
    """The named layer, which must output feature maps [B, H, W, C]."""
    try:
        layer = model.get_layer(name)
    except ValueError:
        raise ValueError(f"model {model.name!r} has no layer {name!r}; its conv layers: "
                         f"{', '.join(conv_layers(model))}") from None
    if len(layer.output.shape) != 4:
        raise ValueError(f"layer {name!r} outputs {tuple(layer.output.shape)}, not feature maps [batch, height, "
                         f"width, channels]; its conv layers: {', '.join(conv_layers(model))}")
    return layer


def activation_maps(model: keras.Model, inputs: dict, layer_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Each named layer's feature maps [H, W, C] (float32) for the first example of `inputs`."""
    outputs = [_spatial_layer(model, name).output for name in layer_names]
    probe = keras.Model(model.input, outputs)
    values = probe(inputs, training=False)
    if len(layer_names) == 1:
        values = [values]
    return {name: np.asarray(value[0], np.float32) for name, value in zip(layer_names, values)}


def _class_score(model: keras.Model):
    """The tensor Grad-CAM differentiates: the pre-softmax logits where the model has them (the paper's y^c;
    a confident softmax output saturates and passes almost no gradient), else the output (capsule lengths)."""
    names = {layer.name for layer in model.layers}
    return model.get_layer("logits").output if "logits" in names else model.output


def gradcam_heatmap(model: keras.Model, inputs: dict, class_index: int, layer_name: str) -> np.ndarray:
    """Grad-CAM of class `class_index` at layer `layer_name` for the first example of `inputs`: float32 [S, S]
    at the image input's side S, in [0, 1] (1 where the evidence for the class is strongest; all 0 when no
    region speaks for it)."""
    layer = _spatial_layer(model, layer_name)
    probe = keras.Model(model.input, [layer.output, _class_score(model)])
    with tf.GradientTape() as tape:
        maps, scores = probe(inputs, training=False)
        # float32: under mixed precision the maps and scores are float16.
        score = tf.cast(scores[0, class_index], tf.float32)
    gradients = tf.cast(tape.gradient(score, maps)[0], tf.float32)
    maps = tf.cast(maps[0], tf.float32)
    weights = tf.reduce_mean(gradients, axis=(0, 1))  # alpha_k^c: one weight per feature map (eq. 1)
    cam = tf.nn.relu(tf.reduce_sum(maps * weights, axis=-1)).numpy()  # eq. 2: only evidence for the class
    side = int(model.input["image"].shape[1])
    # Bilinear upsampling of a non-negative map stays non-negative; scaling afterwards makes its peak exactly 1.
    cam = cv2.resize(cam, (side, side), interpolation=cv2.INTER_LINEAR)
    peak = float(cam.max())
    return (cam / peak if peak > 0 else np.zeros_like(cam)).astype(np.float32)


def strongest_channels(maps: np.ndarray, count: int = MAPS_PER_LAYER) -> np.ndarray:
    """Indices of the `count` channels of maps [H, W, C] with the highest mean activation, highest first."""
    means = maps.reshape(-1, maps.shape[-1]).mean(axis=0)
    return np.argsort(-means, kind="stable")[:count]


# --- Faces ---------------------------------------------------------------------------------------------


class FaceInputs(NamedTuple):
    """A photo's face as the model's input dict (batch of one), its crop (uint8 [S, S, C]), and whether the
    whole image was taken as the crop because no face was detected in a small image."""

    inputs: dict
    crop: np.ndarray
    whole_image: bool


def _image_spec(run: RunDir):
    """The run's InputSpec; refuses models that do not see one face image, before any image is read."""
    spec = run.input_spec
    if not spec.uses_images or spec.is_sequence:
        raise ValueError(f"model {run.settings['model']!r} ({spec.kind} inputs) has no convolutional layers over "
                         f"a single face; activations and gradcam need an image model "
                         f"(cnn, vgg, capsnet or multi_input)")
    return spec


def face_inputs(run: RunDir | str | os.PathLike, image: str | os.PathLike) -> FaceInputs:
    """The largest face in the photo `image`, preprocessed exactly as the run's training inputs were."""
    run = run if isinstance(run, RunDir) else RunDir.open(run)
    spec = _image_spec(run)
    face_spec = run.face_spec
    rgb = faces.load_image(image)  # an unreadable file is an ImageError (a ValueError) naming it
    found = faces.preprocess(rgb, face_spec)
    whole_image = not found and max(rgb.shape[:2]) <= SMALL_IMAGE
    if whole_image:
        found = faces.preprocess(rgb, face_spec, already_cropped=True)
    if not found:
        raise ValueError(f"{image}: no face found ({rgb.shape[1]}x{rgb.shape[0]} image)")
    _, aligned = found[0]
    records = {"image": aligned.image[None], "landmarks": aligned.landmarks[None].astype(np.float32)}
    return FaceInputs(data.model_inputs(records, spec), aligned.image, whole_image)


# --- Figures -------------------------------------------------------------------------------------------


def _figure(width: int, height: int):
    # matplotlib truncates inches x dpi to whole pixels (17.4 in x 100 dpi is 1739.99...): half a pixel more
    # keeps the documented size exact under any version's rounding.
    return plt.figure(figsize=((width + 0.5) / DPI, (height + 0.5) / DPI), dpi=DPI)


def _save(figure, path: Path) -> None:
    try:
        figure.savefig(path, dpi=DPI)
    finally:
        plt.close(figure)


def _show_crop(axes, crop: np.ndarray) -> None:
    if crop.shape[-1] == 1:
        axes.imshow(crop[..., 0], cmap="gray", vmin=0, vmax=255)
    else:
        axes.imshow(crop)


def _cell(figure, column: int, row: int, rows: int, label: str | None = None):
    """Axes for the cell at (column, row) of the activations grid, leaving room under it for a label."""
    width, height = activations_size(rows - 1)
    pad, label_band = 4, 14
    left = (column * CELL + pad) / width
    bottom = (height - TITLE - (row + 1) * CELL + label_band) / height
    axes = figure.add_axes((left, bottom, (CELL - 2 * pad) / width, (CELL - pad - label_band) / height))
    axes.set_xticks([])
    axes.set_yticks([])
    if label:
        axes.set_xlabel(label, fontsize=7, labelpad=1)
    return axes


def plot_activations(maps: dict[str, np.ndarray], crop: np.ndarray, path: str | os.PathLike, title: str) -> None:
    """The activations figure (see the module's docstring) for feature maps by layer and the face crop."""
    rows = 1 + len(maps)
    width, height = activations_size(len(maps))
    figure = _figure(width, height)
    figure.text(0.5, 1 - TITLE / 2 / height, title, ha="center", va="center", fontsize=10)

    def row_label(row: int, text: str) -> None:
        figure.text(CELL / 2 / width, (height - TITLE - (row + 0.5) * CELL) / height, text, ha="center",
                    va="center", fontsize=7, wrap=True)

    row_label(0, f"input\n{crop.shape[0]}x{crop.shape[1]}x{crop.shape[2]}")
    _show_crop(_cell(figure, 1, 0, rows, "face crop"), crop)
    for row, (name, values) in enumerate(maps.items(), start=1):
        h, w, channels = values.shape
        shown = strongest_channels(values)
        row_label(row, f"{name[:18]}\n{h}x{w}x{channels}\n{len(shown)} strongest")
        for column, channel in enumerate(shown, start=1):
            axes = _cell(figure, column, row, rows, f"#{channel}")
            # Nearest: a 3x3 map shows as 9 blocks, not as a smooth blur that would suggest finer detail.
            axes.imshow(values[..., channel], cmap="viridis", interpolation="nearest")
    _save(figure, Path(path))


def plot_gradcam(crop: np.ndarray, heatmap: np.ndarray, path: str | os.PathLike, title: str,
                 layer_name: str) -> None:
    """The Grad-CAM figure: the crop, the heatmap, and the heatmap over the crop."""
    figure = _figure(*GRADCAM_SIZE)
    panels = figure.subplots(1, 3)
    extent = (-0.5, crop.shape[1] - 0.5, crop.shape[0] - 0.5, -0.5)
    _show_crop(panels[0], crop)
    panels[0].set_title("face crop", fontsize=9)
    panels[1].imshow(heatmap, cmap="jet", vmin=0, vmax=1, extent=extent)
    panels[1].set_title(f"Grad-CAM at {layer_name}", fontsize=9)
    if not heatmap.any():
        panels[1].text(0.5, 0.5, "no region raises\nthis class's score", transform=panels[1].transAxes,
                       ha="center", va="center", color="white", fontsize=10)
    _show_crop(panels[2], crop)
    # Opacity follows the heat, so the face stays visible where the class finds no evidence.
    panels[2].imshow(heatmap, cmap="jet", vmin=0, vmax=1, alpha=0.6 * heatmap, extent=extent)
    panels[2].set_title("overlay", fontsize=9)
    for axes in panels:
        axes.set_xticks([])
        axes.set_yticks([])
    figure.suptitle(title, fontsize=11)
    figure.subplots_adjust(left=0.02, right=0.98, bottom=0.03, top=0.82, wspace=0.06)
    _save(figure, Path(path))


def plot_curves(history: dict[str, list[float]], path: str | os.PathLike, title: str) -> None:
    """Loss and accuracy per epoch, train and validation, the best epoch and learning-rate reductions marked."""
    epochs = [epoch + 1 for epoch in history.get("epoch", range(len(history["loss"])))]  # 1-based, as Keras logs
    figure = _figure(*CURVES_SIZE)
    panels = figure.subplots(1, 2)
    best = None
    if history.get("val_loss"):
        best = epochs[int(np.argmin(history["val_loss"]))]
    learning_rates = history.get("lr") or history.get("learning_rate") or []
    reductions = [epochs[i] for i in range(1, len(learning_rates)) if learning_rates[i] < learning_rates[i - 1]]
    for axes, metric in zip(panels, ("loss", "accuracy")):
        marker = "o" if len(epochs) <= 30 else None  # a run of a few epochs would otherwise be a dot or a line
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            if history.get(key):
                axes.plot(epochs, history[key], marker=marker, markersize=3, label=label)
        if best is not None:
            axes.axvline(best, color="grey", linestyle="--", linewidth=1, label=f"best (epoch {best})")
        for index, epoch in enumerate(reductions):
            axes.axvline(epoch, color="tab:red", linestyle=":", linewidth=1,
                         label="learning rate reduced" if index == 0 else None)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.set_title(metric)
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=8)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    _save(figure, Path(path))


# --- Runs ----------------------------------------------------------------------------------------------


def _class_index(class_names: Sequence[str], class_name: str | None, probabilities: np.ndarray) -> int:
    if class_name is None:
        return int(np.argmax(probabilities))
    if class_name not in class_names:
        raise ValueError(f"unknown class {class_name!r}; this run's classes: {', '.join(class_names)}")
    return list(class_names).index(class_name)


def _face_figure(run: RunDir, kind: str, image: str, output: Path, layer: str | None,
                 class_name: str | None) -> None:
    face = face_inputs(run, image)  # refuses landmark and sequence runs before their model loads
    model = run.load_model()
    convs = conv_layers(model)
    about = f"{run.settings['model']}, {Path(image).name}" + (" (whole image as face crop)" if face.whole_image
                                                                   else "")
    if kind == "activations":
        maps = activation_maps(model, face.inputs, [layer] if layer else convs)
        plot_activations(maps, face.crop, output, f"activation maps: {about}")
        return
    probabilities = np.asarray(model(face.inputs, training=False), np.float32)[0]
    class_index = _class_index(run.class_names, class_name, probabilities)
    layer = layer or convs[-1]
    heatmap = gradcam_heatmap(model, face.inputs, class_index, layer)
    title = f"Grad-CAM: {run.class_names[class_index]} {probabilities[class_index]:.1%} ({about})"
    plot_gradcam(face.crop, heatmap, output, title, layer)


def _confusion_figure(run: RunDir, split: str, output: Path) -> None:
    saved = run.path / f"evaluation-{split}.json"
    model = run.model_file
    # An evaluation older than the model (a resumed or repeated run) would show the previous model's errors.
    if saved.exists() and not (model.exists() and model.stat().st_mtime > saved.stat().st_mtime):
        report = json.loads(saved.read_text())
    else:
        report = evaluate.run(run.path, split)
    if "confusion_matrix" not in report:
        raise ValueError(f"{run.path} is a multi-label (facs) run: it has no confusion matrix")
    evaluate.plot_confusion(report["confusion_matrix"], report["class_names"], output,
                            f"{report['model']} on {report['dataset']} {split}: accuracy {report['accuracy']:.3f}")


def run(run_dir: str | os.PathLike, kind: str, *, image: str | os.PathLike | None = None,
        output: str | os.PathLike | None = None, layer: str | None = None, class_name: str | None = None,
        split: str = "test") -> Path:
    """Writes one visualisation of a run (see the module's docstring) and returns the PNG's path."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
    if kind in IMAGE_KINDS and image is None:
        raise ValueError(f"--kind {kind} needs --image FILE: the photo whose face to show")
    # Options that would be silently ignored are refused, so nobody believes they took effect.
    unused = [flag for flag, value, kinds in (("--image", image, IMAGE_KINDS), ("--layer", layer, IMAGE_KINDS),
                                              ("--class", class_name, ("gradcam",)))
              if value is not None and kind not in kinds]
    if unused:
        raise ValueError(f"--kind {kind} does not take {', '.join(unused)}")
    run = RunDir.open(run_dir)
    output = Path(output) if output else default_output(run.path, kind, image)
    if kind in IMAGE_KINDS:
        _face_figure(run, kind, str(image), output, layer, class_name)
    elif kind == "curves":
        settings = run.settings
        plot_curves(run.history(), output, f"{settings['model']} on {settings['dataset']}: training curves")
    else:
        _confusion_figure(run, split, output)
    return output
