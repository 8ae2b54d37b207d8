"""Benchmark of the shared face core: landmark fits and detections, with the ratio each is judged by.

Run: python benchmarks/faces.py [--repeats N] [--count N] [--data-dir DIR] [--photos DIR] [--photo-count N]
     python benchmarks/faces.py --measure-box-mapping cnn [--count N] [--data-dir DIR]
     python benchmarks/faces.py --measure-box-mapping blazeface [--photos DIR]

1. The core: landmark fits, HOG detection and alignment on the sample photo shipped with emopy (no test extras
   needed). Single process, single thread.
2. The detectors (blazeface, hog, cnn, auto): on photos built from real faces, the share of faces each finds,
   against the faces any of them finds (target for auto: at least 95%), and ms per 640x480 photo. The faces are
   --count real fer2013 validation faces (PublicTest, drawn at random) when fer2013 is built in --data-dir from
   ../shared/data/fer2013, each scaled up 4x into a noisy 640x480 photo as it is ("easy") and made hard: turned
   35 degrees, the lower third covered, or half in shadow. Without the real data it says so and uses the astronaut
   and the sample photo, in the same five variants.
3. The detectors on real photos of people: the first --photo-count of --photos (default: 400 of
   ../shared/data/wild_dev/photos, beside the repository, development data: skipped, saying so, where it is not
   there), each photo as it is.
For `auto`, 2 and 3 also give each stage's share of the faces found and of auto's time: BlazeFace, then HOG on the
photo doubled, then the CNN detector, each only where the ones before found nothing.
--measure-box-mapping cnn prints detection.CNN_TO_HOG: where HOG's box sits against the CNN detector's, on the easy
faces both find, and how far apart the landmarks fitted on either box are. --measure-box-mapping blazeface fits
BLAZEFACE_TO_HOG, HOG's box from BlazeFace's eyes and mouth, on every other real photo both BlazeFace and HOG find a
face in, and measures the landmark distance on the rest.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import cv2
import dlib
import numpy as np

from emopy_tfds import detection, faces
from emopy_tfds.data import sample_photo

FER2013_ROWS = 35_887
REAL_TIME_FPS = 30.0
AUTO_TARGET = 0.95
VARIANTS = ("easy", "turned 35 deg", "lower third covered", "half in shadow")


def median_ms(call: Callable[[], object], repeats: int, per_repeat: int) -> float:
    """Median over `repeats` of the mean time of `per_repeat` calls, in milliseconds."""
    call()  # warm up: lazy model loads and caches stay out of the figures
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(per_repeat):
            call()
        samples.append((time.perf_counter() - started) / per_repeat * 1000)
    return statistics.median(samples)


def frame_640x480(photo: np.ndarray) -> np.ndarray:
    """The sample photo scaled to a 480-pixel-high webcam-sized frame, padded to 640x480."""
    scaled = cv2.resize(photo, (480, 480), interpolation=cv2.INTER_CUBIC)
    frame = np.full((480, 640, 3), 128, np.uint8)
    frame[:, 80:560] = scaled
    return frame


def hard_variant(face: np.ndarray, variant: str) -> np.ndarray:
    """A gray face crop as it is, turned 35 degrees, with its lower third covered, or with its right half in shadow."""
    face = face.copy()
    height, width = face.shape[:2]
    if variant == "turned 35 deg":
        turn = cv2.getRotationMatrix2D((width / 2, height / 2), 35, 1.0)
        face = cv2.warpAffine(face, turn, (width, height), borderMode=cv2.BORDER_REPLICATE)
    elif variant == "lower third covered":
        face[2 * height // 3:, width // 6:5 * width // 6] = 90
    elif variant == "half in shadow":
        face[:, width // 2:] = (face[:, width // 2:] * 0.3).astype(np.uint8)
    return face


def real_faces(data_dir: Path, count: int) -> tuple[str, list[np.ndarray]]:
    """Gray face crops: real fer2013 validation faces if built in data_dir, else emopy's two sample faces."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from crop_contract import validation_faces

    try:
        rows = validation_faces(data_dir, count)
        return f"{len(rows)} real fer2013 validation faces", [row["image"][:, :, 0] for row in rows]
    except SystemExit as missing:
        print(f"  ({missing}; using the astronaut and the sample photo instead)")
    from skimage import data as skimage_data

    crops = []
    for photo in (skimage_data.astronaut(), faces.load_image(sample_photo())):
        (face,) = faces.find_faces(photo, detector="hog")
        crops.append(faces.align_face(photo, face.landmarks, faces.FER2013_FRAMING).image[:, :, 0])
    return "2 sample faces (no real data)", crops


