"""TFDS's own builder checks on generated WESAD subject folders (dummy_data_generation), for each config."""

from __future__ import annotations

import tempfile
from pathlib import Path

import tensorflow_datasets as tfds

from emopy_tfds.testing import InProcessBeam
from emopy_tfds.wesad import dummy_data_generation, wesad_dataset_builder
from emopy_tfds.wesad.dummy_data_generation import SubjectSpec


class WesadGeneratedData:
    """Writes two subjects in WESAD's layout for the class's tests: S2 through all four states, 45 s each (9 windows
    of 60 s every 15 s), and S3, whose 40 s recording is too short for one window (no examples, counted)."""

    @classmethod
    def setUpClass(cls):
        cls._folder = tempfile.TemporaryDirectory(prefix="wesad-dummy-")
        root = Path(cls._folder.name)
        dummy_data_generation.write_subject(root, SubjectSpec("S2", phases=dummy_data_generation.states(45)))
        short = dummy_data_generation.Phase(1, 40, 65, 12, 1, 2.0, 33.0, 0.0, 0)
        dummy_data_generation.write_subject(root, SubjectSpec("S3", phases=(short,)))
        cls.EXAMPLE_DIR = root
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls._folder.cleanup()


class WesadChestTest(WesadGeneratedData, InProcessBeam, tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = wesad_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["chest"]
    SPLITS = {"train": 9}


class WesadWristTest(WesadGeneratedData, InProcessBeam, tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = wesad_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["wrist"]
    SPLITS = {"train": 9}


class WesadBothTest(WesadGeneratedData, InProcessBeam, tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = wesad_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["both"]
    SPLITS = {"train": 9}


if __name__ == "__main__":
    tfds.testing.test_main()
