"""`emopy predict`: the emotion of every face in photos, videos and webcam streams, from an export or a server.

This module finds the inputs (files, directories, globs) and runs the command; the work is done by
serving.recognizer (the Recognizer: faces in, emotions out), serving.tables (the rows, their columns, their
files), serving.tracking (face ids across frames) and serving.video (frames in and out). Their public names are
re-exported here, so `from emopy.serving.predict import Recognizer` and `predict.write_table` keep working.
"""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path
from typing import Any, Sequence, TextIO

import cv2
import pandas as pd
from tqdm import tqdm

from emopy_tfds import faces
from emopy.pipeline.overlay import annotation_paths, refuse_existing
from emopy.serving.layout import DEFAULT_MODEL_NAME, PIXELS_SIGNATURE, read_assets, resolve_export
from emopy.serving.recognizer import Classifier, ModelInput, Recognizer, annotate, caption, model_input
from emopy.serving.shipped import resolve_model
from emopy.serving.tables import (LEADING_COLUMNS, OUTPUT_SUFFIXES, TRAILING_COLUMNS, affect, check_output_path,
                            concat_tables, empty_table, face_table, probability_columns, table_lines, to_records,
                            write_table)
from emopy.serving.tls import ClientTls
from emopy.serving.tracking import FaceTracker, smooth
from emopy.serving.video import (FALLBACK_FPS, FRAMES_IN_FLIGHT, LIVE_WINDOW, QUIT_KEYS, VIDEO_SUFFIXES, Capture,
                           VideoError, has_gui, is_video)

__all__ = [
    # this module: the command and its inputs
    "IMAGE_SUFFIXES", "expand_inputs", "is_media_name", "run",
    # serving.layout
    "DEFAULT_MODEL_NAME", "PIXELS_SIGNATURE", "read_assets", "resolve_export",
    # serving.recognizer
    "Classifier", "ModelInput", "Recognizer", "annotate", "caption", "model_input",
    # serving.tables
    "LEADING_COLUMNS", "OUTPUT_SUFFIXES", "TRAILING_COLUMNS", "affect", "check_output_path", "concat_tables",
    "empty_table", "face_table", "probability_columns", "table_lines", "to_records", "write_table",
    # serving.tracking
    "FaceTracker", "smooth",
    # serving.video
    "FALLBACK_FPS", "FRAMES_IN_FLIGHT", "LIVE_WINDOW", "QUIT_KEYS", "VIDEO_SUFFIXES", "Capture", "VideoError",
    "has_gui", "is_video",
]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


# --- Inputs -------------------------------------------------------------------------------------------