def photos(crops: list[np.ndarray]) -> Iterator[tuple[str, np.ndarray]]:
    """Each crop in each variant, scaled up 4x (about a 190 px face) into a noisy 640x480 photo."""
    from crop_contract import photo_of

    rng = np.random.default_rng(0)
    for crop in crops:
        for variant in VARIANTS:
            yield variant, photo_of(hard_variant(crop, variant), rng)[0]


def compare_detectors(data_dir: Path, count: int) -> None:
    what, crops = real_faces(data_dir, count)
    detectors = {name: (lambda photo, name=name: faces.detect_faces(photo, detector=name)) for name in faces.DETECTORS}
    found = {name: [] for name in detectors}
    seconds = {name: [] for name in detectors}
    variants = []
    for variant, photo in photos(crops):
        variants.append(variant)
        for name, detect in detectors.items():
            started = time.perf_counter()
            found[name].append(bool(len(detect(photo))))
            seconds[name].append(time.perf_counter() - started)
    variants = np.array(variants)
    anyone = np.any([found[name] for name in detectors], axis=0)
    print(f"\ndetectors on {what}, each {'; '.join(VARIANTS)} ({len(variants)} photos, 640x480):")
    print(f"  {'detector':<9}" + "".join(f"{variant:>21}" for variant in VARIANTS)
          + f"{'all':>8}{'of any':>8}{'ms/photo':>10}")
    for name in detectors:
        hits = np.array(found[name])
        print(f"  {name:<9}" + "".join(f"{hits[variants == variant].mean():>21.1%}" for variant in VARIANTS)
              + f"{hits.mean():>8.1%}{hits[anyone].mean():>8.1%}{1000 * np.median(seconds[name]):>10.1f}")
    print_auto_stages([photo for _, photo in photos(crops)])
    share = np.array(found["auto"])[anyone].mean()
    print(f"  auto finds {share:.1%} of the faces any detector finds (target >= {AUTO_TARGET:.0%}: "
          f"{'met' if share >= AUTO_TARGET else 'NOT met'}); median ms per photo where HOG finds the face: "
          f"auto {1000 * np.median(np.array(seconds['auto'])[np.array(found['hog'])]):.1f}, "
          f"blazeface {1000 * np.median(np.array(seconds['blazeface'])[np.array(found['hog'])]):.1f}, "
          f"hog {1000 * np.median(np.array(seconds['hog'])[np.array(found['hog'])]):.1f}")


def auto_stages(photo: np.ndarray) -> tuple[str | None, dict[str, float]]:
    """The stage of `auto` that found a face in the photo (None: none did) and the seconds each stage that ran took,
    running detection.AUTO_ORDER's stages one by one as auto does."""
    gray = faces.gray_image(photo)
    seconds = {}
    for name, more in detection.AUTO_ORDER:
        started = time.perf_counter()
        found = detection.boxes_by(name, gray, more)
        seconds[name] = time.perf_counter() - started
        if found:
            return name, seconds
    return None, seconds


def print_auto_stages(photos: list[np.ndarray]) -> None:
    stages = [auto_stages(photo) for photo in photos]
    found = [stage for stage, _ in stages if stage]
    total = sum(sum(seconds.values()) for _, seconds in stages)
    print("  auto's stages: " + "; ".join(
        f"{name} finds {found.count(name) / max(1, len(found)):.1%} of the faces found, "
        f"{sum(seconds.get(name, 0.0) for _, seconds in stages) / total:.1%} of the time"
        for name, _ in detection.AUTO_ORDER) + f" ({len(found)} of {len(photos)} photos, "
        f"{1000 * total / len(photos):.1f} ms a photo)")


