"""TFDS's own builder checks on dummy_data/, for both configs."""

from __future__ import annotations

import tensorflow_datasets as tfds

from emopy_tfds.fer2013 import fer2013_dataset_builder
from emopy_tfds.testing import InProcessBeam


class Fer2013OriginalTest(InProcessBeam, tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = fer2013_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["original"]
    SPLITS = {"train": 4, "validation": 2, "test": 2}


class Fer2013FerplusTest(InProcessBeam, tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = fer2013_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["ferplus"]
    # dummy_data's FER+ file leaves out one training and one test row.
    SPLITS = {"train": 3, "validation": 2, "test": 1}


if __name__ == "__main__":
    tfds.testing.test_main()
