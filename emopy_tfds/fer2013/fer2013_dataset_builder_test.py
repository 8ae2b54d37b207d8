"""TFDS's own builder checks on dummy_data/, for both configs."""

from __future__ import annotations

import functools
from unittest import mock

import tensorflow_datasets as tfds
from apache_beam.options.pipeline_options import PipelineOptions
from tensorflow_datasets.core import download

from emopy_tfds.fer2013 import fer2013_dataset_builder

# DatasetBuilderTestCase runs Beam with default options, with which Beam 2.77's DirectRunner first tries to
# download a Prism runner binary. These options run the in-process runner and touch no network.
IN_PROCESS_BEAM = PipelineOptions(["--runner=DirectRunner", "--allow_unsafe_triggers"])


class _InProcessBeam:
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        config = functools.partial(download.DownloadConfig, beam_options=IN_PROCESS_BEAM)
        cls._beam_patch = mock.patch.object(download, "DownloadConfig", config)
        cls._beam_patch.start()

    @classmethod
    def tearDownClass(cls):
        cls._beam_patch.stop()
        super().tearDownClass()


class Fer2013OriginalTest(_InProcessBeam, tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = fer2013_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["original"]
    SPLITS = {"train": 4, "validation": 2, "test": 2}


class Fer2013FerplusTest(_InProcessBeam, tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = fer2013_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["ferplus"]
    # dummy_data's FER+ file leaves out one training and one test row.
    SPLITS = {"train": 3, "validation": 2, "test": 1}


if __name__ == "__main__":
    tfds.testing.test_main()
