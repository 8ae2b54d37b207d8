"""Images in, uint8 RGB arrays out: files, encoded bytes and arrays of any layout, refused clearly when unreadable.

Every picture emopy reads (photos, video frames, dataset files) comes through here, before faces.py finds its faces.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Union

import cv2
import numpy as np
from PIL import Image

# Far above any camera frame, far below what would exhaust memory once decoded (3 bytes a pixel).
MAX_IMAGE_PIXELS = 100_000_000

ImageLike = Union[str, os.PathLike, bytes, np.ndarray]


class ImageError(ValueError):
    """An image that cannot be read: corrupt, unsupported, or too large to decode safely."""


def load_image(
    source: ImageLike,
    *,
    channel_order: str = "rgb",
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> np.ndarray:
    """Any accepted image as uint8 RGB (H, W, 3).

    `source` is a file path, encoded bytes (PNG, JPEG, ...), or an array: gray (H, W) or (H, W, 1), colour
    (H, W, 3) or with alpha (H, W, 4), uint8, uint16 or float in [0, 1]. Arrays are RGB(A) unless
    `channel_order="bgr"` (OpenCV's order). Raises ImageError naming the file on anything unreadable.
    """
    if isinstance(source, np.ndarray):
        return to_rgb8(source, channel_order=channel_order)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_image(bytes(source), name="<bytes>", max_pixels=max_pixels)
    path = Path(source)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImageError(f"{path}: cannot read file ({error.strerror or error})") from None
    return decode_image(data, name=str(path), max_pixels=max_pixels)


def decode_image(data: bytes, *, name: str, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Encoded image bytes as uint8 RGB (H, W, 3); checks the size in the header before decoding."""
    if not data:
        raise ImageError(f"{name}: empty file")
    try:
        with warnings.catch_warnings():
            # Our own limit below replaces Pillow's warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            width, height = Image.open(io.BytesIO(data)).size
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: image too large to decode safely (limit {max_pixels} pixels)") from None
    except Exception:  # Pillow raises many kinds of error on garbage; all mean the same here.
        raise ImageError(f"{name}: not a readable image (corrupt or unsupported format)") from None
    if width * height > max_pixels:
        raise ImageError(
            f"{name}: image of {width}x{height} pixels is too large to decode safely (limit {max_pixels} pixels)"
        )
    # ANYCOLOR | ANYDEPTH keeps 16-bit depth and, unlike IMREAD_UNCHANGED, applies EXIF orientation.
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
    if decoded is None:
        raise ImageError(f"{name}: not a readable image (corrupt or truncated)")
    return to_rgb8(decoded, channel_order="bgr", name=name)


def to_rgb8(image: np.ndarray, *, channel_order: str = "rgb", name: str = "<array>") -> np.ndarray:
    """A gray, RGB(A) or BGR(A) array of uint8, uint16 or float [0, 1] as uint8 RGB (H, W, 3)."""
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ImageError(f"{name}: expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) pixels, got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"{name}: image has no pixels ({image.shape})")
    image = _to_uint8(image, name)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if channel_order == "bgr":
        code = cv2.COLOR_BGR2RGB if image.shape[2] == 3 else cv2.COLOR_BGRA2RGB
    else:
        code = None if image.shape[2] == 3 else cv2.COLOR_RGBA2RGB
    return np.ascontiguousarray(image) if code is None else cv2.cvtColor(image, code)


def _to_uint8(image: np.ndarray, name: str) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        # round(x / 257), straight into uint8: a float64 copy would be four times the size of the 16-bit image.
        # No x / 257 is within 0.002 of a half, so OpenCV's float32 scaling rounds every x as exact division does.
        return cv2.convertScaleAbs(image, alpha=1 / 257)
    if np.issubdtype(image.dtype, np.floating):
        return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ImageError(f"{name}: unsupported pixel type {image.dtype} (use uint8, uint16 or float in [0, 1])")


def encode_png(image: np.ndarray) -> bytes:
    """A face crop (or any uint8 gray or RGB image) as PNG bytes: lossless, what datasets store and servers take."""
    pixels = image if image.ndim == 2 or image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    encoded, data = cv2.imencode(".png", pixels)
    if not encoded:
        raise ImageError(f"cannot encode an image of shape {image.shape} and type {image.dtype} as PNG")
    return data.tobytes()
