"""`emopy quickstart`: the pipeline run end to end on a small sample shipped with the package."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from emopy_tfds.data import sample_photo
from pipeline import landmarks


def run(workdir: str = "emopy-quickstart", stdout=sys.stdout, stderr=sys.stderr) -> int:
    """Finds the face and its landmarks in the sample photo, writing JSON and an annotated picture."""
    out = Path(workdir)
    out.mkdir(parents=True, exist_ok=True)
    photo = sample_photo()
    annotated, records = out / "astronaut_landmarks.png", out / "astronaut_landmarks.json"
    started = time.perf_counter()
    with records.open("w") as json_out:
        status = landmarks.run([str(photo)], as_json=True, annotate=str(annotated), stdout=json_out, stderr=stderr)
    if status:
        return status
    found = json.loads(records.read_text())["faces"]
    print(f"emopy quickstart: {len(found)} face(s) with 68 landmarks in {photo.name} "
          f"({time.perf_counter() - started:.2f} s)", file=stdout)
    print(f"  landmarks (JSON):   {records}", file=stdout)
    print(f"  annotated picture:  {annotated}", file=stdout)
    print("Next: `emopy landmarks YOUR_PHOTO.jpg --json --annotate out.png`, and with your copy of the data:",
          file=stdout)
    print("      `emopy build fer2013 --manual-dir DIR` or `emopy build ck_plus --config emotion --manual-dir DIR`",
          file=stdout)
    return 0 if found else 1
