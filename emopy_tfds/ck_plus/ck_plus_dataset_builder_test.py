"""TFDS's own builder checks on dummy_data/ (a real face in moving 640x490 frames), for each config."""

from __future__ import annotations

import tensorflow_datasets as tfds

from emopy_tfds.ck_plus import ck_plus_dataset_builder
from emopy_tfds.testing import InProcessBeam


class CkPlusEmotionTest(InProcessBeam, tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = ck_plus_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["emotion"]
    # Two labelled sequences (5 and 4 frames): the first frame and the last 3 of each.
    SPLITS = {"train": 8}


class CkPlusSequencesTest(InProcessBeam, tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = ck_plus_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["sequences"]
    SPLITS = {"train": 2}


class CkPlusFacsTest(InProcessBeam, tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = ck_plus_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["facs"]
    SPLITS = {"train": 3}  # every sequence, labelled or not


if __name__ == "__main__":
    tfds.testing.test_main()
