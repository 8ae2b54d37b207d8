"""fer2013 as a TFDS dataset: 48x48 faces, dlib landmarks computed once while the TFRecords are written."""

from __future__ import annotations

import logging
import os

import numpy as np
import tensorflow_datasets as tfds

from emopy_tfds import faces, labels
from emopy_tfds.fer2013 import fer2013_csv

log = logging.getLogger(__name__)

# Rows per Beam element: large enough that per-element overhead vanishes next to ~1.5 ms of dlib per row,
# small enough that every worker gets many elements.
ROWS_PER_BATCH = 256


class Builder(tfds.core.GeneratorBasedBuilder):
    """fer2013 (ICML 2013 challenge), optionally with Microsoft's FER+ relabelling."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Images, 68 dlib landmarks, labels and source row index; FER+ config."}
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name="original", description="The 7 labels of the original fer2013 CSV."),
        tfds.core.BuilderConfig(
            name="ferplus",
            description="FER+ (fer2013new.csv): majority label over 8 emotions and the 10 vote counts.",
        ),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
    fer2013 cannot be downloaded automatically: accept the rules of Kaggle's "Challenges in Representation
    Learning: Facial Expression Recognition Challenge" and download the data, then put ONE of these files
    in the manual directory (`--manual_dir` / `emopy build fer2013 --manual-dir`):
      - {fer2013_csv.CSV_NAME}        (columns emotion, pixels, Usage)
      - {fer2013_csv.TARBALL_NAME}     (Kaggle's original archive, holding fer2013/fer2013.csv)
      - {fer2013_csv.ICML_NAME}    (Kaggle's newer file, header "emotion, Usage, pixels")
    For the `ferplus` config, also put Microsoft's {fer2013_csv.FERPLUS_NAME} there
    (https://github.com/microsoft/FERPlus).
    """

    def __init__(self, *, skip_bad_rows: bool = False, landmark_model: str | os.PathLike | None = None, **kwargs):
        """`skip_bad_rows` leaves malformed rows out (counted in metadata) instead of stopping the build."""
        self._skip_bad_rows = skip_bad_rows
        self._landmark_model = landmark_model
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        features = {
            "image": tfds.features.Image(shape=(48, 48, 1)),
            "landmarks": tfds.features.Tensor(shape=(68, 2), dtype=np.float32),
            "label": tfds.features.ClassLabel(names=labels.FER2013),
            "index": tfds.features.Scalar(dtype=np.int64),
        }
        if self.builder_config.name == "ferplus":
            features.update(
                label=tfds.features.ClassLabel(names=labels.FERPLUS),
                fer2013_label=tfds.features.ClassLabel(names=labels.FER2013),
                ferplus_votes=tfds.features.Tensor(shape=(10,), dtype=np.int32),
            )
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(features),
            supervised_keys=("image", "label"),
            homepage="https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-recognition-challenge",
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager, pipeline):
        source = fer2013_csv.find_source(dl_manager.manual_dir)
        csv_path = source
        if source.name == fer2013_csv.TARBALL_NAME:
            csv_path = fer2013_csv.csv_in_extracted_tarball(dl_manager.extract(source))
        ferplus = None
        if self.builder_config.name == "ferplus":
            ferplus = fer2013_csv.read_ferplus_votes(dl_manager.manual_dir / fer2013_csv.FERPLUS_NAME)
            log.info("FER+ leaves out %d rows: %s", sum(ferplus.left_out.values()), ferplus.left_out)
        scan = fer2013_csv.scan_rows(csv_path, skip_bad_rows=self._skip_bad_rows, ferplus=ferplus)
        self.info.metadata.update(
            face_spec=faces.FER2013_FRAMING.to_json(),
            source_file=source.name,
            bad_rows_skipped=len(scan.bad_rows),
            bad_rows=scan.bad_rows[:100],
            ferplus_rows_left_out=ferplus.left_out if ferplus else {},
        )
        for split in [split for split, rows in scan.rows.items() if not len(rows)]:
            log.warning("%s has no rows for the %r split, so the dataset has none", source.name, split)
        batches = {split: fer2013_csv.batches(rows, ROWS_PER_BATCH) for split, rows in scan.rows.items() if len(rows)}
        # Imported here so that `import emopy_tfds` does not pay for Beam.
        from emopy_tfds.fer2013 import fer2013_beam

        examples = fer2013_beam.examples_by_split(pipeline, str(csv_path), batches,
                                                  ferplus=self.builder_config.name == "ferplus",
                                                  landmark_model=self._landmark_model)
        return {split: self._generate_examples(examples, split) for split in batches}

    def _generate_examples(self, examples_by_split, split: str):
        """A split's (row index, example) pairs: its share of the one Beam stage that makes every split."""
        return examples_by_split[split]
