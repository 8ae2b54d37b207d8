"""The Beam work of the fer2013 builder: batches of validated rows become examples with dlib landmarks.

Kept out of the builder module so Beam workers can import it by its package name even when `tfds build`
loads the builder from a path.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Iterator, Literal, Union

import apache_beam as beam
import numpy as np

from emopy_tfds import faces
from emopy_tfds.fer2013 import fer2013_csv

# An example keyed by its row: what RowsToExamples emits under the tag of each split in fer2013_csv.SPLITS.
KeyedExample = tuple[int, dict]
SplitExample = Union[beam.pvalue.TaggedOutput[Literal["train"], KeyedExample],
                     beam.pvalue.TaggedOutput[Literal["validation"], KeyedExample],
                     beam.pvalue.TaggedOutput[Literal["test"], KeyedExample]]


def example(row: np.void, image: np.ndarray, landmarks: np.ndarray, *, ferplus: bool) -> dict:
    """The feature dict of one row (a ROW_DTYPE record); FER+ rows also carry votes and the original label.

    The image goes in as PNG bytes, which TFDS stores as they are: OpenCV encodes the same lossless PNG
    in a quarter of the time TFDS takes through a TensorFlow graph.
    """
    features = {"image": faces.encode_png(image), "landmarks": landmarks, "label": int(row["label"]), "index": int(row["index"])}
    if ferplus:
        votes = row["ferplus_votes"]
        features.update(label=fer2013_csv.ferplus_label(votes), fer2013_label=int(row["label"]), ferplus_votes=votes)
    return features


class RowsToExamples(beam.DoFn):
    """Reads a batch of rows' pixels with one ranged read and fits the 68 landmarks on each 48x48 face.

    Elements are (split, batch number, rows); examples go to the output tagged with their split. About
    every tenth batch prints a progress line.
    """

    def __init__(self, csv_path: str, num_batches: int, *, ferplus: bool, landmark_model=None):
        self._csv_path = csv_path
        self._num_batches = num_batches
        self._ferplus = ferplus
        self._landmark_model = landmark_model
        self._rows = beam.metrics.Metrics.counter("fer2013", "rows")

    def setup(self):
        faces.load_models(self._landmark_model)

    def process(self, element: tuple[str, int, np.ndarray]) -> Iterator[SplitExample]:
        split, number, batch = element
        started = time.perf_counter()
        name = os.path.basename(self._csv_path)
        images = fer2013_csv.read_batch_pixels(self._csv_path, batch, name=name)
        for row, image in zip(batch, images):
            # fer2013's faces are already cropped: the whole image is the face box, as the original did.
            (face,) = faces.find_faces(image, already_cropped=True, landmark_model=self._landmark_model)
            features = example(row, image, face.landmarks, ferplus=self._ferplus)
            yield beam.pvalue.TaggedOutput(split, (features["index"], features))
        self._rows.inc(len(batch))
        if number % max(1, self._num_batches // 10) == 0 or number == self._num_batches - 1:
            print(f"fer2013: batch {number + 1}/{self._num_batches} ({split}, {len(batch)} rows, "
                  f"{time.perf_counter() - started:.1f} s, worker {os.getpid()})", file=sys.stderr, flush=True)


def examples_by_split(
    pipeline: beam.Pipeline, csv_path: str, batches_by_split: dict[str, list[np.ndarray]], *, ferplus: bool,
    landmark_model=None,
) -> dict[str, beam.PCollection]:
    """One Beam stage that makes the examples of every split; returns each split's (key, example)s.

    Were each split to run its own landmark stage, the runner would work through the splits one after
    another, idling workers at each split's end; one stage keeps every worker busy to the last row.
    """
    in_order = [(split, batch) for split, batches in batches_by_split.items() for batch in batches]
    elements = [(split, number, batch) for number, (split, batch) in enumerate(in_order)]
    to_examples = RowsToExamples(csv_path, len(elements), ferplus=ferplus, landmark_model=landmark_model)
    outputs = (
        pipeline
        | "fer2013_rows" >> beam.Create(elements)
        | "fer2013_examples" >> beam.ParDo(to_examples).with_outputs(*batches_by_split)
    )
    return {split: outputs[split] for split in batches_by_split}