def compare_on_real_photos(folder: Path, count: int) -> None:
    if not folder.is_dir():
        print(f"\nreal photos: {folder} is not there (development data), so this part is skipped")
        return
    paths = [path for path in sorted(folder.iterdir()) if path.suffix.lower() in (".jpg", ".png")]
    photos = [faces.load_image(path) for path in paths[:count]]
    print(f"\ndetectors on the first {len(photos)} real photos of people in {folder}, each as it is (the CNN "
          f"detector alone, about 1.4 s a photo, only as auto's last stage):")
    print(f"  {'detector':<10}{'found':>8}{'ms/photo':>10}")
    for name in ("blazeface", "hog", "auto"):
        detect = (lambda photo, name=name: faces.detect_faces(photo, detector=name))
        detect(photos[0])  # warm up
        started = time.perf_counter()
        hits = [bool(detect(photo)) for photo in photos]
        print(f"  {name:<10}{np.mean(hits):>8.1%}{1000 * (time.perf_counter() - started) / len(photos):>10.1f}")
    print_auto_stages(photos)


def measure_blazeface_mapping(folder: Path) -> None:
    """BLAZEFACE_TO_HOG: HOG's box from BlazeFace's eyes and mouth, fitted on every other real photo both find a face
    in (the centre's place between eyes and mouth: a median; the side: least squares on the eye distance and the
    eye-to-mouth distance); the landmark distance after the mapping, on the others."""
    if not folder.is_dir():
        sys.exit(f"{folder} is not there: --measure-box-mapping blazeface needs real photos (--photos DIR)")
    pairs = []
    for path in sorted(folder.iterdir()):
        gray = faces.gray_image(faces.load_image(path))
        hog, found = detection.hog_boxes(gray), detection._blazeface()(gray)
        if hog and found:
            pairs.append((gray, hog[0], found[0]))
    fitted = pairs[0::2]
    eyes = np.array([found.keypoints[:2].mean(axis=0) for _, _, found in fitted], np.float64)
    mouths = np.array([found.keypoints[3] for _, _, found in fitted], np.float64)
    distances = np.array([[np.linalg.norm(found.keypoints[1] - found.keypoints[0]), np.linalg.norm(mouth - eye)]
                          for (_, _, found), eye, mouth in zip(fitted, eyes, mouths)])
    centres = np.array([[box.x + box.w / 2, box.y + box.h / 2] for _, box, _ in fitted])
    along = np.median(np.sum((centres - eyes) * (mouths - eyes), axis=1) / np.sum((mouths - eyes) ** 2, axis=1))
    (per_eyes, per_mouth), *_ = np.linalg.lstsq(distances, [box.w for _, box, _ in fitted], rcond=None)
    mapping = {"centre": along, "eyes": per_eyes, "mouth": per_mouth}
    errors = []
    for gray, box, found in pairs[1::2]:
        points = faces.fit_landmarks(gray, box), faces.fit_landmarks(gray, detection.blazeface_to_hog(found, mapping))
        errors.append(np.linalg.norm(points[0] - points[1], axis=1).mean() / box.w)
    print(f"box mapping on {len(pairs)} real photos where both BlazeFace and HOG find a face ({folder}):")
    print(f'  fitted on {len(fitted)}: BLAZEFACE_TO_HOG = '
          f'{{"centre": {along:.3f}, "eyes": {per_eyes:.3f}, "mouth": {per_mouth:.3f}}}')
    print(f"  on the other {len(errors)}: landmarks on the mapped box against HOG's box, mean point distance / box "
          f"side: median {np.median(errors):.4f}, 90th percentile {np.percentile(errors, 90):.4f} "
          f"(detection.py now: {detection.BLAZEFACE_TO_HOG})")


