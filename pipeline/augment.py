"""In-graph augmentation that moves face images and their landmarks together (tf.data, per batch).

Landmarks are in pixel coordinates with pixel centres at integers, as dlib and `faces.align_face` give them,
so a point keeps marking the same facial feature after the image is flipped, rotated, shifted or zoomed.

Three recipes, by name (NAMED): "standard"; "photo", which also makes fer2013's crops look like faces cut from
real photos: the detector's box off by more (shift, zoom, tilt), harsher lighting, faces that were small in their
photo (scaled down and up again, which blurs) and sensor noise; and "tight", the standard one with half the faces
cut at the forehead, sides or chin and mirrored back out, which is what `faces.align_face` makes of a photo cropped
tightly around its face (news photos often are). Blur, noise and cuts leave the landmarks where they are.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import tensorflow as tf

from emopy_tfds.faces import MIRRORED_LANDMARKS

PIXEL_MAX = 255.0  # uint8


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Ranges of the random changes; each is drawn independently per example (per sequence for sequences)."""

    flip: bool = True
    rotation_degrees: float = 10.0
    shift: float = 0.1  # of the image side
    zoom: float = 0.1  # the scale lies in [1 - zoom, 1 + zoom]
    brightness: float = 0.1  # added, as a share of the pixel range
    contrast: float = 0.2  # the contrast factor lies in [1 - contrast, 1 + contrast]
    low_resolution: float = 0.0  # the share of faces scaled down (to 1/3 to 1 of the side) and back up
    noise: float = 0.0  # Gaussian noise, its standard deviation up to this share of the pixel range
    tight_crop: float = 0.0  # the share of faces cut (up to TIGHT_CUTS of the side) and mirrored back out


NAMED = {
    "standard": Augmentation(),
    "photo": Augmentation(rotation_degrees=15.0, shift=0.12, zoom=0.2, brightness=0.15, contrast=0.3,
                          low_resolution=0.3, noise=0.03),
    "tight": Augmentation(tight_crop=0.5),
}

# The most a tight crop cuts at each edge, as a share of the face crop's side: (top, bottom, left, right). Tight
# news crops cut most at the forehead, which fer2013's framing keeps (faces.FER2013_FRAMING).
TIGHT_CUTS = (0.25, 0.1, 0.15, 0.15)


def flip_landmarks(landmarks: tf.Tensor, width: int | tf.Tensor) -> tf.Tensor:
    """Points [..., 68, 2] of the mirrored image, renumbered so that each still names the same feature:
    the subject's right eye of the flipped face is what was the left eye, mirrored."""
    landmarks = tf.convert_to_tensor(landmarks, tf.float32)
    x = tf.cast(width, tf.float32) - 1.0 - landmarks[..., 0]
    mirrored = tf.stack([x, landmarks[..., 1]], axis=-1)
    return tf.gather(mirrored, MIRRORED_LANDMARKS, axis=-2)


