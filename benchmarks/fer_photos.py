"""The `fer` package's own photo pipeline on a list of photos, for benchmarks/wild_photos.py to score as a baseline.

Runs in a separate interpreter where `fer` is installed (see wild_photos.py's docstring: `fer` needs OpenCV 4's Haar
cascade, which emopy's OpenCV 5 lacks), so it imports nothing from emopy:

    FER_PYTHON fer_photos.py PHOTOS_DIR FILES.json OUT.json

FILES.json: a JSON list of photo names relative to PHOTOS_DIR. OUT.json gets {"pipeline": what ran, "answers":
{name: fer's top emotion for the photo's largest face, or null where it finds no face}}. `fer` runs as its README
shows it: FER(mtcnn=False), that is its OpenCV Haar-cascade detector, with its Keras mini-Xception
(emotion_model.hdf5; use_tflite=False, not the quantized copy newer versions default to).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def top_emotion(found: list[dict]) -> str | None:
    """The top emotion of the largest face `FER.detect_emotions` found (boxes are x, y, w, h); None for none."""
    if not found:
        return None
    largest = max(found, key=lambda face: int(face["box"][2]) * int(face["box"][3]))
    return max(largest["emotions"], key=largest["emotions"].get)


def main() -> None:
    import cv2
    import fer
    from fer.fer import FER

    photos_dir, files, out = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text()), Path(sys.argv[3])
    detector = FER(mtcnn=False, use_tflite=False)
    answers = {}
    for name in files:
        image = cv2.imread(str(photos_dir / name))
        if image is None:
            raise SystemExit(f"fer_photos: cannot read {photos_dir / name}")
        answers[name] = top_emotion(detector.detect_emotions(image))
    pipeline = f"fer {fer.__version__}: OpenCV {cv2.__version__} Haar cascade + emotion_model.hdf5"
    out.write_text(json.dumps({"pipeline": pipeline, "answers": answers}, indent=1) + "\n")


if __name__ == "__main__":
    main()
