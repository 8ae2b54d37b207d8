"""Writes fer2013 files in the official formats from a real face: dummy_data/, tests and benchmarks.

Run `python -m emopy_tfds.fer2013.dummy_data_generation` to rewrite dummy_data/ (uses the sample photo
shipped with emopy). Faces are 48x48 crops of one real face with random pose and lighting jitter.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from emopy_tfds import faces
from emopy_tfds.data import sample_photo
from emopy_tfds.fer2013 import fer2013_csv

KAGGLE_SPLIT_SIZES = {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}
FORMS = ("plain", "crlf", "tarball", "icml")
DUMMY_DATA = Path(__file__).parent / "dummy_data"


def face_crops(photo: np.ndarray, count: int, *, seed: int = 0) -> np.ndarray:
    """`count` 48x48 gray crops (count, 48, 48) of the largest face in `photo`, each slightly jittered."""
    face = faces.find_faces(photo)[0]
    base = faces.align_face(photo, face.landmarks, faces.FaceSpec(crop_size=64, margin=0.3)).image[:, :, 0]
    rng = np.random.default_rng(seed)
    crops = np.empty((count, 48, 48), np.uint8)
    for i in range(count):
        angle, scale = rng.uniform(-8, 8), rng.uniform(0.9, 1.1) * 48 / 64
        matrix = cv2.getRotationMatrix2D((32.0, 32.0), angle, scale)
        matrix[:, 2] += rng.uniform(-2, 2, size=2) + (24.0 - 32.0)
        crop = cv2.warpAffine(base, matrix, (48, 48), borderMode=cv2.BORDER_REFLECT)
        crop = crop.astype(np.float64) * rng.uniform(0.8, 1.2) + rng.uniform(-20, 20)
        crop = np.clip(crop, 0, 255).astype(np.uint8)
        crops[i] = crop[:, ::-1] if rng.random() < 0.5 else crop
    return crops


# Stripe periods in pixels, one per fer2013 class: each is at least 1.2x the last, more than the 0.9-1.1 zoom of
# training augmentation can blur together.
SIGNAL_PERIODS = (3, 4, 5, 6, 8, 10, 12)


def learnable_crops(photo: np.ndarray, emotions: Sequence[int], *, seed: int = 0) -> np.ndarray:
    """Face crops that carry their class: horizontal stripes with a period per class (SIGNAL_PERIODS),
    blended half and half with the jittered face. A model that learns anything learns this, so tests can
    state the accuracy training must reach."""
    crops = face_crops(photo, len(emotions), seed=seed).astype(np.float64)
    rows = np.arange(48)[:, None]
    rng = np.random.default_rng(seed + 1)
    for crop, emotion in zip(crops, emotions):
        period = SIGNAL_PERIODS[emotion]
        phase = rng.uniform(0, period)
        stripes = 255.0 * (((rows + phase) % period) < period / 2)
        crop[:] = 0.5 * crop + 0.5 * stripes
    return np.clip(crops, 0, 255).astype(np.uint8)


def kaggle_usages(count: int) -> list[str]:
    """Usage per row in Kaggle's proportions and order: Training, then PublicTest, then PrivateTest."""
    total = sum(KAGGLE_SPLIT_SIZES.values())
    public = round(count * KAGGLE_SPLIT_SIZES["PublicTest"] / total)
    private = round(count * KAGGLE_SPLIT_SIZES["PrivateTest"] / total)
    return ["Training"] * (count - public - private) + ["PublicTest"] * public + ["PrivateTest"] * private


def csv_bytes(images: np.ndarray, emotions: Sequence[int], usages: Sequence[str], *, form: str = "plain") -> bytes:
    """A fer2013 CSV: `plain` and `tarball` as fer2013.csv, `crlf` with Windows line ends, `icml` as
    icml_face_data.csv (header "emotion, Usage, pixels")."""
    newline = "\r\n" if form == "crlf" else "\n"
    lines = ["emotion, Usage, pixels" if form == "icml" else "emotion,pixels,Usage"]
    for image, emotion, usage in zip(images, emotions, usages):
        pixels = " ".join(map(str, np.asarray(image).reshape(-1).tolist()))
        lines.append(f"{emotion},{usage},{pixels}" if form == "icml" else f"{emotion},{pixels},{usage}")
    return (newline.join(lines) + newline).encode("ascii")


def write_source(folder: Path, images: np.ndarray, emotions: Sequence[int], usages: Sequence[str], *,
                 form: str = "plain") -> Path:
    """Writes the file a user of this form would put in the manual directory; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    data = csv_bytes(images, emotions, usages, form=form)
    if form == "icml":
        path = folder / fer2013_csv.ICML_NAME
        path.write_bytes(data)
    elif form == "tarball":
        path = folder / fer2013_csv.TARBALL_NAME
        with tarfile.open(path, "w:gz") as tarball:
            for name, content in (("fer2013/fer2013.csv", data), ("fer2013/README", b"fer2013 (synthetic)\n")):
                info = tarfile.TarInfo(name)
                info.size = len(content)
                tarball.addfile(info, io.BytesIO(content))
    elif form in ("plain", "crlf"):
        path = folder / fer2013_csv.CSV_NAME
        path.write_bytes(data)
    else:
        raise ValueError(f"unknown form {form!r}; known: {', '.join(FORMS)}")
    return path


def write_ferplus(folder: Path, votes: Sequence[Sequence[int]], usages: Sequence[str],
                  image_names: Sequence[str] | None = None) -> Path:
    """Writes fer2013new.csv with 10 vote counts per row; an empty image name marks a row FER+ dropped."""
    image_names = image_names or [f"fer{i:07d}.png" for i in range(len(votes))]
    lines = ["Usage,Image name," + ",".join(fer2013_csv.FERPLUS_VOTE_COLUMNS)]
    for usage, name, row_votes in zip(usages, image_names, votes):
        lines.append(f"{usage},{name}," + ",".join(str(v) for v in row_votes))
    path = folder / fer2013_csv.FERPLUS_NAME
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    photo = faces.load_image(sample_photo())
    usages = ["Training"] * 4 + ["PublicTest"] * 2 + ["PrivateTest"] * 2
    emotions = [0, 3, 6, 4, 5, 2, 1, 3]
    write_source(DUMMY_DATA, face_crops(photo, len(usages)), emotions, usages)
    # Rows 2 and 6 are left out of FER+: unknown has the most votes, and no image name.
    votes = [
        [0, 0, 0, 0, 9, 1, 0, 0, 0, 0],
        [1, 8, 1, 0, 0, 0, 0, 0, 0, 0],
        [2, 0, 0, 0, 0, 0, 0, 0, 7, 1],
        [3, 0, 0, 6, 0, 0, 1, 0, 0, 0],
        [0, 0, 10, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0, 9, 0, 0, 0],
        [10, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [1, 7, 0, 0, 0, 0, 0, 0, 0, 2],
    ]
    names = [f"fer{i:07d}.png" if i != 6 else "" for i in range(len(usages))]
    write_ferplus(DUMMY_DATA, votes, usages, names)
    print(f"wrote {DUMMY_DATA}")


if __name__ == "__main__":
    main()
