"""`emopy predict --beam`: batch prediction as a Beam pipeline, photos and videos in, Parquet shards out.

    emopy predict --beam "runner=DirectRunner" "photos/*.jpg" --output DIR      # local, one worker per core
    emopy predict --beam "runner=DataflowRunner,project=P,..." "gs://b/photos/**" --output gs://b/out

Each worker loads its Recognizer once (DoFn.setup) and predicts a file at a time, exactly as `emopy predict` does
(the same reader, Recognizer and table), so the rows are the same. What comes out, in DIR:

    predictions-SSSSS-of-NNNNN.parquet   the rows, in `emopy predict --output FILE.parquet`'s columns and types
    no_face-SSSSS-of-NNNNN.jsonl         {"file": ...}: files read, but no face found (no rows, as emopy predict)
    errors-SSSSS-of-NNNNN.jsonl          {"file": ..., "reason": ...}: files that could not be read

Every file matched lands in exactly one of the three, so nothing is dropped silently; the summary printed at
the end counts them against the files matched. Beam's RunInference is not used: its model handlers batch model
inputs, while here one file gives any number of faces (or frames), found by dlib before the model sees them.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence, TextIO

import apache_beam as beam
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam import pvalue
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from emopy_tfds import faces
from emopy_tfds import quiet
from emopy.serving import layout, shipped
from emopy.serving.predict import is_media_name
from emopy.serving.recognizer import Recognizer
from emopy.serving.tables import LEADING_COLUMNS, TRAILING_COLUMNS
from emopy.serving.video import is_video

PREDICTIONS, NO_FACE, ERRORS = "predictions", "no_face", "errors"
SUFFIXES = {PREDICTIONS: ".parquet", NO_FACE: ".jsonl", ERRORS: ".jsonl"}
# Errors printed on stderr at the end; the rest are only in the errors output.
ERRORS_SHOWN = 10


def parquet_schema(classes: Sequence[str]) -> pa.Schema:
    """The Arrow schema of `emopy predict --output FILE.parquet` (what pandas writes there: box a list of ints,
    landmarks a list of [x, y] lists, strings as large_string); tests/test_beam_predict.py holds them equal."""
    text = pa.large_string()
    types = {"file": text, "frame": pa.int64(), "time": pa.float64(), "face_id": pa.int64(),
             "box": pa.list_(pa.int64()), "landmarks": pa.list_(pa.list_(pa.float64())),
             "top_emotion": text, "valence": pa.float64(), "arousal": pa.float64(),
             "positive_valence": pa.float64(), "negative_valence": pa.float64(), "coarse_label": text}
    # The columns and their order are serving.tables's; this says only how Parquet stores each.
    return pa.schema([(name, types[name]) for name in LEADING_COLUMNS] + [(name, pa.float64()) for name in classes]
                     + [(name, types[name]) for name in TRAILING_COLUMNS])


def parquet_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """A prediction table's rows as Parquet records, as tables.write_table writes them; NaN as null, as pandas
    writes a float column's NaN."""
    rows = []
    for row in table.to_dict("records"):
        record = {name: _plain(value) for name, value in row.items()}
        record["box"] = [int(v) for v in row["box"]]
        record["landmarks"] = np.asarray(row["landmarks"], dtype=np.float64).tolist()
        rows.append(record)
    return rows


