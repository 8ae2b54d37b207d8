"""The flags of `emopy predict-signals`, apart from serving/predict_signals.py so that building the command line
loads neither TensorFlow nor neurokit2."""

from __future__ import annotations

import argparse

from emopy.serving.layout import DEFAULT_MODEL_NAME


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="WESAD pickles (SX.pkl) or CSVs of signals: a column "
                        "per channel named as the model's (chest_ecg, ..., wrist_bvp, ...), a row per sample")
    parser.add_argument("--model", metavar="RUN_DIR|EXPORT", help="a physiological run (emopy train --dataset "
                        "wesad/...) or its export: BASE/N, or BASE for its highest version (needed: emopy ships none; "
                        "with --server, only its labels and signal spec are read)")
    parser.add_argument("--server", metavar="HOST:PORT", help="predict on a TF Serving (or emopy serve) gRPC port; "
                        "without --model, the served model's signal_spec signature says its windows")
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME, metavar="NAME", help="the served model's name")
    parser.add_argument("--tls", action="store_true", help="with --server: talk TLS, trusting the system's CAs unless "
                        "--ca-cert")
    parser.add_argument("--ca-cert", metavar="PEM", help="with --server: TLS, trusting the CA(s) in PEM")
    parser.add_argument("--rate", type=float, metavar="HZ", help="CSVs: the rate of every column (needed unless a "
                        "`time` column in seconds gives it; where both are there, they must agree)")
    parser.add_argument("--shift", type=float, metavar="SECONDS",
                        help="start a window every SECONDS (default: the shift the model's dataset was built with)")
    parser.add_argument("--output", metavar="FILE", help="write the rows to FILE.csv or FILE.jsonl (default: a line "
                        "per window on the console)")


def run(args: argparse.Namespace) -> None:
    """`emopy predict-signals` with the parsed flags."""
    from emopy.serving import predict_signals  # TensorFlow, neurokit2
    from emopy.serving.tls import ClientTls  # grpc

    tls = ClientTls(args.ca_cert) if args.tls or args.ca_cert else None
    predict_signals.run(args.files, model=args.model, server=args.server, model_name=args.model_name, tls=tls,
                        rate=args.rate, shift_seconds=args.shift, output=args.output)
