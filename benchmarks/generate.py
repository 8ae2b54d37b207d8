"""Benchmark of an InfoGAN run's faces: does the shipped `ferplus` model read the asked expression, how far are they
from real faces, and how fast 64 are made. Real faces are measured the same way in the same run, beside them.

Run: python benchmarks/generate.py --run RUN [--data-dir DATA] [--per-class 250] [--fid-faces 2000]
                                   [--samples docs/infogan_samples.png]

Reads real FER+ (`emopy build fer2013 --config ferplus ...`) from --data-dir; says so in one line and exits 1 when
it is not built there. Prints:

- agreement: the share of --per-class faces of each expression that `ferplus` (the shipped export's `pixels`
  signature, as `emopy evaluate --model ferplus` runs it) reads as that expression, and the mean over the
  expressions; beside it, the same model's recall on the real faces of FER+ PublicTest (majority labels);
- a Fréchet distance (FID's formula) in the feature space of emopy's own classifier: the 256 units before the
  classifier of each of `ferplus`'s three members (768 numbers a face, read from its TFLite copy). Generated faces
  against PublicTest faces, beside train faces against the same PublicTest faces, with the ratio; the generated
  faces' expressions follow PublicTest's, and every set has --fid-faces faces;
- the time to make 64 faces (the generator alone, after a first call), against the 1 s goal.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import numpy as np

# Run as a script, this folder comes first on sys.path, and benchmarks/serving.py would hide the serving package.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

DATASET = "fer2013/ferplus"
SCHEME = "fer2013_contempt"  # the shipped ferplus model's classes
GOALS = {"mean agreement": 0.60, "agreement of happy, surprise, neutral": 0.80, "FID ratio": 3.0, "64 faces (s)": 1.0}


def check_built(data_dir: Path) -> None:
    import tensorflow_datasets as tfds

    importlib.import_module("emopy_tfds")  # registers the builders
    if not tfds.builder(DATASET, data_dir=str(data_dir)).is_prepared():
        raise SystemExit(f"generate: real {DATASET} is not built in {data_dir}; build it with `emopy build fer2013 "
                         f"--config ferplus --manual-dir DIR --data-dir {data_dir}` (DIR holding fer2013's CSV and "
                         f"Microsoft's fer2013new.csv)")


def real_faces(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A split's faces (uint8 [N, 48, 48, 1]) and their majority class ids in SCHEME."""
    from emopy import models
    from emopy.pipeline import data

    config = data.DataConfig(DATASET, data_dir=str(data_dir), labels=SCHEME, targets="majority")
    images, ids = [], []
    for batch in data.examples(config, split, models.InputSpec(kind="image")).batch(1024).as_numpy_iterator():
        images.append(batch["image"])
        ids.append(batch["class_id"])
    return np.concatenate(images), np.concatenate(ids)


