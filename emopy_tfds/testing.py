"""Helpers for the builders' TFDS tests."""

from __future__ import annotations

import functools
from unittest import mock

from apache_beam.options.pipeline_options import PipelineOptions
from tensorflow_datasets.core import download

# DatasetBuilderTestCase runs Beam with default options, with which Beam 2.77's DirectRunner first tries to
# download a Prism runner binary. These options run the in-process runner and touch no network.
IN_PROCESS_BEAM = PipelineOptions(["--runner=DirectRunner", "--allow_unsafe_triggers"])


class InProcessBeam:
    """Mix into a tfds.testing.DatasetBuilderTestCase (before it) to build with IN_PROCESS_BEAM."""

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
