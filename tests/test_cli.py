"""The `emopy` console script as users run it: landmarks on photos, the quick start, and what reaches stderr."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from emopy.pipeline import cli, quickstart
from emopy_tfds import quiet

# Lines in absl's format, as TensorFlow's C++ core logs them: "I0000 00:00:1796078895.624327  6391 port.cc:153] ...".
TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} ", re.MULTILINE)
TF_START_UP = ("cuInit", "oneDNN", "cudart_stub", "cpu_feature_guard", "absl::InitializeLog", "rebuild TensorFlow")


def emopy(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["emopy", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def _environment(**changes: str) -> dict[str, str]:
    """This environment without TF_CPP_MIN_LOG_LEVEL, which `cli.main` sets in-process for other tests and
    which would change what TensorFlow prints."""
    environment = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    return {**environment, **changes}


def _assert_no_tensorflow_lines(stderr: str) -> None:
    assert not TF_LOG_LINE.search(stderr) and not any(fragment in stderr for fragment in TF_START_UP), stderr


def test_landmarks_json_for_one_photo(photo_files, astronaut_face):
    result = emopy("landmarks", photo_files["astronaut.png"], "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["image"] == photo_files["astronaut.png"]
    (face,) = record["faces"]
    assert face["box"] == list(astronaut_face.box)
    assert len(face["landmarks"]) == 68 and all(len(point) == 2 for point in face["landmarks"])
    assert face["landmarks"][30] == astronaut_face.landmarks[30].tolist()


def test_landmarks_on_a_photo_without_a_face_is_an_empty_list(photo_files):
    result = emopy("landmarks", photo_files["blank.png"], "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"image": photo_files["blank.png"], "faces": []}


def test_unreadable_files_are_reported_in_one_line_after_the_others(photo_files, tmp_path):
    annotated = tmp_path / "out.png"
    images = [photo_files["corrupt.jpg"], photo_files["astronaut.png"], photo_files["blank.png"]]
    result = emopy("landmarks", *images, "--json", "--annotate", str(annotated))
    assert result.returncode == 1
    records = json.loads(result.stdout)
    assert [r["image"] for r in records] == images[1:]
    assert [len(r["faces"]) for r in records] == [1, 0]
    error_lines = result.stderr.strip().splitlines()
    assert len(error_lines) == 1 and "Traceback" not in result.stderr
    assert photo_files["corrupt.jpg"] in error_lines[0]
    # With several photos, each gets OUT-<photo>.png.
    assert (tmp_path / "out-astronaut.png").is_file() and (tmp_path / "out-blank.png").is_file()


def test_annotations_of_same_named_photos_never_overwrite_each_other(photo_files, tmp_path):
    import shutil

    photos = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        photos.append(str(shutil.copy(photo_files["astronaut.png"], tmp_path / folder / "x.png")))
    out = tmp_path / "annotated" / "out.png"
    out.parent.mkdir()
    result = emopy("landmarks", *photos, "--annotate", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in out.parent.iterdir()) == ["out-a-x.png", "out-b-x.png"]
    # Again: refused before any photo is read, naming the files; --overwrite replaces them.
    refused = emopy("landmarks", *photos, "--annotate", str(out))
    assert refused.returncode == 2 and not refused.stdout
    assert str(out.parent / "out-a-x.png") in refused.stderr and "--overwrite" in refused.stderr
    assert emopy("landmarks", *photos, "--annotate", str(out), "--overwrite").returncode == 0


def test_annotation_names_tell_same_named_sources_apart(tmp_path):
    from emopy.pipeline.overlay import annotation_paths

    out = tmp_path / "out.png"
    sources = ["/p/a/x.jpg", "/q/a/x.jpg", "/q/b/y.jpg", "/q/b/y.jpg", "/q/b/Y.png", "/q/v.mp4"]
    names = [path.name for path in annotation_paths(out, sources, [".png"] * 5 + [".mp4"])]
    # Folders as far up as tell them apart; the same photo twice (or a name that differs in case), a counter.
    assert names == ["out-p-a-x.png", "out-q-a-x.png", "out-y.png", "out-y-2.png", "out-Y-3.png", "out-v.mp4"]
    assert annotation_paths(out, ["/p/a/x.jpg"], [".png"]) == [out]  # one source: OUT itself
    assert annotation_paths(tmp_path / "clip", ["/p/v.mp4"], [".mp4"]) == [tmp_path / "clip.mp4"]


def test_annotate_draws_boxes_and_points_on_a_copy(photo_files, tmp_path, astronaut, astronaut_face):
    annotated = tmp_path / "annotated.png"
    result = emopy("landmarks", photo_files["astronaut.png"], "--annotate", str(annotated))
    assert result.returncode == 0, result.stderr
    assert "1 face" in result.stdout
    picture = cv2.cvtColor(cv2.imread(str(annotated)), cv2.COLOR_BGR2RGB)
    assert picture.shape == astronaut.shape
    x, y, w, h = astronaut_face.box
    changed = (picture != astronaut).any(axis=2)
    assert changed[y, x : x + w].mean() > 0.9  # the box's top edge
    assert changed.mean() < 0.05  # and little else


def test_missing_landmark_model_is_one_clear_line(photo_files, tmp_path):
    result = emopy("landmarks", photo_files["astronaut.png"], "--landmark-model", str(tmp_path / "none.dat"))
    assert result.returncode == 2
    assert "none.dat" in result.stderr and "Traceback" not in result.stderr


def test_a_small_quickstart_runs_the_whole_pipeline(tmp_path):
    """build -> train -> evaluate -> export -> serve -> predict over gRPC, on 10 synthetic faces per class."""
    workdir = tmp_path / "qs"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("mine")
    script = f"import sys; from emopy.pipeline import quickstart; sys.exit(quickstart.run({str(workdir)!r}, per_class=10, epochs=2))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for step in range(1, 8):
        assert f"{step}/7 " in result.stdout
    assert "SYNTHETIC" in (workdir / "synthetic_fer2013" / "README.txt").read_text()
    assert (workdir / "run" / "model.keras").exists() and (workdir / "export" / "1" / "saved_model.pb").exists()
    assert (workdir / "run" / "confusion-test.png").read_bytes()[:4] == b"\x89PNG"
    predictions = json.loads((workdir / "astronaut_emotions.json").read_text())
    assert len(predictions) == 1 and sum(predictions[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert cv2.imread(str(workdir / "astronaut_emotions.png")).shape == (320, 320, 3)
    assert "over gRPC" in result.stdout and "test accuracy" in result.stdout
    # A clean console: TFDS's own header, footer and "Generating splits" bar are left out, nothing redraws a line
    # (\r), and each of emopy's progress lines shows once: the seven steps, then each Beam batch of the build.
    console = result.stdout + result.stderr
    assert "Downloading and preparing" not in console and "downloaded and prepared" not in console, console
    assert "Generating splits" not in console and "\r" not in console, console
    # Nor Beam's warnings (a bare TaggedOutput in a return type), nor TFLite's delegate line (BlazeFace's LiteRT).
    # (TensorFlow's own start-up lines are `emopy`'s to hold back, which this direct call skips: see
    # test_tensorflow_start_up_lines_stay_off_the_terminal_unless_verbose.)
    assert not re.search("WARNING:apache_beam|TaggedOutput|XNNPACK", console), console
    assert all(result.stdout.count(f"] {step}/7 ") == 1 for step in range(1, 8)), result.stdout
    batches = re.findall(r"^fer2013: batch (\d+)/(\d+) \(", result.stderr, re.MULTILINE)
    assert sorted(int(number) for number, _ in batches) == list(range(1, int(batches[0][1]) + 1)), result.stderr
    # The next steps suggest what a laptop trains in an afternoon: the shipped models' recipe, not vgg.
    assert "--model vgg_small" in result.stdout and "--model vgg " not in result.stdout

    # A second quick start in the same workdir replaces what the first made, and only that: each of its folders
    # is marked, and its files are recorded by their bytes (an edited one is not its own any more). This is the
    # first thing a rerun does; the rest is the run above.
    assert (workdir / "notes.txt").read_text() == "mine" and quickstart.not_made_here(workdir) == []
    assert all((workdir / name / quickstart.MARKER).is_file() for name in quickstart.FOLDERS)
    predictions_file = workdir / quickstart.PREDICTIONS_JSON
    written = predictions_file.read_text()
    predictions_file.write_text(written + " ")
    assert quickstart.not_made_here(workdir) == [predictions_file]
    predictions_file.write_text(written)
    quickstart.clear_earlier_run(workdir)
    assert sorted(path.name for path in workdir.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("theirs", ["data", "run", quickstart.ANNOTATED_PNG])
def test_quickstart_refuses_to_remove_what_it_did_not_make(tmp_path, capsys, theirs):
    workdir = tmp_path / "qs"
    ours = workdir / "export"  # made by an earlier quick start: it would be replaced, but nothing is when one refuses
    ours.mkdir(parents=True)
    (ours / quickstart.MARKER).write_text(quickstart.MARKER_NOTE)
    if theirs.endswith(".png"):
        (workdir / theirs).write_bytes(b"mine")
    else:
        (workdir / theirs).mkdir()
        (workdir / theirs / "mine.txt").write_text("mine")
    before = sorted(str(path.relative_to(workdir)) for path in workdir.rglob("*"))

    assert cli.main(["quickstart", "--workdir", str(workdir)]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith("emopy: error: ") and str(workdir / theirs) in line and "--workdir" in line, line
    assert "move it away" in line and captured.out == ""
    assert sorted(str(path.relative_to(workdir)) for path in workdir.rglob("*")) == before


@pytest.mark.parametrize("argv", [["--help"], ["landmarks", "--help"], ["quickstart", "--help"], ["tune", "--help"],
                                  ["studio", "--help"]])
def test_help(argv):
    result = emopy(*argv)
    assert result.returncode == 0 and "usage: emopy" in result.stdout


# --- Quiet by default: TensorFlow's start-up lines only with --verbose ---------------------------------------


@pytest.mark.scale  # emopy commands started twice, about 22 s: CI runs it with the scale checks
def test_tensorflow_start_up_lines_stay_off_the_terminal_unless_verbose(tmp_path):
    missing = str(tmp_path / "no_run")  # TensorFlow is loaded before the run directory is found missing
    quiet = emopy("evaluate", "--run", missing, env=_environment())
    assert quiet.returncode == 2
    (line,) = quiet.stderr.splitlines()
    assert line.startswith("emopy: error: ") and missing in line
    _assert_no_tensorflow_lines(quiet.stderr)

    verbose = emopy("--verbose", "evaluate", "--run", missing, env=_environment())
    assert verbose.returncode == 2 and TF_LOG_LINE.search(verbose.stderr), verbose.stderr
    assert verbose.stderr.splitlines()[-1] == line


def test_verbose_goes_before_or_after_the_subcommand():
    parser = cli._parser()
    assert parser.parse_args(["--verbose", "evaluate", "--run", "r"]).verbose
    assert parser.parse_args(["evaluate", "--run", "r", "--verbose"]).verbose
    assert not parser.parse_args(["evaluate", "--run", "r"]).verbose


FIRST_OP = """
import sys
from emopy.pipeline import cli
cli.start_tensorflow(verbose=sys.argv[1] == "verbose")
import tensorflow as tf
print(int(tf.constant(1) + 1))
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_the_first_op_after_a_quiet_start_logs_nothing(verbose):
    """Where there is no CUDA driver, the first op logs a failed cuInit unless start_tensorflow found the devices."""
    result = subprocess.run([sys.executable, "-c", FIRST_OP, "verbose" if verbose else "quiet"], capture_output=True,
                            text=True, env=_environment(), timeout=300)
    assert result.returncode == 0 and result.stdout == "2\n", result.stderr
    if verbose:
        assert TF_LOG_LINE.search(result.stderr), result.stderr
    else:
        assert result.stderr == ""


