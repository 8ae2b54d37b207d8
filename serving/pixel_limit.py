"""The exported signatures' guard against decompression bombs: image sizes read from encoded headers in the graph.

A 137 KiB PNG can declare 12000x12000 pixels (430 MB once decoded, more in the float steps after it), and TF
Serving runs whatever the SavedModel's graph does, so the photo reader's check (emopy_tfds/images.py) cannot
protect a server: the check has to be in the graph, before tf.io.decode_image. `decode_image` reads an image's
size from its header without decoding it and raises InvalidArgumentError (gRPC INVALID_ARGUMENT, HTTP 400) for one
over the limit, `emopy export --max-image-pixels N` (default: the photo reader's MAX_IMAGE_PIXELS).

What is read, per format (the formats tf.io.decode_image tells apart, by the same leading bytes):
  JPEG  the frame header (tf.image.extract_jpeg_shape reads headers only)
  PNG   IHDR, which must come first: width and height big-endian at bytes 16..24
  BMP   width and height little-endian at bytes 18..26, as TensorFlow's decoder reads them (height < 0: top-down)
  WebP  the VP8, VP8L or VP8X header; animated WebP TensorFlow refuses itself without decoding (not RGBA)
  GIF   every frame's descriptor: TensorFlow's canvas is the frames' extent, not the screen size the header
        gives, and it decodes every frame even when it keeps only the first; GIF counts width x height x frames
Anything else (JPEG XL, which TensorFlow also decodes, and what is no image) is refused before decoding: the
photo reader takes none of it either.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

FLAG = "--max-image-pixels"
UNKNOWN, JPEG, PNG, GIF, BMP, WEBP = range(6)
HEAD = 32  # bytes read from the start of each image: every fixed-place header field lies within them
_MAGIC = ((JPEG, 0, b"\xff\xd8\xff"), (PNG, 0, b"\x89PNG\r\n\x1a\n"), (GIF, 0, b"GIF8"), (BMP, 0, b"BM"),
          (WEBP, 8, b"WEBP"))


def _format(head: tf.Tensor) -> tf.Tensor:
    """The format tf.io.decode_image would take an image of these first HEAD bytes for (UNKNOWN: none we read)."""
    found = tf.constant(UNKNOWN)
    for kind, offset, magic in reversed(_MAGIC):
        match = tf.equal(tf.strings.substr(head, offset, len(magic)), magic)
        if kind == WEBP:
            match = tf.logical_and(match, tf.equal(tf.strings.substr(head, 0, 4), b"RIFF"))
        found = tf.where(match, kind, found)
    return found


def _head(encoded: tf.Tensor) -> tf.Tensor:
    """The first HEAD bytes of a scalar string, zeros past the end of a shorter one: a string of HEAD bytes."""
    return tf.strings.substr(tf.strings.join([tf.strings.substr(encoded, 0, HEAD), b"\0" * HEAD]), 0, HEAD)


def _little(head: tf.Tensor, start: int, size: int) -> tf.Tensor:
    return sum(head[start + i] * 256 ** i for i in range(size))


def _big(head: tf.Tensor, start: int, size: int) -> tf.Tensor:
    return sum(head[start + i] * 256 ** (size - 1 - i) for i in range(size))


def _int32(unsigned: tf.Tensor) -> tf.Tensor:
    return tf.where(unsigned >= 2 ** 31, unsigned - 2 ** 32, unsigned)


def _webp_size(chunk: tf.Tensor, head: tf.Tensor) -> tf.Tensor:
    lossless = _little(head, 21, 4)
    sizes = [  # (width, height) of each kind of first chunk
        (chunk == b"VP8 ", _little(head, 26, 2) % 2 ** 14, _little(head, 28, 2) % 2 ** 14),
        (chunk == b"VP8L", lossless % 2 ** 14 + 1, lossless // 2 ** 14 % 2 ** 14 + 1),
        (chunk == b"VP8X", _little(head, 24, 3) + 1, _little(head, 27, 3) + 1)]
    size = tf.constant([-1, -1, 0], tf.int64)  # another first chunk: no WebP we know
    for match, width, height in sizes:
        size = tf.where(match, tf.stack([width, height, tf.constant(1, tf.int64)]), size)
    return size


def _gif_size(encoded: tf.Tensor) -> tf.Tensor:
    """[width, height, frames] as TensorFlow's GIF decoder will allocate them: the extent of the screen and of every
    frame, and the number of frames. Walks the blocks (extensions, frames and their data sub-blocks)."""
    data = tf.cast(tf.io.decode_raw(encoded, tf.uint8), tf.int64)
    end = tf.size(data, out_type=tf.int64)

    def byte(at):
        return tf.gather(data, tf.clip_by_value(tf.cast(at, tf.int64), 0, end - 1))

    def short(at):
        return byte(at) + 256 * byte(at + 1)

    flags = byte(10)
    colour_table = tf.where(flags >= 128, 3 * 2 ** (flags % 8 + 1), tf.constant(0, tf.int64))

    def more(at, in_data, frames, width, height):
        return tf.logical_and(at < end, tf.logical_or(in_data, tf.not_equal(byte(at), 0x3B)))

    def step(at, in_data, frames, width, height):
        # In a run of data sub-blocks, each starts with its length and a zero length ends the run; outside one,
        # 0x21 starts an extension (label, then sub-blocks) and 0x2C a frame (descriptor, colour table, LZW code
        # size, then sub-blocks). Anything else ends the walk: the decoder refuses it.
        kind, length = byte(at), byte(at)
        local_flags = byte(at + 9)
        local_table = tf.where(local_flags >= 128, 3 * 2 ** (local_flags % 8 + 1), tf.constant(0, tf.int64))
        frame = tf.logical_and(tf.logical_not(in_data), tf.equal(kind, 0x2C))
        extension = tf.logical_and(tf.logical_not(in_data), tf.equal(kind, 0x21))
        next_at = tf.where(in_data, at + 1 + length,
                           tf.where(frame, at + 11 + local_table, tf.where(extension, at + 2, end)))
        next_in_data = tf.logical_or(tf.logical_and(in_data, length > 0), tf.logical_or(frame, extension))
        width = tf.where(frame, tf.maximum(width, short(at + 1) + short(at + 5)), width)
        height = tf.where(frame, tf.maximum(height, short(at + 3) + short(at + 7)), height)
        return next_at, next_in_data, frames + tf.cast(frame, tf.int64), width, height

    start = (13 + colour_table, tf.constant(False), tf.constant(0, tf.int64), short(6), short(8))
    _, _, frames, width, height = tf.while_loop(more, step, start, parallel_iterations=1)
    return tf.stack([width, height, tf.maximum(frames, 1)])


def declared_size(encoded: tf.Tensor) -> tf.Tensor:
    """int64 [width, height, frames] that one encoded image (a scalar string) declares, read without decoding it;
    [-1, -1, 0] for a format tf.io.decode_image would not be given here."""
    head_bytes = _head(encoded)
    head = tf.cast(tf.io.decode_raw(head_bytes, tf.uint8), tf.int64)
    unknown = tf.constant([-1, -1, 0], tf.int64)

    def jpeg():
        height_width = tf.cast(tf.image.extract_jpeg_shape(encoded)[:2], tf.int64)
        return tf.stack([height_width[1], height_width[0], tf.constant(1, tf.int64)])

    return tf.switch_case(_format(head_bytes), [
        lambda: unknown,
        jpeg,
        lambda: tf.stack([_big(head, 16, 4), _big(head, 20, 4), tf.constant(1, tf.int64)]),
        lambda: _gif_size(encoded),
        lambda: tf.stack([tf.abs(_int32(_little(head, 18, 4))), tf.abs(_int32(_little(head, 22, 4))),
                          tf.constant(1, tf.int64)]),
        lambda: _webp_size(tf.strings.substr(head_bytes, 12, 4), head),
    ])


def image_name(index: tf.Tensor, shape: tf.Tensor, name: str = "image_bytes") -> tf.Tensor:
    """ "image_bytes[i]" (or "image_bytes[i, t]") for the image at `index` in row order of a tensor of `shape`."""
    where = tf.unravel_index(tf.cast(index, tf.int64), tf.cast(shape, tf.int64))
    return tf.strings.join([name, "[", tf.strings.reduce_join(tf.strings.as_string(where), separator=", "), "]"])


def decode_image(encoded: tf.Tensor, max_pixels: int, which: Callable[[], tf.Tensor]) -> tf.Tensor:
    """tf.io.decode_image(encoded, channels=3, expand_animations=False): uint8 [H, W, 3], of one image (a scalar
    string) whose header declares at most `max_pixels` pixels (width x height x frames); for any other, raises
    InvalidArgumentError naming it by which(), without decoding it.

    The decoder sits in the branch of a tf.cond that only a passing check takes. An assertion that decoding merely
    depended on was not enough: Grappler reordered the two in the exported graph, and a 12000x12000 PNG was decoded
    (7 s, +2.7 GB) beside the failing assertion.
    """
    size = declared_size(encoded)
    width, height, frames = size[0], size[1], size[2]
    known = frames > 0
    within = tf.logical_and(known, width * height * frames <= max_pixels)

    def refuse() -> tf.Tensor:
        declared = tf.strings.join([tf.strings.as_string(width), "x", tf.strings.as_string(height), " pixels",
                                    tf.where(frames > 1, tf.strings.join([" in ", tf.strings.as_string(frames),
                                                                          " frames"]), "")])
        message = tf.cond(
            known,
            lambda: tf.strings.join([
                which(), ": the image declares ", declared, f", over the limit of {max_pixels} this model was "
                f"exported with, and is refused before decoding (whoever serves the model raises the limit by "
                f"exporting it again with emopy export {FLAG} N)"]),
            lambda: tf.strings.join([which(), ": not a JPEG, PNG, GIF, BMP or WebP image (unknown image file format)"]))
        with tf.control_dependencies([tf.debugging.Assert(within, [message])]):  # "assertion failed: [message]"
            return tf.zeros([0, 0, 3], tf.uint8)

    return tf.cond(within, lambda: tf.io.decode_image(encoded, channels=3, expand_animations=False, dtype=tf.uint8),
                   refuse)
