"""fer2013 end to end: every source form, bad rows, FER+, `emopy build`, `tfds build` and atomic builds."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emopy_tfds import labels
from emopy_tfds.fer2013 import dummy_data_generation as generate
from emopy_tfds.fer2013 import fer2013_csv

from builds import IN_MEMORY, IN_PROCESS, build_here, emopy_build_here, load_split, load_splits
from builds import emopy_build as build_dataset

ROWS = 21
USAGES = ["Training"] * 13 + ["PublicTest"] * 4 + ["PrivateTest"] * 4
EMOTIONS = [i % 7 for i in range(ROWS)]


@pytest.fixture(scope="module")
def face_images(astronaut) -> np.ndarray:
    return generate.face_crops(astronaut, ROWS, seed=1)


def emopy_build(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return build_dataset("fer2013", *args, env=env)


def check_built(data_dir: Path, images: np.ndarray, *also: tuple[str, str]) -> dict[tuple[str, str], list[dict]]:
    """fer2013/original's splits hold the rows of `images` with their labels and landmarks; returns the splits
    `also` (name, split) read in the same process."""
    loaded = load_splits(data_dir, *(("fer2013", split) for split in fer2013_csv.SPLITS), *also)
    by_split = {split: loaded["fer2013", split] for split in fer2013_csv.SPLITS}
    for split, usage in ((s, u) for u, s in fer2013_csv.USAGE_TO_SPLIT.items()):
        expected = [i for i, row_usage in enumerate(USAGES) if row_usage == usage]
        got = by_split[split]
        assert sorted(example["index"] for example in got) == expected
        for example in got:
            index = example["index"]
            np.testing.assert_array_equal(np.array(example["image"])[:, :, 0], images[index])
            assert example["label"] == EMOTIONS[index]
            landmarks = np.array(example["landmarks"])
            assert landmarks.shape == (68, 2)
            # dlib's fit on a whole 48x48 face puts the points on the face, eyes above the mouth.
            assert np.all((landmarks > -8) & (landmarks < 56))
            assert landmarks[36:48, 1].mean() < landmarks[48:68, 1].mean()
    return {key: loaded[key] for key in also}


# --- Parsing and validation (pure functions) ----------------------------------------------------------


@pytest.mark.parametrize("form", ["plain", "crlf", "icml"])
def test_scan_reads_every_form_and_locates_pixels(tmp_path, face_images, form):
    path = generate.write_source(tmp_path, face_images, EMOTIONS, USAGES, form=form)
    scan = fer2013_csv.scan_rows(path)
    assert {split: len(rows) for split, rows in scan.rows.items()} == {"train": 13, "validation": 4, "test": 4}
    batch = scan.rows["validation"]
    images = fer2013_csv.read_batch_pixels(path, batch, name=path.name)
    for row, image in zip(batch, images):
        np.testing.assert_array_equal(image[:, :, 0], face_images[row["index"]])
        assert row["label"] == EMOTIONS[row["index"]]


def test_missing_source_lists_the_accepted_names_and_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        fer2013_csv.find_source(tmp_path)
    for name in ("fer2013.csv", "fer2013.tar.gz", "icml_face_data.csv", str(tmp_path)):
        assert name in str(error.value)


BAD_ROWS = {
    "short": ("0,1 2 3,Training", "row 2 (line 4): expected 2304 pixel values"),
    "letters": ("0," + " ".join(["7"] * 2303) + " x,Training", "row 2 (line 4): pixels are not all whole numbers"),
    "range": ("0," + " ".join(["7"] * 2303) + " 300,Training", "row 2 (line 4): pixel values outside 0..255"),
    "label": ("7," + " ".join(["7"] * 2304) + ",Training", "row 2 (line 4): label '7' is not one of 0..6"),
    "usage": ("0," + " ".join(["7"] * 2304) + ",Validation", "row 2 (line 4): unknown Usage 'Validation'"),
    "columns": ("0,Training", "row 2 (line 4): expected 3 columns"),
}


def csv_with_bad_row(folder: Path, images: np.ndarray, bad_line: str) -> Path:
    lines = generate.csv_bytes(images[:4], EMOTIONS[:4], ["Training", "Training", "PublicTest", "PrivateTest"])
    lines = lines.decode().splitlines()
    lines.insert(3, bad_line)  # the third data row
    path = folder / "fer2013.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("kind", sorted(BAD_ROWS))
def test_bad_rows_stop_the_scan_naming_file_and_row(tmp_path, face_images, kind):
    line, message = BAD_ROWS[kind]
    path = csv_with_bad_row(tmp_path, face_images, line)
    with pytest.raises(fer2013_csv.BadRowError, match="^fer2013.csv, " + message.replace("(", r"\(").replace(")", r"\)")):
        fer2013_csv.scan_rows(path)
    scan = fer2013_csv.scan_rows(path, skip_bad_rows=True)
    assert scan.num_rows == 4 and len(scan.bad_rows) == 1 and message in scan.bad_rows[0]
    # Rows after the bad one keep their own index, so `index` always points at the source row.
    assert [int(row["index"]) for rows in scan.rows.values() for row in rows] == [0, 1, 3, 4]


def test_ferplus_majority_and_left_out_rows(tmp_path):
    assert fer2013_csv.ferplus_left_out_reason("", [10] + [0] * 9) == "no image name"
    assert fer2013_csv.ferplus_left_out_reason("a.png", [1, 0, 0, 0, 0, 0, 0, 0, 8, 1]) == "majority unknown"
    assert fer2013_csv.ferplus_left_out_reason("a.png", [1, 0, 0, 0, 0, 0, 0, 0, 1, 8]) == "majority NF"
    assert fer2013_csv.ferplus_left_out_reason("a.png", [4, 0, 0, 0, 0, 0, 0, 0, 4, 2]) is None  # ties: emotion
    votes = [0, 2, 0, 0, 0, 0, 0, 6, 1, 1]
    assert labels.FERPLUS[fer2013_csv.ferplus_label(votes)] == "contempt"
    path = generate.write_ferplus(tmp_path, [votes, [0] * 8 + [9, 1]], ["Training", "Training"])
    ferplus = fer2013_csv.read_ferplus_votes(path)
    assert ferplus.votes == [tuple(votes), None] and ferplus.left_out["majority unknown"] == 1
    assert ferplus.usages == ["Training", "Training"]


def test_a_ferplus_file_that_does_not_align_with_fer2013s_is_refused(tmp_path, face_images):
    with pytest.raises(FileNotFoundError, match="the ferplus config needs Microsoft's fer2013new.csv"):
        fer2013_csv.read_ferplus_votes(tmp_path / fer2013_csv.FERPLUS_NAME)
    source = generate.write_source(tmp_path, face_images, EMOTIONS, USAGES)
    votes = [[10] + [0] * 9] * ROWS
    fewer = fer2013_csv.read_ferplus_votes(generate.write_ferplus(tmp_path, votes[:-1], USAGES[:-1]))
    with pytest.raises(fer2013_csv.BadRowError, match=f"^fer2013new.csv has {ROWS - 1} data rows but fer2013.csv "
                                                      f"has {ROWS}: the two files must list the same faces"):
        fer2013_csv.scan_rows(source, ferplus=fewer)
    # Rows 13 and 14 are PublicTest in fer2013.csv, Training here: the first is named, skip_bad_rows or not.
    swapped = fer2013_csv.read_ferplus_votes(generate.write_ferplus(tmp_path, votes, ["Training"] * 15 + USAGES[15:]))
    for skip_bad_rows in (False, True):
        with pytest.raises(fer2013_csv.BadRowError, match=r"^fer2013.csv, row 13 \(line 15\): Usage 'PublicTest', "
                                                          r"but fer2013new.csv has 'Training' at this row"):
            fer2013_csv.scan_rows(source, ferplus=swapped, skip_bad_rows=skip_bad_rows)
    aligned = fer2013_csv.read_ferplus_votes(generate.write_ferplus(tmp_path, votes, USAGES))
    assert fer2013_csv.scan_rows(source, ferplus=aligned).num_rows == ROWS


# --- Real builds --------------------------------------------------------------------------------------


# The forms whose files the builder finds and opens differently: the tarball is extracted (by the launching process,
# before any worker starts), the ICML CSV has its own name. plain and crlf differ only in line endings, which
# test_scan_reads_every_form_and_locates_pixels covers, and plain is built by
# test_tfds_build_command_line_builds_both_configs. The ICML form is built by `emopy build` with two worker
# processes, the tarball in this process (builds.build_here: each worker process costs about 15 s), and `tfds build`
# runs its Beam pipelines in its own process (builds.IN_MEMORY, passed on as any runner's options would be): both
# configs' DoFns run in worker processes in test_dask_build.
@pytest.mark.scale  # `emopy build` with 2 worker processes, about 45 s: CI runs it with the scale checks
def test_emopy_build_with_two_workers_on_the_icml_form(tmp_path, face_images):
    manual = tmp_path / "manual"
    generate.write_source(manual, face_images, EMOTIONS, USAGES, form="icml")
    result = emopy_build("--manual-dir", str(manual), "--data-dir", str(tmp_path / "data"), "--workers", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Prism" not in result.stderr  # no attempt to fetch a runner binary
    # Quiet by default: none of the workers' TensorFlow or Beam start-up lines (emopy_tfds.quiet).
    assert not re.search(r"^[IWE]\d{4} |absl::InitializeLog|cuInit|oneDNN|apitools|Logging handler created",
                         result.stderr, re.MULTILINE), result.stderr[-3000:]
    # The workers really were separate processes: the rows' landmarks were fitted in processes other than
    # `emopy build` (an in-process runner would print its own id).
    workers = {int(line.rsplit("worker ", 1)[1].rstrip(")")) for line in result.stderr.splitlines()
               if line.startswith("fer2013: batch ")}
    assert workers and result.pid not in workers, (result.pid, workers)
    assert "train            13 examples" in result.stdout and "test              4 examples" in result.stdout
    assert str(tmp_path / "data" / "fer2013" / "original" / "1.0.0") in result.stdout
    check_built(tmp_path / "data", face_images)


@pytest.mark.scale  # a build of its own, about 17 s: CI runs it with the scale checks
def test_the_tarball_form_is_extracted_and_built(tmp_path, face_images):
    manual = tmp_path / "manual"
    generate.write_source(manual, face_images, EMOTIONS, USAGES, form="tarball")
    assert [path.name for path in manual.iterdir()] == ["fer2013.tar.gz"]
    summary = build_here("fer2013", manual, tmp_path / "data")
    assert "train            13 examples" in summary and "test              4 examples" in summary
    check_built(tmp_path / "data", face_images)


@pytest.mark.scale  # `tfds build` in a process of its own, about 35 s: CI runs it with the scale checks
def test_tfds_build_command_line_builds_both_configs(tmp_path, face_images):
    manual = tmp_path / "manual"
    generate.write_source(manual, face_images, EMOTIONS, USAGES, form="plain")
    generate.write_ferplus(manual, [[10] + [0] * 9] * ROWS, USAGES)
    builder_folder = Path(fer2013_csv.__file__).parent
    result = subprocess.run(
        ["tfds", "build", str(builder_folder), "--manual_dir", str(manual), "--data_dir", str(tmp_path / "data"),
         f"--beam_pipeline_options=runner=DirectRunner,allow_unsafe_triggers,{IN_MEMORY}"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ferplus = check_built(tmp_path / "data", face_images, ("fer2013/ferplus", "train"))
    assert len(ferplus["fer2013/ferplus", "train"]) == 13


def test_ferplus_without_its_file_is_a_clear_error(tmp_path, face_images):
    manual = tmp_path / "manual"
    generate.write_source(manual, face_images, EMOTIONS, USAGES, form="plain")
    result = emopy_build_here("fer2013", "--manual-dir", str(manual), "--data-dir", str(tmp_path / "data"),
                              "--config", "ferplus")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "the ferplus config needs Microsoft's fer2013new.csv" in result.stderr


def test_ferplus_rows_out_of_line_stop_emopy_build_naming_the_row(tmp_path, face_images):
    manual = tmp_path / "manual"
    generate.write_source(manual, face_images, EMOTIONS, USAGES, form="plain")
    generate.write_ferplus(manual, [[10] + [0] * 9] * ROWS, ["Training"] * 15 + USAGES[15:])
    result = emopy_build_here("fer2013", "--manual-dir", str(manual), "--data-dir", str(tmp_path / "data"),
                              "--config", "ferplus")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "fer2013.csv, row 13 (line 15): Usage 'PublicTest', but fer2013new.csv has 'Training'" in result.stderr


# `emopy build` in a process of its own, about 30 s; training_data builds FER+ in this process: CI runs it with the
# scale checks.
@pytest.mark.scale
def test_ferplus_config_builds_with_votes(tmp_path, face_images):
    manual = tmp_path / "manual"
    generate.write_source(manual, face_images, EMOTIONS, USAGES, form="plain")
    votes = [[0] * 10 for _ in range(ROWS)]
    for i in range(ROWS):
        votes[i][i % 8] = 7
        votes[i][(i + 1) % 8] = 3
    votes[5] = [1, 0, 0, 0, 0, 0, 0, 0, 9, 0]  # majority unknown: left out
    names = [f"fer{i:07d}.png" for i in range(ROWS)]
    names[14] = ""  # FER+ dropped this image (a validation row)
    generate.write_ferplus(manual, votes, USAGES, names)
    result = emopy_build("--manual-dir", str(manual), "--data-dir", str(tmp_path / "data"), "--config", "ferplus",
                         *IN_PROCESS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "FER+ left out 2 row(s): 1 no image name, 1 majority unknown" in result.stdout
    loaded = load_splits(tmp_path / "data", ("fer2013/ferplus", "train"), ("fer2013/ferplus", "validation"))
    train, validation = loaded["fer2013/ferplus", "train"], loaded["fer2013/ferplus", "validation"]
    assert 5 not in [e["index"] for e in train] and len(train) == 12
    assert 14 not in [e["index"] for e in validation] and len(validation) == 3
    for example in train:
        assert example["ferplus_votes"] == votes[example["index"]]
        assert example["label"] == example["index"] % 8
        assert example["fer2013_label"] == EMOTIONS[example["index"]]


def test_bad_row_stops_emopy_build_and_skip_bad_rows_counts_it(tmp_path, face_images):
    manual = tmp_path / "manual"
    manual.mkdir()
    csv_with_bad_row(manual, face_images, BAD_ROWS["short"][0])
    data_dir = tmp_path / "data"
    stopped = emopy_build_here("fer2013", "--manual-dir", str(manual), "--data-dir", str(data_dir), "--workers", "2")
    assert stopped.returncode == 1
    assert "fer2013.csv, row 2 (line 4): expected 2304 pixel values (48x48), got 3" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert not (data_dir / "fer2013" / "original" / "1.0.0").exists()

    skipped = emopy_build_here("fer2013", "--manual-dir", str(manual), "--data-dir", str(data_dir), *IN_PROCESS,
                               "--skip-bad-rows")
    assert skipped.returncode == 0, skipped.stderr[-3000:]
    assert "skipped 1 bad row(s)" in skipped.stdout
    metadata = json.loads((data_dir / "fer2013" / "original" / "1.0.0" / "metadata.json").read_text())
    assert metadata["bad_rows_skipped"] == 1 and "row 2 (line 4)" in metadata["bad_rows"][0]
    assert sorted(e["index"] for e in load_split(data_dir, "fer2013", "train")) == [0, 1]


def test_a_failed_build_leaves_nothing_tfds_load_accepts(tmp_path, face_images):
    manual = tmp_path / "manual"
    generate.write_source(manual, face_images, EMOTIONS, USAGES, form="plain")
    broken_model = tmp_path / "broken.dat"
    broken_model.write_bytes(b"not a shape predictor")
    data_dir = tmp_path / "data"
    failed = emopy_build("--manual-dir", str(manual), "--data-dir", str(data_dir), "--workers", "2",
                         env={"EMOPY_LANDMARK_MODEL": str(broken_model)})
    assert failed.returncode != 0
    config_dir = data_dir / "fer2013" / "original"
    assert not (config_dir / "1.0.0").exists()
    assert all(path.name.startswith("incomplete") for path in config_dir.iterdir()) if config_dir.exists() else True
    script = (
        "import emopy_tfds, tensorflow_datasets as tfds\n"
        f"tfds.load('fer2013', split='train', data_dir={str(data_dir)!r}, download=False)\n"
    )
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300).returncode != 0
