"""`emopy tune` on real fer2013: a pruned study of vgg_small and cnn trials against the shipped recipe at equal epochs.

    python benchmarks/tune.py [--data-dir DIR] [--out DIR] [--trials 12] [--epochs 3]

Reads real fer2013 built from ../shared/data/fer2013 into --data-dir (`emopy build fer2013 --manual-dir
../shared/data/fer2013 --data-dir DIR`); says so and stops when it is not there. Runs `emopy tune` (one worker),
then `emopy train` of the shipped default model's recipe (vgg_small, its defaults) for the same epochs, and prints:
the trials pruned and the compute that saved, the CPU time of the study against its budget, and the best trial's
validation accuracy beside the recipe's. Both resume after a kill: run the same command again.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fer2013"


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(command: list[str], log: Path) -> tuple[float, float]:
    """Runs `command` to its end, its output to `log`; returns (wall, CPU) seconds."""
    wall, cpu = time.monotonic(), _cpu_seconds()
    with log.open("a") as out:
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=True)
    return time.monotonic() - wall, _cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("~/tensorflow_datasets").expanduser())
    parser.add_argument("--out", type=Path, default=Path("bench-tune"))
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--models", default="vgg_small,cnn")
    parser.add_argument("--budget-hours", type=float, default=1.5,
                        help="the CPU budget the study must finish within (CPU hours, both cores counted)")
    args = parser.parse_args()
    if not (args.data_dir / "fer2013" / "original").is_dir():
        raise SystemExit(f"tune: real fer2013 is not built in {args.data_dir}; build it with `emopy build fer2013 "
                         f"--manual-dir {SOURCE} --data-dir {args.data_dir}` (the real data is not part of the "
                         f"repository)")
    args.out.mkdir(parents=True, exist_ok=True)
    study = args.out / "study"
    tune_wall, tune_cpu = _timed(["emopy", "tune", "--dataset", "fer2013", "--data-dir", str(args.data_dir),
                                  "--models", args.models, "--trials", str(args.trials), "--epochs", str(args.epochs),
                                  "--out", str(study)], args.out / "tune.log")
    baseline = args.out / "recipe-vgg_small"
    base_wall, base_cpu = _timed(["emopy", "train", "--dataset", "fer2013", "--data-dir", str(args.data_dir),
                                  "--model", "vgg_small", "--epochs", str(args.epochs), "--out", str(baseline)],
                                 args.out / "recipe.log")
    summary = json.loads((study / "study.json").read_text())
    recipe_best = max(json.loads((baseline / "history.json").read_text())["val_accuracy"])
    finished = summary["complete"] + summary["pruned"]
    saved = 1 - summary["epochs_trained"] / summary["epochs_asked"]
    print(f"study: {finished} trials of {args.models} at {args.epochs} epochs on real fer2013 "
          f"({summary['complete']} complete, {summary['pruned']} pruned: {summary['pruned'] / finished:.0%})")
    print(f"compute: {summary['epochs_trained']} epochs trained of {summary['epochs_asked']} asked; pruning saved "
          f"{saved:.0%}")
    print(f"time: study {tune_wall / 60:.1f} min wall, {tune_cpu / 3600:.2f} CPU hours (budget {args.budget_hours} "
          f"CPU hours: {'within' if tune_cpu / 3600 <= args.budget_hours else 'OVER'}, "
          f"{tune_cpu / 3600 / args.budget_hours:.2f}x of it); recipe run {base_wall / 60:.1f} min wall")
    best = summary["best"]
    print(f"best trial {best['run_dir']}: val_accuracy {best['value']:.4f} vs the shipped recipe (vgg_small, "
          f"{args.epochs} epochs) {recipe_best:.4f}: {best['value'] / recipe_best:.3f}x "
          f"({(best['value'] - recipe_best) * 100:+.1f} points)")
    print("  settings: " + ", ".join(f"{k}={v}" for k, v in best["params"].items()))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
