"""A builder's report of what its Beam workers counted (detections, windows, what was left out and why): written
beside the data by the pipeline, then moved into the dataset's metadata by the builder."""

from __future__ import annotations

import json
import os
from typing import Callable, Iterable

from etils import epath

REPORT_FILE = "build_report.json"


def write(reports, data_dir: str | os.PathLike, summarise: Callable[[Iterable[dict]], dict]) -> None:
    """Adds the steps that write `summarise` of every dict of the PCollection `reports` beside the data, as JSON.

    The report goes through a file, not the pipeline's result: TFDS runs the pipeline and keeps its outputs."""
    import apache_beam as beam  # here, so that `import emopy_tfds` does not pay for Beam

    target = os.fspath(epath.Path(data_dir) / REPORT_FILE)
    _ = (
        reports
        | "collect_reports" >> beam.combiners.ToList()
        | "write_report" >> beam.Map(lambda collected: epath.Path(target).write_text(json.dumps(summarise(collected))))
    )


def take(data_dir: str | os.PathLike) -> dict:
    """The report the pipeline wrote beside the data, removed from there: it belongs in the metadata."""
    path = epath.Path(data_dir) / REPORT_FILE
    report = json.loads(path.read_text())
    path.unlink()
    return report
