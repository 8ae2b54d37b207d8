"""Helpers for tests that build datasets: run `emopy build`, and read a built split as a user's script would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def emopy_build(dataset: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`emopy build DATASET ...` run to its end; the result's `pid` is the process id of `emopy build` itself, so a
    test can tell its Beam workers' lines from it."""
    with subprocess.Popen(["emopy", "build", dataset, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env={**os.environ, **(env or {})}) as process:
        try:
            stdout, stderr = process.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    result.pid = process.pid
    return result


def load_split(data_dir: Path, name: str, split: str = "train") -> list[dict]:
    """A built split's examples through tfds.load in a fresh process, as JSON-able dicts (text decoded)."""
    script = (
        "import json, sys, emopy_tfds, tensorflow_datasets as tfds\n"
        f"ds = tfds.load({name!r}, split={split!r}, data_dir={str(data_dir)!r})\n"
        "rows = [{k: (v.decode() if isinstance(v, bytes) else v.tolist()) for k, v in ex.items()}"
        " for ex in tfds.as_numpy(ds)]\n"
        "json.dump(rows, sys.stdout)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)
