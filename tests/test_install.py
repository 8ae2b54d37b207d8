"""The install brings everything later stages rely on: the tfds command line, tfds.testing, Beam, TF Serving."""

from __future__ import annotations

import subprocess
import sys


def test_stack_imports_and_tfds_command_line_runs():
    script = (
        "import apache_beam, tensorflow as tf, tf_keras, tensorflow_datasets as tfds\n"
        "import tensorflow_datasets.testing\n"
        "from tensorflow_serving.apis import prediction_service_pb2_grpc, model_service_pb2_grpc\n"
        "assert tf.__version__.startswith('2.21.'), tf.__version__\n"
        "assert tf_keras.__version__.startswith('2.21.'), tf_keras.__version__\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    result = subprocess.run(["tfds", "build", "--help"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--manual_dir" in result.stdout