def is_media_name(path: str | os.PathLike) -> bool:
    """Whether a file's name says it is an image or a video emopy reads (directories and globs keep only these)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES


def _is_media(path: Path) -> bool:
    return path.is_file() and is_media_name(path)


def expand_inputs(inputs: Sequence[str]) -> tuple[list[str], list[str], bool]:
    """The files that inputs name (files as given; directories' images and videos; glob matches), errors for
    inputs that name nothing, and whether any input was a directory. Files in a directory or glob that are
    neither image nor video are left out; a file named on its own is always tried."""
    files, errors, from_directory = [], [], False
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            from_directory = True
            found = sorted(str(child) for child in path.iterdir() if _is_media(child))
            files += found
            if not found:
                errors.append(f"{item}: no images or videos in this directory")
        elif path.exists() or not glob.has_magic(item):
            files.append(str(path) if path.exists() else item)
        else:
            found = sorted(match for match in glob.glob(str(path), recursive=True) if _is_media(Path(match)))
            files += found
            if not found:
                errors.append(f"{item}: no images or videos match")
    return files, errors, from_directory


def _one_line(error: BaseException, name: str) -> str:
    text = " ".join(str(error).split())
    return text if text.startswith(name) else f"{name}: {text}"


# --- `emopy predict` ----------------------------------------------------------------------------------


def _recognizer(model: str | None, server: str | None, model_name: str, tls: ClientTls | None,
                **options: Any) -> Recognizer:
    if server:
        class_names, face_spec, _ = read_assets(resolve_export(resolve_model(model))) if model else (None, None, None)
        return Recognizer.from_server(server, model_name, face_spec=face_spec, class_names=class_names, tls=tls,
                                      **options)
    return Recognizer.from_export(resolve_model(model), **options)


def run(
    inputs: Sequence[str],
    *,
    model: str | None = None,
    server: str | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    tls: ClientTls | None = None,
    webcam: int | None = None,
    output: str | None = None,
    annotate_to: str | None = None,
    every: int = 1,
    smoothing: float = 0.0,
    show: bool = False,
    upsample: int = 0,
    detector: str | None = None,
    landmark_model: str | None = None,
    cropped: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Runs `emopy predict`; returns the exit status: 0, 1 if some input could not be read (each one named in
    one line on stderr, the others still processed), 2 if nothing could be done (bad model, output or options).

    annotate_to: draw the faces on a copy of each input: OUT, or OUT-<name> for several
    (pipeline.overlay.annotation_paths); copies that would replace files are refused unless `overwrite`.
    progress: tqdm bars on stderr for videos and directories; None shows them when stderr is a terminal.
    """
    import grpc  # grpc: heavy, needed only to tell a server's errors apart

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    progress = stderr.isatty() if progress is None else progress

    def fail(message: str) -> int:
        print(f"emopy: error: {message}", file=stderr)
        return 2

    if bool(inputs) == (webcam is not None):
        return fail("give INPUT files, directories or globs, or --webcam N (not both)")
    if every < 1:
        return fail(f"--every must be at least 1, got {every}")
    if not 0.0 <= smoothing < 1.0:
        return fail(f"--smoothing must be in [0, 1), got {smoothing}")
    if show and webcam is None:
        return fail("--show is for --webcam")
    if tls is not None and not server:
        return fail("--tls, --ca-cert, --client-cert and --client-key are for --server")
    if show and not has_gui():
        return fail("this OpenCV has no GUI (opencv-python-headless) and cannot show a live window: "
                    "leave out --show to stream rows, or install opencv-python")
    files, errors, from_directory = expand_inputs(inputs) if webcam is None else ([], [], False)
    sources, videos = ([f"webcam:{webcam}"], [True]) if webcam is not None else (files, [is_video(f) for f in files])
    targets = [None] * len(sources)
    try:
        if annotate_to and sources:
            targets = annotation_paths(annotate_to, sources, [".mp4" if video else ".png" for video in videos])
            if not overwrite:  # before the model loads: nothing is done if anything would be replaced
                refuse_existing(targets)
        if output:
            check_output_path(output)
        recognizer = _recognizer(model, server, model_name, tls, upsample=upsample, detector=detector,
                                 landmark_model=landmark_model, cropped=cropped)
    except (ValueError, OSError, grpc.RpcError) as error:
        return fail(" ".join(str(error).split()))

    tables: list[pd.DataFrame] = []
    failures = 0
    try:
        with recognizer:
            if webcam is not None:
                capture = cv2.VideoCapture(webcam)
                if not capture.isOpened():
                    capture.release()
                    return fail(f"cannot open webcam {webcam}")
                name = f"webcam:{webcam}"
                try:
                    for table in recognizer.stream(capture, every=every, smoothing=smoothing, name=name,
                                                   annotate_to=targets[0], show=show):
                        tables.append(table)
                        if not output:
                            for line in table_lines(table):
                                print(line, file=stdout, flush=True)
                except KeyboardInterrupt:  # how a headless stream ends; what came so far is kept
                    pass
            else:
                for message in errors:
                    print(f"emopy: error: {message}", file=stderr)
                failures += len(errors)
                width = max((len(f) for f in files), default=0)
                for path, annotated in tqdm(zip(files, targets), total=len(files), unit="file", file=stderr,
                                            disable=not (progress and from_directory)):
                    video = is_video(path)
                    try:
                        if video:
                            table = recognizer.predict_video(path, every=every, smoothing=smoothing,
                                                             annotate_to=annotated, progress=progress,
                                                             progress_file=stderr)
                        else:
                            table = recognizer.predict_image(path, annotate_to=annotated)
                    except faces.LandmarkModelNotFoundError:
                        raise
                    except (faces.ImageError, OSError) as error:
                        print(f"emopy: error: {_one_line(error, path)}", file=stderr)
                        failures += 1
                        continue
                    tables.append(table)
                    if not output:
                        lines = table_lines(table, width) or [f"{path:<{width}}  no face found"]
                        print("\n".join(lines), file=stdout, flush=True)
    except (faces.LandmarkModelNotFoundError, grpc.RpcError) as error:  # no input would fare better
        return fail(" ".join(str(error).split()))
    if output:
        try:
            write_table(concat_tables(tables, recognizer.classes), output)
        except OSError as error:
            return fail(_one_line(error, output))
    return 1 if failures else 0