class Ferplus:
    """The shipped ferplus model: its probabilities through the export's `pixels` signature, and its members'
    penultimate features through its TFLite copy (every tensor kept)."""

    def __init__(self, batch: int = 64):
        import tensorflow as tf
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        from emopy.serving import layout, shipped

        version_dir = layout.resolve_export(shipped.resolve_model("ferplus"))
        self.class_names = layout.read_assets(version_dir)[0]
        self.signature = tf.saved_model.load(str(version_dir)).signatures[layout.PIXELS_SIGNATURE]
        # Without the default XNNPACK delegate, whose fused kernels keep no intermediate tensors.
        self.lite = Interpreter(str(version_dir / "assets.extra" / "pixels.tflite"),
                                experimental_preserve_all_tensors=True,
                                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        self.input = self.lite.get_input_details()[0]["index"]
        self.lite.resize_tensor_input(self.input, [batch, 48, 48, 1])
        self.lite.allocate_tensors()
        self.batch = batch
        self.features = [d["index"] for d in self.lite.get_tensor_details()
                         if "/dense/" in d["name"] and "logits" not in d["name"] and list(d["shape"]) == [batch, 256]]
        if len(self.features) != 3:
            raise SystemExit(f"generate: expected the 3 members' 256-unit layers in ferplus's TFLite copy, found "
                             f"{len(self.features)}")

    def classify(self, faces: np.ndarray) -> np.ndarray:
        return np.concatenate([np.argmax(self.signature(image=faces[start:start + 256])["probabilities"], -1)
                               for start in range(0, len(faces), 256)])

    def embed(self, faces: np.ndarray) -> np.ndarray:
        rows = []
        for start in range(0, len(faces), self.batch):
            chunk = faces[start:start + self.batch]
            padded = np.concatenate([chunk, np.zeros((self.batch - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            self.lite.set_tensor(self.input, padded)
            self.lite.invoke()
            rows.append(np.concatenate([self.lite.get_tensor(i) for i in self.features], axis=1)[:len(chunk)])
        return np.concatenate(rows).astype(np.float64)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) of two feature sets [N, D] (FID's formula)."""
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr((S_a S_b)^1/2) = sum of the square roots of the eigenvalues of S_a^1/2 S_b S_a^1/2 (symmetric, PSD).
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="an InfoGAN run (emopy train --model infogan)")
    parser.add_argument("--data-dir", type=Path, default=Path("~/tensorflow_datasets").expanduser(),
                        help="where fer2013/ferplus is built (default: ~/tensorflow_datasets)")
    parser.add_argument("--per-class", type=int, default=250, help="generated faces per expression for agreement")
    parser.add_argument("--fid-faces", type=int, default=2000, help="faces in each set of the Fréchet distance")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=Path, help="also write a grid of 8 faces per expression here")
    args = parser.parse_args()
    check_built(args.data_dir.expanduser())

    from emopy.pipeline import generate, infogan_faces
    from emopy_tfds import images, labels

    opened = infogan_faces.generator_run(args.run)
    model = infogan_faces.load_generator(opened)
    ferplus = Ferplus()
    canonical = [labels.canonical(name) for name in ferplus.class_names]
    to_ferplus = np.array([canonical.index(labels.canonical(name)) for name in opened.class_names])

    # Speed: the generator alone, 64 faces, after a first call (which traces the graph).
    latents = model.draw(64, args.seed)
    first = time.perf_counter()
    model.render(np.zeros(64, int), *latents)
    first = time.perf_counter() - first
    times = []
    for repeat in range(5):
        start = time.perf_counter()
        model.render(np.full(64, repeat % model.num_classes), *latents)
        times.append(time.perf_counter() - start)
    made_64 = float(np.median(times))

    test_faces, test_ids = real_faces(args.data_dir, "validation")
    rng = np.random.default_rng(args.seed)
    print(f"InfoGAN {opened.path} ({opened.record['finished']['epochs_trained']} epochs) read by the shipped ferplus "
          f"model; real faces: FER+ PublicTest, {len(test_faces)} faces")
    print(f"{'expression':<12}{'generated read as asked':>26}{'real PublicTest recall':>26}")
    agreement = {}
    real_predicted = ferplus.classify(test_faces)
    for class_id, name in enumerate(opened.class_names):
        faces = model.sample(np.full(args.per_class, class_id), seed=args.seed + class_id)
        agreement[name] = float(np.mean(ferplus.classify(faces) == to_ferplus[class_id]))
        real = test_ids == to_ferplus[class_id]
        recall = float(np.mean(real_predicted[real] == to_ferplus[class_id])) if real.any() else float("nan")
        print(f"{name:<12}{agreement[name]:>26.3f}{recall:>26.3f}  ({real.sum()} real faces)")
    mean = float(np.mean(list(agreement.values())))
    real_mean = float(np.mean([np.mean(real_predicted[test_ids == k] == k) for k in np.unique(test_ids)]))
    print(f"{'mean':<12}{mean:>26.3f}{real_mean:>26.3f}")

    # Real faces of the expressions the InfoGAN makes; generated ones in PublicTest's proportions of them, so that
    # the distance compares faces, not mixes of expressions.
    train_faces, train_ids = real_faces(args.data_dir, "train")
    made_here = np.isin(test_ids, to_ferplus)
    count = min(args.fid_faces, int(made_here.sum()))
    test_pick = rng.choice(np.flatnonzero(made_here), count, replace=False)
    train_pick = rng.choice(np.flatnonzero(np.isin(train_ids, to_ferplus)), count, replace=False)
    from_ferplus = {int(k): class_id for class_id, k in enumerate(to_ferplus)}
    wanted = np.array([from_ferplus[int(k)] for k in test_ids[test_pick]])
    generated = model.sample(wanted, seed=args.seed + 100)
    test_features = ferplus.embed(test_faces[test_pick])
    fid_train = frechet_distance(ferplus.embed(train_faces[train_pick]), test_features)
    fid_generated = frechet_distance(ferplus.embed(generated), test_features)
    print(f"Fréchet distance in ferplus's features ({count} faces a set): generated-test {fid_generated:.1f}, "
          f"train-test {fid_train:.1f}: ratio {fid_generated / fid_train:.1f}x (goal <= {GOALS['FID ratio']:.0f}x)")

    print(f"64 faces made in {made_64 * 1000:.0f} ms (median of 5; first call {first * 1000:.0f} ms): "
          f"{made_64 / GOALS['64 faces (s)']:.2f}x the 1 s budget")
    strong = [agreement[n] for n in opened.class_names if labels.canonical(n) in ("happiness", "surprise", "neutral")]
    print(f"goals: mean agreement {mean:.3f} vs {GOALS['mean agreement']} "
          f"({'met' if mean >= GOALS['mean agreement'] else 'not met'}); happy/surprise/neutral "
          f"{', '.join(f'{v:.3f}' for v in strong)} vs {GOALS['agreement of happy, surprise, neutral']} "
          f"({'met' if min(strong) >= GOALS['agreement of happy, surprise, neutral'] else 'not met'}); FID ratio "
          f"{fid_generated / fid_train:.1f} vs {GOALS['FID ratio']} "
          f"({'met' if fid_generated / fid_train <= GOALS['FID ratio'] else 'not met'})")
    if args.samples:
        made = generate.generate(model, opened.class_names, list(range(model.num_classes)), count=8, seed=args.seed)
        args.samples.write_bytes(images.encode_png(generate.grid(made.rows)))
        print(f"samples: {args.samples}")


if __name__ == "__main__":
    main()
