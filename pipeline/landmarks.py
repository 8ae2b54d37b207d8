"""`emopy landmarks`: faces and their 68 dlib landmarks in photos, as JSON or annotated pictures."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Sequence

from emopy_tfds import faces as face_core
from emopy.pipeline import overlay


def faces_record(image_path: str, found: Sequence[face_core.Face]) -> dict:
    """The JSON object for one photo: {"image": PATH, "faces": [{"box": [x, y, w, h], "landmarks": [[x, y]...]}]}."""
    return {
        "image": image_path,
        "faces": [
            {"box": [int(v) for v in face.box], "landmarks": [[float(x), float(y)] for x, y in face.landmarks]}
            for face in found
        ],
    }


def run(
    images: Sequence[str],
    *,
    as_json: bool = False,
    annotate: str | None = None,
    upsample: int = 0,
    detector: str = "auto",
    landmark_model: str | os.PathLike | None = None,
    overwrite: bool = False,
    stdout=sys.stdout,
    stderr=sys.stderr,
) -> int:
    """Runs the command; returns the exit status. Unreadable photos are reported and skipped, never fatal.

    annotate: draw each photo's faces on a copy: OUT, or OUT-<name> for several (overlay.annotation_paths);
    copies that would replace files are refused (status 2, nothing done) unless `overwrite`.
    """
    targets = [None] * len(images)
    if annotate and images:
        targets = overlay.annotation_paths(annotate, images, [Path(annotate).suffix or ".png"] * len(images))
        if not overwrite:
            try:
                overlay.refuse_existing(targets)
            except FileExistsError as error:
                print(f"emopy: error: {error}", file=stderr)
                return 2
    records, failures = [], 0
    for image_path, target in zip(images, targets):
        try:
            rgb = face_core.load_image(image_path)
            found = face_core.find_faces(rgb, upsample=upsample, detector=detector, landmark_model=landmark_model)
            if target:
                overlay.save_rgb(str(target), overlay.draw_faces(rgb, found))
        except face_core.LandmarkModelNotFoundError as error:
            print(f"emopy: error: {error}", file=stderr)
            return 2
        except (face_core.ImageError, OSError) as error:
            print(f"emopy: error: {_one_line(error, image_path)}", file=stderr)
            failures += 1
            continue
        record = faces_record(image_path, found)
        records.append(record)
        if not as_json:
            _print_text(record, stdout)
    if as_json and (records or len(images) > 1):
        json.dump(records if len(images) > 1 else records[0], stdout)
        stdout.write("\n")
    return 1 if failures else 0


def _one_line(error: Exception, image_path: str) -> str:
    text = " ".join(str(error).split())
    return text if image_path in text else f"{image_path}: {text}"


def _print_text(record: dict, stdout) -> None:
    count = len(record["faces"])
    print(f"{record['image']}: {count} face{'' if count == 1 else 's'}", file=stdout)
    for index, face in enumerate(record["faces"]):
        x, y, w, h = face["box"]
        print(f"  face {index}: box x={x} y={y} w={w} h={h}, 68 landmarks", file=stdout)
