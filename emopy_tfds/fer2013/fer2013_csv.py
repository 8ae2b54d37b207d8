"""fer2013's CSV in each form users have, and FER+ votes: finding, validating and parsing rows.

Small pure functions, used by the builder in the launcher (one scan that validates every row and notes
where its pixels lie in the file) and in the Beam workers (parsing the pixels of a batch of rows).
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from typing import NamedTuple, Sequence

import numpy as np
from etils import epath

from emopy_tfds import labels

CSV_NAME = "fer2013.csv"
TARBALL_NAME = "fer2013.tar.gz"  # Kaggle's original download, holding fer2013/fer2013.csv
ICML_NAME = "icml_face_data.csv"  # Kaggle's newer download; header "emotion, Usage, pixels"
SOURCE_NAMES = (CSV_NAME, TARBALL_NAME, ICML_NAME)
FERPLUS_NAME = "fer2013new.csv"

IMAGE_SIDE = 48
NUM_PIXELS = IMAGE_SIDE * IMAGE_SIDE
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "validation", "PrivateTest": "test"}
SPLITS = tuple(USAGE_TO_SPLIT.values())

FERPLUS_EMOTIONS = labels.FERPLUS
FERPLUS_VOTE_COLUMNS = FERPLUS_EMOTIONS + ("unknown", "NF")

log = logging.getLogger(__name__)


class BadRowError(ValueError):
    """A source row that cannot become an example; the message names the file and the row."""


# One valid row: its index among the CSV's data rows, its label, where its pixel text lies in the file,
# and its FER+ votes (zeros outside the ferplus config). Rows travel to Beam workers as arrays of these,
# a few dozen bytes each, and workers read the pixels themselves by byte range.
ROW_DTYPE = np.dtype(
    [("index", np.int64), ("label", np.int8), ("pixels_offset", np.int64), ("pixels_length", np.int32),
     ("ferplus_votes", np.int32, (10,))]
)


class FerplusRows(NamedTuple):
    """fer2013new.csv, row by row: each data row's votes (None for rows FER+ leaves out) and Usage, and how many
    rows FER+ leaves out, by reason."""

    votes: list[tuple[int, ...] | None]
    usages: list[str]
    left_out: dict[str, int]


@dataclasses.dataclass
class Scan:
    """What one pass over the source found: valid rows per split (ROW_DTYPE arrays), and bad rows."""

    rows: dict[str, np.ndarray]
    bad_rows: list[str]

    @property
    def num_rows(self) -> int:
        return sum(len(rows) for rows in self.rows.values())


def find_source(manual_dir: epath.PathLike) -> epath.Path:
    """The fer2013 file in the manual directory, in order of preference; a clear error if none is there."""
    folder = epath.Path(manual_dir)
    for name in SOURCE_NAMES:
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(
        f"no fer2013 data in {folder}: expected one of {', '.join(SOURCE_NAMES)} "
        f"(see the manual download instructions)"
    )


def csv_in_extracted_tarball(extracted: epath.PathLike) -> epath.Path:
    """fer2013.csv inside Kaggle's extracted tarball (fer2013/fer2013.csv, or at the top)."""
    folder = epath.Path(extracted)
    for candidate in (folder / "fer2013" / CSV_NAME, folder / CSV_NAME):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{TARBALL_NAME} holds no fer2013/{CSV_NAME} (extracted to {folder})")


def parse_pixels(text: bytes, *, where: str) -> np.ndarray:
    """48x48 space-separated values in 0..255 as a uint8 (48, 48, 1) image."""
    with warnings.catch_warnings():
        # numpy warns (or, in newer releases, raises) when text stops parsing before its end.
        warnings.simplefilter("error")
        try:
            values = np.fromstring(text, dtype=np.int64, sep=" ")
        except (ValueError, DeprecationWarning):
            raise BadRowError(f"{where}: pixels are not all whole numbers") from None
    if values.size != NUM_PIXELS:
        raise BadRowError(f"{where}: expected {NUM_PIXELS} pixel values (48x48), got {values.size}")
    if values.min() < 0 or values.max() > 255:
        raise BadRowError(f"{where}: pixel values outside 0..255 (min {values.min()}, max {values.max()})")
    return values.astype(np.uint8).reshape(IMAGE_SIDE, IMAGE_SIDE, 1)


