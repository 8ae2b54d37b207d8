"""The Beam work of the WESAD builder: each subject's recording becomes its labelled windows, with features.

Kept out of the builder module so Beam workers can import it by its package name even when `tfds build`
loads the builder from a path.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Iterator, Sequence

import apache_beam as beam
import numpy as np

from emopy_tfds import build_report
from emopy_tfds.wesad import wesad_files, wesad_windows
from emopy_tfds.wesad.wesad_windows import WindowSpec


class SubjectToExamples(beam.DoFn):
    """Reads a subject's pickle, cuts it into windows and computes every window's features.

    Elements are (subject pickle path, fold). The `report` output says, per subject, how many windows were kept
    and left out (no state in the majority of their samples), and the seconds of signal read.
    """

    def __init__(self, sensors: Sequence[str], spec: WindowSpec):
        self._sensors = tuple(sensors)
        self._spec = spec
        self._windows = beam.metrics.Metrics.counter("wesad", "windows")

    def process(self, element) -> Iterator:
        path, fold = element
        started = time.perf_counter()
        recording = wesad_files.read_recording(path, self._sensors)
        spec = self._spec
        kept, unlabelled = wesad_files.windows(
            recording.labels, round(spec.window_seconds * wesad_files.CHEST_RATE),
            round(spec.shift_seconds * wesad_files.CHEST_RATE))
        names = wesad_windows.channel_names(self._sensors)
        resampled = wesad_windows.resampled_channels(recording.channels, names, spec.signal_rate)
        for window in kept:
            start_seconds = window.start / wesad_files.CHEST_RATE
            features = wesad_windows.window_features(recording.channels, self._sensors, start_seconds,
                                                     spec.window_seconds)
            yield f"{recording.subject}_{window.start:09d}", {
                "subject": recording.subject,
                "fold": fold,
                "label": window.state,
                "start_seconds": np.float32(start_seconds),
                "label_share": np.float32(window.share),
                "signals": wesad_windows.window_signals(resampled, names, start_seconds, spec),
                "features": {name: np.float32(value) for name, value in features.items()},
            }
        self._windows.inc(len(kept))
        seconds = time.perf_counter() - started
        yield beam.pvalue.TaggedOutput("report", {
            "subject": recording.subject, "windows": len(kept), "windows_unlabelled": unlabelled,
            "recorded_seconds": recording.seconds, "seconds": seconds})
        print(f"wesad: {recording.subject}: {len(kept)} windows of {recording.seconds / 60:.1f} min in "
              f"{seconds:.1f} s (worker {os.getpid()})", file=sys.stderr, flush=True)


def summarise(reports) -> dict:
    """One build report from the per-subject ones: windows kept and left out, by subject, and recordings too
    short for one window."""
    reports = sorted(reports, key=lambda report: wesad_files.subject_number(report["subject"]))
    return {
        "windows_per_subject": {r["subject"]: r["windows"] for r in reports},
        "windows_unlabelled": sum(r["windows_unlabelled"] for r in reports),
        "recordings_too_short": [r["subject"] for r in reports if r["windows"] + r["windows_unlabelled"] == 0],
        "recorded_hours": sum(r["recorded_seconds"] for r in reports) / 3600,
    }


def examples(pipeline, items: list, sensors: Sequence[str], spec: WindowSpec, *, data_dir: str):
    """The PCollection of (key, example) for every subject's windows. The build report (`summarise`) is written to
    beside the data in `data_dir` (emopy_tfds.build_report), for the builder to put in the dataset's metadata."""
    outputs = (
        pipeline
        | "wesad_subjects" >> beam.Create(items)
        # One subject per worker at a time: without it the runner may keep every subject in one bundle.
        | "spread_subjects" >> beam.Reshuffle()
        | "wesad_examples" >> beam.ParDo(SubjectToExamples(sensors, spec)).with_outputs("report", main="examples")
    )
    build_report.write(outputs.report, data_dir, summarise)
    return outputs.examples
