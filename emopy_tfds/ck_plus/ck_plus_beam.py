"""The Beam work of the CK+ builder: each sequence's frames become aligned face crops with landmarks.

Kept out of the builder module so Beam workers can import it by its package name even when `tfds build`
loads the builder from a path.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Iterator

import apache_beam as beam
import numpy as np
from etils import epath

from emopy_tfds import build_report, faces, tracking
from emopy_tfds.ck_plus import ck_plus_files
from emopy_tfds.ck_plus.ck_plus_files import SequenceFiles

NO_LABEL = -1


def frames_to_use(config: str, count: int, *, last_frames: int, max_length: int) -> list[int]:
    """Which frames of a sequence of `count` frames a config keeps."""
    if config == "emotion":  # the first frame as neutral, the last N at the sequence's emotion
        return sorted(set([0] + list(range(max(1, count - last_frames), count))))
    if config == "sequences":
        return ck_plus_files.sample_uniformly(count, max_length)
    return [count - 1]  # facs: the peak frame


def frame_number(path: str) -> int:
    """CK+ frame files are named Sxxx_yyy_zzzzzzzz.png; zzzzzzzz is the frame number."""
    return int(os.path.splitext(os.path.basename(path))[0].rsplit("_", 1)[-1])


class SequenceToExamples(beam.DoFn):
    """Finds the face on a sequence's first kept frame, tracks it through the rest, aligns and crops.

    Elements are (SequenceFiles, label, action units, fold). The `report` output counts frames and
    detections, and names the sequences with no face and no CK+ landmarks, which are left out.
    """

    def __init__(self, config: str, spec: faces.FaceSpec, *, last_frames: int, max_length: int,
                 num_sequences: int, landmark_model=None):
        self._config = config
        self._spec_json = spec.to_json()
        self._last_frames, self._max_length = last_frames, max_length
        self._num_sequences = num_sequences
        self._landmark_model = landmark_model
        self._detections = beam.metrics.Metrics.counter("ck_plus", "detections")
        self._done = 0

    def setup(self):
        self._spec = faces.FaceSpec.from_json(self._spec_json)
        faces.load_models(self._landmark_model, self._spec.detector)

    def process(self, element) -> Iterator:
        sequence, label, action_units, fold = element
        started = time.perf_counter()
        kept = frames_to_use(self._config, len(sequence.frames), last_frames=self._last_frames,
                             max_length=self._max_length)
        images = [faces.load_image(epath.Path(sequence.frames[i]).read_bytes()) for i in kept]
        ck_landmarks = [_ck_landmarks(sequence.landmark_files[i]) for i in kept]
        fallback = faces.box_from_landmarks(ck_landmarks[0]) if ck_landmarks[0] is not None else None
        track = tracking.track_face(images, detector=self._spec.detector, fallback_box=fallback,
                                 landmark_model=self._landmark_model)
        self._detections.inc(track.detections)
        yield beam.pvalue.TaggedOutput("report", {"frames": len(kept), "detections": track.detections})
        if any(face is None for face in track.faces):
            yield beam.pvalue.TaggedOutput("report", {"left_out": f"{sequence.name}: no face found and no CK+ landmarks file"})
            return
        crops = []
        for image, face, ck in zip(images, track.faces, ck_landmarks):
            aligned = faces.align_face(image, face.landmarks, self._spec)
            ck_in_crop = faces.transform_points(ck, aligned.transform) if ck is not None else np.zeros((68, 2), np.float32)
            # PNG bytes, which TFDS stores as they are, are faster than TFDS's own TensorFlow encoder.
            crops.append((faces.encode_png(aligned.image), aligned.landmarks, ck_in_crop, ck is not None))
        common = {"subject": sequence.subject, "sequence": sequence.sequence, "fold": fold,
                  "face_from_ck_landmarks": track.used_fallback}
        numbers = [frame_number(sequence.frames[i]) for i in kept]
        yield from self._examples(sequence, label, action_units, common, numbers, crops)
        self._done += 1
        if self._done % 25 == 1:
            print(f"ck_plus {self._config}: {sequence.name} ({len(kept)} frames, {track.detections} detection(s), "
                  f"{time.perf_counter() - started:.2f} s); worker {os.getpid()} has done {self._done} of the "
                  f"{self._num_sequences} sequences", file=sys.stderr, flush=True)

    def _examples(self, sequence: SequenceFiles, label, action_units, common, numbers, crops):
        if self._config == "sequences":
            yield f"{sequence.subject}_{sequence.sequence}", {
                **common, "label": label, "frame_numbers": np.array(numbers, np.int32),
                "frames": [crop[0] for crop in crops], "landmarks": np.stack([crop[1] for crop in crops]),
                "ck_landmarks": np.stack([crop[2] for crop in crops]),
            }
            return
        for position, (number, (image, landmarks, ck, has_ck)) in enumerate(zip(numbers, crops)):
            example = {**common, "image": image, "landmarks": landmarks, "ck_landmarks": ck,
                       "has_ck_landmarks": has_ck, "frame": number}
            if self._config == "emotion":
                # The first frame of every CK+ sequence is neutral; the last frames show its emotion.
                example["label"] = 0 if position == 0 else label
            else:
                example.update(label=label, action_units=np.array([au for au, _ in action_units], np.int32),
                               au_intensities=np.array([i for _, i in action_units], np.int32))
            yield f"{sequence.subject}_{sequence.sequence}_{number:08d}", example


def _ck_landmarks(path: str | None) -> np.ndarray | None:
    return None if path is None else ck_plus_files.parse_landmarks(ck_plus_files.read_text(path), path)


def summarise(reports) -> dict:
    """One build report from the workers' per-sequence ones: frames, detections, sequences left out."""
    reports = list(reports)
    return {
        "frames_processed": sum(r.get("frames", 0) for r in reports),
        "detections": sum(r.get("detections", 0) for r in reports),
        "left_out": sorted(r["left_out"] for r in reports if "left_out" in r),
    }


def examples(pipeline, items: list, config: str, spec: faces.FaceSpec, *, last_frames: int, max_length: int,
             data_dir: str, landmark_model=None):
    """The PCollection of (key, example) for every sequence. The build report (`summarise`) is written to
    beside the data in `data_dir` (emopy_tfds.build_report), for the builder to put in the dataset's metadata."""
    to_examples = SequenceToExamples(config, spec, last_frames=last_frames, max_length=max_length,
                                     num_sequences=len(items), landmark_model=landmark_model)
    outputs = (
        pipeline
        | "ck_plus_sequences" >> beam.Create(items)
        | "ck_plus_examples" >> beam.ParDo(to_examples).with_outputs("report", main="examples")
    )
    build_report.write(outputs.report, data_dir, summarise)
    return outputs.examples