def _header_columns(header: bytes, name: str) -> dict[str, int]:
    columns = [field.decode("ascii", "replace") for field in _fields(header)]
    positions = {column: i for i, column in enumerate(columns)}
    missing = [column for column in ("emotion", "pixels", "Usage") if column not in positions]
    if missing or len(columns) != 3:
        raise BadRowError(f"{name}, header: expected columns emotion, pixels and Usage, got {columns}")
    return positions


def scan_rows(
    path: epath.PathLike,
    *,
    skip_bad_rows: bool = False,
    ferplus: FerplusRows | None = None,
) -> Scan:
    """Validates every row of a fer2013 CSV and notes where each row's pixels lie.

    A bad row (wrong number of columns or pixels, pixels that are not numbers in 0..255, a label outside
    0..6, an unknown Usage) raises BadRowError naming it, or with `skip_bad_rows` is left out and listed in
    `Scan.bad_rows`. With `ferplus` (`read_ferplus_votes`), each row gets its votes and rows without are left
    out; the two files must align row by row, so different row counts, or a different Usage at a row, raise
    BadRowError naming both files (and the row), skip_bad_rows or not.
    """
    path = epath.Path(path)
    name = path.name
    data = path.read_bytes()
    rows: dict[str, list[tuple]] = {split: [] for split in SPLITS}
    bad_rows: list[str] = []
    lines = data.split(b"\n")
    columns = _header_columns(lines[0], name)
    offset = len(lines[0]) + 1
    index = 0
    misaligned = None  # the first row whose Usage fer2013new.csv contradicts
    for line_number, line in enumerate(lines[1:], start=2):
        line_offset, offset = offset, offset + len(line) + 1
        if not line.strip():
            continue  # blank lines, such as the one after the last line break
        where = f"{name}, row {index} (line {line_number})"
        try:
            split, row = _parse_row(line, line_offset, columns, index, where)
        except BadRowError as error:
            if not skip_bad_rows:
                raise
            bad_rows.append(str(error))
        else:
            rows[split].append(row)
            if ferplus is not None and misaligned is None and index < len(ferplus.usages):
                misaligned = _usage_mismatch(where, split, ferplus.usages[index])
        index += 1
    for message in bad_rows:
        log.warning("skipped bad row: %s", message)
    if ferplus is not None:
        if len(ferplus.votes) != index:
            raise BadRowError(f"{FERPLUS_NAME} has {len(ferplus.votes)} data rows but {name} has {index}: the two "
                              f"files must list the same faces in the same order")
        if misaligned:
            raise BadRowError(misaligned)
        votes = ferplus.votes
        rows = {
            split: [row[:4] + (votes[row[0]],) for row in split_rows if votes[row[0]] is not None]
            for split, split_rows in rows.items()
        }
    return Scan(rows={split: np.array(split_rows, dtype=ROW_DTYPE) for split, split_rows in rows.items()},
                bad_rows=bad_rows)


def _usage_mismatch(where: str, split: str, ferplus_usage: str) -> str | None:
    """The error for a fer2013 row whose FER+ row (the same data row of fer2013new.csv) has another Usage."""
    if USAGE_TO_SPLIT.get(ferplus_usage) == split:
        return None
    usage = next(usage for usage, usage_split in USAGE_TO_SPLIT.items() if usage_split == split)
    return (f"{where}: Usage {usage!r}, but {FERPLUS_NAME} has {ferplus_usage!r} at this row: the two files must "
            f"list the same faces in the same order")


def _fields(line: bytes) -> list[bytes]:
    return [field.strip().strip(b'"').strip() for field in line.rstrip(b"\r").split(b",")]


def _parse_row(
    line: bytes, line_offset: int, columns: dict[str, int], index: int, where: str
) -> tuple[str, tuple]:
    fields = _fields(line)
    if len(fields) != 3:
        raise BadRowError(f"{where}: expected 3 columns (emotion, pixels, Usage), got {len(fields)}")
    emotion, usage = fields[columns["emotion"]], fields[columns["Usage"]].decode("ascii", "replace")
    if not emotion.isdigit() or int(emotion) >= len(labels.FER2013):
        raise BadRowError(f"{where}: label {emotion.decode('ascii', 'replace')!r} is not one of 0..6")
    if usage not in USAGE_TO_SPLIT:
        raise BadRowError(f"{where}: unknown Usage {usage!r} (expected {', '.join(USAGE_TO_SPLIT)})")
    pixels = fields[columns["pixels"]]
    # Parsed here only to validate (workers parse again, to use the pixels): 1.6 s for the full CSV buys a
    # clean error before any Beam work, and bad-row counts the launcher can put in the metadata.
    parse_pixels(pixels, where=where)
    # Locate the pixel text in the line itself, so workers can read exactly those bytes.
    start = line.index(pixels)
    return USAGE_TO_SPLIT[usage], (index, int(emotion), line_offset + start, len(pixels), (0,) * 10)


