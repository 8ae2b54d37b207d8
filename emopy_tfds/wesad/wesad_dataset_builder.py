"""WESAD as a TFDS dataset: 60 s windows of chest and wrist signals, with their state and named features."""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from emopy_tfds import build_report, labels
from emopy_tfds.wesad import wesad_files, wesad_windows

log = logging.getLogger(__name__)


@dataclasses.dataclass
class WesadConfig(tfds.core.BuilderConfig):
    """sensors: "chest", "wrist" or "both" (defaults to the name). window_seconds, shift_seconds: how recordings
    are cut (Schmidt et al. 2018 used 60 s windows every 0.25 s; 15 s keeps a build small). signal_rate: the rate
    in Hz every channel of `signals` is resampled to (features are computed at each channel's own rate).

    Other variants are configs too, e.g. `WesadConfig(name="chest_dense", sensors="chest", shift_seconds=1)`.
    """

    sensors: str = ""
    window_seconds: float = 60.0
    shift_seconds: float = 15.0
    signal_rate: int = 32


class Builder(tfds.core.GeneratorBasedBuilder):
    """WESAD (Schmidt et al. 2018): 15 subjects' chest (RespiBAN) and wrist (Empatica E4) signals through baseline,
    stress, amusement and meditation."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "chest, wrist and both configs; 60 s windows with neurokit2 features; subject folds."}
    BUILDER_CONFIGS = [
        WesadConfig(name="chest", description="The chest RespiBAN's ECG, EDA, EMG, respiration, temperature and "
                                              "acceleration (700 Hz)."),
        WesadConfig(name="wrist", description="The wrist Empatica E4's BVP (64 Hz), EDA and temperature (4 Hz) and "
                                              "acceleration (32 Hz)."),
        WesadConfig(name="both", description="Chest and wrist together."),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    WESAD is distributed by the University of Siegen under its own licence
    (https://ubi29.informatik.uni-siegen.de/usi/data_wesad.html). Put in the manual directory EITHER WESAD.zip
    OR what it holds: the subject folders S2 ... S17, each with its SX.pkl (SX/SX.pkl), directly or under WESAD/.
    """

    @property
    def sensors(self) -> tuple[str, ...]:
        return wesad_files.SENSORS[self.builder_config.sensors or self.builder_config.name]

    @property
    def window_spec(self) -> wesad_windows.WindowSpec:
        config = self.builder_config
        return wesad_windows.WindowSpec(config.window_seconds, config.shift_seconds, config.signal_rate)

    def _info(self) -> tfds.core.DatasetInfo:
        channels = wesad_windows.channel_names(self.sensors)
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "subject": tfds.features.Text(),
                "fold": tfds.features.Scalar(dtype=np.int32),
                "label": tfds.features.ClassLabel(names=labels.WESAD),
                "start_seconds": tfds.features.Scalar(dtype=np.float32),
                "label_share": tfds.features.Scalar(dtype=np.float32),
                "signals": tfds.features.Tensor(shape=(self.window_spec.window_samples, len(channels)),
                                                dtype=np.float32),
                "features": tfds.features.FeaturesDict({
                    name: tfds.features.Scalar(dtype=np.float32)
                    for name in wesad_windows.feature_names(self.sensors)}),
            }),
            homepage="https://ubi29.informatik.uni-siegen.de/usi/data_wesad.html",
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager, pipeline):
        manual_dir = epath.Path(dl_manager.manual_dir)
        archive = manual_dir / "WESAD.zip"
        paths = wesad_files.find_subject_files(epath.Path(dl_manager.extract(archive)) if archive.exists()
                                               else manual_dir)
        # Every pickle is checked here, before any worker starts: a bad one is one clear error naming the file and
        # channel, and nothing is written.
        for path in paths:
            recording = wesad_files.read_recording(path, self.sensors)
            log.info("WESAD %s: %.1f min", recording.subject, recording.seconds / 60)
        subjects = [path.parent.name for path in paths]
        spec = self.window_spec
        self.info.metadata.update(
            subjects=subjects,
            channels=list(wesad_windows.channel_names(self.sensors)),
            feature_names=list(wesad_windows.feature_names(self.sensors)),
            signal_rate=spec.signal_rate,
            window_seconds=spec.window_seconds,
            shift_seconds=spec.shift_seconds,
        )
        from emopy_tfds.wesad import wesad_beam  # here, so that `import emopy_tfds` does not pay for Beam

        # A subject's fold is its place among the subjects: leave-one-subject-out has a fold per subject.
        items = [(os.fspath(path), fold) for fold, path in enumerate(paths)]
        examples = wesad_beam.examples(pipeline, items, self.sensors, spec, data_dir=os.fspath(self.data_dir))
        return {"train": self._generate_examples(examples)}

    def _generate_examples(self, examples):
        """(key, example) pairs of every kept window, made by the Beam stage in wesad_beam."""
        return examples

    def _download_and_prepare(self, dl_manager, download_config):
        super()._download_and_prepare(dl_manager=dl_manager, download_config=download_config)
        # The workers' report (windows kept and left out, by subject) belongs in the metadata, not with the data.
        report = build_report.take(self.data_dir)
        for subject in report["recordings_too_short"]:
            log.warning("WESAD %s: recording shorter than one %g s window: no examples", subject,
                        self.builder_config.window_seconds)
        self.info.metadata.update(**report)
