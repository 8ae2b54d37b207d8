"""Prediction tables: one row per face per frame, their columns, and writing them as JSON, CSV or Parquet.

Columns, in this order:

    file, frame, time, face_id, box, landmarks, <one probability column per class, named by the class>,
    top_emotion, valence, arousal, positive_valence, negative_valence, coarse_label

`box` is (x, y, w, h) and `landmarks` a float32 (68, 2) array, both in pixels of the original image or frame.
`time` is in seconds (0 for photos). `valence` and `arousal` are the probability-weighted circumplex
coordinates of emopy_tfds.labels (bipolar, in [-1, 1]); `positive_valence` and `negative_valence` the
probability-weighted unipolar valences (each in [0, 1], valence = positive - negative; labels.expected_affect),
and `coarse_label` the top emotion's polarity (positive, negative or neutral). A coarse-scheme model's class is
its own coarse label and has none of the four affect values (NaN), and a model whose classes are no known emotion
label set (FACS action units) has neither (NaN, None).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from emopy_tfds import faces, labels

OUTPUT_SUFFIXES = (".json", ".csv", ".parquet")

LEADING_COLUMNS = ("file", "frame", "time", "face_id", "box", "landmarks")
TRAILING_COLUMNS = ("top_emotion", *labels.AFFECT_DIMENSIONS, "coarse_label")


def affect(probabilities: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """The trailing columns of rows of probabilities [B, K], by name in TRAILING_COLUMNS' order: top emotion
    (list), valence, arousal, positive and negative valence (float64 arrays [B]) and coarse label (list)."""
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1, len(classes))
    top = [classes[i] for i in np.argmax(probabilities, axis=1)] if len(probabilities) else []
    label_set = labels.label_set_of(classes)
    if label_set is None or labels.SCHEMES[label_set].coarse:
        # FACS action units (or classes of no known scheme) have no coarse label; a coarse scheme's class is its own.
        values = np.full((len(probabilities), len(labels.AFFECT_DIMENSIONS)), np.nan)
        coarse = [None] * len(top) if label_set is None else list(top)
    else:
        values = labels.expected_affect(probabilities, label_set).reshape(-1, len(labels.AFFECT_DIMENSIONS))
        polarity = labels.SCHEMES["pos_neg_neu"]
        coarse = [polarity.class_of(name) for name in top]
    columns = {name: values[:, k] for k, name in enumerate(labels.AFFECT_DIMENSIONS)}
    return {"top_emotion": top, **columns, "coarse_label": coarse}


def empty_table(classes: Sequence[str]) -> pd.DataFrame:
    """A table with the prediction columns and no rows."""
    return pd.DataFrame({name: pd.Series(dtype=object) for name in (*LEADING_COLUMNS, *classes, *TRAILING_COLUMNS)})


def probability_columns(table: pd.DataFrame) -> list[str]:
    """The class columns of a prediction table, in the model's class order."""
    return [name for name in table.columns if name not in LEADING_COLUMNS and name not in TRAILING_COLUMNS]


def face_table(found: Sequence[faces.Face], probabilities: np.ndarray, ids: Sequence[int], classes: Sequence[str],
               *, file: str, frame: int = 0, seconds: float = 0.0) -> pd.DataFrame:
    """One frame's rows: its faces, their ids and probabilities [B, K]."""
    if not found:
        return empty_table(classes)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    trailing = affect(probabilities, classes)
    count = len(found)
    columns: dict[str, Any] = {
        "file": _cells([file] * count),
        "frame": np.full(count, frame, dtype=np.int64),
        "time": np.full(count, seconds, dtype=np.float64),
        "face_id": np.asarray(ids, dtype=np.int64),
        "box": _cells([tuple(int(v) for v in face.box) for face in found]),
        "landmarks": _cells([np.asarray(face.landmarks, dtype=np.float32) for face in found]),
    }
    columns.update({name: probabilities[:, k] for k, name in enumerate(classes)})
    columns.update({name: _cells(value) if isinstance(value, list) else value for name, value in trailing.items()})
    # Every column is already an array of its final type, so pandas only wraps them: a table per video frame
    # costs a third of what building it from lists and Series does.
    return pd.DataFrame(columns, copy=False)


def _cells(values: Sequence[Any]) -> np.ndarray:
    # One object per cell, filled one by one: handed a list of arrays, NumPy would make a 3-D array of them.
    cells = np.empty(len(values), dtype=object)
    for index, value in enumerate(values):
        cells[index] = value
    return cells


def concat_tables(tables: Iterable[pd.DataFrame], classes: Sequence[str]) -> pd.DataFrame:
    """Tables one after another, renumbered 0..n-1; the empty table if there is no row."""
    rows = [table for table in tables if len(table)]
    return pd.concat(rows, ignore_index=True) if rows else empty_table(classes)


def _plain(value: Any) -> Any:
    # JSON has no NaN: a missing valence, arousal, positive or negative valence is null.
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def to_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-able rows: box [x, y, w, h], landmarks [[x, y] * 68], probabilities {label: p}, NaN as None."""
    classes = probability_columns(table)
    records = []
    for row in table.to_dict("records"):
        record = {name: _plain(row[name]) for name in LEADING_COLUMNS[:4]}
        record["box"] = [int(v) for v in row["box"]]
        record["landmarks"] = np.asarray(row["landmarks"], dtype=np.float64).tolist()
        record["probabilities"] = {name: float(row[name]) for name in classes}
        record.update({name: _plain(row[name]) for name in TRAILING_COLUMNS})
        records.append(record)
    return records


def check_output_path(path: str | os.PathLike) -> None:
    """Raises ValueError, before any work is done, if predictions could not be written to `path`."""
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ValueError(f"{path}: the output must end in {', '.join(OUTPUT_SUFFIXES)}")
    if suffix == ".parquet" and importlib.util.find_spec("pyarrow") is None:
        raise ValueError(f"{path}: writing Parquet needs pyarrow, which is not installed "
                         f"(`pip install pyarrow`), or write .json or .csv instead")


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Writes predictions as .json (a list of row objects), .csv (box and landmarks as JSON text) or .parquet."""
    check_output_path(path)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        path.write_text(json.dumps(to_records(table), indent=1) + "\n")
        return
    flat = table.copy()
    # CSV cells are text, Parquet cells nested lists: neither stores numpy arrays or tuples as they are.
    boxes = [[int(v) for v in box] for box in flat["box"]]
    points = [np.asarray(p, dtype=np.float64).tolist() for p in flat["landmarks"]]
    if suffix == ".csv":
        flat["box"] = [json.dumps(box) for box in boxes]
        flat["landmarks"] = [json.dumps(p) for p in points]
        flat.to_csv(path, index=False)
    else:
        flat["box"], flat["landmarks"] = pd.Series(boxes, dtype=object), pd.Series(points, dtype=object)
        flat.to_parquet(path, index=False)


def table_lines(table: pd.DataFrame, file_width: int = 0) -> list[str]:
    """One readable line per face: file, frame, face id, top emotion and its probability."""
    return [f"{row['file']:<{file_width}}  frame {int(row['frame']):>5}  face {int(row['face_id']):>2}  "
            f"{row['top_emotion']:<10} {float(row[row['top_emotion']]):.3f}"
            for _, row in table.iterrows()]
