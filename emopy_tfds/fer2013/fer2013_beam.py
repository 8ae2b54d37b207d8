"""The Beam work of the fer2013 builder: batches of validated rows become examples with dlib landmarks.

Kept out of the builder module so Beam workers can import it by its package name even when `tfds build`
loads the builder from a path.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Iterator, Sequence

import apache_beam as beam
import numpy as np

from emopy_tfds import faces
from emopy_tfds.fer2013 import fer2013_csv


def example(row: fer2013_csv.RowRef, image: np.ndarray, landmarks: np.ndarray) -> dict:
    """The feature dict of one row; FER+ rows also carry their votes, label and original label."""
    features = {"image": image, "landmarks": landmarks, "label": row.label, "index": row.index}
    if row.ferplus_votes is not None:
        features.update(
            label=fer2013_csv.ferplus_label(row.ferplus_votes),
            fer2013_label=row.label,
            ferplus_votes=np.asarray(row.ferplus_votes, dtype=np.int32),
        )
    return features


class RowsToExamples(beam.DoFn):
    """Reads a batch of rows' pixels with one ranged read and fits the 68 landmarks on each 48x48 face.

    Elements are (batch number, rows). About every tenth batch of a split prints a progress line.
    """

    def __init__(self, csv_path: str, split: str, num_batches: int, landmark_model: str | os.PathLike | None = None):
        self._csv_path = csv_path
        self._split = split
        self._num_batches = num_batches
        self._landmark_model = landmark_model
        self._rows = beam.metrics.Metrics.counter("fer2013", "rows")

    def setup(self):
        faces.load_models(self._landmark_model)

    def process(self, numbered_batch: tuple[int, Sequence[fer2013_csv.RowRef]]) -> Iterator[tuple[int, dict]]:
        number, batch = numbered_batch
        started = time.perf_counter()
        name = os.path.basename(self._csv_path)
        images = fer2013_csv.read_batch_pixels(self._csv_path, batch, name=name)
        for row, image in zip(batch, images):
            # fer2013's faces are already cropped: the whole image is the face box, as the original did.
            (face,) = faces.find_faces(image, already_cropped=True, landmark_model=self._landmark_model)
            yield row.index, example(row, image, face.landmarks)
        self._rows.inc(len(batch))
        if number % max(1, self._num_batches // 10) == 0 or number == self._num_batches - 1:
            print(f"fer2013 {self._split}: batch {number + 1}/{self._num_batches} ({len(batch)} rows, "
                  f"{time.perf_counter() - started:.1f} s, worker {os.getpid()})", file=sys.stderr, flush=True)
