"""The studio's background processes (`emopy train`, `tune`, `export`, `evaluate`), started without a shell.

Each runs `python -m emopy.pipeline.cli COMMAND ...` with an argument list, in its own session, its output to the
folder's studio.log; when it ends, its exit status goes to studio-exit.json there, so that the page tells a failed
run (and its error) from a stopped one, even after the studio restarts. Stopping sends SIGTERM, and Keras's
BackupAndRestore keeps the last finished epoch: the same form resumes the run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

from emopy.pipeline.run_dir import write_json
from emopy.studio.runs import EXIT_FILE, LOG_FILE


class Jobs:
    """The processes this studio started, by folder."""

    def __init__(self) -> None:
        self._processes: dict[Path, subprocess.Popen] = {}
        self._stopped: set[Path] = set()
        self._lock = threading.Lock()

    def start(self, folder: Path, argv: Sequence[str]) -> subprocess.Popen:
        """Starts `emopy ARGV...` for `folder` (a run or study directory); refuses a second one there."""
        with self._lock:
            if self.running(folder):
                raise ValueError(f"{folder.name} is already running: stop it first")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / EXIT_FILE).unlink(missing_ok=True)
            self._stopped.discard(folder)
            with (folder / LOG_FILE).open("a") as log:
                log.write(f"\n$ emopy {' '.join(argv)}\n")
                log.flush()
                process = subprocess.Popen([sys.executable, "-m", "emopy.pipeline.cli", *argv], stdout=log,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            self._processes[folder] = process
        threading.Thread(target=self._record_exit, args=(folder, process), daemon=True).start()
        return process

    def _record_exit(self, folder: Path, process: subprocess.Popen) -> None:
        returncode = process.wait()
        write_json(folder / EXIT_FILE, {"returncode": returncode, "stopped": folder in self._stopped,
                                        "ended": time.time()})

    def running(self, folder: Path) -> bool:
        process = self._processes.get(folder)
        return process is not None and process.poll() is None

    def stop(self, folder: Path, wait: float = 30.0) -> bool:
        """Stops the process of `folder` (SIGTERM to its session, then SIGKILL after `wait` s); False if none ran."""
        process = self._processes.get(folder)
        if process is None or process.poll() is not None:
            return False
        self._stopped.add(folder)
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        return True

    def stop_all(self) -> None:
        for folder in list(self._processes):
            self.stop(folder, wait=5.0)