def flip(images: tf.Tensor, landmarks: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Mirrors images [..., H, W, C] left to right and their landmarks [..., 68, 2] with them."""
    return tf.reverse(images, axis=[-2]), flip_landmarks(landmarks, tf.shape(images)[-2])


def _uniform(count: tf.Tensor, half_range: float, centre: float = 0.0) -> tf.Tensor:
    return tf.random.uniform([count], centre - half_range, centre + half_range)


def _photo_degradations(images: tf.Tensor, image_size: int, augmentation: Augmentation, batch: tf.Tensor,
                        per_frame: Callable[[tf.Tensor], tf.Tensor]) -> tf.Tensor:
    """Float images [N, S, S, C] with some faces made low-resolution and all given noise, as augmentation says;
    the frames of a sequence share one draw (per_frame repeats a draw per example for each of its frames)."""
    if augmentation.low_resolution > 0:
        # One size per batch keeps it one resize op; batches differ, so the model sees every size.
        side = tf.random.uniform([], max(1, image_size // 3), image_size + 1, dtype=tf.int32)
        small = tf.image.resize(images, [side, side], method="area")
        blurred = tf.image.resize(small, [image_size, image_size], method="bilinear")
        chosen = per_frame(tf.random.uniform([batch]) < augmentation.low_resolution)
        images = tf.where(chosen[:, None, None, None], blurred, images)
    if augmentation.noise > 0:
        sigma = per_frame(tf.random.uniform([batch], 0.0, augmentation.noise * PIXEL_MAX))[:, None, None, None]
        images = images + sigma * tf.random.normal(tf.shape(images))
    return images


def _mirrored_indices(size: int, low: tf.Tensor, high: tf.Tensor) -> tf.Tensor:
    """Per example [N], the source row (or column) of each of `size` output ones [N, size]: those in
    [low, high] as they are, those outside mirrored about the edge without repeating it (cv2.BORDER_REFLECT_101,
    as faces.align_face fills past a photo's edge)."""
    index = tf.range(size)[None, :]
    low, high = low[:, None], high[:, None]
    index = tf.where(index < low, 2 * low - index, index)
    index = tf.where(index > high, 2 * high - index, index)
    return tf.clip_by_value(index, 0, size - 1)


def _tight_crops(images: tf.Tensor, image_size: int, share: float, batch: tf.Tensor,
                 per_frame: Callable[[tf.Tensor], tf.Tensor]) -> tf.Tensor:
    """Images [N, S, S, C] with `share` of the faces cut at each edge by up to TIGHT_CUTS and mirrored back."""
    chosen = per_frame(tf.random.uniform([batch]) < share)

    def cut(most: float) -> tf.Tensor:
        pixels = tf.random.uniform([batch], 0, int(most * image_size) + 1, dtype=tf.int32)
        return tf.where(chosen, per_frame(pixels), 0)

    top, bottom, left, right = (cut(most) for most in TIGHT_CUTS)
    rows = _mirrored_indices(image_size, top, image_size - 1 - bottom)
    columns = _mirrored_indices(image_size, left, image_size - 1 - right)
    images = tf.gather(images, rows, axis=1, batch_dims=1)
    return tf.gather(images, columns, axis=2, batch_dims=1)


def augment(images: tf.Tensor | None, landmarks: tf.Tensor, image_size: int,
            augmentation: Augmentation = Augmentation()) -> tuple[tf.Tensor | None, tf.Tensor]:
    """Randomly flipped, rotated, shifted, zoomed, brightened and contrasted copies of a batch, some also cut at
    their edges, blurred or noisy as the recipe says.

    images: uint8 [B, (T,) S, S, C], or None for landmark-only inputs; landmarks: [B, (T,) 68, 2]. The copies
    are uint8 too, rounded: the model is fed only what a face crop can be. The frames of a sequence share
    one draw, so a sequence stays a coherent clip.
    """
    landmarks = tf.cast(landmarks, tf.float32)
    batch = tf.shape(landmarks)[0]
    frames = tf.reduce_prod(tf.shape(landmarks)[1:-2])  # 1, or T for sequences
    flat_landmarks = tf.reshape(landmarks, [-1, tf.shape(landmarks)[-2], 2])
    flat_images = None if images is None else tf.reshape(images, tf.concat([[-1], tf.shape(images)[-3:]], 0))

    def per_frame(values: tf.Tensor) -> tf.Tensor:
        return tf.repeat(values, frames, axis=0)

    if augmentation.flip:
        flipped = per_frame(tf.random.uniform([batch]) < 0.5)
        flat_landmarks = tf.where(flipped[:, None, None], flip_landmarks(flat_landmarks, image_size), flat_landmarks)
        if flat_images is not None:
            flat_images = tf.where(flipped[:, None, None, None], tf.reverse(flat_images, axis=[-2]), flat_images)

    angle = per_frame(_uniform(batch, math.radians(augmentation.rotation_degrees)))
    scale = per_frame(_uniform(batch, augmentation.zoom, 1.0))
    shift_x = per_frame(_uniform(batch, augmentation.shift * image_size))
    shift_y = per_frame(_uniform(batch, augmentation.shift * image_size))
    cos, sin = tf.cos(angle), tf.sin(angle)
    centre = (image_size - 1) / 2.0

    # Points move forward: p' = scale * R(angle) (p - c) + c + shift.
    x = flat_landmarks[..., 0] - centre
    y = flat_landmarks[..., 1] - centre
    flat_landmarks = tf.stack([
        scale[:, None] * (cos[:, None] * x - sin[:, None] * y) + centre + shift_x[:, None],
        scale[:, None] * (sin[:, None] * x + cos[:, None] * y) + centre + shift_y[:, None],
    ], axis=-1)

    if flat_images is not None:
        # The image op wants the inverse map, from each output pixel to where it samples the input.
        a0, a1 = cos / scale, sin / scale
        b0, b1 = -sin / scale, cos / scale
        ox, oy = centre + shift_x, centre + shift_y
        a2 = centre - (a0 * ox + a1 * oy)
        b2 = centre - (b0 * ox + b1 * oy)
        zeros = tf.zeros_like(a0)
        transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
        flat_images = tf.raw_ops.ImageProjectiveTransformV3(
            images=tf.cast(flat_images, tf.float32), transforms=transforms,
            output_shape=tf.constant([image_size, image_size]), fill_value=0.0,
            interpolation="BILINEAR", fill_mode="NEAREST")
        if augmentation.tight_crop > 0:
            flat_images = _tight_crops(flat_images, image_size, augmentation.tight_crop, batch, per_frame)
        contrast = per_frame(_uniform(batch, augmentation.contrast, 1.0))[:, None, None, None]
        brightness = per_frame(_uniform(batch, augmentation.brightness))[:, None, None, None]
        mean = tf.reduce_mean(flat_images, axis=[1, 2, 3], keepdims=True)
        flat_images = (flat_images - mean) * contrast + mean + brightness * PIXEL_MAX
        flat_images = _photo_degradations(flat_images, image_size, augmentation, batch, per_frame)
        flat_images = tf.cast(tf.round(tf.clip_by_value(flat_images, 0.0, PIXEL_MAX)), tf.uint8)
        images = tf.reshape(flat_images, tf.shape(images))
    return images, tf.reshape(flat_landmarks, tf.shape(landmarks))