def test_a_failing_tensorflow_import_shows_its_error_and_what_tensorflow_printed(tmp_path):
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import os\n"
        "os.write(2, b'F0000 00:00:1.0  1 cpu_feature_guard.cc:1] needs AVX, which this CPU lacks\\n')\n"
        "raise ImportError('the fake tensorflow failed to load')\n")
    result = emopy("evaluate", "--run", str(tmp_path), env=_environment(PYTHONPATH=str(tmp_path)))
    assert result.returncode == 1
    assert "needs AVX, which this CPU lacks" in result.stderr
    assert "ImportError: the fake tensorflow failed to load" in result.stderr
    # What the import printed comes first, then the traceback that says where it failed.
    assert result.stderr.index("needs AVX") < result.stderr.index("Traceback")


def test_what_a_successful_block_writes_to_stderr_is_dropped(tmp_path, monkeypatch, capfd):
    (tmp_path / "noisy_module.py").write_text("import os\nos.write(2, b'I0000 noisy start-up\\n')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with quiet.stderr_held_back():
        import noisy_module  # noqa: F401
    print("after", file=sys.stderr)
    assert capfd.readouterr().err == "after\n"


NOISY_CHILD = r"""
import os, time
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
os.write(2, b"I0000 00:00:1796106908.276636    6115 port.cc:153] oneDNN custom operations are on.\n")
os.write(2, b"progress 10%\rprogress 50%\r")
os.write(2, b"E0000 00:00:1796101973.316007   24046 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\n")
os.write(2, b"E0000 00:00:1796101973.316007   24046 session.cc:52] a real error\n")
os.write(2, b"INFO:__main__:Logging handler created.\n")
os.write(2, b"I0000 00:00:1796106908.2")  # a start-up line written in two pieces
time.sleep(0.2)
os.write(2, b"77110    6115 cudart_stub.cc:31] Could not find cuda drivers on your machine\n")
os.write(2, b"Traceback (most recent call last):\nValueError: bad row 7")
"""


def test_start_up_lines_of_started_processes_are_left_out_and_the_rest_passes(tmp_path):
    """What Beam's workers print goes through emopy_tfds.quiet's filter: start-up lines out, the rest in order."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import subprocess, sys\n"
        "from emopy_tfds import quiet\n"
        "with quiet.start_up_lines_filtered():\n"
        f"    subprocess.run([sys.executable, '-c', {NOISY_CHILD!r}], check=True)\n"
        "    print('the parent too', file=sys.stderr)\n"
        "print('after the block', file=sys.stderr)\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=60,  # bytes: \r stays
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr
    assert result.stderr.decode() == ("progress 10%\rprogress 50%\r"
                             "E0000 00:00:1796101973.316007   24046 session.cc:52] a real error\n"
                             "Traceback (most recent call last):\nValueError: bad row 7"
                             "the parent too\nafter the block\n")
