"""Benchmark of `emopy export --int8-tflite`: an export's TFLite copy with float32 weights against int8 ones, on
the same faces in one run: size, ms per face at batch 1, how far the probabilities move, and answers changed.

Run: python benchmarks/int8_tflite.py [--model EXPORT|NAME] [--data-dir DIR] [--repeats N]

Both copies are converted afresh from the export's SavedModel (serving/tflite.py), whatever copy it ships, and run
as the Recognizer runs them (tflite.PixelsClassifier, one face at a time). The faces are FER+ PublicTest's, from
real fer2013 built with `emopy build fer2013 --manual-dir ../shared/data/fer2013 --config ferplus --data-dir DIR`,
scored on FER+ majority labels. Without that build it says so, and times the package's sample face and the
astronaut's instead, with no accuracy. Ideal: int8 no slower, answers unchanged.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Run as a script, this folder comes first on sys.path, and benchmarks/serving.py would hide the serving package.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

SOURCE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "fer2013"


def publictest(data_dir: Path, class_names: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """FER+ PublicTest's crops [N, 48, 48, 1] and majority labels as ids of `class_names`, or None if not built."""
    import tensorflow_datasets as tfds

    from emopy_tfds import labels

    builder = tfds.builder("fer2013/ferplus", data_dir=str(data_dir))
    if not builder.is_prepared():
        return None
    rows = list(tfds.as_numpy(builder.as_dataset(split="validation")))
    to_model = labels.mapping("ferplus", labels.label_set_of(class_names))
    return (np.stack([row["image"] for row in rows]),
            np.array([-1 if to_model[row["label"]] is None else to_model[row["label"]] for row in rows]))


def sample_crops(face_spec) -> np.ndarray:
    """The package's photo and the astronaut, cut as the export's faces are."""
    from skimage import data

    from emopy_tfds import faces, images
    from emopy_tfds.data import sample_photo

    crops = []
    for photo in (images.load_image(sample_photo()), data.astronaut()):
        face = faces.find_faces(photo)[0]
        crops.append(faces.align_face(photo, face.landmarks, face_spec).image)
    return np.stack(crops)


def timed(classify, crops: np.ndarray, repeats: int) -> tuple[np.ndarray, float]:
    """Probabilities of every crop, and the median ms of one face at batch 1 over `repeats` calls."""
    probabilities = classify(crops)
    times = []
    for index in range(repeats):
        crop = crops[index % len(crops)][np.newaxis]
        started = time.perf_counter()
        classify(crop)
        times.append(time.perf_counter() - started)
    return probabilities, 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="an export (BASE or BASE/N) or a shipped model's name (default: the default)")
    parser.add_argument("--data-dir", type=Path, default=Path("~/tensorflow_datasets").expanduser())
    parser.add_argument("--repeats", type=int, default=500)
    args = parser.parse_args()

    from emopy.serving import layout, predict, shipped, tflite

    version_dir = predict.resolve_export(shipped.resolve_model(args.model))
    class_names, face_spec, _ = layout.read_assets(version_dir)
    scored = publictest(args.data_dir.expanduser(), class_names)
    if scored is None:
        print(f"int8_tflite: FER+ is not built in {args.data_dir} (the real data is not part of the repository; "
              f"build it from {SOURCE}): timing two sample faces only, no accuracy")
        crops, true = sample_crops(face_spec), None
    else:
        crops, true = scored
    print(f"model: {version_dir}; {len(crops)} faces; batch 1, median of {args.repeats} calls")
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, int8 in (("float32", False), ("int8", True)):
            path = Path(folder) / f"{name}.tflite"
            path.write_bytes(tflite.convert(version_dir, int8_weights=int8))
            probabilities, ms = timed(tflite.PixelsClassifier(path), crops, args.repeats)
            results[name] = (path.stat().st_size, probabilities, ms)
    (base_size, base_p, base_ms), (size, p, ms) = results["float32"], results["int8"]
    for name, (size_, p_, ms_) in results.items():
        accuracy = "" if true is None else f", FER+ PublicTest accuracy {(p_.argmax(1) == true).mean() * 100:.2f} %"
        print(f"  {name:8s} {size_ / 1e6:5.1f} MB  {ms_:5.2f} ms a face{accuracy}")
    changed = int((p.argmax(1) != base_p.argmax(1)).sum())
    print(f"int8 / float32: size {size / base_size:.2f}, time {ms / base_ms:.2f} (ideal <= 1); probabilities moved "
          f"by at most {np.abs(p - base_p).max():.3f}; answers changed {changed} of {len(crops)} (ideal 0)")


if __name__ == "__main__":
    main()