def read_ferplus_votes(path: epath.PathLike) -> FerplusRows:
    """FER+ votes and Usage per fer2013 row from fer2013new.csv, and how many rows FER+ leaves out, by reason.

    A row is left out (None) when its image name is empty or when unknown or NF has the most votes.
    Otherwise it keeps its 10 vote counts; its label is `ferplus_label(votes)`.
    """
    path = epath.Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"the ferplus config needs Microsoft's {FERPLUS_NAME} in {path.parent} "
            f"(https://github.com/microsoft/FERPlus); build `--config original` without it"
        )
    lines = path.read_bytes().split(b"\n")
    header = [field.decode("ascii", "replace") for field in _fields(lines[0])]
    expected = ["Usage", "Image name", *FERPLUS_VOTE_COLUMNS]
    if header != expected:
        raise BadRowError(f"{path.name}, header: expected {', '.join(expected)}, got {', '.join(header)}")
    votes_per_row: list[tuple[int, ...] | None] = []
    usages: list[str] = []
    left_out = {"no image name": 0, "majority unknown": 0, "majority NF": 0}
    for line_number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        where = f"{path.name}, row {len(votes_per_row)} (line {line_number})"
        fields = _fields(line)
        if len(fields) != len(expected):
            raise BadRowError(f"{where}: expected {len(expected)} columns, got {len(fields)}")
        if not all(field.isdigit() for field in fields[2:]):
            raise BadRowError(f"{where}: vote counts must be whole numbers, got {b','.join(fields[2:]).decode()}")
        votes = tuple(int(field) for field in fields[2:])
        usages.append(fields[0].decode("ascii", "replace"))
        reason = ferplus_left_out_reason(fields[1].decode("utf-8", "replace"), votes)
        if reason:
            left_out[reason] += 1
            votes_per_row.append(None)
        else:
            votes_per_row.append(votes)
    return FerplusRows(votes_per_row, usages, left_out)


def ferplus_left_out_reason(image_name: str, votes: Sequence[int]) -> str | None:
    """Why FER+ leaves a row out, or None: no image name, or unknown / NF with the most votes.

    Ties go to the emotions: a row is left out only when unknown or NF has strictly more votes than
    every emotion.
    """
    if not image_name.strip():
        return "no image name"
    top_emotion = max(votes[: len(FERPLUS_EMOTIONS)])
    unknown, not_a_face = votes[len(FERPLUS_EMOTIONS)], votes[len(FERPLUS_EMOTIONS) + 1]
    if max(unknown, not_a_face) > top_emotion:
        return "majority unknown" if unknown >= not_a_face else "majority NF"
    return None


def ferplus_label(votes: Sequence[int]) -> int:
    """The FER+ class with the most votes among the 8 emotions; ties go to the first in FER+'s order."""
    return int(np.argmax(votes[: len(FERPLUS_EMOTIONS)]))


def batches(rows: np.ndarray, size: int) -> list[np.ndarray]:
    """Rows in consecutive groups of `size`: the unit of work of a Beam worker."""
    return [rows[start : start + size].copy() for start in range(0, len(rows), size)]


def read_batch_pixels(path: epath.PathLike, batch: np.ndarray, *, name: str) -> list[np.ndarray]:
    """The images of a batch of rows (a ROW_DTYPE array), read with one ranged read of the file."""
    offsets, lengths = batch["pixels_offset"], batch["pixels_length"]
    start, end = int(offsets.min()), int((offsets + lengths).max())
    with epath.Path(path).open("rb") as file:
        file.seek(start)
        chunk = file.read(end - start)
    return [
        parse_pixels(chunk[offset - start : offset - start + length], where=f"{name}, row {index}")
        for index, offset, length in zip(batch["index"].tolist(), offsets.tolist(), lengths.tolist())
    ]
