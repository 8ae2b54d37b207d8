"""`emopy quickstart`: the whole pipeline, end to end, on a small synthetic sample shipped with the package.

    1. writes a SYNTHETIC fer2013.csv (drawn faces, one geometry per expression: emopy_tfds/data/synthetic_faces.py)
    2. emopy build fer2013      (TFDS + Beam: landmarks fitted while the TFRecords are written)
    3. emopy train multi_input  (image + landmarks, a few epochs)
    4. emopy evaluate           (accuracy, confusion matrix PNG)
    5. emopy export             (SavedModel for TF Serving)
    6. emopy serve              (the local gRPC server, in its own process)
    7. predictions over gRPC on the sample's test faces and on the shipped real photo (annotated PNG)

A rerun in the same --workdir replaces what the last one made there, and nothing else: each folder it makes holds
a MARKER file, and OUTPUTS_RECORD in the workdir holds the sha256 of each file it wrote. A folder or file of the
same name that it did not make is never removed: the quick start refuses, naming it, before touching anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from emopy_tfds.data import sample_photo

SYNTHETIC_NOTE = """SYNTHETIC DATA. fer2013.csv here was drawn by emopy (emopy_tfds/data/synthetic_faces.py):
cartoon faces whose brows, eyes and mouth take a different shape for each of fer2013's 7 expressions.
It is not the fer2013 dataset and holds no photo of a person. Accuracy on it shows that the pipeline runs,
nothing about accuracy on real faces.
"""


MARKER = ".emopy-quickstart"
OUTPUTS_RECORD = ".emopy-quickstart-outputs.json"
FOLDERS = ("synthetic_fer2013", "data", "run", "export")
PREDICTIONS_JSON, ANNOTATED_PNG = "astronaut_emotions.json", "astronaut_emotions.png"
OUTPUTS = (PREDICTIONS_JSON, ANNOTATED_PNG)
MARKER_NOTE = "Made by `emopy quickstart`, which replaces this folder when it is run again in the same --workdir.\n"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def not_made_here(out: Path) -> list[Path]:
    """The folders and files in `out` that the quick start would write, exist, and were not made by it: a folder
    without its MARKER, a file whose bytes are not those it wrote (OUTPUTS_RECORD)."""
    record = out / OUTPUTS_RECORD
    written = json.loads(record.read_text()) if record.is_file() else {}

    def made_here(path: Path) -> bool:
        if path.is_symlink():  # what it points to is somewhere else, never the quick start's own
            return False
        if path.name in FOLDERS:
            return path.is_dir() and (path / MARKER).is_file()
        return path.is_file() and written.get(path.name) == _sha256(path)

    return [out / name for name in (*FOLDERS, *OUTPUTS)
            if ((out / name).exists() or (out / name).is_symlink()) and not made_here(out / name)]


def clear_earlier_run(out: Path) -> None:
    """Removes what an earlier quick start made in `out`, after checking that it made every one of them (else a
    one-line ValueError names what it did not make, and nothing is removed)."""
    foreign = not_made_here(out)
    if foreign:
        names = ", ".join(str(path) for path in foreign)
        raise ValueError(f"{names} {'was' if len(foreign) == 1 else 'were'} not made by emopy quickstart, which "
                         f"replaces only what it made: move {'it' if len(foreign) == 1 else 'them'} away, or pick "
                         f"another --workdir")
    for name in FOLDERS:
        if (out / name).exists():
            shutil.rmtree(out / name)
    for name in (*OUTPUTS, OUTPUTS_RECORD):
        (out / name).unlink(missing_ok=True)


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / MARKER).write_text(MARKER_NOTE)
    return folder


def _start_server(export_base: Path) -> tuple[subprocess.Popen, int]:
    server = subprocess.Popen([sys.executable, "-m", "emopy.pipeline.cli", "serve", "--model-base-path", str(export_base),
                               "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    if "Serving model" not in line:
        server.kill()
        raise RuntimeError(f"emopy serve did not start: {line}{server.stderr.read()[-2000:]}")
    return server, int(line.rsplit(":", 1)[1])


def run(workdir: str = "emopy-quickstart", *, per_class: int = 60, epochs: int = 20, stdout=None,
        stderr=None) -> int:
    """Runs the seven steps in `workdir` and prints a summary. What an earlier quick start made there is replaced;
    a folder or file of the same name that it did not make is refused (exit status 2), before anything is done.
    stdout and stderr: the process's at the time of the call by default."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    out = Path(workdir).resolve()
    try:
        clear_earlier_run(out)
    except ValueError as error:
        print(f"emopy: error: {error}", file=stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TensorFlow reads its log level once, when first imported: every module that imports it comes after.
    from emopy_tfds import faces
    from emopy_tfds.data.synthetic_faces import synthetic_fer2013
    from emopy_tfds.fer2013 import dummy_data_generation
    from emopy.pipeline import build, evaluate, train
    from emopy.serving import export
    from emopy.serving.client import EmotionClient
    from emopy.serving.predict import Recognizer

    # Each folder is marked as the quick start's as it is made, so that a rerun after a failure replaces it too.
    manual, data_dir, run_dir, export_base = (_made(out / name) for name in FOLDERS)
    started = time.perf_counter()

    def step(text: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {text}", file=stdout, flush=True)

    step(f"1/7 writing a SYNTHETIC fer2013.csv ({per_class} drawn faces per expression) to {manual}")
    images, emotions, usages = synthetic_fer2013(per_class)
    dummy_data_generation.write_source(manual, images, emotions, usages)
    (manual / "README.txt").write_text(SYNTHETIC_NOTE)

    step("2/7 emopy build fer2013 (TFDS + Beam, landmarks fitted while writing)")
    # The step line above is the build's header; the Beam worker's progress lines follow it, TFDS's own bars and
    # messages are left out (build.tfds_console_left_out), and the summary below says where the data is. The
    # worker is this process (Beam's in-memory DirectRunner): the sample's landmarks take seconds to fit, where
    # starting a worker process per core (TensorFlow, dlib and Beam in each) takes about 15 s on 2 cores.
    status = build.run("fer2013", manual_dir=str(manual), data_dir=str(data_dir), config="original", workers=1,
                       beam_options=build.IN_MEMORY, header=False, stdout=open(os.devnull, "w"),
                       stderr=stderr)
    if status:
        return status

    step(f"3/7 emopy train --model multi_input ({epochs} epochs)")
    train.run(train.TrainConfig(dataset="fer2013", model="multi_input", out=str(run_dir), data_dir=str(data_dir),
                                epochs=epochs, batch_size=32, seed=0, patience=epochs))

    step("4/7 emopy evaluate --split test")
    report = evaluate.run(run_dir, "test")

    step("5/7 emopy export")
    export_dir = export.export(run_dir, export_base)

    step("6/7 emopy serve (gRPC on loopback)")
    server, port = _start_server(export_base)
    try:
        step(f"7/7 predicting over gRPC at 127.0.0.1:{port}")
        test_rows = [i for i, usage in enumerate(usages) if usage == "PrivateTest"]
        crops = [images[i][:, :, None] for i in test_rows]
        # The landmarks of an already cropped face, fitted exactly as the builder fitted them.
        points = np.stack([faces.find_faces(crop, already_cropped=True)[0].landmarks for crop in crops])
        with EmotionClient(f"127.0.0.1:{port}") as client:
            served = client.predict(crops, points)
        served_accuracy = float(np.mean(served["class_ids"] == np.array([emotions[i] for i in test_rows])))
        annotated = out / ANNOTATED_PNG
        # A real photo needs a model that has seen real faces: the one emopy ships, not the cartoon-trained one.
        with Recognizer.default() as recognizer:
            table = recognizer.predict_image(sample_photo(), annotate_to=annotated)
        predictions = out / PREDICTIONS_JSON
        predictions.write_text(json.dumps(
            [{"box": list(map(int, row["box"])), "top_emotion": row["top_emotion"],
              "probabilities": {name: float(row[name]) for name in recognizer.classes}}
             for _, row in table.iterrows()], indent=2) + "\n")
        (out / OUTPUTS_RECORD).write_text(json.dumps({path.name: _sha256(path) for path in (predictions, annotated)},
                                                     indent=2) + "\n")
    finally:
        server.terminate()
        server.wait()

    step("done")
    print(f"\nemopy quickstart on SYNTHETIC faces ({len(emotions)} rows; see {manual / 'README.txt'}):", file=stdout)
    print(f"  test accuracy:        {report['accuracy']:.3f} (evaluate), {served_accuracy:.3f} over gRPC "
          f"({len(test_rows)} faces, chance 0.143)", file=stdout)
    print(f"  dataset (TFDS):       {data_dir / 'fer2013' / 'original'}", file=stdout)
    print(f"  run directory:        {run_dir}", file=stdout)
    print(f"  confusion matrix:     {report['confusion_matrix_png']}", file=stdout)
    print(f"  SavedModel export:    {export_dir}", file=stdout)
    faces_found = ", ".join(table["top_emotion"]) or "no face found"
    print(f"  real photo:           {sample_photo().name}: {faces_found} (emopy's default model, trained on "
          f"real fer2013)", file=stdout)
    print(f"  annotated picture:    {annotated}", file=stdout)
    print(f"  predictions (JSON):   {predictions}", file=stdout)
    print("Next, with your licensed copy of the data:", file=stdout)
    print("  emopy build fer2013 --manual-dir ~/fer2013", file=stdout)
    # Not vgg: on a laptop's CPU an epoch of it takes about 7 minutes (README's quick start).
    print("  emopy train --dataset fer2013 --model vgg_small --epochs 40 --out runs/vgg_small", file=stdout)
    print("    (the shipped models' recipe, sized for a CPU: about a minute an epoch on 2 cores; vgg takes about 7)",
          file=stdout)
    print("  emopy build ck_plus --config emotion --manual-dir ~/ck_plus && "
          "emopy train --dataset ck_plus --model cnn --cv 10 --out runs/ck", file=stdout)
    print("  emopy export --run runs/vgg_small --model-base-path models/emotion && "
          "emopy serve --model-base-path models/emotion", file=stdout)
    print("  emopy predict photo.jpg video.mp4 --model models/emotion --output emotions.csv --annotate out.png",
          file=stdout)
    return 0
