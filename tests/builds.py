"""Helpers for tests that build datasets: run `emopy build`, build in this process, and read built splits as a user's
script would."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from emopy.pipeline.build import IN_MEMORY

# `emopy build` flags that run its Beam pipeline in the command's own process, for tests of the command whose point
# is not its worker processes.
IN_PROCESS = ("--workers", "1", "--beam-options", IN_MEMORY)


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


def emopy_build_here(dataset: str, *args: str) -> subprocess.CompletedProcess:
    """`emopy build DATASET ...` through the command's main() in this process: its exit status and what it printed,
    as a CompletedProcess. For tests of what the command decides and says on bad input (with IN_PROCESS, its Beam
    pipeline runs here too); a process of its own (emopy_build) costs such a test about 9 s of start-up on 2 cores."""
    from emopy.pipeline import cli

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = cli.main(["build", dataset, *args])
    return subprocess.CompletedProcess(["emopy", "build", dataset, *args], status, stdout.getvalue(),
                                       stderr.getvalue())


def build_here(dataset: str, manual_dir: Path, data_dir: Path, config: str | None = None, **options) -> str:
    """What `emopy build DATASET --workers 1` does (pipeline/build.run), run in this process on Beam's in-memory
    DirectRunner; returns the summary it prints. Each Beam worker process costs a test about 15 s on 2 cores
    (its TensorFlow, dlib and Beam start-up): tests whose point is the data, not the workers, build here, while
    the tests of `emopy build` itself run the command with its worker processes."""
    from emopy.pipeline import build

    summary, errors = io.StringIO(), io.StringIO()
    status = build.run(dataset, manual_dir=str(manual_dir), data_dir=str(data_dir), config=config, workers=1,
                       beam_options=IN_MEMORY, stdout=summary, stderr=errors, **options)
    assert status == 0, errors.getvalue()[-3000:]
    return summary.getvalue()


def load_splits(data_dir: Path, *names_and_splits: tuple[str, str]) -> dict[tuple[str, str], list[dict]]:
    """Built splits' examples through tfds.load in one fresh process, as JSON-able dicts (text decoded), by
    (name, split). One process for all: each costs a test TensorFlow's import, about 7 s on 2 cores."""
    script = (
        "import json, sys, emopy_tfds, tensorflow_datasets as tfds\n"
        "rows = {}\n"
        f"for name, split in {list(names_and_splits)!r}:\n"
        f"    ds = tfds.load(name, split=split, data_dir={str(data_dir)!r})\n"
        "    rows[f'{name} {split}'] = [{k: (v.decode() if isinstance(v, bytes) else v.tolist())"
        " for k, v in ex.items()} for ex in tfds.as_numpy(ds)]\n"
        "json.dump(rows, sys.stdout)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout)
    return {(name, split): rows[f"{name} {split}"] for name, split in names_and_splits}


def load_split(data_dir: Path, name: str, split: str = "train") -> list[dict]:
    """A built split's examples through tfds.load in a fresh process, as JSON-able dicts (text decoded)."""
    return load_splits(data_dir, (name, split))[name, split]
