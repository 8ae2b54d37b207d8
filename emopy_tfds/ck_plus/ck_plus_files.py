"""CK+'s files in each layout users have: finding sequences, and parsing label, FACS and landmark files.

Small pure functions, used by the builder in the launcher (finding and indexing every sequence,
validating every label and FACS file) and in the Beam workers (landmark files).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable

import numpy as np
from etils import epath

from emopy_tfds import labels

ZIPS = {
    "images": "extended-cohn-kanade-images.zip",
    "emotion": "Emotion_labels.zip",
    "facs": "FACS_labels.zip",
    "landmarks": "Landmarks.zip",
}
FOLDERS = {"images": "cohn-kanade-images", "emotion": "Emotion", "facs": "FACS", "landmarks": "Landmarks"}
EMOPY_FOLDER = "images"  # the original Emopy's layout: frames and all label files together

_SUBJECT = re.compile(r"^S\d+$")
_SEQUENCE = re.compile(r"^\d+$")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class CkPlusFileError(ValueError):
    """A malformed CK+ file; the message names it."""


@dataclasses.dataclass(frozen=True)
class SequenceFiles:
    """One CK+ sequence: its frames in order and the label files that go with them (paths as strings)."""

    subject: str
    sequence: str
    frames: tuple[str, ...]
    landmark_files: tuple[str | None, ...]
    emotion_file: str | None = None
    facs_file: str | None = None

    @property
    def name(self) -> str:
        return f"{self.subject}/{self.sequence}"


def find_roots(manual_dir: epath.PathLike, extract: Callable[[epath.Path], epath.Path]) -> dict[str, epath.Path]:
    """Where frames, Emotion, FACS and Landmarks files are, for the official zips, their extracted folders,
    or the original Emopy layout. `extract` unpacks a zip (the TFDS download manager's)."""
    folder = epath.Path(manual_dir)
    if (folder / ZIPS["images"]).exists():
        roots = {}
        for kind, zip_name in ZIPS.items():
            if (folder / zip_name).exists():
                roots[kind] = _single_child(extract(folder / zip_name), FOLDERS[kind])
        return roots
    if (folder / FOLDERS["images"]).exists():
        return {kind: folder / name for kind, name in FOLDERS.items() if (folder / name).exists()}
    if (folder / EMOPY_FOLDER).exists():
        return {kind: folder / EMOPY_FOLDER for kind in FOLDERS}
    raise FileNotFoundError(
        f"no CK+ data in {folder}: expected the zips {', '.join(ZIPS.values())}, or the folders "
        f"{', '.join(FOLDERS.values())}, or the original Emopy layout {EMOPY_FOLDER}/Sxxx/yyy/"
    )


def _single_child(extracted: epath.Path, expected: str) -> epath.Path:
    """The zip's top folder (cohn-kanade-images/, Emotion/, ...), or the extraction itself."""
    return extracted / expected if (extracted / expected).exists() else extracted


def index_sequences(roots: dict[str, epath.Path]) -> list[SequenceFiles]:
    """Every sequence with frames, sorted by subject and sequence; stray files (.DS_Store, ...) are ignored."""
    sequences = []
    for subject_dir in sorted(_dirs(roots["images"], _SUBJECT), key=lambda p: p.name):
        for sequence_dir in sorted(_dirs(subject_dir, _SEQUENCE), key=lambda p: p.name):
            frames = sorted(p for p in sequence_dir.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
            if not frames:
                continue
            subject, sequence = subject_dir.name, sequence_dir.name

            def label_file(kind: str, suffix: str) -> str | None:
                folder = roots.get(kind)
                if folder is None or not (folder / subject / sequence).exists():
                    return None
                found = sorted((folder / subject / sequence).glob(f"*{suffix}"))
                return str(found[-1]) if found else None

            landmark_folder = roots.get("landmarks")
            landmark_files = tuple(
                str(landmark_folder / subject / sequence / f"{frame.stem}_landmarks.txt")
                if landmark_folder and (landmark_folder / subject / sequence / f"{frame.stem}_landmarks.txt").exists()
                else None
                for frame in frames
            )
            sequences.append(SequenceFiles(
                subject=subject,
                sequence=sequence,
                frames=tuple(str(frame) for frame in frames),
                landmark_files=landmark_files,
                emotion_file=label_file("emotion", "_emotion.txt"),
                facs_file=label_file("facs", "_facs.txt"),
            ))
    return sequences


def _dirs(folder: epath.Path, pattern: re.Pattern) -> list[epath.Path]:
    return [p for p in folder.iterdir() if p.is_dir() and pattern.match(p.name)]


def _numbers(text: str, path: str) -> np.ndarray:
    try:
        return np.array([float(token) for token in text.split()], dtype=np.float64)
    except ValueError:
        raise CkPlusFileError(f"{path}: expected numbers, got {text.strip()[:60]!r}") from None


def parse_emotion(text: str, path: str) -> int:
    """The CK+ emotion id (0..7) in an *_emotion.txt file, written like '   3.0000000e+00'."""
    values = _numbers(text, path)
    if values.size != 1 or values[0] != round(values[0]):
        raise CkPlusFileError(f"{path}: expected one whole number, got {text.strip()[:60]!r}")
    label = int(values[0])
    if not 0 <= label < len(labels.CK_PLUS):
        raise CkPlusFileError(f"{path}: label {label} is not one of 0..{len(labels.CK_PLUS) - 1}")
    return label


def parse_facs(text: str, path: str) -> list[tuple[int, int]]:
    """(action unit, intensity) pairs of a *_facs.txt file, one 'AU intensity' pair per line."""
    pairs = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        values = _numbers(line, f"{path}, line {line_number}")
        if values.size != 2 or np.any(values != np.round(values)) or values[0] <= 0 or values[1] < 0:
            raise CkPlusFileError(f"{path}, line {line_number}: expected 'AU intensity', got {line.strip()!r}")
        pairs.append((int(values[0]), int(values[1])))
    return pairs


def parse_landmarks(text: str, path: str) -> np.ndarray:
    """CK+'s own (AAM) 68 landmarks of a *_landmarks.txt file, float32 (68, 2) in image pixels."""
    values = _numbers(text, path)
    if values.size != 136:
        raise CkPlusFileError(f"{path}: expected 68 'x y' pairs, got {values.size} numbers")
    return values.reshape(68, 2).astype(np.float32)


def read_text(path: str) -> str:
    return epath.Path(path).read_text()


def subject_folds(subjects, k: int = 10) -> dict[str, int]:
    """Subject-independent folds, as in the standard CK+ protocol: subject -> fold in 0..k-1.

    Deterministic: subjects are sorted by number and dealt round-robin, so each subject lands in exactly
    one fold and the folds differ in size by at most one subject.
    """
    ordered = sorted(set(subjects), key=lambda s: (int(s[1:]) if s[1:].isdigit() else 0, s))
    return {subject: position % k for position, subject in enumerate(ordered)}


def sample_uniformly(count: int, max_length: int) -> list[int]:
    """Indices of at most `max_length` frames spread evenly over `count`, keeping the first and last."""
    if max_length <= 0 or count <= max_length:
        return list(range(count))
    return sorted(set(np.round(np.linspace(0, count - 1, max_length)).astype(int).tolist()))
