"""Benchmark of leave-one-subject-out on WESAD, judged by Schmidt et al. (2018)'s accuracies: about 80 % on
baseline / stress / amusement (`wesad3`) and about 93 % on stress against the rest (`stress`).

Run: python benchmarks/wesad_loso.py --manual-dir DIR [--data-dir DIR] [--config chest|wrist|both]
                                     [--model physio_mlp|signal_cnn] [--epochs N] [--out DIR]
     python benchmarks/wesad_loso.py --generated [--subjects N] ...   (generated subjects: shows the script runs)

1. Finds a WESAD copy: --manual-dir (S2/S2.pkl ... in WESAD's layout, or WESAD.zip), else ../shared/data/WESAD.
   With none, it says so plainly and stops with no figures. `--generated` writes subjects instead
   (emopy_tfds/wesad/dummy_data_generation.py): figures about the generator, never about WESAD or people.
2. Builds wesad/CONFIG with `emopy build wesad` unless it is built in --data-dir already.
3. Runs `emopy train --cv loso` for each task (one run per subject: test that subject, validate the next,
   train on the rest), and prints accuracy and macro F1 (mean ± std over subjects, and pooled over every
   subject's windows) beside the paper's accuracy, with the ratio of the mean to it, and the time per fold.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "WESAD"
# Schmidt et al. (2018), "Introducing WESAD", ICMI: the best leave-one-subject-out accuracies the paper reports
# (its abstract's "up to 80 %" three-class and "93 %" binary, over its classifiers and sensor combinations).
PAPER_ACCURACY = {"wesad3": 0.80, "stress": 0.93}
TASKS = {"wesad3": "baseline / stress / amusement", "stress": "stress / non-stress"}


def find_copy(manual_dir: Path | None) -> Path | None:
    """The folder holding a WESAD copy (SX/SX.pkl folders, directly or under WESAD/, or WESAD.zip), or None."""
    for folder in ([manual_dir] if manual_dir else [SOURCE, SOURCE.parent]):
        if folder and folder.is_dir() and ((folder / "WESAD.zip").exists() or any(folder.glob("S*/S*.pkl"))
                                           or any(folder.glob("WESAD/S*/S*.pkl"))):
            return folder
    return None


def ensure_built(manual_dir: Path, data_dir: Path, config: str) -> None:
    from emopy.pipeline import data

    try:
        data.check_built(data.DataConfig(f"wesad/{config}", data_dir=str(data_dir)))
        print(f"wesad/{config} is built in {data_dir}: using it")
        return
    except data.DatasetNotBuiltError:
        pass
    print(f"building wesad/{config} from {manual_dir} into {data_dir} ...", flush=True)
    started = time.perf_counter()
    result = subprocess.run(["emopy", "build", "wesad", "--config", config, "--manual-dir", str(manual_dir),
                             "--data-dir", str(data_dir)], capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"wesad_loso: the build failed:\n{result.stderr[-4000:]}")
    print(f"built in {time.perf_counter() - started:.0f} s")


def loso(config: str, data_dir: Path, out: Path, model: str, task: str, epochs: int, batch_size: int
         ) -> tuple[dict, float]:
    """Runs LOSO on one task in this process (cross_validate.run, as `emopy train --cv loso` does); returns cv.json's
    summary and the seconds it took."""
    import tf_keras as keras

    from emopy.pipeline import cross_validate, train

    keras.backend.clear_session()
    started = time.perf_counter()
    summary = cross_validate.run(train.TrainConfig(dataset=f"wesad/{config}", model=model, out=str(out / task),
                                                   data_dir=str(data_dir), labels=task, epochs=epochs,
                                                   batch_size=batch_size, seed=0), cross_validate.LOSO)
    return summary, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manual-dir", type=Path, help="a WESAD copy (default: ../shared/data/WESAD)")
    parser.add_argument("--generated", action="store_true", help="generated subjects, not WESAD: shows it runs")
    parser.add_argument("--subjects", type=int, default=5, help="with --generated: how many (default 5)")
    parser.add_argument("--data-dir", type=Path, help="where TFDS datasets live (default: ~/tensorflow_datasets; "
                        "with --generated, a folder under --out)")
    parser.add_argument("--config", default="chest", choices=["chest", "wrist", "both"])
    parser.add_argument("--model", default="physio_mlp", choices=["physio_mlp", "signal_cnn"])
    parser.add_argument("--epochs", type=int, default=30, help="per fold (default 30; early stopping may end it)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, help="run directories (default: a temporary folder)")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="wesad-loso-"))
    if args.generated:
        from emopy_tfds.wesad import dummy_data_generation

        manual_dir = dummy_data_generation.small_dataset(out / "generated", subjects=args.subjects,
                                                         phase_seconds=120)
        data_dir = args.data_dir or out / "data"
        what = f"{args.subjects} GENERATED subjects (dummy_data_generation; not WESAD: no figure here is about people)"
    else:
        manual_dir = find_copy(args.manual_dir)
        if manual_dir is None:
            where = args.manual_dir or f"{SOURCE} (WESAD is downloaded by hand under its own licence)"
            print(f"wesad_loso: no WESAD copy is present at {where}: nothing measured, no figures. Give one with "
                  f"--manual-dir DIR (S2/S2.pkl ... or WESAD.zip), or run --generated to see the script work.")
            return
        data_dir = args.data_dir or Path("~/tensorflow_datasets").expanduser()
        what = f"WESAD from {manual_dir}"
    load = os.getloadavg()[0]
    print(f"wesad_loso: {args.model} on wesad/{args.config}, {what}; {args.epochs} epochs a fold at most; "
          f"{platform.node()}, {os.cpu_count()} cores, load average {load:.1f} at the start")
    ensure_built(manual_dir, data_dir, args.config)

    rows = []
    for task in TASKS:
        summary, seconds = loso(args.config, data_dir, out, args.model, task, args.epochs, args.batch_size)
        rows.append((task, summary, seconds / len(summary["folds"])))
    print(f"\nleave-one-subject-out, {len(rows[0][1]['folds'])} subjects; runs in {out}")
    print(f"{'task':<40}{'accuracy':>17}{'macro F1':>17}{'pooled acc':>12}{'pooled F1':>11}{'paper acc':>11}"
          f"{'ratio':>7}{'s/fold':>8}")
    for task, summary, per_fold in rows:
        paper = PAPER_ACCURACY[task]
        print(f"{TASKS[task] + ' (' + task + ')':<40}"
              f"{summary['accuracy_mean']:>10.3f} ± {summary['accuracy_std']:.3f}"
              f"{summary['macro_f1_mean']:>10.3f} ± {summary['macro_f1_std']:.3f}"
              f"{summary['pooled']['accuracy']:>12.3f}{summary['pooled']['macro_f1']:>11.3f}{paper:>11.2f}"
              f"{summary['accuracy_mean'] / paper:>7.2f}{per_fold:>8.1f}")
    print("ratio: mean LOSO accuracy / the paper's (Schmidt et al. 2018); the target is 1.0 on real WESAD")
    if args.generated:
        print("generated subjects: these figures say the pipeline runs end to end, nothing about WESAD")


if __name__ == "__main__":
    main()