def measure_box_mapping(data_dir: Path, count: int) -> None:
    """Where HOG's box sits against the CNN detector's on the easy faces both find; landmark agreement after it."""
    what, crops = real_faces(data_dir, count)
    offsets, errors = [], []
    for variant, photo in photos(crops):
        if variant != "easy":
            continue
        hog = detection.hog_boxes(photo)
        cnn, scale = detection.cnn_detections(photo), detection.CNN_SCALE
        if not hog or not cnn:
            continue
        rect, box = cnn[0], hog[0]
        side = (rect.width() + rect.height()) / 2 / scale
        centre = np.array([(rect.left() + rect.right() + 1) / 2, (rect.top() + rect.bottom() + 1) / 2]) / scale
        offsets.append([(box.x + box.w / 2 - centre[0]) / side, (box.y + box.h / 2 - centre[1]) / side, box.w / side])
        mapped = detection.cnn_to_hog(rect, scale)
        points = faces.fit_landmarks(photo, box), faces.fit_landmarks(photo, mapped)
        errors.append(np.linalg.norm(points[0] - points[1], axis=1).mean() / box.w)
    offsets = np.array(offsets)
    dx, dy, ratio = np.median(offsets, axis=0)
    print(f"box mapping on {len(offsets)} easy faces of {what} found by both detectors (the CNN one at "
          f"{detection.CNN_SCALE}x size):")
    print(f'  CNN_TO_HOG = {{"dx": {dx:.3f}, "dy": {dy:.3f}, "scale": {ratio:.3f}}}  (interquartile ranges '
          + ", ".join(f"{q:.3f}" for q in np.subtract(*np.percentile(offsets, [75, 25], axis=0))) + ")")
    print(f"  with the mapping in detection.py now ({detection.CNN_TO_HOG}): landmarks on the mapped CNN box against "
          f"HOG's box, mean point distance / box side: median {np.median(errors):.4f}, 90th percentile "
          f"{np.percentile(errors, 90):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--count", type=int, default=100, help="real faces for the detector comparison")
    parser.add_argument("--data-dir", type=Path, default=Path("~/tensorflow_datasets").expanduser())
    parser.add_argument("--photos", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
                        / "wild_dev" / "photos", help="real photos of people (default: the development data's)")
    parser.add_argument("--photo-count", type=int, default=400, help="real photos for the detector comparison")
    parser.add_argument("--measure-box-mapping", choices=["cnn", "blazeface"],
                        help="print CNN_TO_HOG's or BLAZEFACE_TO_HOG's measurement and stop")
    args = parser.parse_args()
    if args.measure_box_mapping == "cnn":
        measure_box_mapping(args.data_dir, args.count)
        return
    if args.measure_box_mapping == "blazeface":
        measure_blazeface_mapping(args.photos)
        return

    started = time.perf_counter()
    faces._shape_predictor(str(faces.landmark_model_path()))
    model_load_s = time.perf_counter() - started

    frame = frame_640x480(faces.load_image(sample_photo()))
    (face,) = faces.find_faces(frame)
    crop48 = faces.align_face(frame, face.landmarks, faces.FaceSpec(crop_size=48)).image

    fit_crop = median_ms(lambda: faces.find_faces(crop48, already_cropped=True), args.repeats, 200)
    fit_real = median_ms(lambda: faces.fit_landmarks(frame, face.box), args.repeats, 200)
    detect_0 = median_ms(lambda: faces.detect_faces(frame, upsample=0, detector="hog"), args.repeats, 10)
    detect_1 = median_ms(lambda: faces.detect_faces(frame, upsample=1, detector="hog"), args.repeats, 3)
    frame_ms = median_ms(lambda: faces.find_faces(frame), args.repeats, 10)
    align_ms = median_ms(lambda: faces.align_face(frame, face.landmarks, faces.FaceSpec()), args.repeats, 200)

    print(f"emopy face core benchmark: dlib {dlib.__version__}, OpenCV {cv2.__version__}, one thread, "
          f"median of {args.repeats} runs")
    print(f"  landmark model load (once per process)        {model_load_s * 1000:8.1f} ms")
    print(f"  landmark fit, 48x48 crop (already cropped)     {fit_crop:8.3f} ms")
    print(f"  landmark fit, real-size face ({face.box.w} px box)      {fit_real:8.3f} ms"
          f"   ratio to 48x48: {fit_real / fit_crop:.2f} (ideal 1.00: dlib's fit samples a fixed pixel count)")
    print(f"  detection 640x480, no upsampling               {detect_0:8.1f} ms")
    print(f"  detection 640x480, upsample 1                  {detect_1:8.1f} ms"
          f"   ratio to no upsampling: {detect_1 / detect_0:.2f} (baseline 4.00: 4x the pixels)")
    print(f"  align + crop to 48x48                          {align_ms:8.3f} ms")
    fps = 1000.0 / frame_ms
    print(f"  detect + fit, one 640x480 frame                {frame_ms:8.1f} ms = {fps:.0f} fps"
          f"   ratio to real time ({REAL_TIME_FPS:.0f} fps): {fps / REAL_TIME_FPS:.2f}")
    print(f"  projected fer2013 landmarks ({FER2013_ROWS} rows), one core: {FER2013_ROWS * fit_crop / 1000:.1f} s")
    compare_detectors(args.data_dir, args.count)
    compare_on_real_photos(args.photos, args.photo_count)


if __name__ == "__main__":
    main()
