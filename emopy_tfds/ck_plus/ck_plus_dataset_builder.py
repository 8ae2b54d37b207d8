"""CK+ as a TFDS dataset: aligned face crops with dlib landmarks, emotion labels, sequences and FACS AUs."""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np
import tensorflow_datasets as tfds

from emopy_tfds import build_report, faces, labels
from emopy_tfds.ck_plus import ck_plus_files

log = logging.getLogger(__name__)


@dataclasses.dataclass
class CkPlusConfig(tfds.core.BuilderConfig):
    """kind: emotion, sequences or facs (defaults to the name). crop_size: side of the aligned face crops
    (96; 48 matches fer2013). last_frames: how many of a labelled sequence's last frames the emotion kind
    keeps. max_length: the sequences kind samples at most this many frames uniformly (0 keeps all).
    folds: number of subject-independent folds.

    Other variants are configs too, e.g. `CkPlusConfig(name="emotion48", kind="emotion", crop_size=48)`.
    """

    kind: str = ""
    crop_size: int = 96
    last_frames: int = 3
    max_length: int = 0
    folds: int = 10


class Builder(tfds.core.GeneratorBasedBuilder):
    """CK+ (Lucey et al. 2010): 593 posed sequences of 123 subjects, 327 with an emotion label."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "emotion, sequences and facs configs; dlib and CK+ landmarks; subject folds."}
    BUILDER_CONFIGS = [
        CkPlusConfig(name="emotion", description="The last frames of each labelled sequence, and its first "
                                                 "frame as neutral."),
        CkPlusConfig(name="sequences", description="Each labelled sequence as crops and landmarks over time."),
        CkPlusConfig(name="facs", description="Every sequence's peak frame with its FACS action units."),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
    CK+ is distributed by the University of Pittsburgh under an agreement (https://www.jeffcohn.net/Resources/).
    Put in the manual directory EITHER the four official zips
      {', '.join(ck_plus_files.ZIPS.values())}
    OR the folders they hold ({', '.join(ck_plus_files.FOLDERS.values())}),
    OR the original Emopy layout: {ck_plus_files.EMOPY_FOLDER}/Sxxx/yyy/ with frames and their _emotion.txt,
    _facs.txt and _landmarks.txt files together.
    """

    def __init__(self, *, landmark_model: str | os.PathLike | None = None, detector: str = faces.DEFAULT_DETECTOR,
                 **kwargs):
        self._landmark_model = landmark_model
        self._detector = faces.detection.check_detector(detector)
        super().__init__(**kwargs)

    @property
    def kind(self) -> str:
        return self.builder_config.kind or self.builder_config.name

    @property
    def face_spec(self) -> faces.FaceSpec:
        return faces.FaceSpec(crop_size=self.builder_config.crop_size, detector=self._detector)

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.crop_size
        points = tfds.features.Tensor(shape=(68, 2), dtype=np.float32)
        common = {
            "subject": tfds.features.Text(),
            "sequence": tfds.features.Text(),
            "fold": tfds.features.Scalar(dtype=np.int32),
            "face_from_ck_landmarks": tfds.features.Scalar(dtype=np.bool_),
        }
        if self.kind == "sequences":
            features = {
                **common,
                "frames": tfds.features.Sequence(tfds.features.Image(shape=(size, size, 1))),
                "landmarks": tfds.features.Sequence(points),
                "ck_landmarks": tfds.features.Sequence(points),
                "frame_numbers": tfds.features.Sequence(tfds.features.Scalar(dtype=np.int32)),
                "label": tfds.features.ClassLabel(names=labels.CK_PLUS),
            }
        else:
            features = {
                **common,
                "image": tfds.features.Image(shape=(size, size, 1)),
                "landmarks": points,
                "ck_landmarks": points,
                "has_ck_landmarks": tfds.features.Scalar(dtype=np.bool_),
                "frame": tfds.features.Scalar(dtype=np.int32),
                "label": tfds.features.ClassLabel(names=labels.CK_PLUS),
            }
            if self.kind == "facs":
                features.update(
                    label=tfds.features.Scalar(dtype=np.int64),  # -1: the sequence has no emotion label
                    action_units=tfds.features.Tensor(shape=(None,), dtype=np.int32),
                    au_intensities=tfds.features.Tensor(shape=(None,), dtype=np.int32),
                )
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(features),
            homepage="https://www.jeffcohn.net/Resources/",
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager, pipeline):
        roots = ck_plus_files.find_roots(dl_manager.manual_dir, dl_manager.extract)
        sequences = ck_plus_files.index_sequences(roots)
        folds = ck_plus_files.subject_folds([s.subject for s in sequences], self.builder_config.folds)
        items = []
        for sequence in sequences:
            label = (ck_plus_files.parse_emotion(ck_plus_files.read_text(sequence.emotion_file), sequence.emotion_file)
                     if sequence.emotion_file else None)
            action_units = (ck_plus_files.parse_facs(ck_plus_files.read_text(sequence.facs_file), sequence.facs_file)
                            if sequence.facs_file else [])
            if self.kind == "facs":
                items.append((sequence, -1 if label is None else label, action_units, folds[sequence.subject]))
            elif label is not None:
                items.append((sequence, label, action_units, folds[sequence.subject]))
        log.info("CK+: %d sequences of %d subjects, %d labelled", len(sequences), len(folds),
                 sum(s.emotion_file is not None for s in sequences))
        self.info.metadata.update(
            face_spec=self.face_spec.to_json(),
            sequences_found=len(sequences),
            sequences_labelled=sum(s.emotion_file is not None for s in sequences),
            subjects=len(folds),
        )
        from emopy_tfds.ck_plus import ck_plus_beam  # here, so that `import emopy_tfds` does not pay for Beam

        examples = ck_plus_beam.examples(
            pipeline, items, self.kind, self.face_spec,
            last_frames=self.builder_config.last_frames, max_length=self.builder_config.max_length,
            data_dir=os.fspath(self.data_dir), landmark_model=self._landmark_model,
        )
        return {"train": self._generate_examples(examples)}

    def _generate_examples(self, examples):
        """(key, example) pairs of every kept frame or sequence, made by the Beam stage in ck_plus_beam."""
        return examples

    def _download_and_prepare(self, dl_manager, download_config):
        super()._download_and_prepare(dl_manager=dl_manager, download_config=download_config)
        # The workers' report (sequences left out, detections) belongs in the metadata, not with the data.
        report = build_report.take(self.data_dir)
        for name in report["left_out"]:
            log.warning("CK+ sequence left out: %s", name)
        self.info.metadata.update(sequences_left_out=len(report["left_out"]), **report)
