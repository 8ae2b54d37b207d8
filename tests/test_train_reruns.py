"""Rerunning `emopy train` into its run directory: a killed run resumes, a finished one is left as it is until more
epochs are asked (then it continues) or --overwrite starts it over."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from emopy.pipeline import cli


def emopy(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["emopy", *args], capture_output=True, text=True, timeout=timeout)


def _epochs_logged(run_dir: Path) -> list[int]:
    path = run_dir / "history.csv"
    if not path.exists():
        return []
    return [int(line.split(",")[0]) for line in path.read_text().splitlines()[1:] if line.strip()]


@pytest.mark.scale  # a run killed and resumed in processes of its own, about 70 s: CI runs it with the scale checks
def test_a_killed_run_resumes_from_its_last_epoch(training_data, tmp_path):
    run_dir = tmp_path / "run"
    command = ["emopy", "train", "--dataset", "fer2013", "--data-dir", str(training_data), "--model", "cnn",
               "--out", str(run_dir), "--epochs", "12", "--batch-size", "16", "--patience", "100"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while len(_epochs_logged(run_dir)) < 3 and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # no chance to clean up, as when a machine is pre-empted
    process.wait()
    done_before = _epochs_logged(run_dir)
    assert 3 <= len(done_before) < 12, done_before
    assert not (run_dir / "model.keras").exists() and (run_dir / "backup").exists()

    result = emopy(*command[1:])
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = _epochs_logged(run_dir)[len(done_before):]
    # The second attempt starts after the last epoch the first one backed up (BackupAndRestore saves before
    # the CSV log is written, so it may be one ahead of the log), and does not start over.
    assert done_before[-1] + 1 <= resumed[0] <= done_before[-1] + 2, (done_before, resumed)
    assert resumed[-1] == 11
    history = json.loads((run_dir / "history.json").read_text())
    assert history["epoch"][-1] == 11 and len(history["epoch"]) >= 11


def _snapshot(run: Path) -> dict[str, object]:
    """What a rerun must leave alone: the model's bytes and time, the CSV log and config.json."""
    model = run / "model.keras"
    return {"model": model.read_bytes(), "model_mtime": model.stat().st_mtime_ns,
            "csv": (run / "history.csv").read_text(), "config": (run / "config.json").read_text()}


def test_a_finished_run_is_left_as_it_is_more_epochs_continue_it_and_overwrite_starts_over(training_data, tmp_path,
                                                                                            capsys):
    run = tmp_path / "run"

    def train(*flags: str) -> tuple[int, str, str]:
        status = cli.main(["train", "--dataset", "fer2013", "--data-dir", str(training_data), "--model", "landmarks",
                           "--out", str(run), "--batch-size", "32", *flags])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    def finished() -> dict:
        return json.loads((run / "config.json").read_text())["finished"]

    # A learning rate of ~0 leaves the weights (no batch norm in this model) and so the validation loss as they
    # are: the first epoch is the best, and --patience 1 stops the run after the second.
    frozen = ("--learning-rate", "1e-30", "--patience", "1")
    assert train("--epochs", "4", *frozen)[0] == 0
    assert _epochs_logged(run) == [0, 1] and finished() == {"epochs": 4, "epochs_trained": 2, "stopped_early": True}
    before = _snapshot(run)
    for epochs in ("4", "3"):  # as many epochs as the run asked, or fewer: nothing is trained or written
        status, out, _ = train("--epochs", epochs, *frozen)
        assert status == 0 and f"{run} holds a finished run (stopped early after 2 of 4 epochs" in out, out
        assert "rerun with --epochs above 4: it continues after epoch 2" in out and "add --overwrite" in out
        assert "Epoch" not in out and _snapshot(run) == before

    # A larger --epochs continues after the last epoch, from its weights (the same validation loss, where new
    # weights would give another), and stops early again.
    assert train("--epochs", "5", *frozen)[0] == 0
    assert _epochs_logged(run) == [0, 1, 2, 3] and finished() == {"epochs": 5, "epochs_trained": 4,
                                                                   "stopped_early": True}
    val_loss = json.loads((run / "history.json").read_text())["val_loss"]
    assert val_loss[2] == val_loss[1]

    # A run of an older emopy recorded no end and removed backup/: it is finished too, and cannot go further.
    record = json.loads((run / "config.json").read_text())
    del record["finished"]
    (run / "config.json").write_text(json.dumps(record))
    shutil.rmtree(run / "backup")
    before = _snapshot(run)
    status, out, _ = train("--epochs", "5", *frozen)
    assert status == 0 and "holds a finished run (stopped early after 4 of 5 epochs" in out, out
    status, _, err = train("--epochs", "6", *frozen)
    assert status == 2 and err.count("\n") == 1 and "backup" in err and "--overwrite" in err, err
    assert _snapshot(run) == before

    # --overwrite starts over, with other settings if need be, and removes only what training wrote.
    (run / "notes.txt").write_text("mine")
    status, out, _ = train("--epochs", "2", "--overwrite")
    assert status == 0 and "--overwrite: removed" in out and "model.keras" in out, out
    assert _epochs_logged(run) == [0, 1] and finished() == {"epochs": 2, "epochs_trained": 2, "stopped_early": False}
    assert (run / "notes.txt").read_text() == "mine" and (run / "backup").is_dir()
    before = _snapshot(run)
    status, out, _ = train("--epochs", "2")
    assert status == 0 and "holds a finished run (2 of 2 epochs trained)" in out and _snapshot(run) == before