def _plain(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return int(value) if isinstance(value, np.integer) else value


def _reason(error: BaseException, path: str) -> str:
    # faces.ImageError and VideoError start with the file's name: the errors output has a column for it.
    text = " ".join(str(error).split())
    for prefix in (f"{path}: ", f"{Path(path)}: "):
        if text.startswith(prefix):
            return text[len(prefix):]
    expected = isinstance(error, (faces.ImageError, OSError))
    return text if expected else f"{type(error).__name__}: {text}"


class PredictFiles(beam.DoFn):
    """A file's path in; its rows out, or a tagged no-face or error record."""

    def __init__(self, model: str | None, every: int = 1, smoothing: float = 0.0, **options: Any):
        super().__init__()
        self.model, self.every, self.smoothing, self.options = model, every, smoothing, options
        self.recognizer: Recognizer | None = None

    def setup(self) -> None:
        # Once per worker: TensorFlow Lite, the model and dlib's detector load here, not per file.
        self.recognizer = Recognizer.from_export(shipped.resolve_model(self.model), **self.options)

    def teardown(self) -> None:
        if self.recognizer is not None:
            self.recognizer.close()

    def predict(self, path: str) -> pd.DataFrame:
        """A file's rows, as `emopy predict` reads it: bytes through the photo reader, videos frame by frame."""
        assert self.recognizer is not None, "setup() loads the Recognizer"
        if is_video(path):
            if "://" not in path:
                return self.recognizer.predict_video(path, every=self.every, smoothing=self.smoothing)
            # OpenCV reads videos from local files only: a copy, named like the original for its container format.
            with tempfile.TemporaryDirectory() as folder:
                local = os.path.join(folder, "video" + Path(path).suffix.lower())
                with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as source, \
                        open(local, "wb") as copy:
                    while chunk := source.read(1 << 24):
                        copy.write(chunk)
                table = self.recognizer.predict_video(local, every=self.every, smoothing=self.smoothing)
            table["file"] = path
            return table
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as source:
            data = source.read()
        rgb = faces.decode_image(data, name=path, max_pixels=self.recognizer.max_pixels)
        return self.recognizer.predict_frame(rgb, file=path)

    def process(self, path: str) -> Iterator[Any]:
        try:
            table = self.predict(path)
        except faces.LandmarkModelNotFoundError:
            raise  # no file would fare better: the job stops, as emopy predict does
        except Exception as error:  # one bad file must not stop a cluster's job: it is recorded instead
            yield pvalue.TaggedOutput(ERRORS, {"file": path, "reason": _reason(error, path)})
            return
        if not len(table):
            yield pvalue.TaggedOutput(NO_FACE, {"file": path})
            return
        yield from parquet_rows(table)


# --- Inputs and outputs -------------------------------------------------------------------------------


def patterns_of(inputs: Sequence[str]) -> list[tuple[str, bool]]:
    """Each input as a Beam file pattern, and whether its matches are filtered to images and videos: a local
    directory becomes DIR/*, and a folder URL ending in / its files; a file named on its own is always tried."""
    found = []
    for item in inputs:
        path = Path(item).expanduser()
        if "://" not in item and path.is_dir():
            found.append((os.path.join(str(path), "*"), True))
        elif "://" in item and item.endswith("/"):
            found.append((item + "*", True))
        else:
            found.append((item if "://" in item else str(path), glob.has_magic(item)))
    return found


def match_inputs(patterns: Sequence[tuple[str, bool]]) -> list[str]:
    """The files the patterns match (images and videos only where filtered), as the pipeline will match them;
    ValueError naming a pattern that matches no file."""
    files = []
    for pattern, filtered in patterns:
        try:
            matched = [meta.path for meta in FileSystems.match([pattern])[0].metadata_list]
        except Exception as error:  # BeamIOError: a bucket that does not exist, no credentials, a bad scheme
            raise ValueError(f"{pattern}: cannot list ({' '.join(str(error).split())})") from None
        matched = sorted(path for path in matched if is_media_name(path) or not filtered)
        if not matched:
            raise ValueError(f"{pattern}: no {'images or videos match' if filtered else 'such file'}")
        files += matched
    return files


def existing_outputs(output: str) -> list[str]:
    """The shards of an earlier run in `output` (this command's three prefixes only)."""
    patterns = [FileSystems.join(output, f"{name}-*{suffix}") for name, suffix in SUFFIXES.items()]
    return sorted(meta.path for result in FileSystems.match(patterns) for meta in result.metadata_list)


def build(pipeline: beam.Pipeline, patterns: Sequence[tuple[str, bool]], output: str, classes: Sequence[str],
          step: PredictFiles) -> None:
    """The pipeline: match, spread the files over the workers, predict, write the three outputs."""
    literal = {pattern for pattern, filtered in patterns if not filtered}
    files = (pipeline
             | "Patterns" >> beam.Create([pattern for pattern, _ in patterns])
             | "Match" >> fileio.MatchAll()
             | "Paths" >> beam.Map(lambda meta: meta.path)
             | "Media" >> beam.Filter(lambda path: path in literal or is_media_name(path))
             # Matching gives all files in one bundle: shuffled, they spread over the workers.
             | "Spread" >> beam.Reshuffle())
    results = files | "Predict" >> beam.ParDo(step).with_outputs(ERRORS, NO_FACE, main=PREDICTIONS)
    prefix = {name: FileSystems.join(output, name) for name in SUFFIXES}
    _ = results[PREDICTIONS] | "WriteRows" >> beam.io.WriteToParquet(
        prefix[PREDICTIONS], parquet_schema(classes), codec="snappy", use_compliant_nested_type=True,
        file_name_suffix=SUFFIXES[PREDICTIONS])
    for name in (NO_FACE, ERRORS):
        _ = (results[name] | f"{name}Json" >> beam.Map(json.dumps)
             | f"Write{name}" >> beam.io.WriteToText(prefix[name], file_name_suffix=SUFFIXES[name]))


def read_outputs(output: str, columns: Sequence[str] | None = None) -> tuple[pd.DataFrame, list[dict], list[dict]]:
    """What a run wrote in `output`: all rows (one DataFrame, as emopy predict's Parquet file reads; only `columns`
    if given), the no-face records and the error records."""
    def shards(name: str) -> list[str]:
        result = FileSystems.match([FileSystems.join(output, f"{name}-*{SUFFIXES[name]}")])[0]
        return sorted(meta.path for meta in result.metadata_list)

    tables = []
    for path in shards(PREDICTIONS):
        with FileSystems.open(path) as source:
            tables.append(pq.read_table(source, columns=None if columns is None else list(columns)))
    rows = pa.concat_tables(tables).to_pandas() if tables else pd.DataFrame()
    records = {}
    for name in (NO_FACE, ERRORS):
        records[name] = []
        for path in shards(name):
            with FileSystems.open(path) as source:
                records[name] += [json.loads(line) for line in source.read().decode().splitlines() if line]
    return rows, records[NO_FACE], records[ERRORS]


# --- The command ---------------------------------------------------------------------------------------


def run(inputs: Sequence[str], output: str, flags: Sequence[str], *, model: str | None = None, every: int = 1,
        smoothing: float = 0.0, upsample: int = 0, detector: str | None = None, landmark_model: str | None = None,
        cropped: bool = False, overwrite: bool = False, verbose: bool = False, stdout: TextIO | None = None,
        stderr: TextIO | None = None) -> int:
    """Runs `emopy predict --beam`; returns the exit status as `emopy predict` does: 0, 1 if some file could not
    be read (each in the errors output, the first ERRORS_SHOWN on stderr), 2 if nothing was done.

    flags: Beam pipeline flags (pipeline.build.beam_flags forms them from `--beam`'s "runner=...,..." string).
    Files matched by a glob or a directory are its images and videos (by extension); a file named on its own
    is always tried.
    """
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr

    def fail(message: str) -> int:
        print(f"emopy: error: {message}", file=stderr)
        return 2

    if not inputs:
        return fail("--beam needs INPUT files, directories or globs (local paths or gs://...)")
    if every < 1:
        return fail(f"--every must be at least 1, got {every}")
    if not 0.0 <= smoothing < 1.0:
        return fail(f"--smoothing must be in [0, 1), got {smoothing}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the local workers inherit it
    # The local runner logs every worker's warnings again; the workers' own errors still show.
    logging.getLogger("apache_beam").setLevel(logging.INFO if verbose else logging.ERROR)
    with contextlib.nullcontext() if verbose else quiet.start_up_lines_filtered():
        output = output if "://" in output else str(Path(output).expanduser())
        local = PipelineOptions(list(flags)).view_as(StandardOptions).runner in (None, "DirectRunner", "direct")
        try:
            if "://" not in output and Path(output).exists() and not Path(output).is_dir():
                raise ValueError(f"{output}: --output must be a folder for --beam, and this is a file")
            patterns = patterns_of(inputs)
            files = match_inputs(patterns)
            earlier = existing_outputs(output)
            if earlier and not overwrite:
                raise ValueError(f"{output} holds an earlier run's outputs ({earlier[0]}, ...): give another "
                                 "--output, or --overwrite to replace them")
            # A shipped model goes by name (each worker's installed package has it), an export by absolute path.
            base = shipped.resolve_model(model)
            worker_model = model if model is None or model in shipped.SHIPPED else str(base.resolve())
            classes = layout.read_assets(layout.resolve_export(base)).class_names
            if local:  # a wrong landmark model is one clear error before any worker starts
                faces.landmark_model_path(landmark_model)
        except (ValueError, OSError, faces.LandmarkModelNotFoundError) as error:
            return fail(" ".join(str(error).split()))
        if earlier:
            FileSystems.delete(earlier)  # --overwrite: only this command's shards, so no old shard mixes in
        step = PredictFiles(worker_model, every=every, smoothing=smoothing, upsample=upsample, detector=detector,
                            landmark_model=landmark_model, cropped=cropped)
        print(f"emopy predict --beam: {len(files)} file(s) to {output}", file=stderr)
        with beam.Pipeline(options=PipelineOptions(list(flags))) as pipeline:
            build(pipeline, patterns, output, classes, step)
    return report(output, len(files), stdout, stderr)


def report(output: str, matched: int, stdout: TextIO, stderr: TextIO) -> int:
    """Prints what the run wrote, counted against the files matched; the exit status."""
    rows, no_face, errors = read_outputs(output, columns=["file"])  # a big job's rows stay where they are
    with_faces = rows["file"].nunique() if len(rows) else 0
    accounted = with_faces + len(no_face) + len(errors)
    print(f"{matched} file(s): {with_faces} with faces ({len(rows)} rows) in {output}/{PREDICTIONS}-*.parquet, "
          f"{len(no_face)} without a face in {NO_FACE}-*.jsonl, {len(errors)} unreadable in {ERRORS}-*.jsonl",
          file=stdout)
    for record in errors[:ERRORS_SHOWN]:
        print(f"emopy: error: {record['file']}: {record['reason']}", file=stderr)
    if len(errors) > ERRORS_SHOWN:
        print(f"emopy: error: ... and {len(errors) - ERRORS_SHOWN} more in {output}/{ERRORS}-*.jsonl", file=stderr)
    if accounted != matched:
        print(f"emopy: error: {matched} file(s) matched but the outputs account for {accounted}: the runner lost "
              "outputs (Beam 2.77's own DaskRunner does: see docs/distributed.md), files were added or removed while "
              "the job ran, or two patterns matched the same file", file=stderr)
        return 1
    return 1 if errors else 0
